package audit_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
)

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// scripted runs a fixed history for user_123 (and a bystander) and returns
// the reservation IDs it got, in order.
func scripted(t *testing.T, c *client.Client, clock *testenv.Clock) []string {
	t.Helper()
	ctx := context.Background()
	u := func(s string) *events.Units { return testenv.Ptr(t, s) }
	if _, err := c.SetBudget(ctx, "user_123", ledger.BudgetRequest{Limit: u("100"), Period: "month", Thresholds: []events.Units{testenv.Units(t, "0.5")}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	step := func() { clock.Advance(time.Minute) }
	step()
	pf, err := c.Preflight(ctx, "user_123", ledger.PreflightRequest{AgentID: "research_agent", EstimatedUnits: u("60")})
	if err != nil || !pf.Approved {
		t.Fatalf("preflight: %v %+v", err, pf)
	}
	ids = append(ids, pf.ReservationID)
	step()
	if _, err := c.Preflight(ctx, "bystander", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: u("1")}); err != nil {
		t.Fatal(err)
	}
	step()
	if _, err := c.Record(ctx, "user_123", ledger.RecordRequest{AgentID: "research_agent", Units: u("55.5"), ReservationID: pf.ReservationID}); err != nil {
		t.Fatal(err)
	}
	step()
	if r, err := c.Preflight(ctx, "user_123", ledger.PreflightRequest{AgentID: "research_agent", EstimatedUnits: u("50")}); err != nil || r.Approved {
		t.Fatalf("preflight: %v %+v", err, r)
	}
	step()
	if _, err := c.TopUp(ctx, "user_123", ledger.TopUpRequest{Units: u("10"), Note: "goodwill"}); err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestHistoryRowsInEveryFormat(t *testing.T) {
	s := testenv.StartServer(t, "")
	clock := testenv.NewClock(t0)
	testenv.StartWriter(t, s, clock, &ledger.DefaultBudget{Limit: events.NewUnits(10, 0), Period: ledger.PeriodMonth})
	c := testenv.Client(t, s)
	ids := scripted(t, c, clock)
	js := testenv.JetStream(t, c.Conn())

	render := func(format string) string {
		var buf bytes.Buffer
		rw, err := audit.NewRowWriter(&buf, format)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.History(context.Background(), js, audit.Filter{CustomerID: "user_123"}, rw.Write); err != nil {
			t.Fatal(err)
		}
		if err := rw.Flush(); err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(buf.String(), ids[0], "R1")
	}

	wantTable := `SEQ  TIME                  EVENT              AGENT           RESERVATION  UNITS      REASON                                                                               USED  RESERVED  REMAINING  GRANTS  FUNDED_BY  SCOPES
1    2026-03-14T09:00:00Z  budget_set         -               -            100/month  admin                                                                                0     0         100  0       -          -
2    2026-03-14T09:01:00Z  reserved           research_agent  R1           60         -                                                                                    0     60        40  0       -          -
2    2026-03-14T09:01:00Z  threshold_crossed  -               -            0.5        threshold                                                                            0     60        40  0       -          -
4    2026-03-14T09:03:00Z  recorded           research_agent  R1           55.5       -                                                                                    55.5  0         44.5  0       -          -
5    2026-03-14T09:04:00Z  denied             research_agent  -            50         budget_exhausted: customer user_123 has 44.5 units left in this month; 50 requested  55.5  0         44.5  0       -          -
5    2026-03-14T09:04:00Z  budget_exhausted   research_agent  -            -          refused                                                                              55.5  0         44.5  0       -          -
6    2026-03-14T09:05:00Z  topped_up          -               -            10         goodwill                                                                             55.5  0         54.5  0       -          -
6    2026-03-14T09:05:00Z  budget_restored    -               -            -          topped_up                                                                            55.5  0         54.5  0       -          -
`
	// Column padding depends on the reservation ID's length; compare cells.
	cells := regexp.MustCompile(`  +`)
	if got := cells.ReplaceAllString(render(audit.FormatTable), " | "); got != cells.ReplaceAllString(wantTable, " | ") {
		t.Errorf("table:\n%s\nwant:\n%s", got, cells.ReplaceAllString(wantTable, " | "))
	}

	// CSV and JSON carry the same rows, with exact times and event IDs.
	type row struct{ seq, at, typ, agent, res, units, reason, limit, used, reserved, remaining string }
	want := []row{
		{"1", "2026-03-14T09:00:00Z", "budget_set", "", "", "100/month", "admin", "100", "0", "0", "100"},
		{"2", "2026-03-14T09:01:00Z", "reserved", "research_agent", "R1", "60", "", "100", "0", "60", "40"},
		{"2", "2026-03-14T09:01:00Z", "threshold_crossed", "", "", "0.5", "threshold", "100", "0", "60", "40"},
		{"4", "2026-03-14T09:03:00Z", "recorded", "research_agent", "R1", "55.5", "", "100", "55.5", "0", "44.5"},
		{"5", "2026-03-14T09:04:00Z", "denied", "research_agent", "", "50", "budget_exhausted: customer user_123 has 44.5 units left in this month; 50 requested", "100", "55.5", "0", "44.5"},
		{"5", "2026-03-14T09:04:00Z", "budget_exhausted", "research_agent", "", "", "refused", "100", "55.5", "0", "44.5"},
		{"6", "2026-03-14T09:05:00Z", "topped_up", "", "", "10", "goodwill", "110", "55.5", "0", "54.5"},
		{"6", "2026-03-14T09:05:00Z", "budget_restored", "", "", "", "topped_up", "110", "55.5", "0", "54.5"},
	}
	recs, err := csv.NewReader(strings.NewReader(render(audit.FormatCSV))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(want)+1 || strings.Join(recs[0], ",") != "seq,at,event_id,type,agent,reservation,units,reason,limit,used,reserved,remaining,grants,grant,funded_by,counted_scopes" {
		t.Fatalf("csv has %d records, header %v", len(recs), recs[0])
	}
	seen := map[string]bool{}
	for i, r := range recs[1:] {
		got := row{r[0], r[1], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]}
		if got != want[i] {
			t.Errorf("csv row %d = %v, want %v", i, got, want[i])
		}
		if r[2] == "" || seen[r[2]] {
			t.Errorf("csv row %d: event id %q empty or repeated", i, r[2])
		}
		seen[r[2]] = true
	}
	dec := json.NewDecoder(strings.NewReader(render(audit.FormatJSON)))
	dec.UseNumber() // amounts must be the exact decimal text
	for i := 0; ; i++ {
		var r map[string]any
		if err := dec.Decode(&r); err != nil {
			if i != len(want) {
				t.Fatalf("json has %d lines, want %d (%v)", i, len(want), err)
			}
			break
		}
		str := func(k string) string { return fmt.Sprint(r[k]) }
		got := row{str("seq"), str("at"), str("type"), str("agent"), str("reservation"), str("units"), str("reason"),
			str("limit"), str("used"), str("reserved"), str("remaining")}
		w := want[i]
		for _, f := range []*string{&w.agent, &w.res, &w.units, &w.reason} {
			if *f == "" {
				*f = "<nil>" // omitted when empty
			}
		}
		if got != w {
			t.Errorf("json line %d = %v, want %v", i, got, w)
		}
	}

	// --from and --to select by time.
	var rows []audit.Row
	err = audit.History(context.Background(), js, audit.Filter{CustomerID: "user_123", From: t0.Add(2 * time.Minute), To: t0.Add(4 * time.Minute)},
		func(r audit.Row) error { rows = append(rows, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Type != events.TypeRecorded || rows[2].Type != events.TypeBudgetExhausted {
		t.Errorf("from 09:02 to 09:04: %d rows %v, want recorded, denied, budget_exhausted", len(rows), rows)
	}
}
