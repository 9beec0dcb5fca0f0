package ledger_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/prices"
)

func benchState(b *testing.B, customers int) *ledger.State {
	b.Helper()
	s := ledger.NewState()
	n := 0
	s.NewID = func() string { n++; return "01900000-0000-7000-8000-" + fmt.Sprintf("%012d", n) }
	s.Default = &ledger.DefaultBudget{Limit: events.NewUnits(1, 15), Period: ledger.PeriodMonth}
	return s
}

// BenchmarkDecidePreflightRecord is the writer's hot path for one agent
// run: decide a preflight, then the record that settles it (events applied,
// replies built), spread over 10,000 customers.
func BenchmarkDecidePreflightRecord(b *testing.B) {
	s := benchState(b, 10_000)
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	est, used := events.NewUnits(10, 0), events.NewUnits(7, 0)
	custs := make([]string, 10_000)
	for i := range custs {
		custs[i] = "cust-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		cid := custs[i%len(custs)]
		key := strconv.Itoa(i)
		r, _, err := s.Decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "research_agent", EstimatedUnits: &est, IdempotencyKey: "p" + key}, now)
		if err != nil {
			b.Fatal(err)
		}
		pf := r.(*ledger.PreflightReply)
		if _, _, err := s.Decide(&ledger.RecordRequest{CustomerID: cid, AgentID: "research_agent", Units: &used, ReservationID: pf.ReservationID, IdempotencyKey: "r" + key}, now); err != nil {
			b.Fatal(err)
		}
	}
}

// scopedState is benchState with n customers whose budgets use the
// rules of credit grants and scope limits: an allowance of 100 (spent in
// the first cycles, so records draw from grants), two grants, a limit on
// each of three teams, on one user and on one project (three dimensions),
// an overdraft and a run cap.
func scopedState(b *testing.B, n int, now time.Time) (*ledger.State, []string) {
	b.Helper()
	s := benchState(b, n)
	u := func(v string) *events.Units { x := events.MustParseUnits(v); return &x }
	req := ledger.BudgetRequest{Limit: u("100"), Period: "month", Overdraft: u("100"), MaxRuns: 1000}
	for _, team := range []string{"research", "support", "sales"} {
		req.ScopeLimits = append(req.ScopeLimits, ledger.ScopeLimitRequest{Dimension: "team", Value: team, Limit: u("1000000"), Period: "month"})
	}
	req.ScopeLimits = append(req.ScopeLimits, ledger.ScopeLimitRequest{Dimension: "user", Value: "alice", Limit: u("1000000"), Period: "month"},
		ledger.ScopeLimitRequest{Dimension: "project", Value: "alpha", Limit: u("1000000"), Period: "week"})
	custs := make([]string, n)
	for i := range custs {
		custs[i] = "cust-" + strconv.Itoa(i)
		req.CustomerID = custs[i]
		if _, _, err := s.Decide(&req, now); err != nil {
			b.Fatal(err)
		}
		for _, prio := range []int{50, 100} {
			if _, _, err := s.Decide(&ledger.GrantRequest{CustomerID: custs[i], Units: u("1000000"), Priority: &prio}, now); err != nil {
				b.Fatal(err)
			}
		}
	}
	return s, custs
}

// BenchmarkDecidePreflightRecordScoped is BenchmarkDecidePreflightRecord
// over customers with scope limits, grants, an overdraft and a run cap
// (scopedState), each preflight naming a team and the limited user.
func BenchmarkDecidePreflightRecordScoped(b *testing.B) {
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	s, custs := scopedState(b, 10_000, now)
	est, used := events.NewUnits(10, 0), events.NewUnits(7, 0)
	scopes := []map[string]string{{"team": "research", "user": "alice", "project": "alpha"},
		{"team": "support", "user": "alice", "project": "alpha"}, {"team": "sales", "user": "alice", "project": "alpha"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		cid := custs[i%len(custs)]
		key := strconv.Itoa(i)
		r, _, err := s.Decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "research_agent", EstimatedUnits: &est,
			Scope: scopes[i%len(scopes)], IdempotencyKey: "p" + key}, now)
		if err != nil {
			b.Fatal(err)
		}
		pf := r.(*ledger.PreflightReply)
		if !pf.Approved {
			b.Fatalf("refused: %s", pf.Message)
		}
		if _, _, err := s.Decide(&ledger.RecordRequest{CustomerID: cid, AgentID: "research_agent", Units: &used, ReservationID: pf.ReservationID, IdempotencyKey: "r" + key}, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScopedCustomerHeap reports the heap one customer of
// scopedState costs, idle, with 100,000 loaded (its requests' idempotency
// entries are counted too, as a writer holds them for the window).
func BenchmarkScopedCustomerHeap(b *testing.B) {
	const customers = 100_000
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, _ := scopedState(b, customers, now)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/customers, "heap-bytes/customer")
		runtime.KeepAlive(s)
	}
}

// BenchmarkApply is replay's per-event cost once decoded.
func BenchmarkApply(b *testing.B) {
	s := benchState(b, 1000)
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	est, used := events.NewUnits(10, 0), events.NewUnits(7, 0)
	var log []*events.Envelope
	for i := range 20_000 {
		cid := "cust-" + strconv.Itoa(i%1000)
		r, evs, _ := s.Decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "a", EstimatedUnits: &est, IdempotencyKey: "p" + strconv.Itoa(i)}, now)
		log = append(log, evs...)
		_, evs, _ = s.Decide(&ledger.RecordRequest{CustomerID: cid, AgentID: "a", Units: &used, ReservationID: r.(*ledger.PreflightReply).ReservationID}, now)
		log = append(log, evs...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var r *ledger.State
	for i := 0; b.Loop(); i++ {
		if i%len(log) == 0 {
			r = ledger.NewState()
		}
		r.Apply(log[i%len(log)])
	}
}

// BenchmarkIdleCustomerHeap reports the heap one idle customer costs (a
// budget and nothing else), with 1,000,000 customers loaded.
func BenchmarkIdleCustomerHeap(b *testing.B) {
	const customers = 1_000_000
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	limit := events.NewUnits(1000, 0)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := ledger.NewState()
		for i := range customers {
			s.Apply(&events.Envelope{ID: "x", Type: events.TypeBudgetSet, V: 1, At: now, CustomerID: "customer-" + strconv.Itoa(i),
				Data: &events.BudgetSet{Limit: limit, Period: "month", Source: "default", Balance: events.Balance{PeriodStart: now}}})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/customers, "heap-bytes/customer")
		runtime.KeepAlive(s)
	}
}

// BenchmarkDecidePreflightDuplicate is a retried preflight: the key is
// remembered, so Decide checks the request against it and rebuilds the
// first reply (10,000 keys over 1,000 customers).
func BenchmarkDecidePreflightDuplicate(b *testing.B) {
	s := benchState(b, 1000)
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	est := events.NewUnits(10, 0)
	reqs := make([]*ledger.PreflightRequest, 10_000)
	for i := range reqs {
		reqs[i] = &ledger.PreflightRequest{CustomerID: "cust-" + strconv.Itoa(i%1000), AgentID: "research_agent",
			EstimatedUnits: &est, IdempotencyKey: "p" + strconv.Itoa(i)}
		if _, _, err := s.Decide(reqs[i], now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_, evs, err := s.Decide(reqs[i%len(reqs)], now)
		if err != nil || len(evs) != 0 {
			b.Fatalf("retry: %d events, err %v; want a duplicate", len(evs), err)
		}
	}
}

// BenchmarkDecidePreflightRecordPriced is BenchmarkDecidePreflightRecord
// with a usage estimate and a usage report priced from the starter list
// (prices/starter.json, ~1,200 models): what pricing adds to a decision.
func BenchmarkDecidePreflightRecordPriced(b *testing.B) {
	s := benchState(b, 10_000)
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	body, err := os.ReadFile(filepath.Join("..", "prices", "starter.json"))
	if err != nil {
		b.Fatal(err)
	}
	l, err := prices.Parse(body)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := s.SetPrices(l, now); err != nil {
		b.Fatal(err)
	}
	model := l.Models[0].ID
	in, maxOut, out, cached := int64(1200), int64(400), int64(380), int64(200)
	est := &prices.Estimate{Model: model, InputTokens: &in, MaxOutputTokens: &maxOut}
	usage := &events.Usage{Model: model, InputTokens: &in, OutputTokens: &out, CacheReadTokens: &cached}
	custs := make([]string, 10_000)
	for i := range custs {
		custs[i] = "cust-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		cid := custs[i%len(custs)]
		key := strconv.Itoa(i)
		r, _, err := s.Decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "research_agent", UsageEstimate: est, IdempotencyKey: "p" + key}, now)
		if err != nil {
			b.Fatal(err)
		}
		pf := r.(*ledger.PreflightReply)
		if _, _, err := s.Decide(&ledger.RecordRequest{CustomerID: cid, AgentID: "research_agent", Usage: usage, ReservationID: pf.ReservationID, IdempotencyKey: "r" + key}, now); err != nil {
			b.Fatal(err)
		}
	}
}
