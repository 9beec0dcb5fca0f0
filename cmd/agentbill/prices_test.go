package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/internal/testing/testenv"
)

// TestPricesCommands runs the real binary: the starter list is set, set
// again (unchanged), shown; a customer's budget names a second list made
// from the same file; usage recorded with --usage is charged its price,
// one the list cannot price is charged its hold and counted in status;
// bad lists are refused before anything is sent.
func TestPricesCommands(t *testing.T) {
	s := serve(t, t.TempDir(), testenv.FreePort(t), "--default-budget", "none")
	starter := filepath.Join("..", "..", "prices", "starter.json")
	out := s.must(t, 0, "prices", "set", "--file", starter)
	if !strings.Contains(out, "price list default version genai-prices-") || !strings.Contains(out, ": set,") {
		t.Fatalf("prices set: %s", out)
	}
	if out = s.must(t, 0, "prices", "set", "--file", starter); !strings.Contains(out, "unchanged") {
		t.Fatalf("prices set again: %s", out)
	}
	s.must(t, 0, "prices", "set", "--file", starter, "--list", "pro")
	out = s.must(t, 0, "prices", "show")
	if !strings.Contains(out, "default  version") || !strings.Contains(out, "pro  version") {
		t.Fatalf("prices show: %s", out)
	}
	if out = s.must(t, 0, "prices", "show", "--list", "pro"); !strings.Contains(out, "claude") {
		t.Fatalf("prices show --list pro lists no claude model: %.500s", out)
	}

	s.must(t, 0, "budget", "set", "--customer", "c1", "--limit", "10", "--period", "month", "--price-list", "pro")
	out = s.must(t, 0, "record", "--customer", "c1", "--agent", "a",
		"--usage", `{"model":"gpt-4o","input_tokens":1200,"output_tokens":400}`)
	if !strings.Contains(out, "priced: 1,200 input x ") || !strings.Contains(out, "list pro") {
		t.Fatalf("record --usage: %s", out)
	}
	s.must(t, 0, "preflight", "--customer", "c1", "--agent", "a", "--units", "0.5")
	out = s.must(t, 0, "record", "--customer", "c1", "--agent", "a", "--usage", `{"model":"no-such-model","input_tokens":1,"output_tokens":1}`)
	if !strings.Contains(out, "charged 0.5") || !strings.Contains(out, `unpriced: price list "pro"`) {
		t.Fatalf("unpriced record: %s", out)
	}
	st := jsonOf(t, s.must(t, 0, "status", "--customer", "c1", "--json"))
	if str(st["unpriced_records"]) != "1" || st["price_list"] != "pro" {
		t.Fatalf("status: %v", st)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"list":"x","version":"1","models":[{"id":"m","rates":{"input":"-1","bogus":"2"}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out = s.must(t, 1, "prices", "set", "--file", bad)
	if !strings.Contains(out, "-1 is negative") {
		t.Fatalf("bad list: %s", out)
	}
	s.must(t, 1, "record", "--customer", "c1", "--agent", "a", "--usage", `{"model":"m","input_tokens":-1}`)
	s.must(t, 1, "budget", "set", "--customer", "c1", "--limit", "10", "--period", "month", "--price-list", "nope")
}
