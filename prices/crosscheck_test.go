package prices_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/prices"
)

// starterPath is the generated starter list (scripts/prices/generate.mjs).
const starterPath = "starter.json"

// scriptsDir holds the generator, the cross-check and their pinned
// @pydantic/genai-prices.
var scriptsDir = filepath.Join("..", "scripts", "prices")

// scriptTimeout bounds a run of generate.mjs or crosscheck.mjs: each takes
// about two seconds; a minute leaves room for a loaded CI machine.
const scriptTimeout = time.Minute

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadStarter(t *testing.T) *prices.List {
	t.Helper()
	l, err := prices.Parse(mustRead(t, starterPath))
	if err != nil {
		t.Fatalf("prices.Parse(%s): %v", starterPath, err)
	}
	return l
}

func TestStarterListParses(t *testing.T) {
	l := loadStarter(t)
	if l.Name != prices.DefaultList || l.Currency != "USD" {
		t.Errorf("list %q currency %q, want %q USD", l.Name, l.Currency, prices.DefaultList)
	}
	if n := len(l.Models); n < 1000 {
		t.Errorf("%d models, want the package's 1,000 or more", n)
	}
	for _, name := range []string{"claude-sonnet-4-5", "gpt-4o", "gemini-2.5-pro"} {
		if _, ok := l.Lookup(name, ""); !ok {
			t.Errorf("Lookup(%q): not in the starter list", name)
		}
	}
}

// crossCase is one line of crosscheck.mjs's output.
type crossCase struct {
	Shape    string       `json:"shape"`
	Model    string       `json:"model"`
	Provider string       `json:"provider"`
	Usage    prices.Usage `json:"usage"`
	Total    string       `json:"total"`
}

// runScript runs a script of scripts/prices with node and returns its
// standard output. Without node or the pinned package it skips, unless CI
// is set: there .ci/run installs them, and their absence is a failure.
func runScript(t *testing.T, args ...string) []byte {
	t.Helper()
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	missing := func(format string, a ...any) {
		t.Helper()
		if ci {
			t.Fatalf(format, a...)
		}
		t.Skipf(format, a...)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not installed: scripts/prices needs Node.js 20+")
	}
	if _, err := os.Stat(filepath.Join(scriptsDir, "node_modules", "@pydantic", "genai-prices")); err != nil {
		missing("@pydantic/genai-prices is not installed: run `cd scripts/prices && npm ci` (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = scriptsDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// crossCases runs crosscheck.mjs.
func crossCases(t *testing.T) []crossCase {
	t.Helper()
	var res struct {
		PackageVersion string      `json:"package_version"`
		Cases          []crossCase `json:"cases"`
	}
	if err := json.Unmarshal(runScript(t, "crosscheck.mjs"), &res); err != nil {
		t.Fatalf("crosscheck.mjs output: %v", err)
	}
	return res.Cases
}

// TestStarterIsGenerated: the committed list is exactly what generate.mjs
// makes from the pinned package on the date its version names, so nobody
// edits it by hand and a change to the generator shows in the list.
func TestStarterIsGenerated(t *testing.T) {
	l := loadStarter(t)
	rest, ok := strings.CutPrefix(l.Version, "genai-prices-")
	_, date, found := strings.Cut(rest, "+")
	if !ok || !found {
		t.Fatalf("version %q, want genai-prices-VERSION+DATE", l.Version)
	}
	out := filepath.Join(t.TempDir(), "starter.json")
	runScript(t, "generate.mjs", "--date", date, "--out", out)
	if !bytes.Equal(mustRead(t, out), mustRead(t, starterPath)) {
		t.Errorf("%s differs from what `node generate.mjs --date %s` writes now: regenerate it (scripts/prices/README.md)", starterPath, date)
	}
}

// floatNoiseRelMax is how far calcPrice's float total may stray from the
// exact one, relatively: a few roundings of a 53-bit significand (about
// 1e-16 each) over a handful of additions.
const floatNoiseRelMax = 1e-13

// closeTo reports whether the float f is the exact total within float
// noise. Rounding f to our digits alone would let a total of theirs with
// more digits than ours (a rate we truncated) pass; this catches it. The
// float here is only the test's yardstick, never an amount.
func closeTo(exact string, f float64) bool {
	e, err := strconv.ParseFloat(exact, 64)
	if err != nil {
		return false
	}
	return math.Abs(e-f) <= floatNoiseRelMax*math.Max(math.Abs(e), math.Abs(f))
}

// TestStarterAgreesWithGenaiPrices prices every case both ways: our exact
// total must be calcPrice's float rounded to as many fractional digits as
// ours has, digit for digit (the float carries binary rounding noise below
// those digits), and the float must be within noise of it.
func TestStarterAgreesWithGenaiPrices(t *testing.T) {
	l := loadStarter(t)
	cases := crossCases(t)
	covered := map[string]bool{}
	bad := 0
	for _, c := range cases {
		u := c.Usage
		u.Model, u.Provider = c.Model, c.Provider
		if err := u.Validate(); err != nil {
			t.Fatalf("%s/%s (%s): %v", c.Provider, c.Model, c.Shape, err)
		}
		ch, err := l.Price(u)
		if err != nil {
			t.Errorf("%s/%s (%s): Price: %v", c.Provider, c.Model, c.Shape, err)
			continue
		}
		f, err := strconv.ParseFloat(c.Total, 64)
		if err != nil {
			t.Fatalf("%s/%s (%s): calcPrice total %q: %v", c.Provider, c.Model, c.Shape, c.Total, err)
		}
		got := ch.Total.String()
		want := strconv.FormatFloat(f, 'f', ch.Total.FractionDigits(), 64)
		if got != want || !closeTo(got, f) {
			bad++
			if bad <= 20 {
				t.Errorf("%s/%s (%s): ours %s, calcPrice %s (%s)", c.Provider, c.Model, c.Shape, got, c.Total, ch.Describe())
			}
		}
		covered[ch.Model] = true
	}
	for _, m := range l.Models {
		if !covered[m.ID] {
			t.Errorf("model %s/%s: no cross-check case", m.Provider, m.ID)
		}
	}
	t.Logf("checked %d cases over %d models against @pydantic/genai-prices' calcPrice; %d disagree", len(cases), len(covered), bad)
}
