package ledger_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

func at(t time.Time) *time.Time { return &t }

func intp(n int) *int { return &n }

func (f *fixture) grant(r *ledger.GrantRequest) *ledger.GrantReply {
	f.t.Helper()
	reply, _ := f.ok(r)
	g, ok := reply.(*ledger.GrantReply)
	if !ok {
		f.t.Fatalf("grant reply is %T", reply)
	}
	return g
}

func TestCreditValidation(t *testing.T) {
	f := newFixture(t)
	f.budget("c", "100", "month")
	est := up("10")
	for name, cmd := range map[string]ledger.Command{
		"scope with five dimensions": &ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: est,
			Scope: map[string]string{"a1": "x", "b": "x", "c": "x", "d": "x", "e": "x"}},
		"scope dimension with a dot": &ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: est,
			Scope: map[string]string{"team.x": "r"}},
		"scope dimension agent": &ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: est,
			Scope: map[string]string{"agent": "b"}},
		"empty scope value": &ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: est,
			Scope: map[string]string{"team": ""}},
		"min_units above the estimate": &ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: est,
			MinUnits: up("11")},
		"min_units zero":           &ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: est, MinUnits: up("0")},
		"rollover without periods": &ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "none", Rollover: "all"},
		"rollover gibberish":       &ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "day", Rollover: "most"},
		"negative max runs":        &ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "day", MaxRuns: -1},
		"huge max runs per agent":  &ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "day", MaxRunsPerAgent: ledger.ConcurrentRunsMax + 1},
		"scope limit twice": &ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "day", ScopeLimits: []ledger.ScopeLimitRequest{
			{Dimension: "team", Value: "r", Limit: up("1")}, {Dimension: "team", Value: "r", Limit: up("2")}}},
		"scope limit with a bad period": &ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "day", ScopeLimits: []ledger.ScopeLimitRequest{
			{Dimension: "team", Value: "r", Limit: up("1"), Period: "year"}}},
		"scope limit without a limit": &ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "day", ScopeLimits: []ledger.ScopeLimitRequest{
			{Dimension: "team", Value: "r"}}},
		"grant sourced as a rollover": &ledger.GrantRequest{CustomerID: "c", Units: up("1"), Source: events.SourceRollover},
		"scope limit on agent": &ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "day", ScopeLimits: []ledger.ScopeLimitRequest{
			{Dimension: "agent", Value: "r", Limit: up("1")}}},
		"grant of zero":          &ledger.GrantRequest{CustomerID: "c", Units: up("0")},
		"grant without units":    &ledger.GrantRequest{CustomerID: "c"},
		"grant expired already":  &ledger.GrantRequest{CustomerID: "c", Units: up("1"), ExpiresAt: at(t0.Add(-time.Second))},
		"grant expiring at once": &ledger.GrantRequest{CustomerID: "c", Units: up("1"), ExpiresAt: at(t0)},
		"grant expiring before it starts": &ledger.GrantRequest{CustomerID: "c", Units: up("1"),
			EffectiveAt: at(t0.Add(2 * time.Hour)), ExpiresAt: at(t0.Add(time.Hour))},
		"grant priority negative":             &ledger.GrantRequest{CustomerID: "c", Units: up("1"), Priority: intp(-1)},
		"grant priority huge":                 &ledger.GrantRequest{CustomerID: "c", Units: up("1"), Priority: intp(ledger.GrantPriorityMax + 1)},
		"grant source too long":               &ledger.GrantRequest{CustomerID: "c", Units: up("1"), Source: strings.Repeat("s", ledger.GrantSourceBytesMax+1)},
		"grant note with a control character": &ledger.GrantRequest{CustomerID: "c", Units: up("1"), Note: "a\x00b"},
	} {
		t.Run(name, func(t *testing.T) { f.fail(cmd, ledger.CodeInvalidArgument) })
	}
	f.fail(&ledger.GrantRequest{CustomerID: "nobody", Units: up("1")}, ledger.CodeNotFound)
}

func TestRolloverValues(t *testing.T) {
	for in, want := range map[ledger.Rollover]ledger.Rollover{"none": "", "": "", "all": "all", "25.50": "25.5", "1e2": "100"} {
		r := &ledger.BudgetRequest{CustomerID: "c", Limit: up("1"), Period: "month", Rollover: in}
		if err := r.Validate(); err != nil || r.Rollover != want {
			t.Errorf("rollover %q: got %q, %v; want %q", in, r.Rollover, err, want)
		}
	}
}

// Draw-down: the allowance first, then grants by priority, earliest expiry,
// oldest; a grant not yet effective waits; usage past everything is
// overage on the allowance.
func TestGrantDrawDownOrder(t *testing.T) {
	f := newFixture(t)
	f.budget("c", "10", "month")
	never := f.grant(&ledger.GrantRequest{CustomerID: "c", Units: up("5")})
	soon := f.grant(&ledger.GrantRequest{CustomerID: "c", Units: up("5"), ExpiresAt: at(t0.Add(48 * time.Hour))})
	later := f.grant(&ledger.GrantRequest{CustomerID: "c", Units: up("5"), ExpiresAt: at(t0.Add(72 * time.Hour))})
	first := f.grant(&ledger.GrantRequest{CustomerID: "c", Units: up("5"), Priority: intp(10)})
	future := f.grant(&ledger.GrantRequest{CustomerID: "c", Units: up("5"), EffectiveAt: at(t0.Add(time.Hour))})
	var ids []string
	for _, g := range f.status("c").Grants {
		ids = append(ids, g.GrantID)
	}
	if want := []string{first.GrantID, soon.GrantID, later.GrantID, never.GrantID, future.GrantID}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("grants listed %v, want draw-down order %v", ids, want)
	}
	checkUnits(t, "remaining (future grant not counted)", f.status("c").Remaining.Units, "30")
	r, _ := f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Units: up("22")})
	got := mustJSON(t, r.FundedBy)
	want := mustJSON(t, []events.GrantDraw{{GrantID: first.GrantID, Units: *up("5")}, {GrantID: soon.GrantID, Units: *up("5")},
		{GrantID: later.GrantID, Units: *up("2")}})
	if got != want {
		t.Fatalf("funded by %s, want %s", got, want)
	}
	f.now = t0.Add(2 * time.Hour) // the future grant is effective now
	r, _ = f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Units: up("20")})
	if len(r.FundedBy) != 3 || r.OverageUnits.Sign() != 0 {
		t.Fatalf("second charge funded by %+v", r.FundedBy)
	}
	checkUnits(t, "remaining after everything is spent", r.RemainingUnits.Units, "0")
	if !r.Exhausted || f.status("c").Grants != nil {
		t.Fatalf("after spending every grant: exhausted %v, grants %+v", r.Exhausted, f.status("c").Grants)
	}
	// Past everything: charged to the allowance.
	r, _ = f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Units: up("4")})
	if len(r.FundedBy) != 0 {
		t.Fatalf("a charge past every grant was funded by %+v", r.FundedBy)
	}
	checkUnits(t, "used", f.status("c").Used, "46")
}

// A grant that expires is recorded once with what it forfeited, by the
// sweep or by the next command, and funds nothing after its expiry.
func TestGrantExpiry(t *testing.T) {
	f := newFixture(t)
	f.budget("c", "0", "month")
	g := f.grant(&ledger.GrantRequest{CustomerID: "c", Units: up("10"), ExpiresAt: at(t0.Add(time.Hour))})
	f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Units: up("4")})
	f.now = t0.Add(time.Hour)
	pr, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("1")})
	checkTypes(t, evs, events.TypeGrantExpired, events.TypeDenied, events.TypeBudgetExhausted)
	ge := evs[0].Data.(*events.GrantExpired)
	if ge.GrantID != g.GrantID || ge.Remaining.String() != "6" || ge.Units.String() != "10" || pr.Approved {
		t.Fatalf("expiry %+v, approval %v", ge, pr.Approved)
	}
	// The sweep finds the next one at its time.
	f.grant(&ledger.GrantRequest{CustomerID: "c", Units: up("3"), ExpiresAt: at(f.now.Add(time.Minute))})
	if evs := f.sweep(10); len(evs) != 0 {
		t.Fatalf("sweep before the expiry: %v", typesOf(evs))
	}
	f.now = f.now.Add(time.Minute)
	checkTypes(t, f.sweep(10), events.TypeGrantExpired, events.TypeBudgetExhausted)
	if next, ok := f.s.NextExpiry(); ok {
		t.Errorf("next expiry %s after every grant expired", next)
	}
}

// Rollover: the unused allowance becomes a grant in the next period,
// capped, expiring when that period ends; a missed period rolls its whole
// limit.
func TestRollover(t *testing.T) {
	f := newFixture(t)
	f.now = time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)
	f.ok(&ledger.BudgetRequest{CustomerID: "c", Limit: up("100"), Period: "month", Rollover: "all"})
	f.ok(&ledger.BudgetRequest{CustomerID: "d", Limit: up("100"), Period: "month", Rollover: "25"})
	f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Units: up("30")})
	f.record(&ledger.RecordRequest{CustomerID: "d", AgentID: "a", Units: up("30")})
	f.now = time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
	st := f.status("c")
	checkUnits(t, "remaining with the pending rollover", st.Remaining.Units, "170")
	_, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("150")})
	checkTypes(t, evs, events.TypeGranted, events.TypeReserved)
	g := evs[0].Data.(*events.Granted)
	if g.Source != events.SourceRollover || g.Units.String() != "70" || !g.ExpiresAt.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) ||
		!g.EffectiveAt.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("rollover grant %+v", g)
	}
	_, evs = f.ok(&ledger.TopUpRequest{CustomerID: "d", Units: up("1")})
	if g := evs[0].Data.(*events.Granted); g.Units.String() != "25" {
		t.Fatalf("capped rollover %s, want 25", g.Units)
	}
	// c skips March entirely: April gets March's whole limit; February's
	// rollover grant expired at March's start.
	f.now = time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	_, evs = f.ok(&ledger.TopUpRequest{CustomerID: "c", Units: up("1")})
	checkTypes(t, evs, events.TypeGranted, events.TypeGrantExpired, events.TypeToppedUp)
	if g := evs[0].Data.(*events.Granted); g.Units.String() != "100" {
		t.Fatalf("rollover after an idle period %s, want 100", g.Units)
	}
}

// Partial approval holds what fits every limit, at least min_units.
func TestPartialApproval(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c", Limit: up("100"), Period: "month",
		ScopeLimits: []ledger.ScopeLimitRequest{{Dimension: "user", Value: "u", Limit: up("30")}}})
	scope := map[string]string{"user": "u"}
	pr, _ := f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("50"), MinUnits: up("10"), Scope: scope})
	if !pr.Approved || !pr.Partial || pr.ReservedUnits.String() != "30" {
		t.Fatalf("partial approval %+v", pr)
	}
	checkContains(t, "message", pr.Message, "reserved 30 of the 50 units requested")
	pr, _ = f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("50"), MinUnits: up("1"), Scope: scope})
	if pr.Approved || pr.Reason != ledger.ReasonScopeLimitExceeded || pr.Scope == nil || *pr.Scope != (events.ScopeRef{Dimension: "user", Value: "u"}) {
		t.Fatalf("refusal %+v", pr)
	}
	pr, _ = f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("80"), MinUnits: up("60"), Ceiling: up("65")})
	if !pr.Approved || pr.ReservedUnits.String() != "65" {
		t.Fatalf("partial under the call's ceiling %+v", pr)
	}
	pr, _ = f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("80"), MinUnits: up("6")})
	if pr.Approved || pr.Reason != ledger.ReasonBudgetExhausted || !strings.Contains(pr.Message, "5 units left in this month; 6 requested") {
		t.Fatalf("5 left and min 6: %+v", pr)
	}
}

// Overdraft: approvals go below zero up to the overdraft, remaining is
// shown negative, overdraft_started fires once a period.
func TestOverdraft(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c", Limit: up("10"), Period: "month", Overdraft: up("5")})
	pr, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("12")})
	checkTypes(t, evs, events.TypeReserved, events.TypeOverdraftStarted)
	if !pr.Approved || !pr.Overdraft || pr.RemainingUnits.String() != "-2" {
		t.Fatalf("overdraft approval %+v", pr)
	}
	pr, evs = f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("3")})
	checkTypes(t, evs, events.TypeReserved, events.TypeBudgetExhausted)
	if pr.RemainingUnits.String() != "-5" {
		t.Fatalf("second approval %+v", pr)
	}
	pr, _ = f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("0.5")})
	if pr.Approved || pr.Reason != ledger.ReasonBudgetExhausted {
		t.Fatalf("past the overdraft: %+v", pr)
	}
	checkContains(t, "message", pr.Message, "with its overdraft of 5")
	st := f.status("c")
	if st.Remaining.String() != "-5" || !st.Exhausted || st.Overdraft == nil {
		t.Fatalf("status %s", mustJSON(t, st))
	}
	// A new period (the holds have expired): overdraft_started fires again.
	f.now = t0.AddDate(0, 1, 0)
	_, evs = f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("12")})
	if n := len(typesOf(evs)); evs[n-1].Type != events.TypeOverdraftStarted {
		t.Fatalf("new period events %v", typesOf(evs))
	}
}

// Run caps refuse a preflight past the customer's or the agent's open holds.
func TestConcurrencyCaps(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c", Limit: up("100"), Period: "month", MaxRuns: 3, MaxRunsPerAgent: 2})
	f.reserve("c", "a", "1", "")
	f.reserve("c", "a", "1", "")
	pr, _ := f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("1")})
	if pr.Approved || pr.Reason != ledger.ReasonConcurrencyLimitExceeded || !strings.Contains(pr.Message, "agent a") {
		t.Fatalf("third run of agent a: %+v", pr)
	}
	f.reserve("c", "b", "1", "")
	pr, _ = f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "d", EstimatedUnits: up("1")})
	if pr.Approved || pr.Reason != ledger.ReasonConcurrencyLimitExceeded || !strings.Contains(pr.Message, "customer c has 3 runs") {
		t.Fatalf("fourth run of the customer: %+v", pr)
	}
}

// A grant restores an exhausted customer with trigger granted, and its
// retry answers the same grant.
func TestGrantRestoresAndRetries(t *testing.T) {
	f := newFixture(t)
	f.budget("c", "1", "month")
	f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Units: up("1")})
	req := &ledger.GrantRequest{CustomerID: "c", Units: up("5"), IdempotencyKey: "buy-1", Note: "order 7"}
	reply, evs := f.ok(req)
	checkTypes(t, evs, events.TypeGranted, events.TypeBudgetRestored)
	if tr := evs[1].Data.(*events.BudgetRestored).Trigger; tr != events.TriggerGranted {
		t.Fatalf("restored by %s", tr)
	}
	again, evs := f.ok(req)
	if len(evs) != 0 || mustJSON(t, again) != mustJSON(t, reply) {
		t.Fatalf("retry appended %v, replied %s, want %s", typesOf(evs), mustJSON(t, again), mustJSON(t, reply))
	}
	f.fail(&ledger.GrantRequest{CustomerID: "c", Units: up("6"), IdempotencyKey: "buy-1"}, ledger.CodeConflict)
}

// A grant's times in another offset are the same request: its retry is a
// duplicate, not a conflict.
func TestGrantTimesAreCanonical(t *testing.T) {
	f := newFixture(t)
	f.budget("c", "1", "month")
	exp := t0.Add(48 * time.Hour)
	first := f.grant(&ledger.GrantRequest{CustomerID: "c", Units: up("5"), ExpiresAt: at(exp), IdempotencyKey: "k"})
	again := f.grant(&ledger.GrantRequest{CustomerID: "c", Units: up("5"), ExpiresAt: at(exp.In(time.FixedZone("x", 3600))), IdempotencyKey: "k"})
	if again.GrantID != first.GrantID || len(f.status("c").Grants) != 1 {
		t.Fatalf("retry in another offset granted %s (first %s)", again.GrantID, first.GrantID)
	}
}

// The first preflight of a new period reads the new period: holding less
// than it has left is not an overdraft, whatever the last period used.
func TestNewPeriodIsNotOverdraft(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c", Limit: up("10"), Period: "month", Overdraft: up("5")})
	f.record(&ledger.RecordRequest{CustomerID: "c", AgentID: "a", Units: up("10")})
	f.now = t0.AddDate(0, 1, 0)
	pr, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c", AgentID: "a", EstimatedUnits: up("5")})
	if pr.Overdraft || evs[len(evs)-1].Data.(*events.Reserved).InOverdraft || strings.Contains(pr.Message, "overdraft") {
		t.Fatalf("first hold of a new period: %+v", pr)
	}
}
