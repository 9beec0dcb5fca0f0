package ledger_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// t0 is a Tuesday in the middle of a month, at noon UTC.
var t0 = time.Date(2026, time.March, 10, 12, 0, 0, 0, time.UTC)

// up returns a pointer to an amount; MustParseUnits is meant for tests.
func up(s string) *events.Units {
	u := events.MustParseUnits(s)
	return &u
}

func ptrBool(b bool) *bool { return &b }

// counter is a deterministic NewID: id-000001, id-000002, ...
type counter struct{ n int }

func (c *counter) next() string {
	c.n++
	return fmt.Sprintf("id-%06d", c.n)
}

// fixture drives one State with a fixed clock and keeps every event it
// produced, so that each test can also check that replaying them rebuilds
// the same balances.
type fixture struct {
	t   *testing.T
	s   *ledger.State
	ids *counter
	now time.Time
	log []*events.Envelope
	cus map[string]bool // every customer a command named
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, s: ledger.NewState(), ids: &counter{}, now: t0, cus: make(map[string]bool)}
	f.s.NewID = f.ids.next
	t.Cleanup(f.checkReplay)
	return f
}

// decide runs one command at the fixture's clock.
func (f *fixture) decide(cmd ledger.Command) (ledger.Reply, []*events.Envelope, error) {
	f.t.Helper()
	f.cus[cmd.Customer()] = true
	before := f.s.EventsApplied()
	reply, evs, err := f.s.Decide(cmd, f.now)
	if got, want := f.s.EventsApplied()-before, uint64(len(evs)); got != want {
		f.t.Fatalf("Decide(%T) applied %d events, returned %d", cmd, got, want)
	}
	if err != nil && len(evs) > 0 {
		f.t.Fatalf("Decide(%T) returned %d events with error %v", cmd, len(evs), err)
	}
	f.log = append(f.log, evs...)
	return reply, evs, err
}

// ok runs a command that must succeed.
func (f *fixture) ok(cmd ledger.Command) (ledger.Reply, []*events.Envelope) {
	f.t.Helper()
	reply, evs, err := f.decide(cmd)
	if err != nil {
		f.t.Fatalf("Decide(%T %+v): %v", cmd, cmd, err)
	}
	return reply, evs
}

// fail runs a command that must fail with code, changing nothing.
func (f *fixture) fail(cmd ledger.Command, code ledger.Code) *ledger.Error {
	f.t.Helper()
	before := f.statusJSON(cmd.Customer())
	reply, evs, err := f.decide(cmd)
	if err == nil {
		f.t.Fatalf("Decide(%T %+v) = %+v, %d events; want %s error", cmd, cmd, reply, len(evs), code)
	}
	var e *ledger.Error
	if !errors.As(err, &e) {
		f.t.Fatalf("Decide error %v (%T) is not a *ledger.Error", err, err)
	}
	if got := ledger.ErrorCode(err); got != code {
		f.t.Errorf("Decide(%T) error code = %s, want %s (%v)", cmd, got, code, err)
	}
	if after := f.statusJSON(cmd.Customer()); after != before {
		f.t.Errorf("failed Decide changed the status:\n got %s\nwant %s", after, before)
	}
	return e
}

func (f *fixture) budget(cid, limit, period string) {
	f.t.Helper()
	f.ok(&ledger.BudgetRequest{CustomerID: cid, Limit: up(limit), Period: period})
}

func (f *fixture) preflight(r *ledger.PreflightRequest) (*ledger.PreflightReply, []*events.Envelope) {
	f.t.Helper()
	reply, evs := f.ok(r)
	pr, ok := reply.(*ledger.PreflightReply)
	if !ok {
		f.t.Fatalf("preflight reply is %T, want *ledger.PreflightReply", reply)
	}
	return pr, evs
}

// reserve preflights and requires approval; it returns the reservation ID.
func (f *fixture) reserve(cid, agent, est, ttl string) string {
	f.t.Helper()
	pr, _ := f.preflight(&ledger.PreflightRequest{CustomerID: cid, AgentID: agent, EstimatedUnits: up(est), TTL: ttl})
	if !pr.Approved {
		f.t.Fatalf("preflight %s for %s/%s refused: %s", est, cid, agent, pr.Message)
	}
	return pr.ReservationID
}

func (f *fixture) record(r *ledger.RecordRequest) (*ledger.RecordReply, []*events.Envelope) {
	f.t.Helper()
	reply, evs := f.ok(r)
	rr, ok := reply.(*ledger.RecordReply)
	if !ok {
		f.t.Fatalf("record reply is %T, want *ledger.RecordReply", reply)
	}
	return rr, evs
}

// sweep expires overdue holds at the fixture's clock, logging the events.
func (f *fixture) sweep(max int) []*events.Envelope {
	f.t.Helper()
	evs := f.s.Sweep(f.now, max)
	f.log = append(f.log, evs...)
	return evs
}

func (f *fixture) status(cid string) *ledger.StatusReply {
	f.t.Helper()
	st, err := f.s.Status(cid, f.now)
	if err != nil {
		f.t.Fatalf("Status(%s): %v", cid, err)
	}
	return st
}

func (f *fixture) statusJSON(cid string) string { return statusJSON(f.t, f.s, cid, f.now) }

// checkReplay rebuilds the state from the encoded log with Apply alone and
// compares every customer's status with the live state's.
func (f *fixture) checkReplay() {
	f.t.Helper()
	r := replay(f.t, encodeAll(f.t, f.log))
	for cid := range f.cus {
		if got, want := statusJSON(f.t, r, cid, f.now), f.statusJSON(cid); got != want {
			f.t.Errorf("replayed status of %q differs:\n got %s\nwant %s", cid, got, want)
		}
	}
}

// statusJSON is a customer's status as JSON, or "absent".
func statusJSON(t *testing.T, s *ledger.State, cid string, now time.Time) string {
	t.Helper()
	if s.Customer(cid) == nil {
		return "absent"
	}
	st, err := s.Status(cid, now)
	if err != nil {
		t.Fatalf("Status(%q): %v", cid, err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("json.Marshal(status): %v", err)
	}
	return string(b)
}

func encodeAll(t *testing.T, evs []*events.Envelope) [][]byte {
	t.Helper()
	out := make([][]byte, len(evs))
	for i, e := range evs {
		b, err := events.Encode(e)
		if err != nil {
			t.Fatalf("Encode(%s): %v", e.Type, err)
		}
		out[i] = b
	}
	return out
}

// replay decodes the log and applies it to a fresh state, as a restart does.
func replay(t *testing.T, log [][]byte) *ledger.State {
	t.Helper()
	s := ledger.NewState()
	s.NewID = func() string {
		t.Fatalf("Apply minted an ID")
		return ""
	}
	applyLog(t, s, log)
	return s
}

// applyLog decodes and applies encoded events, as a replay does.
func applyLog(t *testing.T, s *ledger.State, log [][]byte) {
	t.Helper()
	for _, b := range log {
		e, err := events.Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		s.Apply(e)
	}
}

func typesOf(evs []*events.Envelope) []events.Type {
	out := make([]events.Type, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func checkTypes(t *testing.T, evs []*events.Envelope, want ...events.Type) {
	t.Helper()
	if got := typesOf(evs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("event types = %v, want %v", got, want)
	}
}

func checkUnits(t *testing.T, what string, got events.Units, want string) {
	t.Helper()
	if got.String() != want {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func checkContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s = %q, want it to contain %q", what, got, w)
		}
	}
}

func TestPeriodStartEnd(t *testing.T) {
	d := func(y int, m time.Month, day, h, min, s int) time.Time {
		return time.Date(y, m, day, h, min, s, 0, time.UTC)
	}
	since := d(2026, 2, 14, 9, 30, 0)
	plus5 := time.FixedZone("UTC+5", 5*3600)
	tests := []struct {
		name      string
		p         ledger.Period
		at        time.Time
		wantStart time.Time
		wantEnd   time.Time
	}{
		{"day noon", ledger.PeriodDay, t0, d(2026, 3, 10, 0, 0, 0), d(2026, 3, 11, 0, 0, 0)},
		{"day at midnight", ledger.PeriodDay, d(2026, 3, 10, 0, 0, 0), d(2026, 3, 10, 0, 0, 0), d(2026, 3, 11, 0, 0, 0)},
		{"day last nanosecond", ledger.PeriodDay, d(2026, 3, 11, 0, 0, 0).Add(-1), d(2026, 3, 10, 0, 0, 0), d(2026, 3, 11, 0, 0, 0)},
		{"day in another zone is UTC", ledger.PeriodDay, time.Date(2026, 3, 10, 2, 0, 0, 0, plus5), d(2026, 3, 9, 0, 0, 0), d(2026, 3, 10, 0, 0, 0)},
		{"day across month", ledger.PeriodDay, d(2026, 2, 28, 23, 0, 0), d(2026, 2, 28, 0, 0, 0), d(2026, 3, 1, 0, 0, 0)},
		{"week on Tuesday", ledger.PeriodWeek, t0, d(2026, 3, 9, 0, 0, 0), d(2026, 3, 16, 0, 0, 0)},
		{"week on Monday midnight", ledger.PeriodWeek, d(2026, 3, 9, 0, 0, 0), d(2026, 3, 9, 0, 0, 0), d(2026, 3, 16, 0, 0, 0)},
		{"week on Sunday night", ledger.PeriodWeek, d(2026, 3, 15, 23, 59, 59), d(2026, 3, 9, 0, 0, 0), d(2026, 3, 16, 0, 0, 0)},
		{"week across month", ledger.PeriodWeek, d(2026, 3, 1, 10, 0, 0), d(2026, 2, 23, 0, 0, 0), d(2026, 3, 2, 0, 0, 0)},
		{"week across year", ledger.PeriodWeek, d(2026, 1, 1, 10, 0, 0), d(2025, 12, 29, 0, 0, 0), d(2026, 1, 5, 0, 0, 0)},
		{"week on Saturday", ledger.PeriodWeek, d(2026, 3, 14, 8, 0, 0), d(2026, 3, 9, 0, 0, 0), d(2026, 3, 16, 0, 0, 0)},
		{"month", ledger.PeriodMonth, t0, d(2026, 3, 1, 0, 0, 0), d(2026, 4, 1, 0, 0, 0)},
		{"month first instant", ledger.PeriodMonth, d(2026, 3, 1, 0, 0, 0), d(2026, 3, 1, 0, 0, 0), d(2026, 4, 1, 0, 0, 0)},
		{"month December to January", ledger.PeriodMonth, d(2026, 12, 31, 23, 59, 59), d(2026, 12, 1, 0, 0, 0), d(2027, 1, 1, 0, 0, 0)},
		{"month January", ledger.PeriodMonth, d(2027, 1, 1, 0, 0, 0), d(2027, 1, 1, 0, 0, 0), d(2027, 2, 1, 0, 0, 0)},
		{"month January 31st", ledger.PeriodMonth, d(2026, 1, 31, 12, 0, 0), d(2026, 1, 1, 0, 0, 0), d(2026, 2, 1, 0, 0, 0)},
		{"month leap February", ledger.PeriodMonth, d(2028, 2, 29, 12, 0, 0), d(2028, 2, 1, 0, 0, 0), d(2028, 3, 1, 0, 0, 0)},
		{"none keeps since", ledger.PeriodNone, t0, since, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := tt.p.Start(tt.at, since)
			if !start.Equal(tt.wantStart) {
				t.Errorf("%s.Start(%s) = %s, want %s", tt.p, tt.at, start, tt.wantStart)
			}
			if start.Location() != time.UTC && tt.p != ledger.PeriodNone {
				t.Errorf("%s.Start(%s) is in %s, want UTC", tt.p, tt.at, start.Location())
			}
			if end := tt.p.End(start); !end.Equal(tt.wantEnd) {
				t.Errorf("%s.End(%s) = %s, want %s", tt.p, start, end, tt.wantEnd)
			}
		})
	}
}

func TestParsePeriod(t *testing.T) {
	for _, s := range []string{"day", "week", "month", "none"} {
		if p, err := ledger.ParsePeriod(s); err != nil || string(p) != s {
			t.Errorf("ParsePeriod(%q) = %q, %v; want %q", s, p, err, s)
		}
	}
	for _, s := range []string{"", "Day", "year", "daily", " day", strings.Repeat("x", 1000)} {
		_, err := ledger.ParsePeriod(s)
		if got := ledger.ErrorCode(err); got != ledger.CodeInvalidArgument {
			t.Errorf("ParsePeriod(%.20q) error code = %s, want %s", s, got, ledger.CodeInvalidArgument)
		}
	}
}

// TestPreflightScopes checks each scope a preflight must fit, the reason a
// refusal gives, and that its message states the numbers.
func TestPreflightScopes(t *testing.T) {
	type setup func(f *fixture)
	reserveTask := func(est, ceiling string) setup {
		return func(f *fixture) {
			f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up(est),
				TaskRef: "t1", TaskCeiling: up(ceiling)})
		}
	}
	tests := []struct {
		name          string
		setup         []setup
		req           ledger.PreflightRequest
		wantReason    string // "" for approved
		wantMsg       []string
		wantRemaining string
		wantEvents    []events.Type
	}{
		{name: "fits", req: ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("10")},
			wantRemaining: "90", wantMsg: []string{"reserved 10 units for agent a; 90 units left in this month"},
			wantEvents: []events.Type{events.TypeReserved}},
		{name: "fractional", req: ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("0.000000000000000001")},
			wantRemaining: "99.999999999999999999", wantEvents: []events.Type{events.TypeReserved}},
		{name: "ceiling exceeded", req: ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("10"), Ceiling: up("5")},
			wantReason: ledger.ReasonCeilingExceeded, wantMsg: []string{"10 units requested", "ceiling of 5"},
			wantRemaining: "100", wantEvents: []events.Type{events.TypeDenied}},
		{name: "ceiling equal fits", req: ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("5"), Ceiling: up("5.0")},
			wantRemaining: "95", wantEvents: []events.Type{events.TypeReserved}},
		{name: "ceiling checked before budget", req: ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("1000"), Ceiling: up("5")},
			wantReason: ledger.ReasonCeilingExceeded, wantMsg: []string{"1000 units requested", "ceiling of 5"},
			wantRemaining: "100", wantEvents: []events.Type{events.TypeDenied}},
		{name: "task ceiling exceeded",
			req:        ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("6"), TaskRef: "t1", TaskCeiling: up("5")},
			wantReason: ledger.ReasonTaskCeilingExceeded, wantMsg: []string{"task t1 has 5 units left of its ceiling of 5; 6 requested"},
			wantRemaining: "100", wantEvents: []events.Type{events.TypeDenied}},
		{name: "task ceiling remembered from an earlier preflight", setup: []setup{reserveTask("4", "10")},
			req:        ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("7"), TaskRef: "t1"},
			wantReason: ledger.ReasonTaskCeilingExceeded, wantMsg: []string{"task t1 has 6 units left of its ceiling of 10; 7 requested"},
			wantRemaining: "96", wantEvents: []events.Type{events.TypeDenied}},
		{name: "task ceiling remembered fits", setup: []setup{reserveTask("4", "10")},
			req:           ledger.PreflightRequest{AgentID: "b", EstimatedUnits: up("6"), TaskRef: "t1"},
			wantRemaining: "90", wantEvents: []events.Type{events.TypeReserved}},
		{name: "task ceiling counts usage", setup: []setup{reserveTask("4", "10"), func(f *fixture) {
			f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("4.5")})
		}},
			req:        ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("6"), TaskRef: "t1"},
			wantReason: ledger.ReasonTaskCeilingExceeded, wantMsg: []string{"task t1 has 5.5 units left of its ceiling of 10; 6 requested"},
			wantRemaining: "95.5", wantEvents: []events.Type{events.TypeDenied}},
		{name: "task ceiling of another task does not bind", setup: []setup{reserveTask("4", "5")},
			req:           ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("50"), TaskRef: "t2"},
			wantRemaining: "46", wantEvents: []events.Type{events.TypeReserved}},
		{name: "task ceiling checked before agent limit",
			req:        ledger.PreflightRequest{AgentID: "limited", EstimatedUnits: up("6"), TaskRef: "t1", TaskCeiling: up("5")},
			wantReason: ledger.ReasonTaskCeilingExceeded, wantMsg: []string{"5 units left", "6 requested"},
			wantRemaining: "100", wantEvents: []events.Type{events.TypeDenied}},
		{name: "agent limit exceeded",
			req:           ledger.PreflightRequest{AgentID: "limited", EstimatedUnits: up("6")},
			wantReason:    ledger.ReasonAgentLimitExceeded,
			wantMsg:       []string{"agent limited of customer c1 has 5 units left of its 5-unit limit in this month; 6 requested"},
			wantRemaining: "100", wantEvents: []events.Type{events.TypeDenied}},
		{name: "agent limit counts holds", setup: []setup{func(f *fixture) { f.reserve("c1", "limited", "3", "") }},
			req:        ledger.PreflightRequest{AgentID: "limited", EstimatedUnits: up("2.5")},
			wantReason: ledger.ReasonAgentLimitExceeded, wantMsg: []string{"has 2 units left of its 5-unit limit", "2.5 requested"},
			wantRemaining: "97", wantEvents: []events.Type{events.TypeDenied}},
		{name: "agent limit exact fit", setup: []setup{func(f *fixture) { f.reserve("c1", "limited", "3", "") }},
			req:           ledger.PreflightRequest{AgentID: "limited", EstimatedUnits: up("2")},
			wantRemaining: "95", wantEvents: []events.Type{events.TypeReserved}},
		{name: "agent limit checked before budget",
			req:        ledger.PreflightRequest{AgentID: "limited", EstimatedUnits: up("500")},
			wantReason: ledger.ReasonAgentLimitExceeded, wantMsg: []string{"5 units left", "500 requested"},
			wantRemaining: "100", wantEvents: []events.Type{events.TypeDenied}},
		{name: "agent limit does not bind other agents",
			req:           ledger.PreflightRequest{AgentID: "free", EstimatedUnits: up("50")},
			wantRemaining: "50", wantEvents: []events.Type{events.TypeReserved}},
		{name: "budget exhausted",
			req:        ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("101")},
			wantReason: ledger.ReasonBudgetExhausted, wantMsg: []string{"customer c1 has 100 units left in this month; 101 requested"},
			wantRemaining: "100", wantEvents: []events.Type{events.TypeDenied, events.TypeBudgetExhausted}},
		{name: "budget counts holds and usage", setup: []setup{
			func(f *fixture) { f.reserve("c1", "b", "60", "") },
			func(f *fixture) { f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "c", Units: up("30")}) },
		},
			req:        ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("11")},
			wantReason: ledger.ReasonBudgetExhausted, wantMsg: []string{"has 10 units left in this month; 11 requested"},
			wantRemaining: "10", wantEvents: []events.Type{events.TypeDenied, events.TypeBudgetExhausted}},
		{name: "top-up extends the budget", setup: []setup{func(f *fixture) {
			f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("50")})
		}},
			req:           ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("150")},
			wantRemaining: "0", wantEvents: []events.Type{events.TypeReserved, events.TypeBudgetExhausted}},
		{name: "top-up not enough", setup: []setup{func(f *fixture) {
			f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("50")})
		}},
			req:        ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("150.5")},
			wantReason: ledger.ReasonBudgetExhausted, wantMsg: []string{"has 150 units left", "150.5 requested"},
			wantRemaining: "150", wantEvents: []events.Type{events.TypeDenied, events.TypeBudgetExhausted}},
		{name: "exact fit exhausts", req: ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("100")},
			wantRemaining: "0", wantEvents: []events.Type{events.TypeReserved, events.TypeBudgetExhausted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "month",
				UpgradeURL: "https://example.com/upgrade", AgentLimits: map[string]events.Units{"limited": *up("5")}})
			for _, s := range tt.setup {
				s(f)
			}
			req := tt.req
			req.CustomerID = "c1"
			pr, evs := f.preflight(&req)
			checkTypes(t, evs, tt.wantEvents...)
			if got, want := pr.Approved, tt.wantReason == ""; got != want {
				t.Fatalf("approved = %v, want %v (%s)", got, want, pr.Message)
			}
			if pr.Reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", pr.Reason, tt.wantReason)
			}
			checkContains(t, "message", pr.Message, tt.wantMsg...)
			checkUnits(t, "remaining_units", pr.RemainingUnits.Units, tt.wantRemaining)
			if pr.Approved {
				checkApproval(t, f, &req, pr, evs[0])
				return
			}
			checkDenial(t, &req, pr, evs[0])
		})
	}
}

func checkApproval(t *testing.T, f *fixture, req *ledger.PreflightRequest, pr *ledger.PreflightReply, e *events.Envelope) {
	t.Helper()
	res := e.Data.(*events.Reserved)
	if pr.ReservationID != e.ID || res.ReservationID != e.ID {
		t.Errorf("reservation_id = %q (event %q, data %q), want the reserved event's ID", pr.ReservationID, e.ID, res.ReservationID)
	}
	checkUnits(t, "reserved_units", pr.ReservedUnits, req.EstimatedUnits.String())
	if want := f.now.Add(ledger.TTLDefault); pr.ExpiresAt == nil || !pr.ExpiresAt.Equal(want) || !res.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %v (event %s), want %s", pr.ExpiresAt, res.ExpiresAt, want)
	}
	if pr.Reason != "" || pr.UpgradeURL != "" {
		t.Errorf("approval carries reason %q, upgrade_url %q; want neither", pr.Reason, pr.UpgradeURL)
	}
}

func checkDenial(t *testing.T, req *ledger.PreflightRequest, pr *ledger.PreflightReply, e *events.Envelope) {
	t.Helper()
	den := e.Data.(*events.Denied)
	if den.Reason != pr.Reason || den.Message != pr.Message || den.AgentID != req.AgentID || den.TaskRef != req.TaskRef {
		t.Errorf("denied event = %+v, want reason %q message %q agent %q task %q",
			den, pr.Reason, pr.Message, req.AgentID, req.TaskRef)
	}
	checkUnits(t, "denied requested", den.Requested, req.EstimatedUnits.String())
	if pr.ReservationID != "" || pr.ExpiresAt != nil || !pr.ReservedUnits.IsZero() {
		t.Errorf("refusal holds something: %+v", pr)
	}
	if got, want := pr.UpgradeURL, "https://example.com/upgrade"; got != want {
		t.Errorf("upgrade_url = %q, want %q", got, want)
	}
}

func TestPreflightNoBudget(t *testing.T) {
	f := newFixture(t)
	pr, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "nobody", AgentID: "a", EstimatedUnits: up("10")})
	checkTypes(t, evs, events.TypeDenied)
	if pr.Approved || pr.Reason != ledger.ReasonNoBudget {
		t.Errorf("reply = %+v, want a %s refusal", pr, ledger.ReasonNoBudget)
	}
	checkContains(t, "message", pr.Message, "nobody", "10 requested", "no default budget")
	if got := f.s.Customers(); got != 0 {
		t.Errorf("Customers() = %d after a no_budget refusal, want 0", got)
	}
	if _, err := f.s.Status("nobody", f.now); ledger.ErrorCode(err) != ledger.CodeNotFound {
		t.Errorf("Status of a customer with no budget: error %v, want not_found", err)
	}
	f.fail(&ledger.TopUpRequest{CustomerID: "nobody", Units: up("5")}, ledger.CodeNotFound)
	f.fail(&ledger.RecordRequest{CustomerID: "nobody", AgentID: "a", Units: up("5")}, ledger.CodeNotFound)
	f.fail(&ledger.ReleaseRequest{CustomerID: "nobody", ReservationID: "r"}, ledger.CodeNotFound)
	f.fail(&ledger.ExtendRequest{CustomerID: "nobody", ReservationID: "r", TTL: "1m"}, ledger.CodeNotFound)
}

func TestDefaultBudget(t *testing.T) {
	f := newFixture(t)
	f.s.Default = &ledger.DefaultBudget{Limit: events.MustParseUnits("100"), Period: ledger.PeriodMonth}

	st := f.status("new")
	checkUnits(t, "untouched default remaining", st.Remaining.Units, "100")
	if got := f.s.Customers(); got != 0 {
		t.Errorf("Status created a customer: Customers() = %d, want 0", got)
	}

	pr, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "new", AgentID: "a", EstimatedUnits: up("10")})
	checkTypes(t, evs, events.TypeBudgetSet, events.TypeReserved)
	if !pr.Approved {
		t.Fatalf("preflight refused: %s", pr.Message)
	}
	bs := evs[0].Data.(*events.BudgetSet)
	if bs.Source != "default" || bs.Period != "month" || bs.Limit.String() != "100" || bs.RequestHash != "" {
		t.Errorf("budget_set = %+v, want source default, period month, limit 100, no request", bs)
	}
	if want := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC); !bs.Balance.PeriodStart.Equal(want) {
		t.Errorf("budget_set period_start = %s, want %s", bs.Balance.PeriodStart, want)
	}
	checkUnits(t, "remaining", pr.RemainingUnits.Units, "90")

	// A second use does not set the budget again.
	_, evs = f.preflight(&ledger.PreflightRequest{CustomerID: "new", AgentID: "a", EstimatedUnits: up("1")})
	checkTypes(t, evs, events.TypeReserved)

	// Top-up and record of an unknown customer also start from the default.
	_, evs = f.ok(&ledger.TopUpRequest{CustomerID: "other", Units: up("5")})
	checkTypes(t, evs, events.TypeBudgetSet, events.TypeToppedUp)
	_, evs = f.record(&ledger.RecordRequest{CustomerID: "third", AgentID: "a", Units: up("5")})
	checkTypes(t, evs, events.TypeBudgetSet, events.TypeRecorded)
	// Release and extend cannot concern a customer that never reserved.
	f.fail(&ledger.ReleaseRequest{CustomerID: "fourth", ReservationID: "r"}, ledger.CodeNotFound)
}

func TestRecord(t *testing.T) {
	type want struct {
		status, reservation, held, charged, released, overage, remaining string
		used, reserved                                                   string
		events                                                           []events.Type
	}
	tests := []struct {
		name string
		// run sets up and returns the record to make (IDs count from
		// id-000001, the budget_set).
		run  func(f *fixture) *ledger.RecordRequest
		want want
	}{
		{"settle exact", func(f *fixture) *ledger.RecordRequest {
			id := f.reserve("c1", "a", "10", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("10"), ReservationID: id}
		}, want{"recorded", "id-000002", "10", "10", "0", "0", "90", "10", "0", []events.Type{events.TypeRecorded}}},
		{"settle under estimate releases the rest", func(f *fixture) *ledger.RecordRequest {
			id := f.reserve("c1", "a", "10", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("3.75"), ReservationID: id}
		}, want{"recorded", "id-000002", "10", "3.75", "6.25", "0", "96.25", "3.75", "0", []events.Type{events.TypeRecorded}}},
		{"overage is charged", func(f *fixture) *ledger.RecordRequest {
			id := f.reserve("c1", "a", "10", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("15"), ReservationID: id}
		}, want{"recorded", "id-000002", "10", "15", "0", "5", "85", "15", "0", []events.Type{events.TypeRecorded}}},
		{"overage past the limit is charged", func(f *fixture) *ledger.RecordRequest {
			id := f.reserve("c1", "a", "100", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("120"), ReservationID: id}
		}, want{"recorded", "id-000002", "100", "120", "0", "20", "0", "120", "0", []events.Type{events.TypeRecorded}}},
		{"zero units releases the hold", func(f *fixture) *ledger.RecordRequest {
			id := f.reserve("c1", "a", "10", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("0"), ReservationID: id}
		}, want{"recorded", "id-000002", "10", "0", "10", "0", "100", "0", "0", []events.Type{events.TypeRecorded}}},
		{"without reservation settles the oldest of the agent", func(f *fixture) *ledger.RecordRequest {
			f.reserve("c1", "b", "5", "")
			f.reserve("c1", "a", "10", "")
			f.reserve("c1", "a", "20", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("7")}
		}, want{"recorded", "id-000003", "10", "7", "3", "0", "68", "7", "25", []events.Type{events.TypeRecorded}}},
		{"FIFO twice", func(f *fixture) *ledger.RecordRequest {
			f.reserve("c1", "a", "10", "")
			f.reserve("c1", "a", "20", "")
			f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("10")})
			return &ledger.RecordRequest{AgentID: "a", Units: up("20")}
		}, want{"recorded", "id-000003", "20", "20", "0", "0", "70", "30", "0", []events.Type{events.TypeRecorded}}},
		{"plain usage when nothing is open", func(f *fixture) *ledger.RecordRequest {
			f.reserve("c1", "b", "5", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("4")}
		}, want{"recorded", "", "0", "4", "0", "0", "91", "4", "5", []events.Type{events.TypeRecorded}}},
		{"usage to zero exhausts", func(f *fixture) *ledger.RecordRequest {
			return &ledger.RecordRequest{AgentID: "a", Units: up("100")}
		}, want{"recorded", "", "0", "100", "0", "0", "0", "100", "0", []events.Type{events.TypeRecorded, events.TypeBudgetExhausted}}},
		{"success false releases the named hold", func(f *fixture) *ledger.RecordRequest {
			id := f.reserve("c1", "a", "10", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("3"), ReservationID: id, Success: ptrBool(false)}
		}, want{"released", "id-000002", "", "0", "10", "0", "100", "0", "0", []events.Type{events.TypeReleased}}},
		{"success false releases the oldest hold", func(f *fixture) *ledger.RecordRequest {
			f.reserve("c1", "a", "10", "")
			f.reserve("c1", "a", "20", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("3"), Success: ptrBool(false)}
		}, want{"released", "id-000002", "", "0", "10", "0", "80", "0", "20", []events.Type{events.TypeReleased}}},
		{"success false with nothing open", func(f *fixture) *ledger.RecordRequest {
			return &ledger.RecordRequest{AgentID: "a", Units: up("3"), Success: ptrBool(false)}
		}, want{"released", "", "", "0", "0", "0", "100", "0", "0", nil}},
		{"success true is the default", func(f *fixture) *ledger.RecordRequest {
			id := f.reserve("c1", "a", "10", "")
			return &ledger.RecordRequest{AgentID: "a", Units: up("2"), ReservationID: id, Success: ptrBool(true)}
		}, want{"recorded", "id-000002", "10", "2", "8", "0", "98", "2", "0", []events.Type{events.TypeRecorded}}},
		{"expired hold is charged as plain usage", func(f *fixture) *ledger.RecordRequest {
			id := f.reserve("c1", "a", "10", "1s")
			f.now = f.now.Add(2 * time.Second)
			checkTypes(f.t, f.sweep(10), events.TypeExpired)
			return &ledger.RecordRequest{AgentID: "a", Units: up("4"), ReservationID: id}
		}, want{"recorded", "id-000002", "0", "4", "0", "0", "96", "4", "0", []events.Type{events.TypeRecorded}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.budget("c1", "100", "month")
			req := tt.run(f)
			req.CustomerID = "c1"
			rr, evs := f.record(req)
			w := tt.want
			checkTypes(t, evs, w.events...)
			if rr.Status != w.status || rr.ReservationID != w.reservation {
				t.Errorf("status, reservation = %q, %q; want %q, %q", rr.Status, rr.ReservationID, w.status, w.reservation)
			}
			checkUnits(t, "charged_units", rr.ChargedUnits, w.charged)
			checkUnits(t, "released_units", rr.ReleasedUnits, w.released)
			checkUnits(t, "overage_units", rr.OverageUnits, w.overage)
			checkUnits(t, "remaining_units", rr.RemainingUnits.Units, w.remaining)
			if got, want := rr.Exhausted, w.remaining == "0"; got != want {
				t.Errorf("exhausted = %v, want %v", got, want)
			}
			st := f.status("c1")
			checkUnits(t, "status used", st.Used, w.used)
			checkUnits(t, "status reserved", st.Reserved, w.reserved)
			if len(evs) > 0 && rr.EventID != evs[0].ID {
				t.Errorf("event_id = %q, want %q", rr.EventID, evs[0].ID)
			}
			if rec, ok := evs0(evs).(*events.Recorded); ok {
				checkUnits(t, "recorded held_units", rec.HeldUnits, w.held)
				checkUnits(t, "recorded units", rec.Units, w.charged)
				checkUnits(t, "recorded released", rec.Released, w.released)
				checkUnits(t, "recorded overage", rec.Overage, w.overage)
			}
			if rel, ok := evs0(evs).(*events.Released); ok && rel.Cause != events.CauseRunFailed {
				t.Errorf("released cause = %q, want %q", rel.Cause, events.CauseRunFailed)
			}
		})
	}
}

// evs0 is the first event's data, or nil.
func evs0(evs []*events.Envelope) events.Data {
	if len(evs) == 0 {
		return nil
	}
	return evs[0].Data
}

func TestRecordRefusals(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "100", "month")
	f.budget("c2", "100", "month")
	id := f.reserve("c1", "a", "10", "")
	other := f.reserve("c2", "a", "10", "")

	f.fail(&ledger.RecordRequest{CustomerID: "c1", AgentID: "b", Units: up("1"), ReservationID: id}, ledger.CodeInvalidArgument)
	f.fail(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("1"), ReservationID: "nope"}, ledger.CodeNotFound)
	f.fail(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("1"), ReservationID: other}, ledger.CodeNotFound)

	f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("4"), ReservationID: id})
	// A settled reservation cannot be settled again, whatever the record says.
	for _, r := range []*ledger.RecordRequest{
		{CustomerID: "c1", AgentID: "a", Units: up("4"), ReservationID: id},
		{CustomerID: "c1", AgentID: "a", Units: up("1"), ReservationID: id},
		{CustomerID: "c1", AgentID: "a", Units: up("4"), ReservationID: id, Success: ptrBool(false)},
	} {
		e := f.fail(r, ledger.CodeConflict)
		checkContains(t, "conflict message", e.Message, id)
	}
	checkUnits(t, "used after refused re-records", f.status("c1").Used, "4")

	// Releasing a settled reservation says how it ended and changes nothing.
	reply, evs := f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: id})
	checkTypes(t, evs)
	if rr := reply.(*ledger.ReleaseReply); rr.Status != ledger.StatusRecorded || !rr.ReleasedUnits.IsZero() {
		t.Errorf("release of a settled reservation = %+v, want status %q, nothing released", rr, ledger.StatusRecorded)
	}
}

func TestRelease(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "100", "month")
	f.budget("c2", "100", "month")
	id := f.reserve("c1", "a", "10", "")

	reply, evs := f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: id})
	checkTypes(t, evs, events.TypeReleased)
	rr := reply.(*ledger.ReleaseReply)
	if rr.Status != ledger.StatusReleased {
		t.Errorf("status = %q, want %q", rr.Status, ledger.StatusReleased)
	}
	checkUnits(t, "released_units", rr.ReleasedUnits, "10")
	checkUnits(t, "remaining_units", rr.RemainingUnits.Units, "100")
	if rel := evs[0].Data.(*events.Released); rel.Cause != events.CauseReleased || rel.ReservationID != id || rel.AgentID != "a" {
		t.Errorf("released event = %+v, want cause %q for %s of agent a", rel, events.CauseReleased, id)
	}
	st := f.status("c1")
	checkUnits(t, "reserved", st.Reserved, "0")
	if st.OpenReservations != 0 {
		t.Errorf("open_reservations = %d, want 0", st.OpenReservations)
	}

	// Again: answered from memory, no event.
	reply, evs = f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: id})
	checkTypes(t, evs)
	if rr := reply.(*ledger.ReleaseReply); rr.Status != ledger.StatusReleased || !rr.ReleasedUnits.IsZero() {
		t.Errorf("second release = %+v, want status released, 0 released", rr)
	}

	// Expired, then released: says expired.
	exp := f.reserve("c1", "a", "10", "1s")
	f.now = f.now.Add(time.Second)
	checkTypes(t, f.sweep(10), events.TypeExpired)
	reply, evs = f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: exp})
	checkTypes(t, evs)
	if rr := reply.(*ledger.ReleaseReply); rr.Status != ledger.StatusExpired {
		t.Errorf("release of an expired hold: status %q, want %q", rr.Status, ledger.StatusExpired)
	}

	// Past its deadline but not yet swept: released like any other.
	late := f.reserve("c1", "a", "10", "1s")
	f.now = f.now.Add(5 * time.Second)
	_, evs = f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: late})
	checkTypes(t, evs, events.TypeReleased)

	other := f.reserve("c2", "a", "10", "")
	f.fail(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: other}, ledger.CodeNotFound)
	f.fail(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: "nope"}, ledger.CodeNotFound)
	f.fail(&ledger.ReleaseRequest{CustomerID: "c1"}, ledger.CodeInvalidArgument)
}

func TestExtend(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "100", "month")
	id := f.reserve("c1", "a", "10", "1m")

	f.now = t0.Add(30 * time.Second)
	reply, evs := f.ok(&ledger.ExtendRequest{CustomerID: "c1", ReservationID: id, TTL: "10m"})
	checkTypes(t, evs, events.TypeExtended)
	want := t0.Add(30*time.Second + 10*time.Minute)
	if er := reply.(*ledger.ExtendReply); er.ReservationID != id || !er.ExpiresAt.Equal(want) {
		t.Errorf("extend reply = %+v, want %s until %s", er, id, want)
	}
	if ext := evs[0].Data.(*events.Extended); !ext.ExpiresAt.Equal(want) || ext.AgentID != "a" {
		t.Errorf("extended event = %+v, want expires_at %s", ext, want)
	}

	// The old deadline passes: nothing expires.
	f.now = t0.Add(2 * time.Minute)
	checkTypes(t, f.sweep(10))
	// Preflight expires overdue holds first; this one is not overdue.
	_, evs = f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "b", EstimatedUnits: up("1")})
	checkTypes(t, evs, events.TypeReserved)

	f.now = want
	sw := f.sweep(10)
	checkTypes(t, sw, events.TypeExpired)
	if e := sw[0].Data.(*events.Expired); e.ReservationID != id || !e.ExpiresAt.Equal(want) {
		t.Errorf("expired event = %+v, want %s at %s", e, id, want)
	}
	f.fail(&ledger.ExtendRequest{CustomerID: "c1", ReservationID: id, TTL: "10m"}, ledger.CodeConflict)

	// Past the deadline but not swept: cannot be revived.
	late := f.reserve("c1", "a", "5", "1s")
	f.now = f.now.Add(time.Second)
	f.fail(&ledger.ExtendRequest{CustomerID: "c1", ReservationID: late, TTL: "10m"}, ledger.CodeConflict)

	f.fail(&ledger.ExtendRequest{CustomerID: "c1", ReservationID: "nope", TTL: "10m"}, ledger.CodeNotFound)
	f.fail(&ledger.ExtendRequest{CustomerID: "c1", ReservationID: late}, ledger.CodeInvalidArgument)
	f.fail(&ledger.ExtendRequest{CustomerID: "c1", ReservationID: late, TTL: "25h"}, ledger.CodeInvalidArgument)
}

func TestPreflightExpiresOverdueHolds(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "10", "month")
	f.reserve("c1", "a", "10", "1s")
	f.now = f.now.Add(time.Second)
	pr, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("10")})
	if !pr.Approved {
		t.Fatalf("preflight refused although the only hold is overdue: %s", pr.Message)
	}
	checkTypes(t, evs, events.TypeExpired, events.TypeReserved)
}

func TestSweep(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "100", "month")
	f.budget("c2", "100", "month")
	var ids []string
	for i, ttl := range []string{"5s", "1s", "3s", "2s", "4s"} {
		ids = append(ids, f.reserve([]string{"c1", "c2"}[i%2], "a", "1", ttl))
	}
	f.reserve("c1", "a", "1", "1h")
	if at, ok := f.s.NextExpiry(); !ok || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("NextExpiry() = %s, %v; want %s", at, ok, t0.Add(time.Second))
	}
	if got := f.s.Sweep(t0.Add(500*time.Millisecond), 10); len(got) != 0 {
		t.Errorf("Sweep before any deadline expired %d holds", len(got))
	}
	f.now = t0.Add(10 * time.Second)
	var got []string
	for _, max := range []int{2, 2, 2, 2} {
		sw := f.sweep(max)
		if len(sw) > max {
			t.Errorf("Sweep(max %d) expired %d", max, len(sw))
		}
		for _, e := range sw {
			got = append(got, e.Data.(*events.Expired).ReservationID)
			if !e.At.Equal(f.now) {
				t.Errorf("expired at %s, want the sweep's time %s", e.At, f.now)
			}
		}
	}
	// Deadline order: 1s, 2s, 3s, 4s, 5s.
	want := []string{ids[1], ids[3], ids[2], ids[4], ids[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("expired in order %v, want %v", got, want)
	}
	for _, cid := range []string{"c1", "c2"} {
		checkUnits(t, cid+" reserved", f.status(cid).Reserved, map[string]string{"c1": "1", "c2": "0"}[cid])
	}
}

func TestIdempotency(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "100", "month")
	f.budget("c2", "100", "month")
	pre := func(est, key string) *ledger.PreflightRequest {
		return &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up(est), IdempotencyKey: key,
			Metadata: json.RawMessage(`{"run": 1}`)}
	}

	first, evs := f.ok(pre("10", "k1"))
	checkTypes(t, evs, events.TypeReserved)
	// The same request again, spelled differently: same reply, no events.
	again := pre("10.0", "k1")
	again.Metadata = json.RawMessage(`{"run":1}`)
	checkDuplicate(t, f, again, first)

	f.fail(pre("11", "k1"), ledger.CodeConflict)
	f.fail(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: first.(*ledger.PreflightReply).ReservationID,
		IdempotencyKey: "k1"}, ledger.CodeConflict)
	// Keys belong to one customer.
	_, evs = f.ok(&ledger.PreflightRequest{CustomerID: "c2", AgentID: "a", EstimatedUnits: up("10"), IdempotencyKey: "k1"})
	checkTypes(t, evs, events.TypeReserved)

	rid := first.(*ledger.PreflightReply).ReservationID
	rec := &ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("4"), ReservationID: rid, IdempotencyKey: "k2"}
	rr, _ := f.record(rec)
	dup := *rr
	dup.Status = ledger.StatusDuplicate
	checkDuplicate(t, f, rec, &dup)
	checkUnits(t, "used after a retried record", f.status("c1").Used, "4")

	failRes := f.reserve("c1", "a", "5", "")
	run := &ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("1"), ReservationID: failRes,
		Success: ptrBool(false), IdempotencyKey: "k3"}
	rr, evs = f.record(run)
	checkTypes(t, evs, events.TypeReleased)
	dup = *rr
	dup.Status = ledger.StatusDuplicate
	checkDuplicate(t, f, run, &dup)

	relRes := f.reserve("c1", "a", "5", "")
	rel := &ledger.ReleaseRequest{CustomerID: "c1", ReservationID: relRes, IdempotencyKey: "k4"}
	reply, _ := f.ok(rel)
	dupRel := *reply.(*ledger.ReleaseReply)
	dupRel.Status = ledger.StatusDuplicate
	checkDuplicate(t, f, rel, &dupRel)

	extRes := f.reserve("c1", "a", "5", "")
	ext := &ledger.ExtendRequest{CustomerID: "c1", ReservationID: extRes, TTL: "1h", IdempotencyKey: "k5"}
	reply, _ = f.ok(ext)
	f.now = f.now.Add(time.Minute)
	checkDuplicate(t, f, ext, reply)

	top := &ledger.TopUpRequest{CustomerID: "c1", Units: up("7"), IdempotencyKey: "k6"}
	f.ok(top)
	checkDuplicate(t, f, top, f.status("c1"))
	checkUnits(t, "top-ups after a retried top-up", f.status("c1").TopUps, "7")

	bud := &ledger.BudgetRequest{CustomerID: "c1", Limit: up("200"), Period: "month", IdempotencyKey: "k7"}
	f.ok(bud)
	f.ok(&ledger.RecordRequest{CustomerID: "c1", AgentID: "z", Units: up("1")})
	checkDuplicate(t, f, bud, f.status("c1"))

	// A refusal is remembered too: the retry is refused even though the
	// budget would now allow it.
	f.budget("c3", "1", "month")
	den := &ledger.PreflightRequest{CustomerID: "c3", AgentID: "a", EstimatedUnits: up("5"), IdempotencyKey: "k8"}
	denied, _ := f.ok(den)
	f.budget("c3", "100", "month")
	checkDuplicate(t, f, den, denied)

	// Keys survive a restart: a replayed state answers the same.
	r := replay(t, encodeAll(t, f.log))
	got, evs, err := r.Decide(again, f.now)
	if err != nil || len(evs) != 0 || mustJSON(t, got) != mustJSON(t, first) {
		t.Errorf("replayed state answered the retry with %s, %d events, %v; want %s", mustJSON(t, got), len(evs), err, mustJSON(t, first))
	}
}

// checkDuplicate sends a retried request: it must append nothing and get
// the wanted reply.
func checkDuplicate(t *testing.T, f *fixture, cmd ledger.Command, want ledger.Reply) {
	t.Helper()
	applied := f.s.EventsApplied()
	got, evs := f.ok(cmd)
	checkTypes(t, evs)
	if f.s.EventsApplied() != applied {
		t.Errorf("retry applied %d events", f.s.EventsApplied()-applied)
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("retry of %T replied\n got %s\nwant %s", cmd, g, w)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%T): %v", v, err)
	}
	return string(b)
}

func TestIdempotencyWindow(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "1000", "none")
	req := &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), TTL: "1s", IdempotencyKey: "k"}
	_, evs := f.ok(req)
	checkTypes(t, evs, events.TypeReserved)

	f.now = t0.Add(ledger.IdempotencyWindow - time.Second)
	f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("1"), IdempotencyKey: "other-1"})
	_, evs = f.ok(req)
	checkTypes(t, evs) // still remembered

	// Past the window, once another key is stored, the old key is forgotten:
	// the same request is a new request.
	f.now = t0.Add(ledger.IdempotencyWindow + time.Second)
	f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("1"), IdempotencyKey: "other-2"})
	_, evs = f.ok(req)
	checkTypes(t, evs, events.TypeExpired, events.TypeReserved)
}

func TestThresholdsOncePerPeriod(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "month",
		Thresholds: []events.Units{*up("0.5"), *up("0.8")}})
	fractions := func(evs []*events.Envelope) []string {
		var out []string
		for _, e := range evs {
			if tc, ok := e.Data.(*events.ThresholdCrossed); ok {
				out = append(out, tc.Fraction.String())
			}
		}
		return out
	}
	steps := []struct {
		name string
		do   func() []*events.Envelope
		want []string
	}{
		{"below the first", func() []*events.Envelope { return f.reserveEvs("49") }, nil},
		{"reaches 0.5 exactly", func() []*events.Envelope { return f.reserveEvs("1") }, []string{"0.5"}},
		{"between", func() []*events.Envelope { return f.reserveEvs("10") }, nil},
		{"usage counts", func() []*events.Envelope {
			_, evs := f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "b", Units: up("20")})
			return evs
		}, []string{"0.8"}},
		{"release and cross again: no repeat", func() []*events.Envelope {
			id := f.reserve("c1", "a", "5", "")
			f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: id})
			return f.reserveEvs("5")
		}, nil},
		{"same budget again: no repeat", func() []*events.Envelope {
			_, evs := f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "month",
				Thresholds: []events.Units{*up("0.8"), *up("0.5")}})
			return evs
		}, nil},
		{"new period fires again", func() []*events.Envelope {
			f.now = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
			f.sweep(100)
			return f.reserveEvs("90")
		}, []string{"0.8", "0.5"}}, // in the order the budget lists them
	}
	for _, s := range steps {
		if got := fractions(s.do()); fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("%s: thresholds crossed %v, want %v", s.name, got, s.want)
		}
	}
}

// reserveEvs preflights for c1 and returns the events.
func (f *fixture) reserveEvs(est string) []*events.Envelope {
	f.t.Helper()
	pr, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up(est), TTL: "24h"})
	if !pr.Approved {
		f.t.Fatalf("preflight %s refused: %s", est, pr.Message)
	}
	return evs
}

func TestThresholdsIncludeTopUps(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "month", Thresholds: []events.Units{*up("0.5")}})
	f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("100")})
	checkTypes(t, f.reserveEvs("99"), events.TypeReserved)
	checkTypes(t, f.reserveEvs("1"), events.TypeReserved, events.TypeThresholdCrossed)
}

func TestBudgetExhaustedOncePerPeriod(t *testing.T) {
	f := newFixture(t)
	setBudget := func(limit string) []*events.Envelope {
		t.Helper()
		_, evs := f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up(limit), Period: "month", UpgradeURL: "https://example.com/up"})
		return evs
	}
	setBudget("10")
	pre := func(est string) []*events.Envelope {
		t.Helper()
		_, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up(est), TTL: "24h"})
		return evs
	}
	trigger := func(evs []*events.Envelope) string {
		for _, e := range evs {
			if be, ok := e.Data.(*events.BudgetExhausted); ok {
				if be.UpgradeURL != "https://example.com/up" {
					t.Errorf("budget_exhausted upgrade_url = %q", be.UpgradeURL)
				}
				return be.Trigger
			}
		}
		return ""
	}
	var first string
	steps := []struct {
		name        string
		do          func() []*events.Envelope
		wantTrigger string
	}{
		{"remaining reaches zero", func() []*events.Envelope {
			evs := pre("10")
			first = evs[0].ID
			return evs
		}, events.TriggerRemainingZero},
		{"refusal in the same period", func() []*events.Envelope { return pre("1") }, ""},
		{"refusal again", func() []*events.Envelope { return pre("1") }, ""},
		{"release does not re-arm", func() []*events.Envelope {
			f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: first})
			f.reserve("c1", "a", "10", "24h")
			return pre("1")
		}, ""},
		{"top-up re-arms", func() []*events.Envelope {
			_, evs := f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("5")})
			if trigger(evs) != "" {
				t.Errorf("top-up fired budget_exhausted")
			}
			return pre("6")
		}, events.TriggerRefused},
		{"refusal after re-arm fires once", func() []*events.Envelope { return pre("6") }, ""},
		{"raised limit re-arms", func() []*events.Envelope {
			setBudget("20") // 25 with top-ups, 10 held
			return pre("16")
		}, events.TriggerRefused},
		{"limit lowered to the position fires", func() []*events.Envelope {
			if trigger(setBudget("20")) != "" {
				t.Errorf("unchanged budget fired budget_exhausted again")
			}
			setBudget("25")
			return setBudget("5")
		}, events.TriggerRemainingZero},
		{"new period re-arms", func() []*events.Envelope {
			f.now = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
			return pre("100")
		}, events.TriggerRefused},
	}
	for _, s := range steps {
		if got := trigger(s.do()); got != s.wantTrigger {
			t.Errorf("%s: budget_exhausted trigger %q, want %q", s.name, got, s.wantTrigger)
		}
	}
}

func TestPeriodRollover(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "day",
		AgentLimits: map[string]events.Units{"a": *up("80")}})
	f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("60")})
	f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("5")})
	f.reserve("c1", "a", "10", "24h")
	st := f.status("c1")
	checkUnits(t, "used", st.Used, "60")
	checkUnits(t, "remaining", st.Remaining.Units, "35")

	// Just after midnight, before any event: usage and top-ups read as zero,
	// the hold keeps its hold.
	f.now = time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
	st = f.status("c1")
	checkUnits(t, "used in the new day", st.Used, "0")
	checkUnits(t, "top-ups in the new day", st.TopUps, "0")
	checkUnits(t, "reserved in the new day", st.Reserved, "10")
	checkUnits(t, "remaining in the new day", st.Remaining.Units, "90")
	checkUnits(t, "agent used in the new day", st.Agents["a"].Used, "0")
	if want := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC); !st.PeriodStart.Equal(want) || st.PeriodEnd == nil ||
		!st.PeriodEnd.Equal(want.AddDate(0, 0, 1)) {
		t.Errorf("period = %s..%v, want %s..%s", st.PeriodStart, st.PeriodEnd, want, want.AddDate(0, 0, 1))
	}

	pr, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("70")})
	if !pr.Approved {
		t.Fatalf("preflight within the new day's agent limit refused: %s", pr.Message)
	}
	if ps := events.BalanceOf(evs[0].Data).PeriodStart; !ps.Equal(f.now) {
		t.Errorf("event period_start = %s, want %s", ps, f.now)
	}
	pr, _ = f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1")})
	if pr.Reason != ledger.ReasonAgentLimitExceeded {
		t.Errorf("reason = %q, want %q", pr.Reason, ledger.ReasonAgentLimitExceeded)
	}
	checkContains(t, "message", pr.Message, "0 units left of its 80-unit limit today")
}

// An agent with nothing held is forgotten at the period's end; its next
// run starts a new entry, which status shows and a replay rebuilds (the
// ledger's last-used agent, kept to skip the map, must not outlive it).
func TestAgentForgottenAtRollover(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "100", "day")
	f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("4")})
	f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "b", Units: up("5")})

	f.now = time.Date(2026, 3, 11, 1, 0, 0, 0, time.UTC)
	f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "b", Units: up("3")})
	f.reserve("c1", "a", "2", "1h")
	st := f.status("c1")
	if a, ok := st.Agents["b"]; !ok {
		t.Fatalf("agent b missing from the new day's status: %s", f.statusJSON("c1"))
	} else {
		checkUnits(t, "agent b used in the new day", a.Used, "3")
	}
	if a, ok := st.Agents["a"]; !ok {
		t.Fatalf("agent a missing from the new day's status: %s", f.statusJSON("c1"))
	} else {
		checkUnits(t, "agent a used in the new day", a.Used, "0")
		checkUnits(t, "agent a reserved in the new day", a.Reserved, "2")
	}
	f.checkReplay()
}

func TestStatus(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "none",
		Thresholds: []events.Units{*up("0.9")}, UpgradeURL: "https://example.com/u",
		AgentLimits: map[string]events.Units{"a": *up("50"), "idle": *up("1")}})
	f.reserve("c1", "a", "10", "")
	f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "b", Units: up("2.5")})
	st := f.status("c1")
	if st.CustomerID != "c1" || st.Period != ledger.PeriodNone || st.PeriodEnd != nil || !st.PeriodStart.Equal(t0) {
		t.Errorf("status = %+v, want c1, period none from %s, no end", st, t0)
	}
	checkUnits(t, "limit", st.Limit, "100")
	checkUnits(t, "used", st.Used, "2.5")
	checkUnits(t, "reserved", st.Reserved, "10")
	checkUnits(t, "remaining", st.Remaining.Units, "87.5")
	if st.OpenReservations != 1 || st.Exhausted || st.UpgradeURL != "https://example.com/u" || len(st.Thresholds) != 1 {
		t.Errorf("status = %+v", st)
	}
	wantAgents := map[string]string{
		"a":    `{"used":0,"reserved":10,"limit":50}`,
		"b":    `{"used":2.5,"reserved":0}`,
		"idle": `{"used":0,"reserved":0,"limit":1}`,
	}
	if got, want := len(st.Agents), len(wantAgents); got != want {
		t.Errorf("%d agents, want %d", got, want)
	}
	for id, want := range wantAgents {
		if got := mustJSON(t, st.Agents[id]); got != want {
			t.Errorf("agent %s = %s, want %s", id, got, want)
		}
	}
	// Years later nothing has reset.
	f.now = t0.AddDate(3, 0, 0)
	checkUnits(t, "used years later", f.status("c1").Used, "2.5")
	reply, evs := f.ok(&ledger.StatusRequest{CustomerID: "c1"})
	checkTypes(t, evs)
	if _, ok := reply.(*ledger.StatusReply); !ok {
		t.Errorf("status reply is %T", reply)
	}
}

// TestBudgetPeriodChange changes a customer's period kind mid-period. The
// period that applies afterwards is the new kind's calendar period.
func TestBudgetPeriodChange(t *testing.T) {
	t.Run("day to month keeps usage, month's calendar period", func(t *testing.T) {
		f := newFixture(t)
		f.budget("c1", "100", "day")
		f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("30")})
		_, evs := f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "month"})
		st := f.status("c1")
		checkUnits(t, "used", st.Used, "30")
		wantStart := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		if !st.PeriodStart.Equal(wantStart) || st.PeriodEnd == nil || !st.PeriodEnd.Equal(wantStart.AddDate(0, 1, 0)) {
			t.Errorf("day->month on %s gives status period %s..%v, want %s..%s (budget_set period_start %s)",
				t0.Format(time.RFC3339), st.PeriodStart, st.PeriodEnd, wantStart, wantStart.AddDate(0, 1, 0),
				events.BalanceOf(evs[0].Data).PeriodStart)
		}
	})
	t.Run("month to day starts today's period", func(t *testing.T) {
		f := newFixture(t)
		f.budget("c1", "100", "month")
		f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("90")})
		_, evs := f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("50"), Period: "day"})
		checkUnits(t, "used", f.status("c1").Used, "0")
		bal := events.BalanceOf(evs[0].Data)
		wantStart := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
		_, evs2 := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("50")})
		if !bal.PeriodStart.Equal(wantStart) || len(evs) != 1 || len(evs2) != 2 {
			t.Errorf("month->day with 90 used of 100 and a new day limit of 50: budget_set balance "+
				"period_start %s used %s (want %s, 0), the budget emitted %v (want only budget_set), and a later real "+
				"exhaustion (preflight 50 of 50) emitted %v (want reserved, budget_exhausted)",
				bal.PeriodStart, bal.Used, wantStart, typesOf(evs), typesOf(evs2))
		}
	})
	t.Run("none to none keeps its start", func(t *testing.T) {
		f := newFixture(t)
		f.budget("c1", "100", "none")
		f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("30")})
		f.now = t0.Add(48 * time.Hour)
		f.budget("c1", "200", "none")
		st := f.status("c1")
		checkUnits(t, "used", st.Used, "30")
		if !st.PeriodStart.Equal(t0) {
			t.Errorf("period_start = %s, want %s", st.PeriodStart, t0)
		}
	})
}

// TestRequestDefaults: the defaults of docs/PROTOCOL.md live in the
// ledger, so every transport (NATS, HTTP, MCP) gets them: a preflight with
// no estimate reserves 1, a failed record with no units releases, and a
// request that leaves a default out means the same as one that spells it
// (its idempotency key is not a conflict).
func TestRequestDefaults(t *testing.T) {
	f := newFixture(t)
	f.budget("c1", "100", "month")
	pr, _ := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", IdempotencyKey: "k1"})
	if !pr.Approved || pr.ReservedUnits.String() != "1" {
		t.Fatalf("preflight without an estimate: approved %v reserved %s, want true 1", pr.Approved, pr.ReservedUnits)
	}
	again, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), IdempotencyKey: "k1"})
	if again.ReservationID != pr.ReservationID || len(evs) != 0 {
		t.Fatalf("the same preflight spelled out: reservation %s with %d events, want %s with none", again.ReservationID, len(evs), pr.ReservationID)
	}
	rr, _ := f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", ReservationID: pr.ReservationID, Success: ptrBool(false)})
	if rr.Status != ledger.StatusReleased || rr.ReleasedUnits.String() != "1" {
		t.Fatalf("failed record without units: status %s released %s, want released 1", rr.Status, rr.ReleasedUnits)
	}
	f.fail(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Success: ptrBool(true)}, ledger.CodeInvalidArgument)
	f.checkReplay()
}

func TestValidation(t *testing.T) {
	big := new(events.Units)
	if err := big.UnmarshalJSON([]byte("1e16")); err != nil { // valid in the log, not in a request
		t.Fatalf("UnmarshalJSON: %v", err)
	}
	long := strings.Repeat("x", 129)
	tests := []struct {
		name string
		cmd  ledger.Command
	}{
		{"preflight no agent", &ledger.PreflightRequest{CustomerID: "c1", EstimatedUnits: up("1")}},
		{"preflight zero estimate", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("0")}},
		{"preflight estimate above 10^15", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: big}},
		{"preflight ceiling above 10^15", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), Ceiling: big}},
		{"preflight task ceiling without task", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), TaskCeiling: up("5")}},
		{"preflight ttl zero", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), TTL: "0s"}},
		{"preflight ttl too long", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), TTL: "24h1s"}},
		{"preflight ttl not a duration", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), TTL: "15"}},
		{"preflight metadata not an object", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), Metadata: json.RawMessage(`[1]`)}},
		{"preflight metadata null", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), Metadata: json.RawMessage(`null`)}},
		{"preflight agent too long", &ledger.PreflightRequest{CustomerID: "c1", AgentID: long, EstimatedUnits: up("1")}},
		{"preflight agent control char", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a\x00", EstimatedUnits: up("1")}},
		{"preflight key too long", &ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1"), IdempotencyKey: long}},
		{"preflight no customer", &ledger.PreflightRequest{AgentID: "a", EstimatedUnits: up("1")}},
		{"preflight customer too long", &ledger.PreflightRequest{CustomerID: long, AgentID: "a", EstimatedUnits: up("1")}},
		{"preflight customer invalid UTF-8", &ledger.PreflightRequest{CustomerID: "\xff", AgentID: "a", EstimatedUnits: up("1")}},
		{"record no units", &ledger.RecordRequest{CustomerID: "c1", AgentID: "a"}},
		{"record units above 10^15", &ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: big}},
		{"record reservation id too long", &ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("1"), ReservationID: strings.Repeat("r", 65)}},
		{"release no reservation", &ledger.ReleaseRequest{CustomerID: "c1"}},
		{"extend no ttl", &ledger.ExtendRequest{CustomerID: "c1", ReservationID: "r"}},
		{"budget no limit", &ledger.BudgetRequest{CustomerID: "c1", Period: "month"}},
		{"budget bad period", &ledger.BudgetRequest{CustomerID: "c1", Limit: up("1"), Period: "year"}},
		{"budget limit above 10^15", &ledger.BudgetRequest{CustomerID: "c1", Limit: big, Period: "month"}},
		{"budget threshold zero", &ledger.BudgetRequest{CustomerID: "c1", Limit: up("1"), Period: "month", Thresholds: []events.Units{*up("0")}}},
		{"budget threshold above one", &ledger.BudgetRequest{CustomerID: "c1", Limit: up("1"), Period: "month", Thresholds: []events.Units{*up("1.5")}}},
		{"budget threshold twice", &ledger.BudgetRequest{CustomerID: "c1", Limit: up("1"), Period: "month", Thresholds: []events.Units{*up("0.5"), *up("0.50")}}},
		{"budget too many thresholds", &ledger.BudgetRequest{CustomerID: "c1", Limit: up("1"), Period: "month", Thresholds: manyThresholds(ledger.ThresholdsMax + 1)}},
		{"budget upgrade url not http", &ledger.BudgetRequest{CustomerID: "c1", Limit: up("1"), Period: "month", UpgradeURL: "javascript:alert(1)"}},
		{"budget agent limit above 10^15", &ledger.BudgetRequest{CustomerID: "c1", Limit: up("1"), Period: "month", AgentLimits: map[string]events.Units{"a": *big}}},
		{"budget agent limit empty agent", &ledger.BudgetRequest{CustomerID: "c1", Limit: up("1"), Period: "month", AgentLimits: map[string]events.Units{"": *up("1")}}},
		{"topup zero", &ledger.TopUpRequest{CustomerID: "c1", Units: up("0")}},
		{"topup no units", &ledger.TopUpRequest{CustomerID: "c1"}},
		{"topup note too long", &ledger.TopUpRequest{CustomerID: "c1", Units: up("1"), Note: strings.Repeat("n", ledger.NoteBytesMax+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.budget("c1", "100", "month")
			f.fail(tt.cmd, ledger.CodeInvalidArgument)
		})
	}
}

func manyThresholds(n int) []events.Units {
	out := make([]events.Units, n)
	for i := range out {
		out[i] = events.NewUnits(int64(i+1), -2)
	}
	return out
}

func TestThresholdsMaxAccepted(t *testing.T) {
	f := newFixture(t)
	f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("100"), Period: "month", Thresholds: manyThresholds(ledger.ThresholdsMax)})
	_, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("100")})
	want := []events.Type{events.TypeReserved}
	for i := 0; i < ledger.ThresholdsMax; i++ {
		want = append(want, events.TypeThresholdCrossed)
	}
	checkTypes(t, evs, append(want, events.TypeBudgetExhausted)...)
	if len(evs) > ledger.EventsPerCommandMax {
		t.Errorf("%d events from one command, more than EventsPerCommandMax %d", len(evs), ledger.EventsPerCommandMax)
	}
}

// TestTableBounds checks that a customer's tables stop at their bounds with
// invalid_argument, and make room again when holds close.
func TestTableBounds(t *testing.T) {
	tiny := "0.000000000000000001"
	t.Run("open reservations", func(t *testing.T) {
		f := newFixture(t)
		f.budget("c1", "1", "none")
		var first string
		for i := 0; i < ledger.OpenReservationsPerCustomerMax; i++ {
			id := f.reserve("c1", "a", tiny, "24h")
			if i == 0 {
				first = id
			}
		}
		e := f.fail(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up(tiny)}, ledger.CodeInvalidArgument)
		checkContains(t, "message", e.Message, fmt.Sprint(ledger.OpenReservationsPerCustomerMax))
		f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: first})
		f.reserve("c1", "a", tiny, "24h")
	})
	t.Run("tasks", func(t *testing.T) {
		f := newFixture(t)
		f.budget("c1", "1", "none")
		var first string
		for i := 0; i < ledger.TasksPerCustomerMax; i++ {
			pr, _ := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up(tiny),
				TaskRef: fmt.Sprintf("task-%d", i), TaskCeiling: up("1"), TTL: "24h"})
			if !pr.Approved {
				t.Fatalf("preflight for task %d refused: %s", i, pr.Message)
			}
			if i == 0 {
				first = pr.ReservationID
			}
		}
		f.fail(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up(tiny), TaskRef: "one-more"},
			ledger.CodeInvalidArgument)
		f.fail(&ledger.RecordRequest{CustomerID: "c1", AgentID: "b", Units: up(tiny), TaskRef: "one-more"},
			ledger.CodeInvalidArgument)
		// A known task still works, and a closed hold makes its task idle:
		// the idle task is forgotten to make room.
		f.reserve("c1", "a", tiny, "")
		f.ok(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up(tiny), TaskRef: "task-5"})
		f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: first})
		pr, _ := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up(tiny), TaskRef: "one-more"})
		if !pr.Approved {
			t.Errorf("preflight for a new task after one went idle refused: %s", pr.Message)
		}
	})
	t.Run("agents", func(t *testing.T) {
		f := newFixture(t)
		f.budget("c1", "1", "none")
		for i := 0; i < ledger.AgentsPerCustomerMax; i++ {
			f.reserve("c1", fmt.Sprintf("agent-%d", i), tiny, "24h")
		}
		f.fail(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "one-more", EstimatedUnits: up(tiny)}, ledger.CodeInvalidArgument)
		f.fail(&ledger.RecordRequest{CustomerID: "c1", AgentID: "one-more", Units: up(tiny)}, ledger.CodeInvalidArgument)
		f.reserve("c1", "agent-7", tiny, "24h")
	})
}

// TestBudgetExhaustedNotReArmedByUnchangedLimit: docs/PROTOCOL.md ("Decision
// rules") says budget_exhausted is "re-armed by a top-up or a raised limit
// that leaves something remaining, or by a new period".
func TestBudgetExhaustedNotReArmedByUnchangedLimit(t *testing.T) {
	for _, limit := range []string{"10", "8"} {
		t.Run("limit "+limit, func(t *testing.T) {
			f := newFixture(t)
			f.budget("c1", "10", "month")
			f.reserve("c1", "a", "5", "")
			_, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("6")})
			checkTypes(t, evs, events.TypeDenied, events.TypeBudgetExhausted)
			f.budget("c1", limit, "month") // not raised
			_, evs = f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("6")})
			if len(evs) != 1 {
				t.Errorf("limit 10, 5 held, preflight 6 refused (budget_exhausted), budget re-set to %s (not raised), "+
					"preflight 6 refused again emits %v, want [denied] only",
					limit, typesOf(evs))
			}
		})
	}
}

// The determinism property: random command sequences applied live through
// Decide and Sweep, then replayed from the encoded log with Apply alone,
// must give every customer the same status, at the end and at earlier
// points; and a replayed state must go on deciding exactly as the live one.

const (
	propSeeds     = 8
	propSteps     = 1200 // per seed
	propTwinSteps = 300  // decided by both the live and the replayed state
	propPrefixes  = 4    // earlier points replayed per seed
)

var (
	propCustomers = []string{"c0", "c1", "c2", "c3", "c4", "acme.corp", "ünï user", "Z"}
	propAgents    = []string{"a0", "a1", "a2", "a3"}
	propTasks     = []string{"t0", "t1", "t2"}
	propAmounts   = []string{"0", "0.000000000000000001", "0.5", "1", "1.25", "2", "3.333", "5", "10", "25", "50",
		"99.999999999999999999"}
	propLimits    = []string{"0", "10", "50", "100", "250.5", "1000"}
	propFractions = []string{"0.25", "0.5", "0.8", "1"}
	propTTLs      = []string{"", "1s", "45s", "10m", "2h", "24h"}
	// propScopes are the scope values runs are placed in; limits name some.
	propScopes     = map[string][]string{"team": {"t0", "t1"}, "user": {"u0", "u1", "u2"}, "project": {"p0"}}
	propDims       = []string{"project", "team", "user"}
	propClockSteps = []time.Duration{time.Second, 10 * time.Second, time.Minute, 5 * time.Minute, 10 * time.Minute,
		30 * time.Minute, time.Hour, 5 * time.Hour, 25 * time.Hour}
	// propDefaults cycles through default budgets, none included, by seed.
	propDefaults = []*ledger.DefaultBudget{
		{Limit: events.MustParseUnits("100"), Period: ledger.PeriodMonth}, nil,
		{Limit: events.MustParseUnits("50"), Period: ledger.PeriodDay}, nil,
		{Limit: events.MustParseUnits("1000"), Period: ledger.PeriodWeek},
		{Limit: events.MustParseUnits("20"), Period: ledger.PeriodNone},
	}
	// propStarts cycles through start times near boundaries, by seed.
	propStarts = []time.Time{
		time.Date(2026, 1, 30, 22, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 30, 23, 0, 0, 0, time.UTC),
		time.Date(2028, 2, 27, 12, 0, 0, 0, time.UTC),
		t0,
	}
)

// propAction is one step: a command, a sweep, or a clock change.
type propAction struct {
	cmd     ledger.Command
	sweep   int           // Sweep's max, if > 0
	advance time.Duration // else move the clock by this
	to      time.Time     // or to this
}

// propOutcome is what a step produced, in a comparable form.
type propOutcome struct{ reply, events, err string }

type propRes struct{ id, cid, agent string }

// propKey is a request the ledger must remember by its idempotency key.
type propKey struct {
	req   string // op and request JSON
	reply string // the first reply
	at    time.Time
}

// propSnap is every customer's status right after a step.
type propSnap struct {
	events int
	now    time.Time
	status map[string]string
}

type propSim struct {
	t     *testing.T
	rng   *rand.Rand
	live  *ledger.State
	ids   *counter
	now   time.Time
	log   [][]byte        // every event, encoded as the stream holds it
	seen  map[string]bool // event IDs
	res   []propRes       // every reservation ever made
	keyed []ledger.Command
	keys  map[string]propKey // customer \x00 key
	snaps []propSnap
	// grants is a model of every customer's open grants, kept from the
	// events alone, to check draw-down order and expiry.
	grants map[string][]*propGrant
	cases  map[string]int // rules reached, by name
}

// propGrant is the model of one open grant.
type propGrant struct {
	id                 string
	remaining          events.Units
	priority           int
	effective, expires time.Time
	seq                int
}

func (g *propGrant) usable(t time.Time) bool {
	return !g.effective.After(t) && (g.expires.IsZero() || t.Before(g.expires))
}

// propDrawsBefore is the documented draw-down order: priority, then the
// earliest expiry (never last), then the oldest.
func propDrawsBefore(a, b *propGrant) bool {
	switch {
	case a.priority != b.priority:
		return a.priority < b.priority
	case a.expires.Equal(b.expires):
		return a.seq < b.seq
	case a.expires.IsZero():
		return false
	case b.expires.IsZero():
		return true
	}
	return a.expires.Before(b.expires)
}

func TestDeterministicReplay(t *testing.T) {
	seen := make(map[string]int)
	for seed := uint64(1); seed <= propSeeds; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			s := newPropSim(t, seed)
			s.cases = seen
			for i := 0; i < propSteps; i++ {
				s.step(s.gen())
				s.snapshot()
			}
			s.checkReplayedPrefixes()
			s.checkTwin()
		})
	}
	// The property holds only if the runs reached the rules it is about.
	for _, c := range []string{"partial", "scope_limit_exceeded", "concurrency_limit_exceeded", "budget_exhausted",
		"funded", "funded by two", "grant_expired", "rollover", "overdraft_started", "in_overdraft", "future grant"} {
		if seen[c] < 3 {
			t.Errorf("the random runs reached %q %d times; the generator must reach it more", c, seen[c])
		}
	}
}

// count notes which rules an event exercised.
func (s *propSim) count(e *events.Envelope) {
	if s.cases == nil {
		return
	}
	switch d := e.Data.(type) {
	case *events.Reserved:
		if !d.Requested.IsZero() {
			s.cases["partial"]++
		}
		if d.InOverdraft {
			s.cases["in_overdraft"]++
		}
	case *events.Denied:
		s.cases[d.Reason]++
	case *events.Recorded:
		if len(d.FundedBy) > 0 {
			s.cases["funded"]++
		}
		if len(d.FundedBy) > 1 {
			s.cases["funded by two"]++
		}
	case *events.Granted:
		if d.Source == events.SourceRollover {
			s.cases["rollover"]++
		}
		if d.EffectiveAt.After(e.At) {
			s.cases["future grant"]++
		}
	default:
		s.cases[string(e.Type)]++
	}
}

func newPropSim(t *testing.T, seed uint64) *propSim {
	t.Helper()
	s := &propSim{
		t: t, rng: rand.New(rand.NewPCG(seed, 0x5eed)), live: ledger.NewState(), ids: &counter{},
		now: propStarts[int(seed)%len(propStarts)], seen: make(map[string]bool), keys: make(map[string]propKey),
		grants: make(map[string][]*propGrant),
	}
	s.live.NewID = s.ids.next
	s.live.Default = propDefaults[int(seed)%len(propDefaults)]
	return s
}

func (s *propSim) chance(percent int) bool { return s.rng.IntN(100) < percent }

func (s *propSim) pick(from []string) string { return from[s.rng.IntN(len(from))] }

func (s *propSim) pickPositive() string {
	for {
		if a := s.pick(propAmounts); a != "0" {
			return a
		}
	}
}

func (s *propSim) genKey(percent int) string {
	if !s.chance(percent) {
		return ""
	}
	return fmt.Sprintf("k%d", s.rng.IntN(40))
}

// pickRes picks one of the customer's open reservations, or one of its
// recent (often closed) ones, or a recent one of any customer (to exercise
// refusals).
func (s *propSim) pickRes(cid string) (propRes, bool) {
	if c := s.live.Customer(cid); c != nil && len(c.Open) > 0 && s.chance(80) {
		r := c.Open[s.rng.IntN(len(c.Open))]
		return propRes{id: r.ID, cid: cid, agent: r.AgentID}, true
	}
	if len(s.res) == 0 {
		return propRes{}, false
	}
	if s.chance(80) {
		var own []propRes
		for i := len(s.res) - 1; i >= 0 && i >= len(s.res)-400 && len(own) < 4; i-- {
			if s.res[i].cid == cid {
				own = append(own, s.res[i])
			}
		}
		if len(own) > 0 {
			return own[s.rng.IntN(len(own))], true
		}
	}
	return s.res[len(s.res)-1-s.rng.IntN(min(len(s.res), 200))], true
}

func (s *propSim) gen() propAction {
	cid := s.pick(propCustomers)
	switch p := s.rng.IntN(100); {
	case p < 30:
		return propAction{cmd: s.genPreflight(cid)}
	case p < 50:
		return propAction{cmd: s.genRecord(cid)}
	case p < 57:
		return propAction{cmd: s.genRelease(cid)}
	case p < 61:
		return propAction{cmd: s.genExtend(cid)}
	case p < 64:
		return propAction{cmd: &ledger.TopUpRequest{CustomerID: cid, Units: up(s.pickPositive()),
			Note: []string{"", "promo"}[s.rng.IntN(2)], IdempotencyKey: s.genKey(20)}}
	case p < 68:
		return propAction{cmd: s.genGrant(cid)}
	case p < 72:
		return propAction{cmd: s.genBudget(cid)}
	case p < 74:
		return propAction{cmd: &ledger.StatusRequest{CustomerID: cid}}
	case p < 79:
		return propAction{cmd: s.genRetry()}
	case p < 92:
		return s.genClock()
	}
	return propAction{sweep: []int{1, 3, 100}[s.rng.IntN(3)]}
}

func (s *propSim) genPreflight(cid string) *ledger.PreflightRequest {
	r := &ledger.PreflightRequest{CustomerID: cid, AgentID: s.pick(propAgents), EstimatedUnits: up(s.pickPositive()),
		TTL: s.pick(propTTLs), IdempotencyKey: s.genKey(30)}
	if s.chance(20) {
		r.Ceiling = up(s.pick(propAmounts))
	}
	if s.chance(30) {
		r.TaskRef = s.pick(propTasks)
		if s.chance(50) {
			r.TaskCeiling = up(s.pick(propLimits))
		}
	}
	if s.chance(10) {
		r.Metadata = json.RawMessage(`{"run":"x","n":1}`)
	}
	r.Scope = s.genScope(50)
	if s.chance(25) {
		min := events.MustParseUnits(s.pickPositive())
		r.MinUnits = &min
		if min.Cmp(*r.EstimatedUnits) > 0 {
			r.MinUnits = r.EstimatedUnits
		}
	}
	return r
}

// genScope returns a random scope (nil unless percent chance).
func (s *propSim) genScope(percent int) map[string]string {
	if !s.chance(percent) {
		return nil
	}
	m := make(map[string]string)
	for _, dim := range propDims {
		if s.chance(60) {
			m[dim] = s.pick(propScopes[dim])
		}
	}
	return m
}

func (s *propSim) genGrant(cid string) *ledger.GrantRequest {
	r := &ledger.GrantRequest{CustomerID: cid, Units: up(s.pick([]string{"1", "5", "20", "100", "0.5"})),
		IdempotencyKey: s.genKey(20), Source: s.pick([]string{"", "promo", "purchase"})}
	if s.chance(50) {
		at := s.now.Add([]time.Duration{time.Minute, time.Hour, 25 * time.Hour, 40 * 24 * time.Hour}[s.rng.IntN(4)])
		r.ExpiresAt = &at
	}
	if s.chance(20) {
		at := s.now.Add([]time.Duration{10 * time.Minute, 2 * time.Hour}[s.rng.IntN(2)])
		r.EffectiveAt = &at
	}
	if s.chance(30) {
		p := []int{0, 50, 200}[s.rng.IntN(3)]
		r.Priority = &p
	}
	return r
}

func (s *propSim) genRecord(cid string) *ledger.RecordRequest {
	r := &ledger.RecordRequest{CustomerID: cid, AgentID: s.pick(propAgents), Units: up(s.pick(propAmounts)),
		IdempotencyKey: s.genKey(30)}
	if res, ok := s.pickRes(cid); ok && s.chance(50) {
		r.ReservationID = res.id
		if s.chance(90) {
			r.AgentID = res.agent
		}
	}
	if s.chance(15) {
		r.Success = ptrBool(false)
	}
	if s.chance(15) {
		r.TaskRef = s.pick(propTasks)
	}
	r.Scope = s.genScope(20)
	return r
}

func (s *propSim) genRelease(cid string) *ledger.ReleaseRequest {
	r := &ledger.ReleaseRequest{CustomerID: cid, ReservationID: "nope", IdempotencyKey: s.genKey(20)}
	if res, ok := s.pickRes(cid); ok && s.chance(90) {
		r.ReservationID = res.id
	}
	return r
}

func (s *propSim) genExtend(cid string) *ledger.ExtendRequest {
	r := &ledger.ExtendRequest{CustomerID: cid, ReservationID: "nope", TTL: s.pick([]string{"1s", "5m", "1h", "24h"}),
		IdempotencyKey: s.genKey(20)}
	if res, ok := s.pickRes(cid); ok && s.chance(90) {
		r.ReservationID = res.id
	}
	return r
}

func (s *propSim) genBudget(cid string) *ledger.BudgetRequest {
	r := &ledger.BudgetRequest{CustomerID: cid, Limit: up(s.pick(propLimits)),
		Period: s.pick([]string{"day", "week", "month", "none"}), IdempotencyKey: s.genKey(20)}
	for _, f := range propFractions {
		if s.chance(40) {
			r.Thresholds = append(r.Thresholds, events.MustParseUnits(f))
		}
	}
	if s.chance(30) {
		r.AgentLimits = map[string]events.Units{s.pick(propAgents): events.MustParseUnits(s.pick([]string{"0", "5", "20"}))}
	}
	if s.chance(30) {
		r.UpgradeURL = "https://example.com/upgrade"
	}
	if s.chance(40) {
		seen := map[string]bool{}
		for n := 1 + s.rng.IntN(3); n > 0; n-- {
			dim := s.pick(propDims)
			val := s.pick(propScopes[dim])
			if seen[dim+"="+val] {
				continue
			}
			seen[dim+"="+val] = true
			r.ScopeLimits = append(r.ScopeLimits, ledger.ScopeLimitRequest{Dimension: dim, Value: val,
				Limit: up(s.pick([]string{"0", "3", "10", "40"})), Period: s.pick([]string{"", "day", "none"})})
		}
	}
	if s.chance(25) {
		r.Overdraft = up(s.pick([]string{"0", "5", "30"}))
	}
	if s.chance(25) && r.Period != "none" {
		r.Rollover = ledger.Rollover(s.pick([]string{"all", "5", "none"}))
	}
	if s.chance(15) {
		r.MaxRuns = 1 + s.rng.IntN(4)
	}
	if s.chance(15) {
		r.MaxRunsPerAgent = 1 + s.rng.IntN(2)
	}
	return r
}

// genRetry resends an earlier keyed request, or sends a different request
// under its key.
func (s *propSim) genRetry() ledger.Command {
	if len(s.keyed) == 0 {
		return &ledger.StatusRequest{CustomerID: s.pick(propCustomers)}
	}
	old := s.keyed[len(s.keyed)-1-s.rng.IntN(min(len(s.keyed), 40))] // recent: mostly within the window
	if s.chance(70) {
		return old
	}
	key, cid := keyOf(old), old.Customer()
	switch s.rng.IntN(3) {
	case 0:
		r := s.genPreflight(cid)
		r.IdempotencyKey = key
		return r
	case 1:
		r := s.genRecord(cid)
		r.IdempotencyKey = key
		return r
	}
	return &ledger.TopUpRequest{CustomerID: cid, Units: up(s.pickPositive()), IdempotencyKey: key}
}

func (s *propSim) genClock() propAction {
	switch s.rng.IntN(50) {
	case 0, 1, 2, 3: // to just before midnight
		return propAction{to: time.Date(s.now.Year(), s.now.Month(), s.now.Day()+1, 0, 0, 0, 0, time.UTC).Add(-time.Second)}
	case 4: // to just before the month ends
		return propAction{to: time.Date(s.now.Year(), s.now.Month()+1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Second)}
	}
	return propAction{advance: propClockSteps[s.rng.IntN(len(propClockSteps))]}
}

// step runs one action on the live state, checking every invariant.
func (s *propSim) step(a propAction) propOutcome {
	s.t.Helper()
	switch {
	case a.cmd != nil:
		return s.decide(a.cmd)
	case a.sweep > 0:
		return s.sweep(a.sweep)
	case !a.to.IsZero():
		if a.to.After(s.now) {
			s.now = a.to
		}
	default:
		s.now = s.now.Add(a.advance)
	}
	return propOutcome{}
}

func (s *propSim) decide(cmd ledger.Command) propOutcome {
	t := s.t
	t.Helper()
	cid := cmd.Customer()
	expect, prior := s.expectIdem(cmd)
	applied := s.live.EventsApplied()
	before := statusJSON(t, s.live, cid, s.now)
	reply, evs, err := s.live.Decide(cmd, s.now)
	if err != nil {
		switch code := ledger.ErrorCode(err); {
		case code != ledger.CodeInvalidArgument && code != ledger.CodeNotFound && code != ledger.CodeConflict:
			t.Fatalf("Decide(%T %s): unexpected error %v", cmd, mustJSON(t, cmd), err)
		case expect == "conflict" && code != ledger.CodeConflict:
			t.Fatalf("key reused for a different request: error %v, want conflict", err)
		case expect == "duplicate":
			t.Fatalf("retry of %T %s refused: %v", cmd, mustJSON(t, cmd), err)
		}
		if len(evs) != 0 || s.live.EventsApplied() != applied {
			t.Fatalf("failed Decide emitted %d events, applied %d", len(evs), s.live.EventsApplied()-applied)
		}
		if after := statusJSON(t, s.live, cid, s.now); after != before {
			t.Fatalf("failed Decide(%T) changed the status:\n got %s\nwant %s", cmd, after, before)
		}
		return propOutcome{err: err.Error()}
	}
	switch expect {
	case "conflict":
		t.Fatalf("key reused for a different request %T %s: no conflict", cmd, mustJSON(t, cmd))
	case "duplicate":
		s.checkDuplicate(cmd, prior, reply, evs)
	}
	enc := s.checkEvents(cmd, evs)
	s.track(cmd, reply, evs)
	return propOutcome{reply: mustJSON(t, reply), events: enc}
}

func (s *propSim) sweep(max int) propOutcome {
	s.t.Helper()
	evs := s.live.Sweep(s.now, max)
	expired := 0
	for _, e := range evs {
		switch d := e.Data.(type) {
		case *events.Expired, *events.GrantExpired:
			expired++
		case *events.BudgetRestored:
			// An expiry that opens a new period restores an exhausted customer.
			if d.Trigger != events.TriggerNewPeriod {
				s.t.Fatalf("Sweep emitted budget_restored by %s", d.Trigger)
			}
		case *events.Granted:
			if d.Source != events.SourceRollover {
				s.t.Fatalf("Sweep granted %s from %s", d.Units, d.Source)
			}
		case *events.BudgetExhausted: // a grant expired and nothing is left
		default:
			s.t.Fatalf("Sweep emitted %s", e.Type)
		}
	}
	if expired > max || len(evs) > max*ledger.SweepEventsPerExpiryMax {
		s.t.Fatalf("Sweep(max %d) expired %d in %d events", max, expired, len(evs))
	}
	for _, e := range evs {
		if ex, ok := e.Data.(*events.Expired); ok && ex.ExpiresAt.After(s.now) {
			s.t.Fatalf("Sweep at %s expired a hold due at %s", s.now, ex.ExpiresAt)
		}
	}
	return propOutcome{events: s.checkEvents(nil, evs)}
}

// expectIdem says what the ledger must do with a keyed command: "" (decide
// it), "duplicate" (same request within the window) or "conflict".
func (s *propSim) expectIdem(cmd ledger.Command) (string, propKey) {
	s.t.Helper()
	key := keyOf(cmd)
	if key == "" {
		return "", propKey{}
	}
	k, ok := s.keys[cmd.Customer()+"\x00"+key]
	if !ok || k.at.Before(s.now.Add(-ledger.IdempotencyWindow)) {
		return "", propKey{} // never stored, or may have been forgotten
	}
	if k.req == reqString(s.t, cmd) {
		return "duplicate", k
	}
	return "conflict", k
}

func (s *propSim) checkDuplicate(cmd ledger.Command, k propKey, reply ledger.Reply, evs []*events.Envelope) {
	t := s.t
	t.Helper()
	if len(evs) != 0 {
		t.Fatalf("retry of %T appended %v", cmd, typesOf(evs))
	}
	got := canonJSON(t, mustJSON(t, reply))
	var want string
	switch reply.(type) {
	case *ledger.StatusReply:
		want = canonJSON(t, statusJSON(t, s.live, cmd.Customer(), s.now))
	case *ledger.RecordReply, *ledger.ReleaseReply:
		m := decodeJSON(t, k.reply).(map[string]any)
		m["status"] = ledger.StatusDuplicate
		want = canonJSON(t, mustJSON(t, m))
	default:
		want = canonJSON(t, k.reply)
	}
	if got != want {
		t.Fatalf("retry of %T %s replied\n got %s\nwant %s", cmd, mustJSON(t, cmd), got, want)
	}
}

// checkEvents checks the events of one step and appends them to the log,
// returning their encoding.
func (s *propSim) checkEvents(cmd ledger.Command, evs []*events.Envelope) string {
	t := s.t
	t.Helper()
	if len(evs) > ledger.EventsPerCommandMax {
		t.Fatalf("%d events from one command, more than %d", len(evs), ledger.EventsPerCommandMax)
	}
	var all strings.Builder
	for _, e := range evs {
		if e.V != events.Version || !e.At.Equal(s.now) || s.seen[e.ID] || e.ID == "" {
			t.Fatalf("event %s %s v%d at %s (now %s), seen before %v", e.ID, e.Type, e.V, e.At, s.now, s.seen[e.ID])
		}
		if cmd != nil && e.CustomerID != cmd.Customer() {
			t.Fatalf("%s event for %q from a command for %q", e.Type, e.CustomerID, cmd.Customer())
		}
		s.seen[e.ID] = true
		checkBalance(t, e)
		if r, ok := e.Data.(*events.Reserved); ok {
			s.checkApproval(cmd.(*ledger.PreflightRequest), e.CustomerID, r)
		}
		s.checkGrants(e)
		s.count(e)
		b, err := events.Encode(e)
		if err != nil {
			t.Fatalf("Encode(%s): %v", e.Type, err)
		}
		s.log = append(s.log, b)
		all.Write(b)
		all.WriteByte('\n')
	}
	s.checkCustomers()
	return all.String()
}

// checkBalance checks the balance an event carries.
func checkBalance(t *testing.T, e *events.Envelope) {
	t.Helper()
	b := events.BalanceOf(e.Data)
	for name, u := range map[string]events.Units{"limit": b.Limit, "top_ups": b.TopUps, "used": b.Used,
		"reserved": b.Reserved, "remaining": b.Remaining} {
		if u.Sign() < 0 {
			t.Fatalf("%s event %s has negative %s %s", e.Type, e.ID, name, u)
		}
	}
	left := b.Limit.Sub(b.Used.Sub(b.GrantsUsed)).Add(b.Grants).Sub(b.Reserved)
	if b.Remaining.Cmp(left.NonNegative()) != 0 {
		t.Fatalf("%s event %s: remaining %s, want %s (limit %s used %s grants_used %s grants %s reserved %s)",
			e.Type, e.ID, b.Remaining, left.NonNegative(), b.Limit, b.Used, b.GrantsUsed, b.Grants, b.Reserved)
	}
	if b.Overdraft.Sign() > 0 && b.Remaining.Sub(b.Overdrawn).Cmp(left) != 0 {
		t.Fatalf("%s event %s: overdrawn %s, but remaining is %s", e.Type, e.ID, b.Overdrawn, left)
	}
	if b.Overdraft.IsZero() && !b.Overdrawn.IsZero() {
		t.Fatalf("%s event %s: overdrawn %s without an overdraft", e.Type, e.ID, b.Overdrawn)
	}
}

// checkGrants checks an event against the model of the customer's grants,
// then applies it there: a charge draws the allowance first, then usable
// grants strictly in draw-down order, never an expired or future grant,
// never more than a grant has; an expiry comes at or after its time and
// forfeits exactly what was left.
func (s *propSim) checkGrants(e *events.Envelope) {
	t := s.t
	t.Helper()
	gs := s.grants[e.CustomerID]
	switch d := e.Data.(type) {
	case *events.Granted:
		g := &propGrant{id: d.GrantID, remaining: d.Units, priority: d.Priority, effective: d.EffectiveAt,
			expires: d.ExpiresAt, seq: len(s.seen)}
		s.grants[e.CustomerID] = append(gs, g)
	case *events.GrantExpired:
		i := slices.IndexFunc(gs, func(g *propGrant) bool { return g.id == d.GrantID })
		if i < 0 || gs[i].expires.IsZero() || s.now.Before(gs[i].expires) || gs[i].remaining.Cmp(d.Remaining) != 0 {
			t.Fatalf("grant_expired %s at %s with %s left does not match the model %+v", d.GrantID, s.now, d.Remaining, gs)
		}
		s.grants[e.CustomerID] = slices.Delete(gs, i, i+1)
	case *events.Recorded:
		s.checkDraw(e.CustomerID, d)
	}
}

func (s *propSim) checkDraw(cid string, d *events.Recorded) {
	t := s.t
	t.Helper()
	gs := slices.Clone(s.grants[cid])
	slices.SortStableFunc(gs, func(a, b *propGrant) int {
		if propDrawsBefore(a, b) {
			return -1
		}
		if propDrawsBefore(b, a) {
			return 1
		}
		return 0
	})
	funded := events.Zero
	for _, f := range d.FundedBy {
		funded = funded.Add(f.Units)
	}
	b := d.Balance
	allowance := b.Limit.Sub(b.Used.Sub(b.GrantsUsed)) // after the charge
	if funded.Sign() > 0 && allowance.Sign() > 0 {
		t.Fatalf("grants funded %s of a charge while the allowance still has %s", funded, allowance)
	}
	// The allowance's part went past what it had: the grants must be spent.
	part := d.Units.Sub(funded)
	overflow := part.Cmp(allowance.Add(part).NonNegative()) > 0
	k := 0 // next funded draw to match
	for _, g := range gs {
		if !g.usable(s.now) || g.remaining.Sign() == 0 {
			continue
		}
		if k < len(d.FundedBy) && d.FundedBy[k].GrantID == g.id {
			f := d.FundedBy[k]
			if f.Units.Sign() <= 0 || f.Units.Cmp(g.remaining) > 0 {
				t.Fatalf("grant %s with %s left funded %s", g.id, g.remaining, f.Units)
			}
			g.remaining = g.remaining.Sub(f.Units)
			k++
			if g.remaining.Sign() > 0 && k < len(d.FundedBy) {
				t.Fatalf("grant %s funded part of a charge, yet a later grant funded the rest: %+v", g.id, d.FundedBy)
			}
			continue
		}
		if k < len(d.FundedBy) {
			t.Fatalf("grant %s was skipped for a later one in draw-down order: %+v", g.id, d.FundedBy)
		}
		if overflow {
			t.Fatalf("usage went past the allowance while grant %s had %s left", g.id, g.remaining)
		}
	}
	if k != len(d.FundedBy) {
		t.Fatalf("charge drew %+v, not all of them open and usable grants at %s", d.FundedBy, s.now)
	}
	live := s.grants[cid][:0]
	for _, g := range s.grants[cid] {
		if g.remaining.Sign() > 0 {
			live = append(live, g)
		}
	}
	s.grants[cid] = live
}

// checkApproval asserts that an approval fits every scope as it stands
// right after the hold: used + reserved within limit + top-ups, the agent
// within its limit, the task within its ceiling, the units within the call's
// ceiling.
func (s *propSim) checkApproval(req *ledger.PreflightRequest, cid string, r *events.Reserved) {
	t := s.t
	t.Helper()
	b := r.Balance
	if b.Remaining.Sub(b.Overdrawn).Add(b.Overdraft).Sign() < 0 {
		t.Fatalf("approval of %s went past the overdraft %s: %+v", r.Units, b.Overdraft, b)
	}
	switch est := *req.EstimatedUnits; {
	case r.Units.Cmp(est) > 0 || r.Units.Sign() <= 0:
		t.Fatalf("approval of %s for an estimate of %s", r.Units, est)
	case r.Units.Cmp(est) < 0 && (req.MinUnits == nil || r.Units.Cmp(*req.MinUnits) < 0 || r.Requested.Cmp(est) != 0):
		t.Fatalf("partial approval of %s (requested %s) for an estimate of %s, min_units %v", r.Units, r.Requested, est, req.MinUnits)
	}
	st, err := s.live.Status(cid, s.now)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range st.Scopes {
		if slices.Contains(r.CountedScopes, events.ScopeRef{Dimension: sc.Dimension, Value: sc.Value}) &&
			sc.Used.Add(sc.Reserved).Cmp(sc.Limit) > 0 {
			t.Fatalf("approval of %s took scope %s=%s to used %s + reserved %s past its limit %s",
				r.Units, sc.Dimension, sc.Value, sc.Used, sc.Reserved, sc.Limit)
		}
	}
	for dim, val := range req.Scope {
		ref := events.ScopeRef{Dimension: dim, Value: val}
		if _, ok := s.live.Customer(cid).Scopes[ref]; ok != slices.Contains(r.CountedScopes, ref) {
			t.Fatalf("approval counted %+v, but %s=%s limited is %v", r.CountedScopes, dim, val, ok)
		}
	}
	if req.Ceiling != nil && r.Units.Cmp(*req.Ceiling) > 0 {
		t.Fatalf("approval of %s above the call's ceiling %s", r.Units, req.Ceiling)
	}
	c := s.live.Customer(cid)
	if l, ok := c.AgentLimits[r.AgentID]; ok {
		a := c.Agent(r.AgentID)
		if a.Used.Add(a.Reserved).Cmp(l) > 0 {
			t.Fatalf("approval of %s took agent %s to used %s + reserved %s past its limit %s",
				r.Units, r.AgentID, a.Used, a.Reserved, l)
		}
	}
	if r.TaskRef != "" {
		tk := c.Tasks[r.TaskRef]
		if tk == nil {
			t.Fatalf("approval for task %s left no task", r.TaskRef)
		}
		if tk.Ceiling != nil && tk.Used.Add(tk.Reserved).Cmp(*tk.Ceiling) > 0 {
			t.Fatalf("approval of %s took task %s to used %s + reserved %s past its ceiling %s",
				r.Units, r.TaskRef, tk.Used, tk.Reserved, tk.Ceiling)
		}
	}
}

// checkCustomers asserts every customer's invariants: nothing negative,
// reserved equal to the sum of open holds and of the agents' holds.
func (s *propSim) checkCustomers() {
	t := s.t
	t.Helper()
	s.live.CustomerIDs(func(cid string) {
		c := s.live.Customer(cid)
		if c.Used.Sign() < 0 || c.Reserved.Sign() < 0 || c.TopUps.Sign() < 0 {
			t.Fatalf("customer %s: used %s reserved %s top-ups %s", cid, c.Used, c.Reserved, c.TopUps)
		}
		open, agents := events.Zero, events.Zero
		for _, r := range c.Open {
			open = open.Add(r.Units)
		}
		for id, a := range c.Agents() {
			if a.Used.Sign() < 0 || a.Reserved.Sign() < 0 {
				t.Fatalf("customer %s agent %s: used %s reserved %s", cid, id, a.Used, a.Reserved)
			}
			agents = agents.Add(a.Reserved)
		}
		if open.Cmp(c.Reserved) != 0 || agents.Cmp(c.Reserved) != 0 {
			t.Fatalf("customer %s: reserved %s, open holds sum to %s, agents' holds to %s", cid, c.Reserved, open, agents)
		}
	})
}

// track remembers reservations and keyed requests for later steps.
func (s *propSim) track(cmd ledger.Command, reply ledger.Reply, evs []*events.Envelope) {
	s.t.Helper()
	for _, e := range evs {
		if r, ok := e.Data.(*events.Reserved); ok {
			s.res = append(s.res, propRes{id: r.ReservationID, cid: e.CustomerID, agent: r.AgentID})
		}
	}
	key := keyOf(cmd)
	if key == "" {
		return
	}
	s.keyed = append(s.keyed, cmd)
	for _, e := range evs {
		if requestOf(e.Data).IdempotencyKey == key {
			s.keys[cmd.Customer()+"\x00"+key] = propKey{req: reqString(s.t, cmd), reply: mustJSON(s.t, reply), at: s.now}
		}
	}
}

// snapshot records every customer's status, checking its arithmetic.
func (s *propSim) snapshot() {
	t := s.t
	t.Helper()
	snap := propSnap{events: len(s.log), now: s.now, status: make(map[string]string, len(propCustomers))}
	for _, cid := range propCustomers {
		if s.live.Customer(cid) == nil {
			snap.status[cid] = "absent"
			continue
		}
		st, err := s.live.Status(cid, s.now)
		if err != nil {
			t.Fatalf("Status(%s): %v", cid, err)
		}
		left := st.Limit.Add(st.TopUps).Sub(st.Used.Sub(st.GrantsUsed)).Add(st.GrantsRemaining).Sub(st.Reserved)
		od := events.Zero
		if st.Overdraft != nil {
			od = *st.Overdraft
		}
		shown := left
		if od.IsZero() {
			shown = left.NonNegative()
		}
		if st.Used.Sign() < 0 || st.Reserved.Sign() < 0 || st.Remaining.Cmp(shown) != 0 ||
			st.Exhausted != (left.Add(od).Sign() <= 0) || st.OpenReservations != len(s.live.Customer(cid).Open) {
			t.Fatalf("status of %s is inconsistent: %s", cid, mustJSON(t, st))
		}
		snap.status[cid] = mustJSON(t, st)
	}
	s.snaps = append(s.snaps, snap)
}

// checkReplayedPrefixes replays the log up to a few random steps, and to the
// end, comparing each customer's status with the live one at that step.
func (s *propSim) checkReplayedPrefixes() {
	t := s.t
	t.Helper()
	points := []int{len(s.snaps) - 1}
	for i := 0; i < propPrefixes; i++ {
		points = append(points, s.rng.IntN(len(s.snaps)))
	}
	for _, p := range points {
		snap := s.snaps[p]
		r := replay(t, s.log[:snap.events])
		if got, want := r.EventsApplied(), uint64(snap.events); got != want {
			t.Errorf("replay applied %d events, want %d", got, want)
		}
		for _, cid := range propCustomers {
			if got, want := statusJSON(t, r, cid, snap.now), snap.status[cid]; got != want {
				t.Errorf("after step %d (%d events), replayed status of %q differs:\n got %s\nwant %s",
					p, snap.events, cid, got, want)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// checkTwin replays the whole log into a new state and lets it decide the
// next steps alongside the live state: replies, events and errors must be
// identical, which covers state Status does not show (idempotency keys,
// closed reservations, task ceilings, fired alerts, deadlines).
func (s *propSim) checkTwin() {
	t := s.t
	t.Helper()
	twin := replay(t, s.log)
	s.decideAlongside(twin, propTwinSteps, s.snapshot)
	for _, cid := range propCustomers {
		if got, want := statusJSON(t, twin, cid, s.now), statusJSON(t, s.live, cid, s.now); got != want {
			t.Errorf("twin status of %q differs:\n got %s\nwant %s", cid, got, want)
		}
	}
}

// decideAlongside lets twin decide the next steps alongside the live
// state, with the same configuration and IDs: replies, events and errors
// must be identical. each, if not nil, runs after every step.
func (s *propSim) decideAlongside(twin *ledger.State, steps int, each func()) {
	t := s.t
	t.Helper()
	twin.Default = s.live.Default
	twinIDs := &counter{n: s.ids.n}
	twin.NewID = twinIDs.next
	for i := 0; i < steps; i++ {
		a := s.gen()
		var want propOutcome
		switch {
		case a.cmd != nil:
			reply, evs, err := twin.Decide(a.cmd, s.now)
			want = outcomeOf(t, reply, evs, err)
		case a.sweep > 0:
			want = outcomeOf(t, nil, twin.Sweep(s.now, a.sweep), nil)
		}
		got := s.step(a)
		if got != want {
			t.Fatalf("twin step %d (%T %s) differs:\nlive %+v\ntwin %+v", i, a.cmd, mustJSON(t, a.cmd), got, want)
		}
		if each != nil {
			each()
		}
	}
}

func outcomeOf(t *testing.T, reply ledger.Reply, evs []*events.Envelope, err error) propOutcome {
	t.Helper()
	if err != nil {
		return propOutcome{err: err.Error()}
	}
	var all strings.Builder
	for _, b := range encodeAll(t, evs) {
		all.Write(b)
		all.WriteByte('\n')
	}
	o := propOutcome{events: all.String()}
	if reply != nil {
		o.reply = mustJSON(t, reply)
	}
	return o
}

func keyOf(cmd ledger.Command) string {
	switch c := cmd.(type) {
	case *ledger.PreflightRequest:
		return c.IdempotencyKey
	case *ledger.RecordRequest:
		return c.IdempotencyKey
	case *ledger.ReleaseRequest:
		return c.IdempotencyKey
	case *ledger.ExtendRequest:
		return c.IdempotencyKey
	case *ledger.BudgetRequest:
		return c.IdempotencyKey
	case *ledger.TopUpRequest:
		return c.IdempotencyKey
	case *ledger.GrantRequest:
		return c.IdempotencyKey
	}
	return ""
}

// requestOf returns the request an event answered, if any.
func requestOf(d events.Data) events.Request {
	switch e := d.(type) {
	case *events.BudgetSet:
		return e.Request
	case *events.ToppedUp:
		return e.Request
	case *events.Reserved:
		return e.Request
	case *events.Denied:
		return e.Request
	case *events.Recorded:
		return e.Request
	case *events.Released:
		return e.Request
	case *events.Extended:
		return e.Request
	case *events.Granted:
		return e.Request
	}
	return events.Request{}
}

func reqString(t *testing.T, cmd ledger.Command) string {
	t.Helper()
	return string(cmd.Op()) + "\n" + mustJSON(t, cmd)
}

// decodeJSON decodes any JSON, numbers kept as their text (never float64).
func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("json.Decode(%s): %v", s, err)
	}
	return v
}

// canonJSON re-encodes JSON with sorted keys, so field order does not matter.
func canonJSON(t *testing.T, s string) string {
	t.Helper()
	return mustJSON(t, decodeJSON(t, s))
}

// A record that names a hold that expired or was released is charged once
// (the usage happened); the hold then counts as settled, so repeating the
// record is a conflict, never a second charge.
func TestLateRecordChargesOnce(t *testing.T) {
	for _, closeHow := range []string{"expired", "released"} {
		t.Run(closeHow, func(t *testing.T) {
			f := newFixture(t)
			f.budget("c1", "100", "month")
			id := f.reserve("c1", "a", "10", "1m")
			if closeHow == "expired" {
				f.now = f.now.Add(2 * time.Minute)
				if evs := f.sweep(10); len(evs) != 1 {
					t.Fatalf("sweep expired %d holds, want 1", len(evs))
				}
			} else {
				f.ok(&ledger.ReleaseRequest{CustomerID: "c1", ReservationID: id})
			}
			rec, _ := f.record(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("4"), ReservationID: id})
			checkUnits(t, "charged", rec.ChargedUnits, "4")
			f.fail(&ledger.RecordRequest{CustomerID: "c1", AgentID: "a", Units: up("4"), ReservationID: id}, ledger.CodeConflict)
			checkUnits(t, "used", f.status("c1").Used, "4")
			f.checkReplay()
		})
	}
}

// types lists the types of evs, in order.
func types(evs []*events.Envelope) []events.Type {
	out := make([]events.Type, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// budget_restored follows whatever gives an exhausted customer budget
// again (a top-up, a raised limit, a new period) and nothing else: not a
// restated limit, not a top-up of a customer who was never exhausted, not
// a top-up too small to leave anything.
func TestBudgetRestored(t *testing.T) {
	exhaust := func(f *fixture) {
		t.Helper()
		f.budget("c1", "10", "month")
		f.reserve("c1", "a", "10", "1h")
		if !f.status("c1").Exhausted {
			t.Fatal("not exhausted")
		}
	}
	// restoredAfter: exactly one budget_restored, right after the event
	// that restored the budget (not first).
	restoredAfter := func(t *testing.T, evs []*events.Envelope, trigger string) {
		t.Helper()
		at := -1
		for i, e := range evs {
			if e.Type == events.TypeBudgetRestored {
				if at >= 0 {
					t.Fatalf("events %v: budget_restored twice", types(evs))
				}
				at = i
			}
		}
		if at < 1 || evs[at].Data.(*events.BudgetRestored).Trigger != trigger {
			t.Fatalf("events %v, want budget_restored (%s) after the event that restored", types(evs), trigger)
		}
		if b := events.BalanceOf(evs[at].Data); b.Remaining.Sign() <= 0 {
			t.Errorf("budget_restored with remaining %s", b.Remaining)
		}
	}
	t.Run("top-up", func(t *testing.T) {
		f := newFixture(t)
		exhaust(f)
		_, evs := f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("5")})
		restoredAfter(t, evs, events.TriggerToppedUp)
		if _, evs = f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("5")}); len(evs) != 1 {
			t.Errorf("a second top-up: %v, want topped_up alone", types(evs))
		}
	})
	t.Run("raised limit", func(t *testing.T) {
		f := newFixture(t)
		exhaust(f)
		_, evs := f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("10"), Period: "month"})
		if len(evs) != 1 {
			t.Errorf("restating the limit: %v, want budget_set alone", types(evs))
		}
		_, evs = f.ok(&ledger.BudgetRequest{CustomerID: "c1", Limit: up("20"), Period: "month"})
		restoredAfter(t, evs, events.TriggerBudgetSet)
	})
	t.Run("new period", func(t *testing.T) {
		f := newFixture(t)
		exhaust(f)
		f.now = f.now.AddDate(0, 1, 0)
		_, evs := f.preflight(&ledger.PreflightRequest{CustomerID: "c1", AgentID: "a", EstimatedUnits: up("1")})
		restoredAfter(t, evs, events.TriggerNewPeriod) // [expired (the old hold), budget_restored, reserved]
	})
	t.Run("not enough", func(t *testing.T) {
		f := newFixture(t)
		exhaust(f)
		f.budget("c1", "5", "month") // 10 held of 5: deeper in
		if _, evs := f.ok(&ledger.TopUpRequest{CustomerID: "c1", Units: up("1")}); len(evs) != 1 {
			t.Errorf("a top-up that leaves nothing: %v, want topped_up alone", types(evs))
		}
	})
}
