package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// The readers of the streams read through ordered consumers, which the
// server keeps once their reader stops until they have been idle for
// their inactive threshold: events.ConsumerInactiveMax, not nats.go's
// five minutes. A replay's, the audit's chain walk's and a watch's
// consumers carry it.
func TestReadersConsumersGoWhenIdle(t *testing.T) {
	s := testenv.StartServer(t, "")
	def := &ledger.DefaultBudget{Limit: events.NewUnits(100, 0), Period: ledger.PeriodMonth}
	testenv.StartWriter(t, s, nil, def, func(c *projections.Config) { c.Alerts = &projections.AlertConfig{} })
	c := testenv.Client(t, s)
	ctx := context.Background()
	est := events.NewUnits(5, 0)
	if _, err := c.Preflight(ctx, "cust-1", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: &est}); err != nil {
		t.Fatal(err)
	}
	js := testenv.JetStream(t, c.Conn())

	if _, err := projections.Replay(ctx, js, projections.ReplayStop{}, func(uint64, *events.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := projections.OrderedConsumers(t, js, events.StreamName); n != 1 {
		t.Fatalf("after a replay the log has %d ordered consumers, want its 1", n)
	}
	if _, err := audit.VerifyChain(ctx, js, events.Keyring{}, nil); err != nil {
		t.Fatal(err)
	}
	if n := projections.OrderedConsumers(t, js, events.StreamName); n != 2 {
		t.Fatalf("after the chain walk the log has %d ordered consumers, want 2", n)
	}

	wctx, stop := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() {
		watched <- c.Watch(wctx, "", nil, func(uint64, *events.Envelope) error { return nil })
	}()
	deadline := time.Now().Add(testenv.ReadyTimeout)
	for projections.OrderedConsumers(t, js, events.AlertStreamName) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watch made no consumer on the alert stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
}
