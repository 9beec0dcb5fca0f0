package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// Browser test bounds.
const (
	// browserTimeout bounds the whole browser session.
	browserTimeout = 25 * time.Second
	// screenshotDir is the repo's ignored output folder (CI keeps it as
	// an artifact).
	screenshotDir = "../out"
)

// chromiumNames are the executables tried, Debian's first.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// findChromium returns the browser's path. Without one the test skips,
// unless CI=true: there a missing browser is a failure (.ci/run installs
// Debian's chromium).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("CI=true but no browser was found (tried %v): .ci/run installs Debian's chromium", chromiumNames)
	}
	t.Skipf("skipping the browser test: no headless browser installed (tried %v); apt-get install chromium", chromiumNames)
	return ""
}

// tableRow is what a row of the customer table shows.
type tableRow struct {
	ID        string `json:"id"`
	Used      string `json:"used"`
	Reserved  string `json:"reserved"`
	Remaining string `json:"remaining"`
	Limit     string `json:"limit"`
	Level     string `json:"level"`
}

const readTable = `Array.from(document.querySelectorAll('#customers tbody tr')).map(tr => ({
  id: tr.dataset.id,
  used: tr.querySelector('.c-used').textContent,
  reserved: tr.querySelector('.c-reserved').textContent,
  remaining: tr.querySelector('.c-remaining').textContent,
  limit: tr.querySelector('.c-limit').textContent,
  level: tr.className.replace(/.*lvl-/, ''),
}))`

// TestDashboardInBrowser loads the dashboard in headless Chromium against
// a real server: the table shows the scripted customers with their
// numbers, an exhaustion shows in the live feed without a reload, and the
// customer page draws its history and chart. Screenshots go to out/.
func TestDashboardInBrowser(t *testing.T) {
	browser := findChromium(t)
	e := newScriptedEnv(t)

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1440, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, browserTimeout)
	defer cancel()

	err := chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/?key="+e.auditor), // signs in, then redirects to /
		chromedp.WaitVisible(`#customers tbody tr[data-id="globex"]`),
	)
	if err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]tableRow](readTable))
	if err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	want := []tableRow{
		{"initech", "46", "0", "4", "50", "critical"},
		{"acme", "55", "30", "15", "100", "warn"},
		{"globex", "10", "0", "190", "200", "ok"},
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("table: got %+v, want %+v", rows, want)
	}

	// Exhaust initech while the page is open (a hold of its last 4 units),
	// then get a refusal: both alerts and the new row arrive without a
	// reload.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#feed-state.good`)); err != nil {
		t.Fatalf("the live feed did not connect: %v", err)
	}
	if r := e.preflight("initech", "writer", "4"); !r.Approved {
		t.Fatalf("a 4-unit preflight with 4 left was refused: %s", r.Message)
	}
	if r := e.preflight("initech", "writer", "1"); r.Approved {
		t.Fatal("a 1-unit preflight with nothing left was approved")
	}
	err = chromedp.Do(ctx,
		chromedp.WaitVisible(`#feed li[data-type="budget_exhausted"][data-customer="initech"]`),
		chromedp.WaitVisible(`#feed li[data-type="denied"][data-customer="initech"]`),
		chromedp.WaitVisible(`#customers tbody tr.lvl-exhausted[data-id="initech"]`),
	)
	if err != nil {
		shoot(ctx, t, "dashboard-failed.png")
		t.Fatalf("the exhaustion did not reach the page: %v", err)
	}
	rows, err = chromedp.Run(ctx, chromedp.Evaluate[[]tableRow](readTable))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rows[0], (tableRow{"initech", "46", "4", "0", "50", "exhausted"}); got != want {
		t.Fatalf("initech after the exhaustion: got %+v, want %+v", got, want)
	}
	feed, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](readThresholds))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(feed)
	if want := []string{
		"acme passed 80% of 100 (used 55, reserved 30)",
		"initech passed 91.25% of 50 (used 0, reserved 46)",
	}; !slices.Equal(feed, want) {
		t.Fatalf("the feed's crossed thresholds read %q, want %q", feed, want)
	}
	shoot(ctx, t, "dashboard.png")
	checkSortAndSearch(ctx, t)

	// The customer page: its history and its chart.
	err = clickRow(ctx, "acme")
	if err == nil {
		err = chromedp.Do(ctx, chromedp.WaitVisible(`#d-chart svg path.chart-used`))
	}
	if err != nil {
		t.Fatalf("customer page: %v", err)
	}
	history, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#d-history tbody tr').length`))
	if err != nil {
		t.Fatalf("customer page: %v", err)
	}
	if history != 5 {
		t.Fatalf("acme's history shows %d events, want 5", history)
	}
	stats, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](readStats))
	if err != nil {
		t.Fatalf("customer page: %v", err)
	}
	if want := []string{"Limit 100", "Used 55", "Reserved 30", "Remaining 15", "Open holds 1", "Thresholds 80%"}; !slices.Equal(stats, want) {
		t.Fatalf("acme's figures read %q, want %q", stats, want)
	}
	shoot(ctx, t, "dashboard-customer.png")

	// The same page in dark mode (the page follows the system's scheme).
	dark := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, dark); err != nil {
		t.Fatalf("dark mode: %v", err)
	}
	shoot(ctx, t, "dashboard-customer-dark.png")
}

// readStats is the customer page's figures, "name value" each.
const readStats = `Array.from(document.querySelectorAll('#d-stats .stat')).map(s => s.querySelector('.k').textContent + ' ' + s.querySelector('.v').textContent)`

// readThresholds is the live feed's crossed thresholds, as they read.
const readThresholds = `Array.from(document.querySelectorAll('#feed li[data-type="threshold_crossed"] .body')).map(b => b.textContent)`

// readIDs is the customer column, top to bottom.
const readIDs = `Array.from(document.querySelectorAll('#customers tbody tr')).map(tr => tr.dataset.id)`

// checkSortAndSearch sorts the table by a column, both ways, then
// searches it, and puts it back as it was.
func checkSortAndSearch(ctx context.Context, t *testing.T) {
	t.Helper()
	ids := func() []string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](readIDs))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, want := range [][]string{{"globex", "acme", "initech"}, {"initech", "acme", "globex"}} { // limit: high to low, then low to high
		if err := chromedp.Do(ctx, chromedp.Click(`#customers th[data-key="limit"]`)); err != nil {
			t.Fatal(err)
		}
		if got := ids(); !slices.Equal(got, want) {
			t.Fatalf("sorted by limit: got %v, want %v", got, want)
		}
	}
	err := chromedp.Do(ctx,
		chromedp.SendKeys(`#search`, "GLO"),
		chromedp.WaitNotPresent(`#customers tbody tr[data-id="acme"]`),
	)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	if got := ids(); !slices.Equal(got, []string{"globex"}) {
		t.Fatalf("search GLO: got %v, want [globex]", got)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#search`, "\b\b\b"), // backspace the query away
		chromedp.WaitVisible(`#customers tbody tr[data-id="acme"]`),
	)
	if err != nil {
		t.Fatalf("clear the search: %v", err)
	}
}

// clickRow clicks the customer table's row of id inside the page, in one
// step. The table is drawn again after every alert (app.js, soon), so a
// click by node (chromedp.Click finds the node, then clicks it) can miss
// a row replaced in between: "Could not find node with given id".
func clickRow(ctx context.Context, id string) error {
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`(() => { const tr = document.querySelector('#customers tbody tr[data-id="`+id+`"]'); if (tr) tr.click(); return !!tr; })()`))
	if err == nil && !ok {
		err = fmt.Errorf("no row %q in the customer table", id)
	}
	return err
}

// shoot saves a screenshot of the whole page in screenshotDir.
func shoot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(screenshotDir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(p)
	t.Logf("screenshot: %s", abs)
}

// readGrants and readScopes are the customer page's grant and scope
// tables, one string per row, cells joined by " | ".
const (
	readGrants = `Array.from(document.querySelectorAll('#d-grants tbody tr')).map(tr => Array.from(tr.cells).map(c => c.textContent).join(' | '))`
	readScopes = `Array.from(document.querySelectorAll('#d-scopes tbody tr')).map(tr => Array.from(tr.cells).map(c => c.textContent).join(' | '))`
	// readInjected counts what a scope value could have injected: any
	// element in the scope table other than the table's own.
	readInjected = `document.querySelectorAll('#d-scopes img, #d-scopes script, #d-scopes td *').length`
)

// TestRulesInBrowser opens the customer page of a customer with grants,
// scope limits, an overdraft, rollover and run caps in headless Chromium:
// the grants show in draw-down order, the scopes with their usage (one
// past its limit), the rules as figures, the negative remaining as it
// is, and a scope value that looks like HTML as text.
func TestRulesInBrowser(t *testing.T) {
	browser := findChromium(t)
	e := newEnv(t)
	promo, purchase := e.rulesScript()
	e.waitFollower()

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1440, 1100))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, browserTimeout)
	defer cancel()

	err := chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/?key="+e.auditor),
		chromedp.WaitVisible(`#customers tbody tr[data-id="credits"]`),
	)
	if err == nil {
		err = clickRow(ctx, "credits")
	}
	if err == nil {
		err = chromedp.Do(ctx,
			chromedp.WaitVisible(`#d-grants tbody tr`),
			chromedp.WaitVisible(`#d-scopes tbody tr`),
		)
	}
	if err != nil {
		shoot(ctx, t, "dashboard-rules-failed.png")
		t.Fatalf("the customer page with grants and scopes: %v", err)
	}
	grants, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](readGrants))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{
		promo.GrantID + " | 13 / 50 | 10 | promo | 2026-04-13 09:00:00",
		purchase.GrantID + " | 25 / 25 | 100 | purchase | never",
	}; !slices.Equal(grants, want) {
		t.Fatalf("grants read %q, want %q", grants, want)
	}
	scopes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](readScopes))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{
		"team | " + hostileValue + " | 7 | 0 | 5 | -2 | day",
		"team | research | 20 | 0 | 30 | 10 | month",
	}; !slices.Equal(scopes, want) {
		t.Fatalf("scopes read %q, want %q", scopes, want)
	}
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[int](readInjected))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
	if err != nil {
		t.Fatal(err)
	}
	if injected != 0 || title != "AgentBill" {
		t.Fatalf("the scope value ran as markup: %d elements in the scope cells, title %q", injected, title)
	}
	stats, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](readStats))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Limit 100", "Used 137", "Reserved 50", "Remaining -12", "Open holds 1", "Thresholds —",
		"Grants left 38", "Overdraft 20", "Rollover all unused", "Run caps 3 open · 2 per agent", "Rate limit 50/s, burst 100"}; !slices.Equal(stats, want) {
		t.Fatalf("credits' figures read %q, want %q", stats, want)
	}
	// The overdraft was announced while the dashboard ran: the feed
	// replays it to the page.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#feed li[data-type="overdraft_started"][data-customer="credits"]`)); err != nil {
		t.Fatalf("the overdraft is not in the feed: %v", err)
	}
	od, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#feed li[data-type="overdraft_started"] .body').textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "credits · writer: -12 left, overdraft 20"; od != want {
		t.Fatalf("the feed's overdraft reads %q, want %q", od, want)
	}
	shoot(ctx, t, "dashboard-rules.png")

	// A customer without rules shows neither table.
	e.budget("plain", "10")
	e.waitFollower()
	err = chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/#/customer/plain"),
		chromedp.WaitVisible(`#d-stats .stat`),
		chromedp.WaitNotVisible(`#d-rules`),
	)
	if err != nil {
		t.Fatalf("a customer without rules: %v", err)
	}
}
