package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// fakeClock advances only when slept on, and records every wait.
type fakeClock struct {
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	return nil
}

// constRand always returns v.
func constRand(v float64) func() float64 { return func() float64 { return v } }

var errDown = errors.New("down")

func policy(c *fakeClock, r func() float64) Policy {
	return Policy{Attempts: 6, Elapsed: time.Hour, First: 10 * time.Millisecond, Max: 80 * time.Millisecond, Rand: r, Clock: c}
}

// failing returns an op that fails n times, then succeeds, counting calls.
func failing(n int, calls *int) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= n {
			return errDown
		}
		return nil
	}
}

func TestWaitsDoubleUpToMax(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		name string
		rand float64
		want []time.Duration
	}{
		{"jitter at its low end: half of each step", 0, []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 40 * ms}},
		{"jitter at its high end: the whole step", 1, []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 80 * ms}},
		{"jitter in the middle", 0.5, []time.Duration{7500 * time.Microsecond, 15 * ms, 30 * ms, 60 * ms, 60 * ms}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{now: time.Unix(0, 0)}
			calls := 0
			err := Do(context.Background(), policy(c, constRand(tt.rand)), failing(100, &calls))
			if !errors.Is(err, errDown) {
				t.Fatalf("got %v, want the last error", err)
			}
			want := tt.want
			if !slices.Equal(c.waits, want) {
				t.Fatalf("waits %v, want %v", c.waits, want)
			}
			if calls != 6 {
				t.Fatalf("%d attempts, want 6 (Attempts)", calls)
			}
		})
	}
}

func TestJitterSpreadsWaits(t *testing.T) {
	// Many callers failing at once: with jitter their first waits differ,
	// and every wait stays within [step/2, step].
	r := rand.New(rand.NewPCG(1, 2))
	const callers = 200
	step := 10 * time.Millisecond
	seen := map[time.Duration]bool{}
	var lo, hi time.Duration = time.Hour, 0
	for range callers {
		c := &fakeClock{now: time.Unix(0, 0)}
		calls := 0
		_ = Do(context.Background(), policy(c, r.Float64), failing(1, &calls))
		w := c.waits[0]
		seen[w] = true
		lo, hi = min(lo, w), max(hi, w)
		if w < step/2 || w > step {
			t.Fatalf("wait %s outside [%s, %s]", w, step/2, step)
		}
	}
	if len(seen) < callers/2 {
		t.Fatalf("only %d distinct waits among %d callers: jitter does not spread them", len(seen), callers)
	}
	if hi-lo < step/4 {
		t.Fatalf("waits span only %s..%s", lo, hi)
	}
}

func TestElapsedBoundsTheRun(t *testing.T) {
	c := &fakeClock{now: time.Unix(0, 0)}
	p := policy(c, constRand(1))
	p.Attempts = 1000
	p.Elapsed = 100 * time.Millisecond
	calls := 0
	start := c.now
	err := Do(context.Background(), p, failing(1000, &calls))
	if !errors.Is(err, errDown) {
		t.Fatalf("got %v, want the last error", err)
	}
	// Waits 10, 20, 40 (70 ms); the next, 80, would end past 100 ms.
	if got := c.now.Sub(start); got > p.Elapsed {
		t.Fatalf("the attempts span %s, more than Elapsed %s", got, p.Elapsed)
	}
	if calls != 4 {
		t.Fatalf("%d attempts, want 4", calls)
	}
}

func TestStopsAtSuccessAndPermanentErrors(t *testing.T) {
	c := &fakeClock{now: time.Unix(0, 0)}
	calls := 0
	if err := Do(context.Background(), policy(c, constRand(0)), failing(2, &calls)); err != nil || calls != 3 {
		t.Fatalf("got %v after %d calls, want nil after 3", err, calls)
	}
	permanent := errors.New("permanent")
	p := policy(c, constRand(0))
	p.Retryable = func(err error) bool { return !errors.Is(err, permanent) }
	calls = 0
	err := Do(context.Background(), p, func(context.Context) error { calls++; return permanent })
	if !errors.Is(err, permanent) || calls != 1 {
		t.Fatalf("got %v after %d calls, want the permanent error after 1", err, calls)
	}
}

func TestContextEndsTheWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &fakeClock{now: time.Unix(0, 0)}
	calls := 0
	err := Do(ctx, policy(c, constRand(0)), func(context.Context) error {
		calls++
		cancel()
		return errDown
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errDown) || calls != 1 {
		t.Fatalf("got %v after %d calls, want canceled joined with the last error after 1", err, calls)
	}
}

func TestResetStartsTheCountAgain(t *testing.T) {
	c := &fakeClock{now: time.Unix(0, 0)}
	p := policy(c, constRand(1))
	p.Attempts = 3
	b, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := b.Wait(context.Background(), errDown); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	if err := b.Wait(context.Background(), errDown); !errors.Is(err, errDown) {
		t.Fatalf("third wait: got %v, want the bound reached", err)
	}
	b.Reset()
	if err := b.Wait(context.Background(), errDown); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
	if got, want := c.waits, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 10 * time.Millisecond}; !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v (the first step again after Reset)", got, want)
	}
}

func TestPolicyWithoutBoundsIsRefused(t *testing.T) {
	for _, p := range []Policy{
		{Elapsed: time.Second, First: time.Millisecond, Max: time.Second},
		{Attempts: 3, First: time.Millisecond, Max: time.Second},
		{Attempts: 3, Elapsed: time.Second, Max: time.Second},
		{Attempts: 3, Elapsed: time.Second, First: time.Second, Max: time.Millisecond},
	} {
		calls := 0
		if err := Do(context.Background(), p, failing(0, &calls)); !errors.Is(err, ErrNoBound) || calls != 0 {
			t.Errorf("%+v: got %v after %d calls, want ErrNoBound before any", p, err, calls)
		}
	}
}
