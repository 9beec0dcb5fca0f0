package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
)

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

func setBudget(t *testing.T, c *client.Client, cid, limit string, period ledger.Period, thresholds ...string) {
	t.Helper()
	req := ledger.BudgetRequest{Limit: testenv.Ptr(t, limit), Period: string(period)}
	for _, th := range thresholds {
		req.Thresholds = append(req.Thresholds, testenv.Units(t, th))
	}
	if _, err := c.SetBudget(context.Background(), cid, req); err != nil {
		t.Fatalf("set budget: %v", err)
	}
}

func preflight(t *testing.T, c *client.Client, cid, agent, units string) *ledger.PreflightReply {
	t.Helper()
	r, err := c.Preflight(context.Background(), cid, ledger.PreflightRequest{AgentID: agent, EstimatedUnits: testenv.Ptr(t, units)})
	if err != nil {
		t.Fatalf("preflight: %v", err)
	}
	return r
}

func status(t *testing.T, c *client.Client, cid string) *ledger.StatusReply {
	t.Helper()
	st, err := c.Status(context.Background(), cid)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func wantUnits(t *testing.T, what string, got events.Units, want string) {
	t.Helper()
	if got.String() != want {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func TestFiftyParallelRunsNeverOverspend(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil)
	c := testenv.Client(t, s)
	setBudget(t, c, "user_123", "100", ledger.PeriodMonth)

	var wg sync.WaitGroup
	replies := make([]*ledger.PreflightReply, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = c.Preflight(context.Background(), "user_123",
				ledger.PreflightRequest{AgentID: "research_agent", EstimatedUnits: testenv.Ptr(t, "10")})
		}()
	}
	wg.Wait()
	approved, refused := 0, 0
	for i, r := range replies {
		if errs[i] != nil {
			t.Fatalf("preflight %d: %v", i, errs[i])
		}
		if r.Approved {
			approved++
		} else if r.Reason == ledger.ReasonBudgetExhausted {
			refused++
		} else {
			t.Errorf("preflight %d refused with %q", i, r.Reason)
		}
	}
	if approved != 10 || refused != 40 {
		t.Fatalf("approved %d refused %d, want 10 and 40", approved, refused)
	}
	evs := testenv.StreamEvents(t, c.Conn())
	if n := testenv.CountType(evs, "user_123", events.TypeBudgetExhausted); n != 1 {
		t.Errorf("budget_exhausted events = %d, want 1", n)
	}
	if n := testenv.CountType(evs, "user_123", events.TypeReserved); n != 10 {
		t.Errorf("reserved events = %d, want 10", n)
	}
	if n := testenv.CountType(evs, "user_123", events.TypeDenied); n != 40 {
		t.Errorf("denied events = %d, want 40", n)
	}
	st := status(t, c, "user_123")
	wantUnits(t, "reserved", st.Reserved, "100")
	wantUnits(t, "remaining", st.Remaining.Units, "0")
	if !st.Exhausted {
		t.Error("status not exhausted")
	}
}

func TestExhaustingOneCustomerLeavesOthersUntouched(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil)
	c := testenv.Client(t, s)
	setBudget(t, c, "alice", "50", ledger.PeriodMonth)
	setBudget(t, c, "bob", "50", ledger.PeriodMonth)
	before := status(t, c, "bob")
	if r := preflight(t, c, "alice", "a", "50"); !r.Approved {
		t.Fatalf("alice refused: %s", r.Message)
	}
	if r := preflight(t, c, "alice", "a", "1"); r.Approved || r.Reason != ledger.ReasonBudgetExhausted {
		t.Fatalf("alice approved past her budget: %+v", r)
	}
	after := status(t, c, "bob")
	before.AsOfSeq, after.AsOfSeq = 0, 0 // the log moved on; bob did not
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("bob changed: before %+v after %+v", before, after)
	}
	if r := preflight(t, c, "bob", "a", "50"); !r.Approved {
		t.Errorf("bob refused after alice ran dry: %s", r.Message)
	}
}

func TestRecordSettlesReservation(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil)
	c := testenv.Client(t, s)
	ctx := context.Background()
	setBudget(t, c, "u", "100", ledger.PeriodMonth)

	r := preflight(t, c, "u", "a", "10")
	rec, err := c.Record(ctx, "u", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "7"), ReservationID: r.ReservationID})
	if err != nil {
		t.Fatal(err)
	}
	wantUnits(t, "charged", rec.ChargedUnits, "7")
	wantUnits(t, "released", rec.ReleasedUnits, "3")
	wantUnits(t, "overage", rec.OverageUnits, "0")
	st := status(t, c, "u")
	wantUnits(t, "used", st.Used, "7")
	wantUnits(t, "reserved", st.Reserved, "0")

	r = preflight(t, c, "u", "a", "10")
	rec, err = c.Record(ctx, "u", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "12"), ReservationID: r.ReservationID})
	if err != nil {
		t.Fatal(err)
	}
	wantUnits(t, "charged", rec.ChargedUnits, "12")
	wantUnits(t, "overage", rec.OverageUnits, "2")
	wantUnits(t, "released", rec.ReleasedUnits, "0")
	st = status(t, c, "u")
	wantUnits(t, "used", st.Used, "19")
	wantUnits(t, "reserved", st.Reserved, "0")
	wantUnits(t, "remaining", st.Remaining.Units, "81")

	// Without a reservation ID, the oldest open hold of the agent settles.
	first := preflight(t, c, "u", "a", "5")
	preflight(t, c, "u", "a", "6")
	rec, err = c.Record(ctx, "u", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "5")})
	if err != nil {
		t.Fatal(err)
	}
	if rec.ReservationID != first.ReservationID {
		t.Errorf("settled %s, want the oldest %s", rec.ReservationID, first.ReservationID)
	}
	// success=false releases instead of charging.
	no := false
	rec, err = c.Record(ctx, "u", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "6"), Success: &no})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != ledger.StatusReleased {
		t.Errorf("status %q, want released", rec.Status)
	}
	wantUnits(t, "released", rec.ReleasedUnits, "6")
	// With no hold left, a record is a plain usage charge.
	rec, err = c.Record(ctx, "u", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "0.25")})
	if err != nil {
		t.Fatal(err)
	}
	if rec.ReservationID != "" {
		t.Errorf("plain usage settled %s", rec.ReservationID)
	}
	st = status(t, c, "u")
	wantUnits(t, "used", st.Used, "24.25")
	wantUnits(t, "reserved", st.Reserved, "0")
	if st.OpenReservations != 0 {
		t.Errorf("open reservations %d", st.OpenReservations)
	}
}

func TestExpiryAndExtendWithControlledClock(t *testing.T) {
	s := testenv.StartServer(t, "")
	clock := testenv.NewClock(t0)
	testenv.StartWriter(t, s, clock, nil)
	c := testenv.Client(t, s)
	ctx := context.Background()
	setBudget(t, c, "u", "100", ledger.PeriodMonth)

	short, err := c.Preflight(ctx, "u", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "30"), TTL: "1m"})
	if err != nil || !short.Approved {
		t.Fatalf("preflight: %v %+v", err, short)
	}
	long, err := c.Preflight(ctx, "u", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "20"), TTL: "1m"})
	if err != nil || !long.Approved {
		t.Fatalf("preflight: %v %+v", err, long)
	}
	clock.Advance(30 * time.Second)
	ext, err := c.Extend(ctx, "u", long.ReservationID, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(30*time.Second + 10*time.Minute); !ext.ExpiresAt.Equal(want) {
		t.Errorf("expires_at %s, want %s", ext.ExpiresAt, want)
	}
	clock.Advance(31 * time.Second) // short is past its deadline; long is not
	waitFor(t, func() bool { return testenv.CountType(testenv.StreamEvents(t, c.Conn()), "u", events.TypeExpired) == 1 })
	st := status(t, c, "u")
	wantUnits(t, "reserved", st.Reserved, "20")
	wantUnits(t, "remaining", st.Remaining.Units, "80")
	evs := testenv.StreamEvents(t, c.Conn())
	for _, e := range evs {
		if x, ok := e.Data.(*events.Expired); ok && x.ReservationID != short.ReservationID {
			t.Errorf("expired %s, want %s", x.ReservationID, short.ReservationID)
		}
	}
	// A record after expiry is still charged: the usage happened.
	rec, err := c.Record(ctx, "u", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "4"), ReservationID: short.ReservationID})
	if err != nil {
		t.Fatal(err)
	}
	wantUnits(t, "charged", rec.ChargedUnits, "4")
	// Extending an expired hold is a conflict.
	if _, err := c.Extend(ctx, "u", short.ReservationID, time.Minute); ledger.ErrorCode(err) != ledger.CodeConflict {
		t.Errorf("extend of expired hold: %v, want conflict", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIdempotencySurvivesRestart(t *testing.T) {
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, nil, nil)
	c := testenv.Client(t, s)
	ctx := context.Background()
	setBudget(t, c, "u", "100", ledger.PeriodMonth)

	req := ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "10"), IdempotencyKey: "run-1"}
	first, err := c.Preflight(ctx, "u", req)
	if err != nil {
		t.Fatal(err)
	}
	n := len(testenv.StreamEvents(t, c.Conn()))
	again, err := c.Preflight(ctx, "u", req)
	if err != nil {
		t.Fatal(err)
	}
	if again.ReservationID != first.ReservationID {
		t.Errorf("retry got reservation %s, want %s", again.ReservationID, first.ReservationID)
	}
	if got := len(testenv.StreamEvents(t, c.Conn())); got != n {
		t.Errorf("retry appended %d events", got-n)
	}
	other := req
	other.EstimatedUnits = testenv.Ptr(t, "11")
	if _, err := c.Preflight(ctx, "u", other); ledger.ErrorCode(err) != ledger.CodeConflict {
		t.Errorf("same key, different body: %v, want conflict", err)
	}

	w.Stop(t)
	testenv.StartWriter(t, s, nil, nil)
	again, err = c.Preflight(ctx, "u", req)
	if err != nil {
		t.Fatal(err)
	}
	firstJSON, _ := json.Marshal(first)
	againJSON, _ := json.Marshal(again)
	if string(firstJSON) != string(againJSON) {
		t.Errorf("after restart the retry got\n%s\nwant\n%s", againJSON, firstJSON)
	}
	if _, err := c.Preflight(ctx, "u", other); ledger.ErrorCode(err) != ledger.CodeConflict {
		t.Errorf("after restart, same key, different body: %v, want conflict", err)
	}
	if got := len(testenv.StreamEvents(t, c.Conn())); got != n {
		t.Errorf("retries appended %d events", got-n)
	}
}

func TestRestartRebuildsIdenticalStatus(t *testing.T) {
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, nil, &ledger.DefaultBudget{Limit: events.NewUnits(1000, 0), Period: ledger.PeriodMonth})
	c := testenv.Client(t, s)
	ctx := context.Background()
	customers := []string{"a", "b.with.dots", "c*", "~d", "ünï", "e"}
	setBudget(t, c, "e", "7.5", ledger.PeriodDay, "0.5")
	for i, cid := range customers {
		for j := range 5 {
			r := preflight(t, c, cid, fmt.Sprintf("agent%d", j%2), fmt.Sprintf("%d.5", i+j))
			if r.Approved && j%2 == 0 {
				if _, err := c.Record(ctx, cid, ledger.RecordRequest{AgentID: "agent0", Units: testenv.Ptr(t, "1.125"), ReservationID: r.ReservationID}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if _, err := c.TopUp(ctx, "a", ledger.TopUpRequest{Units: testenv.Ptr(t, "3")}); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, cid := range customers {
		b, _ := json.Marshal(status(t, c, cid))
		before[cid] = string(b)
	}
	w.Stop(t)
	testenv.StartWriter(t, s, nil, &ledger.DefaultBudget{Limit: events.NewUnits(1000, 0), Period: ledger.PeriodMonth})
	for _, cid := range customers {
		b, _ := json.Marshal(status(t, c, cid))
		if string(b) != before[cid] {
			t.Errorf("customer %q after restart:\n%s\nwant\n%s", cid, b, before[cid])
		}
	}
}

func TestPeriodRolloverAndThresholds(t *testing.T) {
	s := testenv.StartServer(t, "")
	clock := testenv.NewClock(time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC))
	testenv.StartWriter(t, s, clock, nil)
	c := testenv.Client(t, s)
	ctx := context.Background()
	setBudget(t, c, "u", "100", ledger.PeriodMonth, "0.5", "0.9")

	r := preflight(t, c, "u", "a", "60")
	if _, err := c.Record(ctx, "u", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "60"), ReservationID: r.ReservationID}); err != nil {
		t.Fatal(err)
	}
	hold := func(units string) {
		t.Helper()
		r, err := c.Preflight(ctx, "u", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, units), TTL: "24h"})
		if err != nil || !r.Approved {
			t.Fatalf("preflight %s: %v %+v", units, err, r)
		}
	}
	hold("35") // held across the boundary
	evs := testenv.StreamEvents(t, c.Conn())
	if n := testenv.CountType(evs, "u", events.TypeThresholdCrossed); n != 2 {
		t.Fatalf("threshold events = %d, want 2 (0.5 and 0.9)", n)
	}
	// Another crossing in the same period fires nothing new.
	hold("1")
	if n := testenv.CountType(testenv.StreamEvents(t, c.Conn()), "u", events.TypeThresholdCrossed); n != 2 {
		t.Errorf("threshold events = %d after a second crossing, want 2", n)
	}

	clock.Advance(2 * time.Hour) // April, UTC
	st := status(t, c, "u")
	wantUnits(t, "used after rollover", st.Used, "0")
	wantUnits(t, "reserved after rollover", st.Reserved, "36")
	if want := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC); !st.PeriodStart.Equal(want) {
		t.Errorf("period_start %s, want %s", st.PeriodStart, want)
	}
	// 36 held + 20 = 56%: the 0.5 threshold fires again in the new period.
	preflight(t, c, "u", "a", "20")
	evs = testenv.StreamEvents(t, c.Conn())
	if n := testenv.CountType(evs, "u", events.TypeThresholdCrossed); n != 3 {
		t.Errorf("threshold events = %d, want 3", n)
	}
	last := evs[len(evs)-1]
	tc, ok := last.Data.(*events.ThresholdCrossed)
	if !ok || tc.Fraction.String() != "0.5" || !tc.Balance.PeriodStart.Equal(st.PeriodStart) {
		t.Errorf("last event %s %+v, want threshold 0.5 in April", last.Type, last.Data)
	}
}

func TestExhaustionRearms(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil)
	c := testenv.Client(t, s)
	ctx := context.Background()
	setBudget(t, c, "u", "10", ledger.PeriodMonth)
	preflight(t, c, "u", "a", "10")
	preflight(t, c, "u", "a", "1")
	count := func() int {
		return testenv.CountType(testenv.StreamEvents(t, c.Conn()), "u", events.TypeBudgetExhausted)
	}
	if n := count(); n != 1 {
		t.Fatalf("exhausted events = %d, want 1", n)
	}
	if _, err := c.TopUp(ctx, "u", ledger.TopUpRequest{Units: testenv.Ptr(t, "5")}); err != nil {
		t.Fatal(err)
	}
	if r := preflight(t, c, "u", "a", "6"); r.Approved {
		t.Fatal("approved beyond top-up")
	}
	if n := count(); n != 2 {
		t.Errorf("exhausted events after top-up and refusal = %d, want 2", n)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, &ledger.DefaultBudget{Limit: events.NewUnits(1000, 0), Period: ledger.PeriodMonth})
	c := testenv.Client(t, s)
	nc := c.Conn()
	setBudget(t, c, "u", "100", ledger.PeriodMonth)
	n := len(testenv.StreamEvents(t, nc))
	cases := []struct {
		name, subject, body string
		code                ledger.Code
	}{
		{"malformed json", "agentbill.v1.preflight.u", `{"agent_id":`, ledger.CodeInvalidArgument},
		{"not an object", "agentbill.v1.preflight.u", `[1,2]`, ledger.CodeInvalidArgument},
		{"negative", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":-1}`, ledger.CodeInvalidArgument},
		{"negative zero", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":-0}`, ledger.CodeInvalidArgument},
		{"NaN", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":"NaN"}`, ledger.CodeInvalidArgument},
		{"NaN bare", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":NaN}`, ledger.CodeInvalidArgument},
		{"Infinity", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":"Infinity"}`, ledger.CodeInvalidArgument},
		{"1e16", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":1e16}`, ledger.CodeInvalidArgument},
		{"1e999999", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":1e999999}`, ledger.CodeInvalidArgument},
		{"19 fractional digits", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":0.0000000000000000001}`, ledger.CodeInvalidArgument},
		{"zero estimate", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":0}`, ledger.CodeInvalidArgument},
		{"empty agent", "agentbill.v1.preflight.u", `{"agent_id":"","estimated_units":1}`, ledger.CodeInvalidArgument},
		{"missing units", "agentbill.v1.record.u", `{"agent_id":"a"}`, ledger.CodeInvalidArgument}, // a preflight's default to 1 (ledger)
		{"unknown field", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":1,"x":1}`, ledger.CodeInvalidArgument},
		{"trailing data", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":1} {}`, ledger.CodeInvalidArgument},
		{"bad ttl", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":1,"ttl":"forever"}`, ledger.CodeInvalidArgument},
		{"ttl too long", "agentbill.v1.preflight.u", `{"agent_id":"a","estimated_units":1,"ttl":"48h"}`, ledger.CodeInvalidArgument},
		{"token does not decode", "agentbill.v1.preflight.~!!", `{"agent_id":"a","estimated_units":1}`, ledger.CodeInvalidArgument},
		{"non-canonical token", "agentbill.v1.preflight.~dQ", `{"agent_id":"a","estimated_units":1}`, ledger.CodeInvalidArgument},
		{"customer mismatch", "agentbill.v1.preflight.u", `{"customer_id":"v","agent_id":"a","estimated_units":1}`, ledger.CodeInvalidArgument},
		{"unknown op", "agentbill.v1.launch.u", `{}`, ledger.CodeNotFound},
		{"admin op on agent subject", "agentbill.v1.budget.u", `{"limit":1,"period":"day"}`, ledger.CodeNotFound},
		{"bad period", "agentbill.admin.v1.budget.u", `{"limit":1,"period":"year"}`, ledger.CodeInvalidArgument},
		{"threshold above 1", "agentbill.admin.v1.budget.u", `{"limit":1,"period":"day","thresholds":[1.5]}`, ledger.CodeInvalidArgument},
		{"unknown reservation", "agentbill.v1.release.u", `{"reservation_id":"nope"}`, ledger.CodeNotFound},
		{"record bad metadata", "agentbill.v1.record.u", `{"agent_id":"a","units":1,"metadata":[1]}`, ledger.CodeInvalidArgument},
		{"huge body", "agentbill.v1.preflight.u", `{"agent_id":"` + string(make([]byte, 70000)) + `"}`, ledger.CodeInvalidArgument},
		{"control character id", "agentbill.v1.preflight.u", `{"agent_id":"a\u0000b","estimated_units":1}`, ledger.CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := nc.Request(tc.subject, []byte(tc.body), 5*time.Second)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			var er ledger.ErrorReply
			if err := json.Unmarshal(msg.Data, &er); err != nil || er.Error == nil {
				t.Fatalf("reply %s is not an error", msg.Data)
			}
			if er.Error.Code != tc.code || er.Error.Message == "" {
				t.Errorf("got %s %q, want %s", er.Error.Code, er.Error.Message, tc.code)
			}
		})
	}
	if got := len(testenv.StreamEvents(t, nc)); got != n {
		t.Errorf("bad input appended %d events", got-n)
	}
	if r := preflight(t, c, "u", "a", "1"); !r.Approved {
		t.Errorf("service stopped serving after bad input: %+v", r)
	}
}
