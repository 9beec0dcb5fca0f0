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
	"github.com/nats-io/nats.go"
)

// adminGrant grants credits with a plain NATS request on the admin
// subject, as any admin client does.
func adminGrant(t *testing.T, nc *nats.Conn, cid string, req ledger.GrantRequest) *ledger.GrantReply {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(events.RequestSubject(events.OpGrant, cid), body, 5*time.Second)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	var out struct {
		ledger.GrantReply
		Error *ledger.Error `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &out); err != nil || out.Error != nil {
		t.Fatalf("grant: %s (%v)", msg.Data, err)
	}
	return &out.GrantReply
}

// replayStatus rebuilds the ledger from the stream alone and returns the
// customer's status there at now.
func replayStatus(t *testing.T, s *testenv.Server, cid string, now time.Time) *ledger.StatusReply {
	t.Helper()
	st := ledger.NewState()
	for _, e := range testenv.StreamEvents(t, testenv.Connect(t, s)) {
		st.Apply(e)
	}
	r, err := st.Status(cid, now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sameStatus(t *testing.T, what string, got, want *ledger.StatusReply) {
	t.Helper()
	got.AsOfSeq, want.AsOfSeq = 0, 0
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s differs:\n got %s\nwant %s", what, g, w)
	}
}

// Fifty parallel preflights for one user of a team, over NATS as the
// agent: exactly as many are approved as the tightest scope allows (the
// user's 70 units, 5 a run: 14), every other is refused naming that
// scope, and nothing is held past any limit. Replaying the log gives the
// same status.
func TestFiftyParallelPreflightsStopAtTheTightestScope(t *testing.T) {
	s := testenv.StartServer(t, "")
	clock := testenv.NewClock(t0)
	testenv.StartWriter(t, s, clock, nil)
	admin := testenv.Client(t, s)
	_, err := admin.SetBudget(context.Background(), "org_1", ledger.BudgetRequest{
		Limit: testenv.Ptr(t, "1000"), Period: string(ledger.PeriodMonth),
		ScopeLimits: []ledger.ScopeLimitRequest{
			{Dimension: "team", Value: "research", Limit: testenv.Ptr(t, "300")},
			{Dimension: "user", Value: "alice", Limit: testenv.Ptr(t, "70")},
			{Dimension: "project", Value: "apollo", Limit: testenv.Ptr(t, "500"), Period: "none"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	agent := client.New(testenv.ConnectAnonymous(t, s), client.WithTimeout(10*time.Second))
	const runs = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok      int
		refused = map[string]int{}
	)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := agent.Preflight(context.Background(), "org_1", ledger.PreflightRequest{
				AgentID: fmt.Sprintf("worker-%d", i), EstimatedUnits: testenv.Ptr(t, "5"),
				Scope: map[string]string{"team": "research", "user": "alice", "project": "apollo"},
			})
			if err != nil {
				t.Errorf("preflight: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if r.Approved {
				ok++
				return
			}
			refused[fmt.Sprintf("%s %v", r.Reason, r.Scope)]++
		}()
	}
	wg.Wait()
	if want := map[string]int{"scope_limit_exceeded &{user alice}": runs - 14}; ok != 14 || fmt.Sprint(refused) != fmt.Sprint(want) {
		t.Fatalf("%d approved, refused %v; want 14 approved, refused %v", ok, refused, want)
	}
	st := status(t, admin, "org_1")
	wantUnits(t, "reserved", st.Reserved, "70")
	for _, sc := range st.Scopes {
		want := map[string]string{"team": "230", "user": "0", "project": "430"}[sc.Dimension]
		wantUnits(t, "remaining of "+sc.Dimension, sc.Remaining.Units, want)
	}
	if len(st.Scopes) != 3 {
		t.Errorf("status lists %d scopes, want 3: %+v", len(st.Scopes), st.Scopes)
	}
	sameStatus(t, "replayed status", replayStatus(t, s, "org_1", clock.Now()), st)
}

// A grant bought on the last day of a period is still there, minus what
// it funded, on the first day of the next; a top-up made the same day is
// gone, as documented. A restarted writer (a replay) agrees.
func TestGrantOutlivesThePeriod(t *testing.T) {
	s := testenv.StartServer(t, "")
	lastDay := time.Date(2026, 1, 31, 22, 0, 0, 0, time.UTC)
	clock := testenv.NewClock(lastDay)
	w := testenv.StartWriter(t, s, clock, nil)
	admin := testenv.Client(t, s)
	setBudget(t, admin, "c1", "100", ledger.PeriodMonth)
	g := adminGrant(t, testenv.Connect(t, s), "c1", ledger.GrantRequest{Units: testenv.Ptr(t, "1000"), Source: "purchase"})
	if _, err := admin.TopUp(context.Background(), "c1", ledger.TopUpRequest{Units: testenv.Ptr(t, "40")}); err != nil {
		t.Fatal(err)
	}
	// 150 units on the last day: the allowance (100 + 40) first, then 10
	// from the grant.
	r, err := admin.Record(context.Background(), "c1", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "150")})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.FundedBy) != 1 || r.FundedBy[0].GrantID != g.GrantID || r.FundedBy[0].Units.String() != "10" {
		t.Fatalf("funded by %+v, want 10 from grant %s", r.FundedBy, g.GrantID)
	}
	clock.Advance(3 * time.Hour) // 1 February, 01:00
	st := status(t, admin, "c1")
	if len(st.Grants) != 1 || st.Grants[0].GrantID != g.GrantID {
		t.Fatalf("grants on the first day: %+v", st.Grants)
	}
	wantUnits(t, "grant remaining on the first day", st.Grants[0].Remaining, "990")
	wantUnits(t, "top-ups on the first day", st.TopUps, "0")
	wantUnits(t, "remaining on the first day", st.Remaining.Units, "1090")
	// The new period's allowance is drawn before the grant again.
	if _, err := admin.Record(context.Background(), "c1", ledger.RecordRequest{AgentID: "a", Units: testenv.Ptr(t, "120")}); err != nil {
		t.Fatal(err)
	}
	st = status(t, admin, "c1")
	wantUnits(t, "grant remaining after 120 more", st.Grants[0].Remaining, "970")
	wantUnits(t, "grants_used this period", st.GrantsUsed, "20")
	w.Stop(t)
	testenv.StartWriter(t, s, clock, nil)
	sameStatus(t, "status after a restart", status(t, admin, "c1"), st)
}
