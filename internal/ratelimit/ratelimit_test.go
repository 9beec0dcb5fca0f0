package ratelimit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/ratelimit"
)

var rlT0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// keysMax is the tests' table bound.
const keysMax = 1000

func rate(perSecond string, burst int) events.RateLimit {
	return events.RateLimit{PerSecond: events.MustParseUnits(perSecond), Burst: burst}
}

// A bucket of 10 a second with a burst of 3: three at once, then one each
// 100 ms; a refusal says how long until the next token, to the
// nanosecond, and takes none.
func TestLimiterBurstThenRate(t *testing.T) {
	l := ratelimit.New(rate("10", 3), keysMax)
	steps := []struct {
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{0, true, 0}, {0, true, 0}, {0, true, 0},
		{0, false, 100 * time.Millisecond},
		{40 * time.Millisecond, false, 60 * time.Millisecond},
		{100 * time.Millisecond, true, 0},
		{100 * time.Millisecond, false, 100 * time.Millisecond},
		{time.Second, true, 0}, {time.Second, true, 0}, {time.Second, true, 0}, // refilled to the burst, not past it
		{time.Second, false, 100 * time.Millisecond},
	}
	for i, s := range steps {
		ok, wait := l.Allow("c", rlT0.Add(s.at))
		if ok != s.ok || wait != s.wait {
			t.Errorf("step %d at +%s: got (%v, %s), want (%v, %s)", i, s.at, ok, wait, s.ok, s.wait)
		}
	}
	if ok, _ := l.Allow("other", rlT0); !ok {
		t.Error("another customer was refused: buckets are per customer")
	}
}

// A budget's own rate replaces the default for its customer only; per
// second 0 lifts the limit; a reset (after a rebuild) forgets rates no
// budget has any more.
func TestLimiterBudgetRates(t *testing.T) {
	l := ratelimit.New(rate("1", 1), keysMax)
	own := rate("1000", 5)
	l.SetRate("fast", &own)
	l.SetRate("free", &events.RateLimit{})
	for i := range 5 {
		if ok, _ := l.Allow("fast", rlT0); !ok {
			t.Fatalf("fast: request %d of its burst of 5 refused", i+1)
		}
	}
	if ok, wait := l.Allow("fast", rlT0); ok || wait != time.Millisecond {
		t.Errorf("fast: 6th got (%v, %s), want refused for 1ms", ok, wait)
	}
	for i := range 1000 {
		if ok, _ := l.Allow("free", rlT0); !ok {
			t.Fatalf("free: request %d refused; per_second 0 is no limit", i+1)
		}
	}
	if ok, _ := l.Allow("slow", rlT0); !ok {
		t.Fatal("slow: first refused")
	}
	if ok, wait := l.Allow("slow", rlT0); ok || wait != time.Second {
		t.Errorf("slow (the default): second got (%v, %s), want refused for 1s", ok, wait)
	}
	l.Reset(nil)
	l.Allow("fast", rlT0.Add(time.Hour))
	if ok, _ := l.Allow("fast", rlT0.Add(time.Hour)); ok {
		t.Error("after a reset without its budget's rate, fast still had a burst of 5")
	}
}

// The table of buckets is bounded: at its keysMax, the full
// buckets are forgotten to make room; if none is full, a new customer
// passes untracked, and the table is scanned again only after
// ScanInterval.
func TestLimiterTableBounded(t *testing.T) {
	l := ratelimit.New(rate("1", 1), keysMax)
	for i := range keysMax {
		l.Allow(fmt.Sprint("c", i), rlT0)
	}
	if ok, _ := l.Allow("new", rlT0); !ok {
		t.Fatal("a new customer with the table full of refilling buckets was refused; want passed untracked")
	}
	if l.Untracked() != 1 || l.Tracked() != keysMax {
		t.Fatalf("untracked %d, table %d; want 1 and %d", l.Untracked(), l.Tracked(), keysMax)
	}
	// Every bucket is full again a second later, but the next scan is due
	// only at ScanInterval after the last.
	at := rlT0.Add(ratelimit.ScanInterval)
	if ok, _ := l.Allow("newer", at); !ok || l.Tracked() != 1 {
		t.Fatalf("at the next scan: allowed %v, table %d; want true and 1 (the full buckets forgotten)", ok, l.Tracked())
	}
	if ok, _ := l.Allow("newer", at); ok {
		t.Error("newer's second preflight at once was allowed; want its bucket tracked")
	}
}

func TestRateIntervals(t *testing.T) {
	for _, c := range []struct {
		rate string
		want time.Duration
	}{
		{"0", 0}, {"1", time.Second}, {"2.5", 400 * time.Millisecond}, {"3", 333_333_333},
		{"0.001", 1000 * time.Second}, {"100000", 10 * time.Microsecond},
	} {
		if got := rate(c.rate, 1).Interval(); got != c.want {
			t.Errorf("%s a second: interval %s, want %s", c.rate, got, c.want)
		}
	}
}

func TestRetryAfterMsRoundsUp(t *testing.T) {
	for _, c := range []struct {
		wait time.Duration
		want int64
	}{{0, 1}, {time.Nanosecond, 1}, {time.Millisecond, 1}, {time.Millisecond + 1, 2}, {1500 * time.Millisecond, 1500}} {
		if got := ratelimit.RetryAfterMs(c.wait); got != c.want {
			t.Errorf("RetryAfterMs(%s) = %d, want %d", c.wait, got, c.want)
		}
	}
}

// BenchmarkAllow is one admission: its cost beside the clock read that
// the writer's receive makes anyway (a request's arrival time).
func BenchmarkAllow(b *testing.B) {
	l := ratelimit.New(rate("1000000", 1000), keysMax)
	keys := make([]string, keysMax)
	for i := range keys {
		keys[i] = fmt.Sprint("customer-", i)
	}
	b.Run("allow", func(b *testing.B) {
		now := rlT0
		for i := 0; i < b.N; i++ {
			l.Allow(keys[i%keysMax], now)
			now = now.Add(time.Microsecond)
		}
	})
	b.Run("time.Now", func(b *testing.B) {
		var t time.Time
		for i := 0; i < b.N; i++ {
			t = time.Now()
		}
		_ = t
	})
}
