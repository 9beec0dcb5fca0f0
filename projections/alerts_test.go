package projections_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// withAlerts makes a writer publish to the alert stream, with a duplicate
// window of window (the default if 0).
func withAlerts(window time.Duration) func(*projections.Config) {
	return func(c *projections.Config) { c.Alerts = &projections.AlertConfig{DuplicateWindow: window} }
}

// alertsStored returns every message of the alert stream, in order.
func alertsStored(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, projections.AlertStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for s := info.State.FirstSeq; s <= info.State.LastSeq && info.State.Msgs > 0; s++ {
		m, err := st.GetMsg(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// A durable subscription that was away while three customers ran dry gets
// exactly those three alerts when it comes back, each with its commit's
// log sequence; a restored customer's budget_restored follows.
func TestDurableSubscriptionGetsWhatItMissed(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil, withAlerts(0))
	c := testenv.Client(t, s)
	ctx := context.Background()

	sub := func(within time.Duration) []client.Alert {
		t.Helper()
		var got []client.Alert
		sctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		err := c.Subscribe(sctx, "billing", client.SubscribeOptions{Types: []events.Type{events.TypeBudgetExhausted, events.TypeBudgetRestored}},
			func(a client.Alert) error { got = append(got, a); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := sub(200 * time.Millisecond); len(got) != 0 { // creates it; nothing yet
		t.Fatalf("a new subscription got %d alerts", len(got))
	}
	for i := range 3 {
		cid := fmt.Sprintf("dry-%d", i)
		setBudget(t, c, cid, "10", ledger.PeriodMonth)
		preflight(t, c, cid, "a", "10")
	}
	got := sub(time.Second)
	if len(got) != 3 {
		t.Fatalf("came back to %d alerts, want 3", len(got))
	}
	for i, a := range got {
		if a.Event.Type != events.TypeBudgetExhausted || a.Event.CustomerID != fmt.Sprintf("dry-%d", i) || a.LogSeq == 0 {
			t.Errorf("alert %d: %s of %s at log sequence %d", i, a.Event.Type, a.Event.CustomerID, a.LogSeq)
		}
	}
	if _, err := c.TopUp(ctx, "dry-0", ledger.TopUpRequest{Units: testenv.Ptr(t, "5")}); err != nil {
		t.Fatal(err)
	}
	if got = sub(time.Second); len(got) != 1 || got[0].Event.Type != events.TypeBudgetRestored {
		t.Fatalf("after a top-up: %+v, want one budget_restored", got)
	}
}

// A writer that starts over a log whose alerts the stream lacks publishes
// them before it serves, and for the commit whose alerts the stream holds
// in part, only the ones missing: none twice, even once the stream's
// duplicate window has passed.
func TestAlertsCaughtUpFromTheLog(t *testing.T) {
	s := testenv.StartServer(t, "")
	old := testenv.StartWriter(t, s, nil, nil) // announces on core NATS only
	c := testenv.Client(t, s)
	ctx := context.Background()
	if _, err := c.SetBudget(ctx, "u", ledger.BudgetRequest{Limit: testenv.Ptr(t, "10"), Period: "month",
		Thresholds: []events.Units{testenv.Units(t, "0.5")}}); err != nil {
		t.Fatal(err)
	}
	preflight(t, c, "u", "a", "10") // threshold_crossed and budget_exhausted, one commit
	setBudget(t, c, "v", "1", ledger.PeriodMonth)
	preflight(t, c, "v", "a", "1") // budget_exhausted, a later commit
	old.Stop(t)

	// A crash after the first alert of the first commit was stored.
	js := testenv.JetStream(t, testenv.Connect(t, s))
	const window = 100 * time.Millisecond
	if _, err := projections.EnsureAlertStream(ctx, js, 1, projections.AlertConfig{DuplicateWindow: window}); err != nil {
		t.Fatal(err)
	}
	var first *events.Envelope
	var firstSeq uint64
	if _, err := projections.Replay(ctx, js, projections.ReplayStop{}, func(seq uint64, e *events.Envelope) error {
		if first == nil && e.Type == events.TypeThresholdCrossed {
			first, firstSeq = e, seq
		}
		return nil
	}); err != nil || first == nil {
		t.Fatalf("no threshold_crossed in the log: %v", err)
	}
	body, _ := events.Encode(first)
	m := nats.NewMsg(events.EventSubject(first.CustomerID, first.Type))
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, first.ID)
	m.Header.Set(projections.AlertLogSeqHeader, strconv.FormatUint(firstSeq, 10))
	m.Header.Set(projections.AlertWriterHeader, events.WriterDefault)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * window) // the stream would no longer catch a duplicate

	testenv.StartWriter(t, s, nil, nil, withAlerts(window))
	var got []string
	for _, m := range alertsStored(t, js) {
		got = append(got, m.Header.Get(jetstream.MsgIDHeader)+" "+m.Subject)
	}
	evs := testenv.StreamEvents(t, c.Conn())
	var want []string
	for _, e := range evs {
		if e.Type == events.TypeThresholdCrossed || e.Type == events.TypeBudgetExhausted {
			want = append(want, e.ID+" "+events.EventSubject(e.CustomerID, e.Type))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alert stream:\n%v\nwant each alert once, in log order:\n%v", got, want)
	}
}
