package audit_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
)

// creditHistory gives user_9 a budget of 10 with a 5-unit overdraft and a
// team limit, two grants (one expiring), a partial approval in the team,
// a charge paid partly by grants, and an approval into the overdraft.
// The promo grant expires at exp; creditHistory returns its ID.
func creditHistory(t *testing.T, c *client.Client, exp time.Time) string {
	t.Helper()
	ctx := context.Background()
	u := func(s string) *events.Units { return testenv.Ptr(t, s) }
	if _, err := c.SetBudget(ctx, "user_9", ledger.BudgetRequest{Limit: u("10"), Period: "month", Overdraft: u("5"),
		ScopeLimits: []ledger.ScopeLimitRequest{{Dimension: "team", Value: "research", Limit: testenv.Ptr(t, "30")}}}); err != nil {
		t.Fatal(err)
	}
	first := 1
	g, err := c.Grant(ctx, "user_9", ledger.GrantRequest{Units: u("20"), Priority: &first, Source: "promo", ExpiresAt: &exp, Note: "welcome"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Grant(ctx, "user_9", ledger.GrantRequest{Units: u("8")}); err != nil {
		t.Fatal(err)
	}
	pf, err := c.Preflight(ctx, "user_9", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: u("40"), MinUnits: u("5"),
		Scope: map[string]string{"team": "research", "user": "alice"}})
	if err != nil || !pf.Partial {
		t.Fatalf("partial preflight: %+v %v", pf, err)
	}
	if _, err := c.Record(ctx, "user_9", ledger.RecordRequest{AgentID: "a", Units: u("25"), ReservationID: pf.ReservationID}); err != nil {
		t.Fatal(err)
	}
	if pf, err := c.Preflight(ctx, "user_9", ledger.PreflightRequest{AgentID: "b", EstimatedUnits: u("15")}); err != nil || !pf.Overdraft {
		t.Fatalf("overdraft preflight: %+v %v", pf, err)
	}
	return g.GrantID
}

// TestHistoryShowsGrantsScopesAndOverdraft: a charge's row says which
// grants paid it and which scope limits it counted against; granted,
// grant_expired and overdraft_started rows say what happened; remaining is
// negative in the overdraft.
func TestHistoryShowsGrantsScopesAndOverdraft(t *testing.T) {
	s := testenv.StartServer(t, "")
	clock := testenv.NewClock(t0)
	testenv.StartWriter(t, s, clock, nil)
	c := testenv.Client(t, s)
	promo := creditHistory(t, c, clock.Now().Add(time.Hour))
	// The promo grant expires with what it has left; the next command forfeits it.
	clock.Advance(2 * time.Hour)
	if _, err := c.Release(context.Background(), "user_9", "no-such"); ledger.ErrorCode(err) != ledger.CodeNotFound {
		t.Fatalf("release: %v", err)
	}
	if _, err := c.Preflight(context.Background(), "user_9", ledger.PreflightRequest{AgentID: "c", EstimatedUnits: testenv.Ptr(t, "1")}); err != nil {
		t.Fatal(err)
	}
	js := testenv.JetStream(t, c.Conn())
	var rows []audit.Row
	if err := audit.History(context.Background(), js, audit.Filter{CustomerID: "user_9"}, func(r audit.Row) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	byType := map[events.Type][]audit.Row{}
	for _, r := range rows {
		byType[r.Type] = append(byType[r.Type], r)
	}
	g := byType[events.TypeGranted]
	if len(g) != 2 || g[0].Grant != promo || g[0].Units != "20" ||
		!strings.Contains(g[0].Reason, "promo, priority 1") || !strings.Contains(g[0].Reason, "expires 2026-03-14T10:00:00Z: welcome") ||
		!strings.Contains(g[1].Reason, "purchase, priority 100") || !strings.Contains(g[1].Reason, "never expires") {
		t.Fatalf("granted rows: %+v", g)
	}
	res := byType[events.TypeReserved]
	if len(res) < 2 || res[0].Reason != "partial: 30 of 40 requested" || scopes(res[0].CountedScopes) != "team=research" ||
		res[1].Reason != "in overdraft" {
		t.Fatalf("reserved rows: %+v", res)
	}
	// 25 units: 10 from the allowance, 15 from the promo grant (priority 1).
	rec := byType[events.TypeRecorded]
	if len(rec) != 1 || len(rec[0].FundedBy) != 1 || rec[0].FundedBy[0].GrantID != promo ||
		rec[0].FundedBy[0].Units.String() != "15" || scopes(rec[0].CountedScopes) != "team=research" {
		t.Fatalf("recorded row: %+v", rec)
	}
	od := byType[events.TypeOverdraftStarted]
	if len(od) != 1 || od[0].Agent != "b" || od[0].Units != "5" || od[0].Remaining.String() != "-2" ||
		od[0].Reason != "into the overdraft of 5: 2 below zero" {
		t.Fatalf("overdraft_started row: %+v", od)
	}
	ex := byType[events.TypeGrantExpired]
	if len(ex) != 1 || ex[0].Grant != promo || ex[0].Units != "5" || !strings.Contains(ex[0].Reason, "5 of 20 unused, forfeited") ||
		ex[0].Remaining.String() != "-7" {
		t.Fatalf("grant_expired row: %+v", ex)
	}

	// The CSV carries the same: funded_by and counted_scopes columns.
	var buf bytes.Buffer
	rw, err := audit.NewRowWriter(&buf, audit.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := rw.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := rw.Flush(); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs[1:] {
		if r[3] == "recorded" {
			found = r[14] == promo+":15" && r[15] == "team=research" && r[12] == "13"
		}
	}
	if !found {
		t.Fatalf("csv has no recorded row with its grants and scopes:\n%v", recs)
	}
	// The table has the columns too.
	buf.Reset()
	tw, _ := audit.NewRowWriter(&buf, audit.FormatTable)
	for _, r := range rows {
		_ = tw.Write(r)
	}
	_ = tw.Flush()
	if !strings.Contains(buf.String(), promo+":15") || !strings.Contains(buf.String(), "FUNDED_BY") {
		t.Fatalf("table:\n%s", buf.String())
	}
}

func scopes(ss []events.ScopeRef) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, s.Dimension+"="+s.Value)
	}
	return strings.Join(parts, ";")
}

// TestVerifyStateWithCredits: replay --verify agrees with the live writer
// about grants, scopes, partial holds and an overdraft.
func TestVerifyStateWithCredits(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil) // the real clock: VerifyState reads status now
	c := testenv.Client(t, s)
	creditHistory(t, c, time.Now().Add(24*time.Hour))
	rep, err := audit.VerifyState(context.Background(), testenv.JetStream(t, c.Conn()), c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Mismatches) > 0 || rep.Compared != 1 {
		t.Fatalf("report %+v, want user_9 compared and no mismatch", rep)
	}
}
