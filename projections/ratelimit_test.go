package projections_test

import (
	"context"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// A budget's rate limit refuses the preflights past its burst with
// rate_limited and a retry_after_ms, appending nothing; records are never
// limited; the server's default applies to the customers without one,
// per_second 0 lifts it; and the budget's rate survives a restart of the
// writer. The rates are so slow (one a 1,000 s) that no token comes back
// during the test.
func TestRateLimitRefusesPastTheBurstAndAppendsNothing(t *testing.T) {
	ctx := context.Background()
	s := testenv.StartServer(t, "")
	slow := events.RateLimit{PerSecond: testenv.Units(t, "0.001"), Burst: 1}
	withDefault := func(c *projections.Config) { c.RateLimit = slow }
	def := &ledger.DefaultBudget{Limit: testenv.Units(t, "1000"), Period: ledger.PeriodMonth}
	w := testenv.StartWriter(t, s, nil, def, withDefault)
	c := testenv.Client(t, s)
	for cid, rl := range map[string]*events.RateLimit{
		"limited":   {PerSecond: testenv.Units(t, "0.001"), Burst: 2},
		"unlimited": {PerSecond: events.Zero},
	} {
		req := ledger.BudgetRequest{Limit: testenv.Ptr(t, "1000"), Period: "month", RateLimit: rl}
		st, err := c.SetBudget(ctx, cid, req)
		if err != nil {
			t.Fatal(err)
		}
		if st.RateLimit == nil || st.RateLimit.Burst != rl.Burst {
			t.Errorf("%s: status rate_limit %+v, want %+v", cid, st.RateLimit, rl)
		}
	}
	first := preflight(t, c, "limited", "a", "1")
	preflight(t, c, "limited", "a", "1")
	n := len(testenv.StreamEvents(t, c.Conn()))
	got := preflight(t, c, "limited", "a", "1")
	if got.Approved || got.Reason != ledger.ReasonRateLimited || got.RetryAfterMs < 999_000 || got.RetryAfterMs > 1_000_000 {
		t.Errorf("third preflight: approved %v, reason %q, retry_after_ms %d; want refused rate_limited, about 1,000,000 ms",
			got.Approved, got.Reason, got.RetryAfterMs)
	}
	if _, err := c.Record(ctx, "limited", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "1"), ReservationID: first.ReservationID}); err != nil {
		t.Errorf("record past the rate: %v; records are never limited", err)
	}
	if got := len(testenv.StreamEvents(t, c.Conn())); got != n+1 {
		t.Errorf("the refusal and the record appended %d events, want 1 (the record's)", got-n)
	}
	for i := range 5 {
		if r := preflight(t, c, "unlimited", "a", "1"); !r.Approved {
			t.Fatalf("unlimited: preflight %d refused %q; per_second 0 lifts the default", i+1, r.Reason)
		}
	}
	preflight(t, c, "default", "a", "1")
	if r := preflight(t, c, "default", "a", "1"); r.Reason != ledger.ReasonRateLimited {
		t.Errorf("a customer without its own rate: second preflight %q, want rate_limited by the default (burst 1)", r.Reason)
	}
	if n := w.Stats().RateLimited.Load(); n != 2 {
		t.Errorf("the writer counted %d rate_limited, want 2", n)
	}

	w.Stop(t)
	testenv.StartWriter(t, s, nil, def) // no default: only the budget's own rate is left
	preflight(t, c, "limited", "a", "1")
	preflight(t, c, "limited", "a", "1")
	if r := preflight(t, c, "limited", "a", "1"); r.Reason != ledger.ReasonRateLimited {
		t.Errorf("after a restart, third preflight %q, want rate_limited: the budget's rate is replayed", r.Reason)
	}
}
