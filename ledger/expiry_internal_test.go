package ledger

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
)

// A replay never sweeps, so the expiry heap must not keep an entry for
// every hold the log opened: it stays within twice the open holds, and
// the first Sweep after the replay expires exactly the open holds past
// their deadline, in deadline then ID order, as the writer that decided
// the log does.
func TestExpiryHeapAfterAReplay(t *testing.T) {
	live := expiryTestState()
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	est, used := events.NewUnits(10, 0), events.NewUnits(7, 0)
	ttls := []string{"1m", "5m", "15m", "1h"}
	var log []*events.Envelope
	decide := func(r Command) Reply {
		t.Helper()
		reply, evs, err := live.Decide(r, now)
		if err != nil {
			t.Fatal(err)
		}
		log = append(log, evs...)
		return reply
	}
	const holds = 20_000
	for i := range holds {
		now = now.Add(time.Duration(rng.IntN(3)) * time.Second) // some deadlines tie
		cid := fmt.Sprintf("cust-%d", i%500)
		id := decide(&PreflightRequest{CustomerID: cid, AgentID: "a", EstimatedUnits: &est, TTL: ttls[rng.IntN(len(ttls))]}).(*PreflightReply).ReservationID
		switch k := rng.IntN(20); {
		case k < 15: // most holds settle
			decide(&RecordRequest{CustomerID: cid, AgentID: "a", Units: &used, ReservationID: id})
		case k < 16:
			decide(&ReleaseRequest{CustomerID: cid, ReservationID: id})
		case k < 18: // extended: its first entry goes stale
			decide(&ExtendRequest{CustomerID: cid, ReservationID: id, TTL: ttls[rng.IntN(len(ttls))]})
		}
	}
	replayed := NewState()
	replayed.Default, replayed.NewID = live.Default, live.NewID
	for _, e := range log {
		replayed.Apply(e)
	}
	open := len(replayed.reservations)
	if open == 0 || open == holds {
		t.Fatalf("%d holds open of %d: the test needs some of each", open, holds)
	}
	if got, bound := len(replayed.expiries), 2*open+expiryCompactMin; got > bound {
		t.Fatalf("after the replay the expiry heap holds %d entries for %d open holds (at most %d)", got, open, bound)
	}

	// What the first Sweep must expire: every open hold due by then, by
	// deadline then ID.
	sweepAt := now.Add(20 * time.Minute)
	var want []string
	byDeadline := make([]*Reservation, 0, open)
	for _, r := range replayed.reservations {
		byDeadline = append(byDeadline, r)
	}
	slices.SortFunc(byDeadline, func(a, b *Reservation) int {
		if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for _, r := range byDeadline {
		if !r.ExpiresAt.After(sweepAt) {
			want = append(want, r.ID)
		}
	}
	if len(want) == 0 || len(want) == open {
		t.Fatalf("%d of %d open holds due: the test needs some of each", len(want), open)
	}
	for name, s := range map[string]*State{"the writer's state": live, "the replayed state": replayed} {
		var got []string
		for len(got) < len(want)+1 {
			evs := s.Sweep(sweepAt, 64)
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if x, ok := e.Data.(*events.Expired); ok {
					got = append(got, x.ReservationID)
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: Sweep expired %d holds, want %d (first difference at %d)", name, len(got), len(want), firstDiff(got, want))
		}
	}
}

// expiryTestState is an empty state with a default budget (10^12 units a
// month) and numbered event IDs, for the tests and benchmarks here.
func expiryTestState() *State {
	s := NewState()
	n := 0
	s.NewID = func() string { n++; return fmt.Sprintf("01900000-0000-7000-8000-%012d", n) }
	s.Default = &DefaultBudget{Limit: events.NewUnits(1, 12), Period: PeriodMonth}
	return s
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// expiryBenchHolds is how many settled holds BenchmarkFirstSweepAfterReplay
// replays.
const expiryBenchHolds = 300_000

// BenchmarkFirstSweepAfterReplay replays expiryBenchHolds holds, each
// settled, then times the first Sweep, which a writer runs on its loop
// soon after it starts serving.
func BenchmarkFirstSweepAfterReplay(b *testing.B) {
	live := expiryTestState()
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	est, used := events.NewUnits(10, 0), events.NewUnits(7, 0)
	var log []*events.Envelope
	for i := range expiryBenchHolds {
		cid := fmt.Sprintf("cust-%d", i%100_000)
		r, evs, err := live.Decide(&PreflightRequest{CustomerID: cid, AgentID: "a", EstimatedUnits: &est}, now)
		if err != nil {
			b.Fatal(err)
		}
		_, evs2, err := live.Decide(&RecordRequest{CustomerID: cid, AgentID: "a", Units: &used,
			ReservationID: r.(*PreflightReply).ReservationID}, now)
		if err != nil {
			b.Fatal(err)
		}
		log = append(append(log, evs...), evs2...)
	}
	var entries int
	var sweep time.Duration
	for b.Loop() {
		b.StopTimer()
		s := NewState()
		s.Default, s.NewID = live.Default, live.NewID
		for _, e := range log {
			s.Apply(e)
		}
		entries = len(s.expiries)
		b.StartTimer()
		start := time.Now()
		if evs := s.Sweep(now.Add(time.Hour), 64); len(evs) != 0 {
			b.Fatalf("the first Sweep expired %d holds, want none (all settled)", len(evs))
		}
		sweep += time.Since(start)
	}
	b.ReportMetric(float64(entries), "heap-entries")
	b.ReportMetric(float64(sweep.Microseconds())/1000/float64(b.N), "first-sweep-ms")
}

// BenchmarkCompactExpiries times one compaction of the expiry heap with
// expiryBenchOpen holds open and as many settled: the pause it adds to the
// writer's loop, once per that many new holds.
func BenchmarkCompactExpiries(b *testing.B) {
	const expiryBenchOpen = 100_000
	s := expiryTestState()
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	est, used := events.NewUnits(10, 0), events.NewUnits(7, 0)
	hold := func(i int) string {
		r, _, err := s.Decide(&PreflightRequest{CustomerID: fmt.Sprintf("cust-%d", i%10_000), AgentID: "a", EstimatedUnits: &est}, now)
		if err != nil {
			b.Fatal(err)
		}
		return r.(*PreflightReply).ReservationID
	}
	for i := range expiryBenchOpen {
		hold(i)
	}
	var settled []expiryItem
	for i := range expiryBenchOpen {
		id := hold(i)
		if _, _, err := s.Decide(&RecordRequest{CustomerID: fmt.Sprintf("cust-%d", i%10_000), AgentID: "a", Units: &used, ReservationID: id}, now); err != nil {
			b.Fatal(err)
		}
		settled = append(settled, expiryItem{at: now, id: id})
	}
	full := slices.Clone(s.expiries)
	full = append(full, settled[:max(0, 2*expiryBenchOpen-len(full))]...) // as just before a compaction
	for b.Loop() {
		b.StopTimer()
		s.expiries = append(s.expiries[:0], full...)
		b.StartTimer()
		s.compactExpiries()
	}
	if len(s.expiries) != expiryBenchOpen {
		b.Fatalf("%d entries after compaction, want the %d open holds", len(s.expiries), expiryBenchOpen)
	}
	b.ReportMetric(float64(len(full)), "entries-before")
}
