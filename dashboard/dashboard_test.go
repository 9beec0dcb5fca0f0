package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/dashboard"
	"github.com/agentbill/agentbill/keys"
)

// noRedirect is an HTTP client that shows redirects instead of following.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get sends GET path with the key as a bearer token ("" for none) and
// returns the response and its body.
func (e *env) get(path, key string, cookies ...*http.Cookie) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, string(b)
}

func (e *env) getJSON(path, key string, v any) int {
	e.t.Helper()
	res, body := e.get(path, key)
	if err := json.Unmarshal([]byte(body), v); err != nil {
		e.t.Fatalf("GET %s: %d %q: %v", path, res.StatusCode, body, err)
	}
	return res.StatusCode
}

// expectError checks that GET path (as the auditor) fails with status and
// the gateway's error shape with code.
func (e *env) expectError(path string, status int, code string) {
	e.t.Helper()
	var got struct{ Error struct{ Code string } }
	if st := e.getJSON(path, e.auditor, &got); st != status || got.Error.Code != code {
		e.t.Fatalf("GET %s: got %d %q, want %d %s", path, st, got.Error.Code, status, code)
	}
}

func TestSignIn(t *testing.T) {
	e := newEnv(t)
	res, body := e.get("/", "")
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `action="/ui/login"`) {
		t.Fatalf("no key: got %d %q, want 401 and the sign-in form", res.StatusCode, body)
	}
	// ?key= signs in: a cookie scripts cannot read, that no other site
	// sends, and a redirect that takes the key out of the address bar.
	res, _ = e.get("/?key="+e.auditor, "")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("?key=: got %d to %q, want 303 to /", res.StatusCode, res.Header.Get("Location"))
	}
	cookies := res.Cookies()
	if len(cookies) != 1 || cookies[0].Name != dashboard.CookieName || !cookies[0].HttpOnly ||
		cookies[0].SameSite != http.SameSiteStrictMode || cookies[0].Value != e.auditor {
		t.Fatalf("cookie: got %+v, want one HttpOnly SameSite=Strict %s holding the key", cookies, dashboard.CookieName)
	}
	res, body = e.get("/", "", cookies[0])
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `id="customers"`) {
		t.Fatalf("signed in: got %d, want 200 and the dashboard", res.StatusCode)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("Content-Security-Policy %q", csp)
	}
	// The form does the same.
	res2, err := noRedirect.PostForm(e.url+"/ui/login", url.Values{"key": {e.key(keys.RoleAdmin, "")}})
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusSeeOther || len(res2.Cookies()) != 1 {
		t.Fatalf("form sign-in with an admin key: got %d, cookies %v", res2.StatusCode, res2.Cookies())
	}
}

func TestSignInRefusesKeys(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name, key string
		status    int
		says      string
	}{
		{"unknown", "agb_" + strings.Repeat("A", 43), http.StatusUnauthorized, "unknown"},
		{"malformed", "hello", http.StatusUnauthorized, "key"},
		{"agent", e.key(keys.RoleAgent, ""), http.StatusForbidden, "auditor or admin"},
		{"bound auditor", e.key(keys.RoleAuditor, "acme"), http.StatusForbidden, "bound to customer"},
	} {
		res, body := e.get("/?key="+url.QueryEscape(c.key), "")
		if res.StatusCode != c.status || len(res.Cookies()) != 0 || !strings.Contains(strings.ToLower(body), c.says) {
			t.Errorf("%s key: got %d, cookies %v, body %q; want %d saying %q and no cookie", c.name, res.StatusCode, res.Cookies(), body, c.status, c.says)
		}
		if res, _ := e.get("/ui/api/customers", c.key); res.StatusCode != c.status {
			t.Errorf("%s key on the API: got %d, want %d", c.name, res.StatusCode, c.status)
		}
	}
}

func TestCustomerTable(t *testing.T) {
	e := newScriptedEnv(t)
	var tb dashboard.Table
	if code := e.getJSON("/ui/api/customers", e.auditor, &tb); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	type row struct{ id, limit, used, reserved, remaining, level string }
	var got []row
	for _, r := range tb.Rows {
		got = append(got, row{r.ID, r.Limit, r.Used, r.Reserved, r.Remaining, r.Level})
	}
	want := []row{ // most urgent first
		{"initech", "50", "46", "0", "4", dashboard.LevelCritical},
		{"acme", "100", "55", "30", "15", dashboard.LevelWarn},
		{"globex", "200", "10", "0", "190", dashboard.LevelOK},
	}
	levels := map[string]int{dashboard.LevelCritical: 1, dashboard.LevelWarn: 1, dashboard.LevelOK: 1}
	if !slices.Equal(got, want) || tb.Total != 3 || tb.Matched != 3 || tb.Truncated || !tb.Ready || !maps.Equal(tb.Levels, levels) {
		t.Fatalf("table: got %+v (total %d, matched %d, levels %v), want %+v and levels %v", got, tb.Total, tb.Matched, tb.Levels, want, levels)
	}
	if code := e.getJSON("/ui/api/customers?q=GLO", e.auditor, &tb); code != http.StatusOK || len(tb.Rows) != 1 ||
		tb.Rows[0].ID != "globex" || tb.Matched != 1 || tb.Total != 3 {
		t.Fatalf("search: %d %+v", code, tb)
	}
	e.expectError("/ui/api/customers?q="+strings.Repeat("x", dashboard.SearchBytesMax+1), http.StatusBadRequest, "invalid_argument")
}

func TestCustomerPage(t *testing.T) {
	e := newScriptedEnv(t)
	var p dashboard.CustomerPage
	if code := e.getJSON("/ui/api/customers/acme", e.auditor, &p); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	var types []string
	for _, h := range p.History {
		types = append(types, h.Type+" "+h.Used+"/"+h.Reserved+"/"+h.Remaining)
	}
	want := []string{
		"budget_set 0/0/100", "reserved 0/60/40", "recorded 55/0/45",
		"reserved 55/30/15", "threshold_crossed 55/30/15",
	}
	if !slices.Equal(types, want) {
		t.Fatalf("history: got %q, want %q", types, want)
	}
	c := p.Customer
	if c.Used != "55" || c.Reserved != "30" || c.Remaining != "15" || c.Limit != "100" || p.Agents["research"].Used != "55" ||
		!p.PeriodStart.Equal(t0.AddDate(0, 0, -13).Truncate(24*60*60e9)) || len(p.Thresholds) != 1 || p.Thresholds[0] != "0.8" {
		t.Fatalf("page: %+v", p)
	}
	e.expectError("/ui/api/customers/nobody", http.StatusNotFound, "not_found")
}

// TestFeed reads the server-sent events directly: an exhaustion committed
// after the stream opened arrives on it.
func TestFeed(t *testing.T) {
	e := newEnv(t)
	e.budget("acme", "10")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/ui/api/feed", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.auditor)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("feed: got %d %q", res.StatusCode, ct)
	}
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() && lines.Text() != ": connected" {
	}
	if r := e.preflight("acme", "a", "11"); r.Approved {
		t.Fatal("an 11-unit preflight on a 10-unit budget was approved")
	}
	var got []string
	for lines.Scan() && len(got) < 2 {
		data, ok := strings.CutPrefix(lines.Text(), "data: ")
		if !ok {
			continue
		}
		var row dashboard.EventRow
		if err := json.Unmarshal([]byte(data), &row); err != nil {
			t.Fatalf("feed line %q: %v", data, err)
		}
		got = append(got, row.Type+" "+row.CustomerID+" "+row.Remaining)
	}
	want := []string{"denied acme 10", "budget_exhausted acme 10"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("feed: got %q, want %q", got, want)
	}
}

// TestStatic: the script and the styles are served without a key (they
// hold no data), and nothing else under static/ is.
func TestStatic(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{
		"/ui/static/app.js": "text/javascript", "/ui/static/style.css": "text/css",
		"/ui/static/": "application/json", "/ui/static/login.html": "application/json", "/ui/elsewhere": "application/json",
	} {
		res, _ := e.get(path, "")
		wantStatus := http.StatusOK
		if want == "application/json" {
			wantStatus = http.StatusNotFound
		}
		if ct := res.Header.Get("Content-Type"); res.StatusCode != wantStatus || !strings.HasPrefix(ct, want) {
			t.Errorf("GET %s: got %d %q, want %d %s", path, res.StatusCode, ct, wantStatus, want)
		}
	}
}

// TestTableCache: pages share one table while it is fresh, and an alert
// makes the next read recompute. The cache's clock stands still here, so
// the table never expires and only the alert can refresh it
// (TestTableCacheAges checks the ages).
func TestTableCache(t *testing.T) {
	e := newEnv(t)
	dashboard.SetCacheClock(e.dash, func() time.Time { return t0 })
	e.budget("acme", "10")
	e.waitFollower()
	total := func() int {
		var tb dashboard.Table
		if code := e.getJSON("/ui/api/customers", e.auditor, &tb); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		return tb.Total
	}
	if n := total(); n != 1 {
		t.Fatalf("customers: %d, want 1", n)
	}
	e.budget("globex", "10") // no alert
	e.waitFollower()
	if n := total(); n != 1 {
		t.Fatalf("within %s: %d customers, want the cached 1", dashboard.TableCacheAge, n)
	}
	if r := e.preflight("acme", "a", "11"); r.Approved {
		t.Fatal("11 units of 10 approved")
	}
	e.waitFollower()
	deadline := time.Now().Add(testTimeout)
	for total() != 2 { // the alert reaches the dashboard on its own subscription
		if time.Now().After(deadline) {
			t.Fatal("the table still shows 1 customer after an alert: the alert did not invalidate the cache")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
