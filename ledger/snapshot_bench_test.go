package ledger_test

import (
	"bytes"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// snapBenchCustomers is the customer count BenchmarkSnapshot measures.
const snapBenchCustomers = 1_000_000

// BenchmarkSnapshot measures writing and reading a snapshot of 1,000,000
// customers, for three states:
//   - idle: each customer has a budget and nothing else (1M events);
//   - used: each also made one keyed preflight and one keyed record (an
//     agent with usage), spread over 10 days of event time, so the windows
//     hold the last day's: 200k keys, 100k closed reservations (3M events);
//   - active: the same all within one day: 2M remembered keys, 1M closed
//     reservations, the worst case per event.
//
// Each read starts once the process has given its free memory back to the
// kernel, so that the state it builds faults in every page, as a
// restarted process's does.
//
// Run: go test -run '^$' -bench Snapshot -benchtime 3x ./ledger
func BenchmarkSnapshot(b *testing.B) {
	for _, sc := range []struct {
		name string
		span time.Duration // event time the decisions span; 0: no decisions
	}{{"idle", 0}, {"used", 240 * time.Hour}, {"active", time.Hour}} {
		b.Run(sc.name, func(b *testing.B) {
			s := snapBenchState(b, snapBenchCustomers, sc.span)
			var buf bytes.Buffer
			if err := s.WriteSnapshot(&buf, snapMeta); err != nil {
				b.Fatal(err)
			}
			size := buf.Len()
			b.Run("write", func(b *testing.B) {
				for b.Loop() {
					buf.Reset()
					if err := s.WriteSnapshot(&buf, snapMeta); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(size), "bytes")
				b.ReportMetric(float64(size)/snapBenchCustomers, "bytes/customer")
			})
			wantEvents, wantCustomers := s.EventsApplied(), s.Customers()
			s = nil // reading starts from a heap without the original, as a restart does (each read collects first)
			b.Run("read", func(b *testing.B) {
				var r *ledger.State
				for b.Loop() {
					r = nil
					// On pages the process gave back to the kernel, as a new
					// process's heap is: each one faulted in again.
					b.StopTimer()
					debug.FreeOSMemory()
					b.StartTimer()
					var err error
					if r, _, err = ledger.ReadSnapshot(bytes.NewReader(buf.Bytes())); err != nil {
						b.Fatal(err)
					}
				}
				if r.EventsApplied() != wantEvents || r.Customers() != wantCustomers {
					b.Fatalf("restored %d events %d customers, want %d %d", r.EventsApplied(), r.Customers(), wantEvents, wantCustomers)
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(r)
				r = nil
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-heap")
			})
		})
	}
}

// snapBenchState builds a state of n customers with a month budget; with
// a span, each customer also preflights and records with idempotency keys,
// the clock advancing evenly over the span.
func snapBenchState(b *testing.B, n int, span time.Duration) *ledger.State {
	b.Helper()
	s := ledger.NewState()
	ids := 0
	s.NewID = func() string { ids++; return fmt.Sprintf("01900000-0000-7000-8000-%012d", ids) }
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	limit := events.NewUnits(1000, 0)
	est, used := events.NewUnits(10, 0), events.NewUnits(7, 0)
	for i := range n {
		cid := "customer-" + strconv.Itoa(i)
		if span == 0 {
			s.Apply(&events.Envelope{ID: s.NewID(), Type: events.TypeBudgetSet, V: events.Version, At: now, CustomerID: cid,
				Data: &events.BudgetSet{Limit: limit, Period: "month", Source: "default", Balance: events.Balance{PeriodStart: now}}})
			continue
		}
		s.Default = &ledger.DefaultBudget{Limit: limit, Period: ledger.PeriodMonth}
		key := strconv.Itoa(i)
		r, _, err := s.Decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "research_agent", EstimatedUnits: &est,
			IdempotencyKey: "p" + key}, now)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Decide(&ledger.RecordRequest{CustomerID: cid, AgentID: "research_agent", Units: &used,
			ReservationID: r.(*ledger.PreflightReply).ReservationID, IdempotencyKey: "r" + key}, now); err != nil {
			b.Fatal(err)
		}
		now = now.Add(span / time.Duration(n))
	}
	return s
}
