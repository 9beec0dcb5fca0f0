package projections

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go/jetstream"
)

// An alerter whose queue overflowed (offer dropped batches) reads the
// dropped commits back from the log: each alert stored once, in log order.
func TestAlerterCatchesUpWhatOfferDropped(t *testing.T) {
	_, js := startLog(t)
	ctx := context.Background()
	if _, err := EnsureAlertStream(ctx, js, 1, AlertConfig{}); err != nil {
		t.Fatal(err)
	}
	const commits = 5
	var batches []alertBatch
	var want []string
	for i := range commits {
		e := &events.Envelope{ID: fmt.Sprintf("ev-%d", i), Type: events.TypeBudgetExhausted, V: events.Version,
			At: time.Now().UTC(), CustomerID: fmt.Sprintf("c%d", i), Data: &events.BudgetExhausted{Trigger: events.TriggerRemainingZero}}
		b, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		var enc events.CommitEncoder
		enc.Reset(fmt.Sprintf("commit-%d", i), events.WriterDefault, time.Now())
		enc.Add(b)
		ack, err := js.Publish(ctx, events.LogSubject(events.WriterDefault), enc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, alertBatch{seq: ack.Sequence, notices: []notice{{id: e.ID, subject: events.EventSubject(e.CustomerID, e.Type), body: b}}})
		want = append(want, e.ID)
	}
	a := &alerter{name: events.WriterDefault, js: js, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		queue: make(chan alertBatch, 1), wake: make(chan struct{}, 1)}
	for _, b := range batches { // the first is queued, the rest dropped
		a.offer(b.seq, b.notices)
	}
	if !a.behind.Load() || len(a.queue) != 1 {
		t.Fatalf("behind %v, %d queued: the queue did not overflow", a.behind.Load(), len(a.queue))
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	st, err := js.Stream(ctx, AlertStream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); a.published.Load() < batches[commits-1].seq; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("published through %d, want %d", a.published.Load(), batches[commits-1].seq)
		}
	}
	var got []string
	for s := uint64(1); ; s++ {
		m, err := st.GetMsg(ctx, s)
		if err != nil {
			break
		}
		got = append(got, m.Header.Get(jetstream.MsgIDHeader))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alert stream %v, want %v", got, want)
	}
}
