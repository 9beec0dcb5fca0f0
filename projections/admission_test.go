package projections_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
)

// One customer's flood takes at most QueuedPerCustomerMax places in the
// writer's queue: its excess is answered unavailable (its clients retry),
// and another customer's requests, sent in the middle of it, are all
// decided. The burst stays under the writer subscription's pending limit
// (RequestQueueMax messages), past which NATS itself would drop requests
// unanswered.
func TestOneCustomersFloodLeavesOthersServed(t *testing.T) {
	const flood, calm = projections.RequestQueueMax / 2, 20
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, testenv.NewClock(t0), &ledger.DefaultBudget{Limit: testenv.Units(t, "1000000"), Period: ledger.PeriodMonth})
	nc := testenv.ConnectAnonymous(t, s)
	replies := make(chan *nats.Msg, flood+calm)
	inbox := nats.NewInbox()
	sub, err := nc.ChanSubscribe(inbox+".>", replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	send := func(cid string, i int) {
		body := fmt.Sprintf(`{"agent_id":"a","estimated_units":1,"idempotency_key":"%s-%d"}`, cid, i)
		if err := nc.PublishRequest(events.RequestSubject(events.OpPreflight, cid), inbox+"."+cid+"."+fmt.Sprint(i), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range flood {
		send("flooder", i)
		if i%(flood/calm) == 0 && i/(flood/calm) < calm {
			send("calm", i)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	type tally struct{ approved, throttled, other int }
	got := map[string]*tally{"flooder": {}, "calm": {}}
	deadline := time.After(30 * time.Second)
	for n := 0; n < flood+calm; n++ {
		select {
		case m := <-replies:
			cid := strings.Split(strings.TrimPrefix(m.Subject, inbox+"."), ".")[0]
			var r struct {
				Approved bool          `json:"approved"`
				Error    *ledger.Error `json:"error"`
			}
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatal(err)
			}
			switch c := got[cid]; {
			case r.Approved:
				c.approved++
			case r.Error != nil && r.Error.Code == ledger.CodeUnavailable && strings.Contains(r.Error.Message, "requests waiting"):
				c.throttled++
			default:
				c.other++
				t.Errorf("%s: %s", cid, m.Data)
			}
		case <-deadline:
			t.Fatalf("%d of %d replies within 30 s", n, flood+calm)
		}
	}
	f, c := got["flooder"], got["calm"]
	t.Logf("flooder: %d approved, %d throttled; calm: %d approved, %d throttled; writer counted %d throttled",
		f.approved, f.throttled, c.approved, c.throttled, w.Stats().Throttled.Load())
	if c.approved != calm {
		t.Errorf("calm customer: %d of %d approved, want all", c.approved, calm)
	}
	if f.throttled == 0 || f.approved == 0 {
		t.Errorf("flooder: %d approved and %d throttled; want both (its excess over %d queued answered unavailable)",
			f.approved, f.throttled, projections.QueuedPerCustomerMax)
	}
	if n := w.Stats().Throttled.Load(); n != uint64(f.throttled) {
		t.Errorf("the writer counted %d throttled, the flooder was told %d", n, f.throttled)
	}
}
