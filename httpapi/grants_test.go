package httpapi

import (
	"strings"
	"testing"
	"time"
)

// TestGrantHappyPath: an admin grants credits with every field, and with
// none but units; the budget view counts them, a charge past the period's
// allowance is paid from them (funded_by), and status lists them.
func TestGrantHappyPath(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "10")
	exp := t0.Add(30 * 24 * time.Hour).Format(time.RFC3339)

	r := e.do("POST", "/v1/grants", e.admin, map[string]any{
		"customer_id": "c1", "units": "50", "expires_at": exp, "priority": 5,
		"source": "promo", "note": "welcome", "idempotency_key": "g-1",
	})
	expect(t, r, 200, "")
	grant, _ := r.body["grant_id"].(string)
	if grant == "" || num(t, r, "units") != "50" || num(t, r, "priority") != "5" || r.body["source"] != "promo" ||
		r.body["expires_at"] != exp || num(t, r, "remaining_units") != "60" {
		t.Fatalf("grant: %s", r.raw)
	}
	// The same key and body: the first reply again, nothing granted twice.
	again := e.do("POST", "/v1/grants", e.admin, map[string]any{
		"customer_id": "c1", "units": "50", "expires_at": exp, "priority": 5,
		"source": "promo", "note": "welcome", "idempotency_key": "g-1",
	})
	expect(t, again, 200, "")
	if again.body["grant_id"] != grant {
		t.Fatalf("retry granted anew: %s, first %s", again.raw, r.raw)
	}

	// Only units: priority 100, source purchase, never expires.
	r = e.do("POST", "/v1/grants", e.admin, map[string]any{"customer_id": "c1", "units": 5})
	expect(t, r, 200, "")
	if num(t, r, "priority") != "100" || r.body["source"] != "purchase" || r.body["expires_at"] != nil ||
		num(t, r, "remaining_units") != "65" {
		t.Fatalf("grant with defaults: %s", r.raw)
	}

	r = e.do("GET", "/v1/budget?customer_id=c1", e.admin, nil)
	if num(t, r, "grants_remaining_units") != "55" || num(t, r, "remaining_units") != "65" || r.body["is_blocked"] != false {
		t.Fatalf("budget view with grants: %s", r.raw)
	}

	// 12 units: 10 from the allowance, 2 from the promo grant (priority 5
	// draws before 100).
	r = e.do("POST", "/v1/events", e.agent, map[string]any{"event_type": "a", "units": 12})
	expect(t, r, 200, "")
	funded, _ := r.body["funded_by"].([]any)
	if len(funded) != 1 {
		t.Fatalf("funded_by: %s", r.raw)
	}
	f := funded[0].(map[string]any)
	if f["grant_id"] != grant || f["units"].(interface{ String() string }).String() != "2" || num(t, r, "remaining_units") != "53" {
		t.Fatalf("record paid from grants: %s", r.raw)
	}

	r = e.do("GET", "/v1/customers/c1", e.admin, nil)
	grants, _ := r.body["grants"].([]any)
	if len(grants) != 2 || grants[0].(map[string]any)["grant_id"] != grant || num(t, r, "grants_remaining") != "53" {
		t.Fatalf("status lists the grants in draw-down order: %s", r.raw)
	}
}

// TestGrantRefusals: bad input is 400 invalid_argument naming the
// problem, the wrong role 403, an unknown customer 404, a reused key 409;
// none of them changes the log.
func TestGrantRefusals(t *testing.T) {
	e := newEnv(t, nil) // no default budget
	e.setBudget("c1", "10")
	past := t0.Add(-time.Hour).Format(time.RFC3339)
	soon, later := t0.Add(time.Hour).Format(time.RFC3339), t0.Add(2*time.Hour).Format(time.RFC3339)
	cases := []struct {
		name   string
		key    string
		body   any
		status int
		code   string
		want   string
	}{
		{"negative units", e.admin, `{"customer_id":"c1","units":-5}`, 400, "invalid_argument", "negative"},
		{"zero units", e.admin, `{"customer_id":"c1","units":0}`, 400, "invalid_argument", "greater than 0"},
		{"no units", e.admin, `{"customer_id":"c1"}`, 400, "invalid_argument", "units is required"},
		{"expires_at not a time", e.admin, `{"customer_id":"c1","units":1,"expires_at":"next week"}`, 400, "invalid_argument", "RFC 3339"},
		{"expires_at a number", e.admin, `{"customer_id":"c1","units":1,"expires_at":1700000000}`, 400, "invalid_argument", "malformed JSON"},
		{"expires_at past", e.admin, `{"customer_id":"c1","units":1,"expires_at":"` + past + `"}`, 400, "invalid_argument", "not in the future"},
		{"expires before effective", e.admin, `{"customer_id":"c1","units":1,"effective_at":"` + later + `","expires_at":"` + soon + `"}`, 400, "invalid_argument", "not after effective_at"},
		{"source too long", e.admin, `{"customer_id":"c1","units":1,"source":"` + strings.Repeat("s", 33) + `"}`, 400, "invalid_argument", "source"},
		{"priority too big", e.admin, `{"customer_id":"c1","units":1,"priority":1000001}`, 400, "invalid_argument", "priority"},
		{"priority negative", e.admin, `{"customer_id":"c1","units":1,"priority":-1}`, 400, "invalid_argument", "priority"},
		{"note too long", e.admin, `{"customer_id":"c1","units":1,"note":"` + strings.Repeat("n", 513) + `"}`, 400, "invalid_argument", "note"},
		{"unknown field", e.admin, `{"customer_id":"c1","units":1,"credits":1}`, 400, "invalid_argument", "credits"},
		{"agent key", e.anyAg, `{"customer_id":"c1","units":1}`, 403, "permission_denied", "grant credits"},
		{"bound agent key, own customer", e.agent, `{"units":1}`, 403, "permission_denied", "grant credits"},
		{"auditor key", e.audit, `{"customer_id":"c1","units":1}`, 403, "permission_denied", "grant credits"},
		{"no key", "", `{"customer_id":"c1","units":1}`, 401, "unauthenticated", ""},
		{"unknown customer", e.admin, `{"customer_id":"nobody","units":1}`, 404, "not_found", "nobody"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.lastSeq()
			r := e.do("POST", "/v1/grants", c.key, c.body)
			expect(t, r, c.status, c.code)
			msg, _ := r.body["error"].(map[string]any)["message"].(string)
			if !strings.Contains(msg, c.want) {
				t.Fatalf("message %q does not mention %q", msg, c.want)
			}
			if e.lastSeq() != before {
				t.Fatal("a refused grant changed the log")
			}
		})
	}
	expect(t, e.do("POST", "/v1/grants", e.admin, map[string]any{"customer_id": "c1", "units": 1, "idempotency_key": "k"}), 200, "")
	expect(t, e.do("POST", "/v1/grants", e.admin, map[string]any{"customer_id": "c1", "units": 2, "idempotency_key": "k"}), 409, "conflict")
	if r := e.do("GET", "/v1/grants", e.admin, nil); r.status != 400 || r.header.Get("Allow") != "POST" {
		t.Fatalf("GET /v1/grants: %d Allow %q", r.status, r.header.Get("Allow"))
	}
}

// TestBudgetPolicyFields: PUT /v1/budget takes rollover, overdraft, scope
// limits and run caps under the NATS request's names, and status shows
// them; the ledger's checks of them come back as 400.
func TestBudgetPolicyFields(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("PUT", "/v1/budget", e.admin, map[string]any{
		"customer_id": "c1", "limit_units": 100, "period": "month", "rollover": "25", "overdraft": "10",
		"scope_limits":        []any{map[string]any{"dimension": "team", "value": "research", "limit": 20, "period": "day"}, map[string]any{"dimension": "user", "value": "alice", "limit": "5"}},
		"max_concurrent_runs": 3, "max_concurrent_runs_per_agent": 1,
	})
	expect(t, r, 200, "")
	if num(t, r, "overdraft_units") != "10" || num(t, r, "remaining_units") != "100" {
		t.Fatalf("budget view: %s", r.raw)
	}
	r = e.do("GET", "/v1/customers/c1", e.admin, nil)
	scopes, _ := r.body["scopes"].([]any)
	if r.body["rollover"] != "25" || num(t, r, "overdraft") != "10" || num(t, r, "max_concurrent_runs") != "3" ||
		num(t, r, "max_concurrent_runs_per_agent") != "1" || len(scopes) != 2 {
		t.Fatalf("status: %s", r.raw)
	}
	if s := scopes[1].(map[string]any); s["dimension"] != "user" || s["period"] != "month" {
		t.Fatalf("scope limit without a period takes the budget's: %v", s)
	}
	for _, c := range []struct{ name, body, want string }{
		{"agent dimension", `{"limit_units":1,"period":"day","scope_limits":[{"dimension":"agent","value":"a","limit":1}]}`, "reserved"},
		{"bad rollover", `{"limit_units":1,"period":"day","rollover":"some"}`, "rollover"},
		{"rollover without period", `{"limit_units":1,"period":"none","rollover":"all"}`, "rollover needs a period"},
		{"negative overdraft", `{"limit_units":1,"period":"day","overdraft":-1}`, "negative"},
		{"too many runs", `{"limit_units":1,"period":"day","max_concurrent_runs":10001}`, "max_concurrent_runs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("PUT", "/v1/budget", e.admin, c.body)
			expect(t, r, 400, "invalid_argument")
			if msg := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, c.want) {
				t.Fatalf("message %q does not mention %q", msg, c.want)
			}
		})
	}
}

// TestScopesPartialOverdraftAndRunCaps: preflight's scope and min_units
// over HTTP, the new refusal reasons, a record's scope, and an approval
// into the overdraft.
func TestScopesPartialOverdraftAndRunCaps(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("PUT", "/v1/budget", e.admin, map[string]any{
		"customer_id": "c1", "limit_units": 100, "period": "month", "overdraft": 10,
		"scope_limits":                  []any{map[string]any{"dimension": "team", "value": "research", "limit": 20}},
		"max_concurrent_runs_per_agent": 1,
	})
	expect(t, r, 200, "")
	scope := map[string]any{"team": "research", "user": "alice"}

	// 30 does not fit the team's 20; min_units 10 does: 20 are held.
	r = e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "a", "estimated_units": 30, "min_units": 10, "scope": scope})
	expect(t, r, 200, "")
	if r.body["approved"] != true || r.body["partial"] != true || num(t, r, "reserved_units") != "20" {
		t.Fatalf("partial approval: %s", r.raw)
	}
	// The team's limit is spent: another agent's run in it is refused, naming the scope.
	r = e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "b", "estimated_units": 1, "scope": scope})
	sc, _ := r.body["scope"].(map[string]any)
	if r.body["approved"] != false || r.body["reason"] != "scope_limit_exceeded" || sc["dimension"] != "team" || sc["value"] != "research" {
		t.Fatalf("scope refusal: %s", r.raw)
	}
	// Agent a has its one open run.
	r = e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "a", "estimated_units": 1})
	if r.body["approved"] != false || r.body["reason"] != "concurrency_limit_exceeded" {
		t.Fatalf("run cap: %s", r.raw)
	}
	// A record without a hold counts against the scope it names.
	r = e.do("POST", "/v1/events", e.agent, map[string]any{"event_type": "c", "units": 5, "scope": map[string]any{"team": "research"}})
	expect(t, r, 200, "")
	r = e.do("GET", "/v1/customers/c1", e.agent, nil)
	team := r.body["scopes"].([]any)[0].(map[string]any)
	if team["used"].(interface{ String() string }).String() != "5" || team["remaining"].(interface{ String() string }).String() != "-5" {
		t.Fatalf("scope after a record in it: %v", team)
	}
	// Into the overdraft: 75 left, 80 asked, 10 of overdraft.
	r = e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "d", "estimated_units": 80})
	if r.body["approved"] != true || r.body["overdraft"] != true || num(t, r, "remaining_units") != "-5" {
		t.Fatalf("overdraft approval: %s", r.raw)
	}
	// Bad scopes are 400.
	for _, body := range []string{
		`{"agent_id":"a","scope":{"agent":"x"}}`,
		`{"agent_id":"a","scope":{"Team":"x"}}`,
		`{"agent_id":"a","scope":{"a":"1","b":"2","c":"3","d":"4","e":"5"}}`,
		`{"agent_id":"a","estimated_units":1,"min_units":2}`,
	} {
		expect(t, e.do("POST", "/v1/preflight", e.agent, body), 400, "invalid_argument")
	}
}
