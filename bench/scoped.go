package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/ledger"
)

// The scoped spread scenario is the spread scenario over customers whose
// budgets use the rules of credit grants and scoped sub-budgets: every
// preflight carries a scope of three dimensions (team, user, project) and
// counts against a limit in each, may dip into an overdraft, is checked against a run cap, and
// every record draws from credit grants (the allowance is spent at once).
// Its ratio to the plain spread load, run in alternating slices, is what
// those rules cost.
const (
	// scopedCustomers is how many customers it spreads over; each gets
	// its budget and grants before the run (3 admin requests each).
	scopedCustomers = 1000
	// scopedAllowance is each one's period allowance: spent within its
	// first cycles, so records draw from the grants after that.
	scopedAllowance = "100"
	// scopedGrant is each of its two grants (priorities 50 and 100): more
	// than the longest run (DurationMax) uses, at this machine's rate.
	scopedGrant = "1000000"
	// scopedScopeLimit is each of its scope limits: each team of
	// scopedTeams, the user "alice" and the project "alpha".
	scopedScopeLimit = "1000000"
	scopedOverdraft  = "100"
	// scopedMaxRuns caps open runs per customer: more than the clients,
	// so it is checked on every preflight and never refuses.
	scopedMaxRuns = ClientsMax + 1
	// scopedSlices is how many slices of each load the measured time is
	// cut into (each load runs for the whole Duration, warm-ups aside).
	scopedSlices = 8
)

var scopedTeams = [...]string{"research", "support", "sales"}

func scopedCustomer(k int) string { return "scoped-" + strconv.Itoa(k) }

// setupScoped gives the scoped customers their budgets and grants, before
// the scenario's measured run (and its commit figures) starts.
func (e *env) setupScoped(ctx context.Context) error {
	t0 := time.Now()
	defer func() { e.scopedSetup = time.Since(t0) }()
	req := ledger.BudgetRequest{Limit: units(scopedAllowance), Period: "month", Overdraft: units(scopedOverdraft),
		MaxRuns: scopedMaxRuns}
	for _, team := range scopedTeams {
		req.ScopeLimits = append(req.ScopeLimits, ledger.ScopeLimitRequest{Dimension: "team", Value: team,
			Limit: units(scopedScopeLimit), Period: "month"})
	}
	req.ScopeLimits = append(req.ScopeLimits,
		ledger.ScopeLimitRequest{Dimension: "user", Value: "alice", Limit: units(scopedScopeLimit), Period: "month"},
		ledger.ScopeLimitRequest{Dimension: "project", Value: "alpha", Limit: units(scopedScopeLimit), Period: "week"})
	c := e.clients[0]
	for k := range scopedCustomers {
		cid := scopedCustomer(k)
		if _, err := c.SetBudget(ctx, cid, req); err != nil {
			return fmt.Errorf("budget of %s: %w", cid, err)
		}
		for _, prio := range []int{50, 100} {
			if _, err := c.Grant(ctx, cid, ledger.GrantRequest{Units: units(scopedGrant), Priority: &prio}); err != nil {
				return fmt.Errorf("grant to %s: %w", cid, err)
			}
		}
	}
	return nil
}

// spreadScoped: preflight+record cycles over the scoped customers, in
// scopedSlices slices of the measured time, alternating with as many
// slices of the plain spread load (plain, scoped, scoped, plain, and so
// on: a load that slows as the log grows favours neither). The row is the
// scoped load's; its note compares it with the plain slices'.
func (e *env) spreadScoped(ctx context.Context) (Result, error) {
	scopes := make([]map[string]string, len(scopedTeams))
	for i, team := range scopedTeams {
		scopes[i] = map[string]string{"team": team, "user": "alice", "project": "alpha"}
	}
	scoped := func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		return e.scopedCycle(ctx, i, st, due, scopedCustomer(rand.IntN(scopedCustomers)), scopes[rand.IntN(len(scopes))])
	}
	plain := func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		return e.cycle(ctx, i, st, due, "cust-"+strconv.Itoa(rand.IntN(e.cfg.Customers)))
	}
	slice := e.cfg.Duration / scopedSlices
	var sst, pst loopStats
	var ssecs, psecs float64
	for k := range 2 * scopedSlices {
		if (k+1)/2%2 == 1 { // plain, scoped, scoped, plain, plain, ...
			st, secs := e.driveFor(ctx, slice, e.cfg.Rate, scoped)
			sst.merge(&st)
			ssecs += secs
		} else {
			st, secs := e.driveFor(ctx, slice, e.cfg.Rate, plain)
			pst.merge(&st)
			psecs += secs
		}
	}
	r := cycleResult(ScenarioSpreadScoped, len(e.clients), sst, ssecs)
	p := cycleResult(ScenarioSpread, len(e.clients), pst, psecs)
	r.Note += fmt.Sprintf("; %d customers with %d scope limits over 3 dimensions, 2 grants, an overdraft and a run cap each (set up in %s)",
		scopedCustomers, len(scopedTeams)+2, e.scopedSetup.Round(time.Millisecond))
	if p.CyclesPerSec > 0 {
		r.Note += fmt.Sprintf("; in %d slices alternating with as many of the plain spread load, which made %.0f cycles/s (p50 %.0fus, p99 %.0fus): the scoped load made %.1f%% of that",
			scopedSlices, p.CyclesPerSec, p.P50us, p.P99us, 100*r.CyclesPerSec/p.CyclesPerSec)
	}
	return r, nil
}
