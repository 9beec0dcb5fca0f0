package main_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
)

// jsonOf decodes a --json output, numbers exact.
func jsonOf(t *testing.T, out string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return m
}

func str(v any) string {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	s, _ := v.(string)
	return s
}

// TestGrantAndBudgetPolicyCommands runs the real binary: budget set with
// the new settings, grant with every flag and with bad ones, preflight
// with --scope and --min-units, record with --scope, and status.
func TestGrantAndBudgetPolicyCommands(t *testing.T) {
	s := serve(t, t.TempDir(), testenv.FreePort(t), "--default-budget", "none")
	s.must(t, 0, "budget", "set", "--customer", "c1", "--limit", "10", "--period", "month",
		"--overdraft", "5", "--rollover", "all", "--scope-limit", "team=research:20:day",
		"--scope-limit", "user=alice:8", "--max-runs", "5", "--max-runs-per-agent", "2")
	st := jsonOf(t, s.must(t, 0, "status", "--customer", "c1", "--json"))
	scopes, _ := st["scopes"].([]any)
	if st["rollover"] != "all" || str(st["overdraft"]) != "5" || str(st["max_concurrent_runs"]) != "5" ||
		str(st["max_concurrent_runs_per_agent"]) != "2" || len(scopes) != 2 {
		t.Fatalf("status after budget set: %v", st)
	}
	if team := scopes[0].(map[string]any); team["value"] != "research" || team["period"] != "day" || str(team["limit"]) != "20" {
		t.Fatalf("team scope: %v", team)
	}
	if user := scopes[1].(map[string]any); user["value"] != "alice" || user["period"] != "month" {
		t.Fatalf("user scope takes the budget's period: %v", user)
	}

	// A budget's own rate limit: set, shown, and refusing past its burst.
	s.must(t, 0, "budget", "set", "--customer", "c2", "--limit", "10", "--period", "month",
		"--rate-limit-per-second", "0.001", "--rate-limit-burst", "1")
	if text := s.must(t, 0, "status", "--customer", "c2"); !strings.Contains(text, "rate limit 0.001 preflights a second, burst 1") {
		t.Fatalf("status text without the rate limit: %q", text)
	}
	s.must(t, 0, "preflight", "--customer", "c2", "--agent", "a", "--units", "1")
	if out := s.must(t, 3, "preflight", "--customer", "c2", "--agent", "a", "--units", "1"); !strings.Contains(out, "rate_limited") {
		t.Fatalf("second preflight: %q, want refused rate_limited", out)
	}
	s.must(t, 1, "budget", "set", "--customer", "c2", "--limit", "10", "--period", "month", "--rate-limit-burst", "3")

	exp := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	args := []string{"grant", "--customer", "c1", "--units", "30", "--expires", exp, "--priority", "7",
		"--source", "promo", "--note", "welcome", "--idempotency-key", "g-1", "--json"}
	g := jsonOf(t, s.must(t, 0, args...))
	if g["grant_id"] == "" || str(g["units"]) != "30" || str(g["priority"]) != "7" || g["source"] != "promo" ||
		g["expires_at"] != exp || str(g["remaining_units"]) != "40" {
		t.Fatalf("grant --json: %v", g)
	}
	if again := jsonOf(t, s.must(t, 0, args...)); again["grant_id"] != g["grant_id"] {
		t.Fatalf("a retried grant granted again: %v, first %v", again, g)
	}
	text := s.must(t, 0, "grant", "--customer", "c1", "--units", "2.5")
	if !strings.Contains(text, "granted 2.5 units") || !strings.Contains(text, "source purchase, priority 100") ||
		!strings.Contains(text, "never expires") || !strings.Contains(text, "42.5 left") {
		t.Fatalf("grant text: %q", text)
	}
	for _, c := range []struct {
		code int
		want string
		args []string
	}{
		{1, "invalid_argument", []string{"--units", "-1"}},
		{1, "invalid_argument", []string{"--units", "0"}},
		{1, "--expires", []string{"--units", "1", "--expires", "next week"}},
		{1, "not in the future", []string{"--units", "1", "--expires", "2020-01-01T00:00:00Z"}},
		{1, "--priority", []string{"--units", "1", "--priority", "high"}},
		{1, "source", []string{"--units", "1", "--source", strings.Repeat("s", 33)}},
		{1, "not_found", []string{"--customer", "nobody", "--units", "1"}},
		{2, "--customer is required", []string{"--units", "1"}},
	} {
		a := append([]string{"grant"}, c.args...)
		if !strings.Contains(strings.Join(c.args, " "), "--customer") && c.code != 2 {
			a = append(a, "--customer", "c1")
		}
		if out := s.must(t, c.code, a...); !strings.Contains(out, c.want) {
			t.Errorf("agentbill %s: output %q, want %q", strings.Join(a, " "), out, c.want)
		}
	}

	// 12 does not fit alice's 8; --min-units 4 does: 8 are held.
	pf := jsonOf(t, s.must(t, 0, "preflight", "--customer", "c1", "--agent", "a", "--units", "12",
		"--min-units", "4", "--scope", "team=research,user=alice", "--json"))
	if pf["approved"] != true || pf["partial"] != true || str(pf["reserved_units"]) != "8" {
		t.Fatalf("partial preflight: %v", pf)
	}
	if out := s.must(t, 3, "preflight", "--customer", "c1", "--agent", "b", "--units", "1", "--scope", "user=alice"); !strings.Contains(out, "scope_limit_exceeded") {
		t.Fatalf("scope refusal: %q", out)
	}
	s.must(t, 1, "preflight", "--customer", "c1", "--agent", "b", "--units", "1", "--scope", "team")
	out := s.must(t, 0, "record", "--customer", "c1", "--agent", "c", "--units", "13", "--scope", "team=research")
	if !strings.Contains(out, "funded by grants: "+str(g["grant_id"])+" (3)") {
		t.Fatalf("record text: %q", out)
	}
	out = s.must(t, 0, "status", "--customer", "c1")
	for _, want := range []string{"grants     29.5 usable now", "grant      " + str(g["grant_id"]) + ": 27 of 30 left, promo, priority 7",
		"overdraft  5", "rollover   all", "max runs   5 open, 2 per agent", "scope      team=research: used 13, reserved 8, -1 left of 20 per day"} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
}
