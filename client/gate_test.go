package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
)

func gateEnv(t *testing.T, limit string) *client.Client {
	t.Helper()
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil)
	c := testenv.Client(t, s)
	if _, err := c.SetBudget(context.Background(), "u", ledger.BudgetRequest{Limit: testenv.Ptr(t, limit), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGateRecordsWhatTheRunReports(t *testing.T) {
	c := gateEnv(t, "100")
	ctx := context.Background()
	ran := false
	res, err := c.Gate(ctx, client.GateOptions{CustomerID: "u", AgentID: "a", EstimatedUnits: testenv.Units(t, "10")},
		func(context.Context) (events.Units, error) {
			ran = true
			return testenv.Units(t, "6.5"), nil
		})
	if err != nil || !ran {
		t.Fatalf("gate: ran=%v err=%v", ran, err)
	}
	if got := res.Record.ChargedUnits.String(); got != "6.5" {
		t.Errorf("charged %s, want 6.5", got)
	}
	st, _ := c.Status(ctx, "u")
	if st.Used.String() != "6.5" || !st.Reserved.IsZero() {
		t.Errorf("used %s reserved %s, want 6.5 and 0", st.Used, st.Reserved)
	}
}

func TestGateReleasesOnErrorAndPanic(t *testing.T) {
	c := gateEnv(t, "100")
	ctx := context.Background()
	opts := client.GateOptions{CustomerID: "u", AgentID: "a", EstimatedUnits: testenv.Units(t, "10")}
	boom := errors.New("model failed")
	_, err := c.Gate(ctx, opts, func(context.Context) (events.Units, error) { return events.Zero, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("gate returned %v, want the run's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Errorf("recovered %v, want the run's panic", r)
			}
		}()
		_, _ = c.Gate(ctx, opts, func(context.Context) (events.Units, error) { panic("kaboom") })
	}()
	st, err := c.Status(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Used.IsZero() || !st.Reserved.IsZero() || st.OpenReservations != 0 {
		t.Errorf("after failed runs: used %s reserved %s open %d, want all zero", st.Used, st.Reserved, st.OpenReservations)
	}
	evs := testenv.StreamEvents(t, c.Conn())
	if n := testenv.CountType(evs, "u", events.TypeReleased); n != 2 {
		t.Errorf("released events = %d, want 2", n)
	}
}

func TestGateRefusalNeverRunsTheFunction(t *testing.T) {
	c := gateEnv(t, "5")
	ran := false
	_, err := c.Gate(context.Background(), client.GateOptions{CustomerID: "u", AgentID: "a", EstimatedUnits: testenv.Units(t, "10")},
		func(context.Context) (events.Units, error) {
			ran = true
			return events.Zero, nil
		})
	var refused *client.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("gate returned %v, want *RefusedError", err)
	}
	if ran {
		t.Error("the function ran despite the refusal")
	}
	if refused.Reason != ledger.ReasonBudgetExhausted || refused.Message == "" || refused.Remaining.String() != "5" {
		t.Errorf("refusal %+v, want budget_exhausted with a message and 5 remaining", refused)
	}
}

func TestCustomerIDsRoundTripToOneCustomer(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, &ledger.DefaultBudget{Limit: events.NewUnits(100, 0), Period: ledger.PeriodMonth})
	c := testenv.Client(t, s)
	ctx := context.Background()
	long := make([]byte, 128)
	for i := range long {
		long[i] = 'x'
	}
	ids := []string{"plain", "with.dot", "star*", "gt>", "has space", "~tilde", "ünïcode", string(long), "a.*>"}
	for _, id := range ids {
		if _, err := c.Preflight(ctx, id, ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "1")}); err != nil {
			t.Fatalf("preflight %q: %v", id, err)
		}
		st, err := c.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.CustomerID != id || st.Reserved.String() != "1" {
			t.Errorf("customer %q: status for %q reserved %s", id, st.CustomerID, st.Reserved)
		}
	}
	// Each ID landed on exactly one customer: the reserved events name
	// exactly the IDs sent, once each.
	seen := map[string]int{}
	for _, e := range testenv.StreamEvents(t, c.Conn()) {
		if e.Type == events.TypeReserved {
			seen[e.CustomerID]++
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("customer %q has %d reserved events, want 1", id, seen[id])
		}
	}
	if len(seen) != len(ids) {
		t.Errorf("reserved events name %d customers, want %d: %v", len(seen), len(ids), seen)
	}
	if n := testenv.CountType(testenv.StreamEvents(t, c.Conn()), "", events.TypeReserved); n != len(ids) {
		t.Errorf("reserved events = %d, want %d", n, len(ids))
	}
}

// A preflight past the customer's rate limit never runs the function, and
// the refusal says how long to wait.
func TestGateRateLimitedSaysHowLongToWait(t *testing.T) {
	c := gateEnv(t, "100")
	rl := &events.RateLimit{PerSecond: testenv.Units(t, "0.001"), Burst: 1} // no token comes back during the test
	if _, err := c.SetBudget(context.Background(), "u", ledger.BudgetRequest{Limit: testenv.Ptr(t, "100"), Period: "month", RateLimit: rl}); err != nil {
		t.Fatal(err)
	}
	run := func(context.Context) (events.Units, error) { return testenv.Units(t, "1"), nil }
	opts := client.GateOptions{CustomerID: "u", AgentID: "a", EstimatedUnits: testenv.Units(t, "1")}
	if _, err := c.Gate(context.Background(), opts, run); err != nil {
		t.Fatalf("first gated run: %v", err)
	}
	_, err := c.Gate(context.Background(), opts, func(context.Context) (events.Units, error) {
		t.Error("the function ran past the rate limit")
		return events.Zero, nil
	})
	var refused *client.RefusedError
	if !errors.As(err, &refused) || refused.Reason != ledger.ReasonRateLimited || refused.RetryAfter < 990*time.Second {
		t.Errorf("second gated run: %v (%+v), want rate_limited with RetryAfter about 1000s", err, refused)
	}
}
