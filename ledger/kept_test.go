package ledger_test

import (
	"bytes"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// A state that follows another with ApplyKept, keeping the bytes the
// other's window kept (State.Kept) instead of encoding each event again,
// is, byte for byte, the state Apply builds. Kept names only the last
// Decide's remembered events, in the order Decide returned them.
func TestApplyKeptEqualsApply(t *testing.T) {
	f := newFixture(t)
	kept, plain := ledger.NewState(), ledger.NewState()
	follow := func(evs []*events.Envelope, k []ledger.Kept) {
		t.Helper()
		for _, e := range evs {
			var raw []byte
			if len(k) > 0 && k[0].Event == e {
				raw, k = k[0].Raw, k[1:]
			}
			if req := requestKey(e); (req != "") != (raw != nil) {
				t.Fatalf("%s event with idempotency key %q: kept %d bytes", e.Type, req, len(raw))
			}
			kept.ApplyKept(e, raw)
			plain.Apply(e)
		}
		if len(k) > 0 {
			t.Fatalf("Kept names %d events Decide did not return", len(k))
		}
	}
	decide := func(cmd ledger.Command) {
		t.Helper()
		_, evs, err := f.decide(cmd)
		if err != nil && ledger.ErrorCode(err) != ledger.CodeConflict {
			t.Fatal(err)
		}
		follow(evs, f.s.Kept())
	}
	decide(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("20"), Period: "month", IdempotencyKey: "b1",
		Thresholds: []events.Units{events.MustParseUnits("0.5")}, AgentLimits: map[string]events.Units{"a": events.MustParseUnits("15")}})
	decide(&ledger.BudgetRequest{CustomerID: "c2", Limit: up("5"), Period: "day", Overdraft: up("1")})
	decide(&ledger.TopUpRequest{CustomerID: "c2", Units: up("2"), IdempotencyKey: "t1"})
	var holds []string
	for i := range 8 {
		cid := []string{"c1", "c2"}[i%2]
		key := "p" + strconv.Itoa(i)
		if i%3 == 2 {
			key = ""
		}
		r, evs, err := f.decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "a", EstimatedUnits: up("2.5"), IdempotencyKey: key,
			TTL: []string{"1m", "1h"}[i%2], Scope: map[string]string{"team": "red"}})
		if err != nil {
			t.Fatal(err)
		}
		follow(evs, f.s.Kept())
		if p := r.(*ledger.PreflightReply); p.Approved {
			holds = append(holds, cid, p.ReservationID)
		}
	}
	decide(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("2.5"), IdempotencyKey: "p0"}) // a retry: no events
	if k := f.s.Kept(); len(k) != 0 {
		t.Fatalf("Kept after a retry that emitted nothing: %d events", len(k))
	}
	for i := 0; i+1 < len(holds); i += 2 {
		if i%4 == 0 {
			decide(&ledger.RecordRequest{CustomerID: holds[i], AgentID: "a", Units: up("3"), ReservationID: holds[i+1], IdempotencyKey: "r" + strconv.Itoa(i)})
		} else {
			decide(&ledger.ReleaseRequest{CustomerID: holds[i], ReservationID: holds[i+1], IdempotencyKey: "x" + strconv.Itoa(i)})
		}
	}
	decide(&ledger.RecordRequest{CustomerID: "c2", AgentID: "a", Units: up("9"), IdempotencyKey: "over"}) // into the overdraft, exhausted
	f.now = f.now.Add(2 * time.Hour)
	follow(f.sweep(100), nil)
	decide(&ledger.GrantRequest{CustomerID: "c1", Units: up("4"), IdempotencyKey: "g1"})

	var want, got, live bytes.Buffer
	meta := ledger.SnapshotMeta{Seq: 1, Writer: "w", Commit: "c"}
	for _, p := range []struct {
		s   *ledger.State
		buf *bytes.Buffer
	}{{plain, &want}, {kept, &got}, {f.s, &live}} {
		if err := p.s.WriteSnapshot(p.buf, meta); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) || !bytes.Equal(live.Bytes(), want.Bytes()) {
		t.Errorf("snapshots differ: ApplyKept %d bytes, Apply %d, the deciding state %d", got.Len(), want.Len(), live.Len())
	}
}

// requestKey returns the idempotency key of the request that caused e
// ("" if none): its data's Request field, which every event caused by a
// request has.
func requestKey(e *events.Envelope) string {
	f := reflect.ValueOf(e.Data).Elem().FieldByName("Request")
	if !f.IsValid() {
		return ""
	}
	return f.Interface().(events.Request).IdempotencyKey
}
