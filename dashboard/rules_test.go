package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/agentbill/agentbill/dashboard"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
)

// hostileValue is a scope value an admin may type (the ledger allows any
// printable text): the page must show it as text, never run it as markup.
const hostileValue = `<img src=x onerror="document.title='pwned'">`

// grantLifetime is the promo grant's: it outlives every test.
const grantLifetime = 30 * 24 * time.Hour

// grant sends a grant request over NATS as an admin would (the Go client
// has no Grant method in this branch; the wire is ledger.GrantRequest).
func (e *env) grant(cid string, req ledger.GrantRequest) *ledger.GrantReply {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		e.t.Fatal(err)
	}
	msg, err := e.agents.Conn().RequestWithContext(ctx, events.RequestSubject(events.OpGrant, cid), body)
	if err != nil {
		e.t.Fatal(err)
	}
	var out struct {
		ledger.GrantReply
		Error *ledger.Error `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &out); err != nil || out.Error != nil {
		e.t.Fatalf("grant: %v %v (%s)", err, out.Error, msg.Data)
	}
	return &out.GrantReply
}

// charge preflights units for agent in scope (nil: none) and, when units
// are given to record, records them against that hold.
func (e *env) charge(cid, agent, estimate, record string, scope map[string]string) *ledger.PreflightReply {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r, err := e.agents.Preflight(ctx, cid, ledger.PreflightRequest{
		AgentID: agent, EstimatedUnits: testenv.Ptr(e.t, estimate), TTL: holdTTL, Scope: scope})
	if err != nil || !r.Approved {
		e.t.Fatalf("preflight %s for %s: %v %+v", estimate, agent, err, r)
	}
	if record != "" {
		_, err = e.agents.Record(ctx, cid, ledger.RecordRequest{AgentID: agent, Units: testenv.Ptr(e.t, record),
			ReservationID: r.ReservationID})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return r
}

// rulesScript sets up "credits", a customer with every rule of a budget:
//
//	budget 100/month, overdraft 20, rollover all, at most 3 open runs
//	(2 per agent), team=research limited to 30, team=hostileValue to 5 a day
//	grants: promo 50 (priority 10, expires), purchase 25 (never expires)
//	research uses 20 in team research (from the allowance)
//	writer uses 110: the last 80 of the allowance, then 30 of the promo
//	ops records 7 in team hostileValue without a hold: 2 past its limit
//	writer holds 50 more: 38 left + 20 overdraft, so remaining is -12
//
// It returns the two grants, promo first.
func (e *env) rulesScript() (promo, purchase *ledger.GrantReply) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := e.agents.SetBudget(ctx, "credits", ledger.BudgetRequest{
		Limit: testenv.Ptr(e.t, "100"), Period: "month", Rollover: "all", Overdraft: testenv.Ptr(e.t, "20"),
		ScopeLimits: []ledger.ScopeLimitRequest{
			{Dimension: "team", Value: "research", Limit: testenv.Ptr(e.t, "30")},
			{Dimension: "team", Value: hostileValue, Limit: testenv.Ptr(e.t, "5"), Period: "day"},
		},
		MaxRuns: 3, MaxRunsPerAgent: 2, RateLimit: &events.RateLimit{PerSecond: testenv.Units(e.t, "50"), Burst: 100},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	expires := t0.Add(grantLifetime)
	ten := 10
	promo = e.grant("credits", ledger.GrantRequest{Units: testenv.Ptr(e.t, "50"), Priority: &ten, Source: "promo", ExpiresAt: &expires})
	purchase = e.grant("credits", ledger.GrantRequest{Units: testenv.Ptr(e.t, "25")})
	e.charge("credits", "research", "20", "20", map[string]string{"team": "research"})
	e.charge("credits", "writer", "110", "110", nil)
	if _, err := e.agents.Record(ctx, "credits", ledger.RecordRequest{AgentID: "ops", Units: testenv.Ptr(e.t, "7"),
		Scope: map[string]string{"team": hostileValue}}); err != nil {
		e.t.Fatal(err)
	}
	if r := e.charge("credits", "writer", "50", "", nil); !r.Overdraft || r.RemainingUnits.String() != "-12" {
		e.t.Fatalf("the last hold: overdraft %v, remaining %s; want true, -12", r.Overdraft, r.RemainingUnits)
	}
	return promo, purchase
}

// TestCustomerPageRules: the customer page carries the open grants in
// draw-down order, the scope limits with their usage, and the budget's
// overdraft, rollover and run caps; remaining may be negative.
func TestCustomerPageRules(t *testing.T) {
	e := newEnv(t)
	promo, purchase := e.rulesScript()
	e.waitFollower()
	var p dashboard.CustomerPage
	if code := e.getJSON("/ui/api/customers/credits", e.auditor, &p); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	exp := t0.Add(grantLifetime)
	wantGrants := []dashboard.GrantRow{
		{ID: promo.GrantID, Units: "50", Remaining: "13", Priority: 10, Source: "promo", EffectiveAt: promo.EffectiveAt, ExpiresAt: &exp},
		{ID: purchase.GrantID, Units: "25", Remaining: "25", Priority: 100, Source: "purchase", EffectiveAt: purchase.EffectiveAt},
	}
	if !slices.EqualFunc(p.Grants, wantGrants, sameGrant) {
		t.Fatalf("grants: got %+v, want %+v", p.Grants, wantGrants)
	}
	wantScopes := []dashboard.ScopeRow{
		{Dimension: "team", Value: hostileValue, Limit: "5", Period: "day", Used: "7", Reserved: "0", Remaining: "-2", Level: dashboard.LevelExhausted},
		{Dimension: "team", Value: "research", Limit: "30", Period: "month", Used: "20", Reserved: "0", Remaining: "10", Level: dashboard.LevelOK},
	}
	if !slices.Equal(p.Scopes, wantScopes) {
		t.Fatalf("scopes: got %+v, want %+v", p.Scopes, wantScopes)
	}
	c := p.Customer
	got := []string{c.Used, c.Reserved, c.Remaining, p.GrantsRemaining, p.Overdraft, p.Rollover}
	if want := []string{"137", "50", "-12", "38", "20", "all"}; !slices.Equal(got, want) {
		t.Fatalf("used, reserved, remaining, grants left, overdraft, rollover: got %q, want %q", got, want)
	}
	if p.MaxRuns != 3 || p.MaxRunsPerAgent != 2 {
		t.Fatalf("run caps: got %d and %d per agent, want 3 and 2", p.MaxRuns, p.MaxRunsPerAgent)
	}
	if rl := p.RateLimit; rl == nil || rl.PerSecond.String() != "50" || rl.Burst != 100 {
		t.Fatalf("rate limit: got %+v, want 50 a second, burst 100", rl)
	}
	// The history describes the grants and the overdraft, and its
	// remaining is signed like the figures above it.
	var hist []string
	for _, h := range p.History {
		switch h.Type {
		case "granted", "overdraft_started", "reserved":
			hist = append(hist, h.Type+" "+h.Agent+" "+h.Units+" "+h.Reason+" "+h.Remaining)
		}
	}
	if want := []string{
		"granted  50 grant " + promo.GrantID + ": promo, priority 10, from 2026-03-14T09:00:00Z, expires 2026-04-13T09:00:00Z 150",
		"granted  25 grant " + purchase.GrantID + ": purchase, priority 100, from 2026-03-14T09:00:00Z, never expires 175",
		"reserved research 20  155", "reserved writer 110  45",
		"reserved writer 50 in overdraft -12", "overdraft_started writer 20 into the overdraft of 20: 12 below zero -12",
	}; !slices.Equal(hist, want) {
		t.Fatalf("history: got %q, want %q", hist, want)
	}

	// A budget without rules: empty lists (the page relies on them being
	// arrays) and nothing else set.
	e.budget("plain", "10")
	e.waitFollower()
	var raw map[string]json.RawMessage
	if code := e.getJSON("/ui/api/customers/plain", e.auditor, &raw); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for k, want := range map[string]string{"grants": "[]", "scopes": "[]", "grants_remaining": `"0"`} {
		if got := string(raw[k]); got != want {
			t.Errorf("plain %s: got %s, want %s", k, got, want)
		}
	}
	for _, k := range []string{"overdraft", "rollover", "max_concurrent_runs", "max_concurrent_runs_per_agent", "rate_limit"} {
		if v, ok := raw[k]; ok {
			t.Errorf("plain %s: got %s, want it left out", k, v)
		}
	}
}

// sameGrant compares grant rows, their times as instants.
func sameGrant(a, b dashboard.GrantRow) bool {
	sameExp := (a.ExpiresAt == nil) == (b.ExpiresAt == nil) && (a.ExpiresAt == nil || a.ExpiresAt.Equal(*b.ExpiresAt))
	a.ExpiresAt, b.ExpiresAt = nil, nil
	return sameExp && a.EffectiveAt.Equal(b.EffectiveAt) && a.ID == b.ID && a.Units == b.Units &&
		a.Remaining == b.Remaining && a.Priority == b.Priority && a.Source == b.Source
}

// TestCustomerPagePricedUsage: a record of usage shows its price in the
// history (the breakdown), and a record the list cannot price is counted.
func TestCustomerPagePricedUsage(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := e.agents.SetPrices(ctx, []byte(`{"list":"default","version":"v1","models":[{"id":"m","rates":{"input":"3","output":"15"}}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.agents.SetBudget(ctx, "priced", ledger.BudgetRequest{Limit: testenv.Ptr(t, "1"), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	in, out := int64(1200), int64(400)
	for _, model := range []string{"m", "unknown"} {
		if _, err := e.agents.Record(ctx, "priced", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "0.5"),
			Usage: &events.Usage{Model: model, InputTokens: &in, OutputTokens: &out}}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFollower()
	var p dashboard.CustomerPage
	if code := e.getJSON("/ui/api/customers/priced", e.auditor, &p); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if p.UnpricedRecords != 1 || p.Customer.Used != "0.5096" {
		t.Fatalf("unpriced %d, used %s; want 1 and 0.5096", p.UnpricedRecords, p.Customer.Used)
	}
	var reasons []string
	for _, h := range p.History {
		reasons = append(reasons, h.Reason)
	}
	if !slices.ContainsFunc(reasons, func(r string) bool { return r == "1,200 input x 3/M + 400 output x 15/M = 0.0096 (m, list default v1)" }) ||
		!slices.ContainsFunc(reasons, func(r string) bool { return len(r) > 9 && r[:9] == "unpriced:" }) {
		t.Fatalf("history reasons: %q", reasons)
	}
}
