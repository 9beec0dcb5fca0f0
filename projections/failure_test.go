package projections_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// An append that fails (here: another writer moved the stream's last
// sequence, so the fence rejects the batch) must not approve anything: the
// request gets unavailable, the writer rebuilds from the log (now including
// the foreign event), and later requests succeed against the rebuilt state.
func TestFailedAppendApprovesNothingAndRebuilds(t *testing.T) {
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, nil, nil)
	c := testenv.Client(t, s)
	ctx := context.Background()
	setBudget(t, c, "u", "100", ledger.PeriodMonth)
	before := len(testenv.StreamEvents(t, c.Conn()))

	// A second, rogue writer appends a valid top-up behind the writer's back.
	js := testenv.JetStream(t, testenv.Connect(t, s))
	forged := &events.Envelope{ID: "forged-1", Type: events.TypeToppedUp, V: events.Version, At: time.Now().UTC(),
		CustomerID: "u", Data: &events.ToppedUp{Units: events.NewUnits(50, 0)}}
	body, err := events.Encode(forged)
	if err != nil {
		t.Fatal(err)
	}
	var enc events.CommitEncoder
	enc.Reset("forged-commit", "rogue", time.Now())
	enc.Add(body)
	if _, err := js.Publish(ctx, events.LogSubject("rogue"), enc.Bytes()); err != nil {
		t.Fatal(err)
	}

	// The writer's next append is fenced off: a raw request (no client
	// retry) must get unavailable, never an approval.
	msg, err := c.Conn().Request(events.RequestSubject(events.OpPreflight, "u"),
		[]byte(`{"agent_id":"a","estimated_units":10,"idempotency_key":"k1"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var er ledger.ErrorReply
	if err := json.Unmarshal(msg.Data, &er); err != nil || er.Error == nil || er.Error.Code != ledger.CodeUnavailable {
		t.Fatalf("reply %s, want an unavailable error", msg.Data)
	}
	evs := testenv.StreamEvents(t, c.Conn())
	if len(evs) != before+1 || testenv.CountType(evs, "u", events.TypeReserved) != 0 {
		t.Fatalf("stream has %d events (%d reserved), want only the forged one added", len(evs), testenv.CountType(evs, "u", events.TypeReserved))
	}

	// The client retries unavailable with the same key; after the rebuild
	// the retry is decided once, against a state that has the top-up.
	r, err := c.Preflight(ctx, "u", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "10"), IdempotencyKey: "k1"})
	if err != nil || !r.Approved {
		t.Fatalf("retry: %v %+v", err, r)
	}
	if got := r.RemainingUnits.String(); got != "140" {
		t.Errorf("remaining %s, want 140 (100 + 50 forged top-up - 10)", got)
	}
	if n := w.Stats().Rebuilds.Load(); n != 1 {
		t.Errorf("rebuilds = %d, want 1", n)
	}
	if n := testenv.CountType(testenv.StreamEvents(t, c.Conn()), "u", events.TypeReserved); n != 1 {
		t.Errorf("reserved events = %d, want exactly 1", n)
	}
	if !strings.Contains(r.Message, "140") {
		t.Errorf("message %q does not give the remaining units", r.Message)
	}
}

// The writer sends the next commit before it answers the one just
// acknowledged. If that send fails, the acknowledged decision is still
// answered as made (it is durable); only the unsent one is abandoned.
func TestAckedAnsweredWhenNextSendFails(t *testing.T) {
	s := testenv.StartServer(t, "")
	c := testenv.Client(t, s)
	lc := testenv.Connect(t, s)
	var (
		armed  atomic.Bool
		w      *testenv.Writer
		second = make(chan []byte, 1)
	)
	request := func(key string) ([]byte, error) {
		msg, err := c.Conn().Request(events.RequestSubject(events.OpPreflight, "u"),
			[]byte(`{"agent_id":"a","estimated_units":10,"idempotency_key":"`+key+`"}`), 5*time.Second)
		if err != nil {
			return nil, err
		}
		return msg.Data, nil
	}
	w = testenv.StartWriter(t, s, nil, nil, func(cfg *projections.Config) {
		cfg.LogConn = lc
		cfg.Fault = func(point string) {
			if point != projections.FaultAfterAckBeforeSend || !armed.CompareAndSwap(true, false) {
				return
			}
			// The first request's commit is acknowledged. Let a second one
			// reach the queue, so the next send has a decision to carry,
			// then take the log connection away under it.
			go func() {
				b, err := request("second")
				if err != nil {
					b = []byte(err.Error())
				}
				second <- b
			}()
			for deadline := time.Now().Add(5 * time.Second); projections.QueuedRequests(w.Writer) == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Error("the second request never reached the writer's queue")
					break
				}
			}
			lc.Close()
		}
	})
	setBudget(t, c, "u", "100", ledger.PeriodMonth)
	armed.Store(true)

	first, err := request("first")
	if err != nil {
		t.Fatal(err)
	}
	var pf ledger.PreflightReply
	if err := json.Unmarshal(first, &pf); err != nil || !pf.Approved || pf.ReservationID == "" {
		t.Fatalf("first reply %s: want its durable approval", first)
	}
	var er ledger.ErrorReply
	if b := <-second; json.Unmarshal(b, &er) != nil || er.Error == nil || er.Error.Code != ledger.CodeUnavailable {
		t.Fatalf("second reply %s: want unavailable (its commit was never sent)", b)
	}
	var reserved []string
	for _, e := range testenv.StreamEvents(t, c.Conn()) {
		if r, ok := e.Data.(*events.Reserved); ok && e.CustomerID == "u" {
			reserved = append(reserved, r.ReservationID)
		}
	}
	if len(reserved) != 1 || reserved[0] != pf.ReservationID {
		t.Fatalf("reservations in the stream %v, want the first reply's %s only", reserved, pf.ReservationID)
	}
}
