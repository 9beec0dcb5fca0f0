// Package retry runs an operation again after it fails: it waits a growing,
// jittered delay between attempts, within a bound on the attempts and a
// bound on the time they span. It is the one retry loop of AgentBill: the
// client's calls to the writer, and the writer's and the follower's way
// back to the stream after NATS went away, all wait through it.
//
// The wait before attempt n+1 is drawn uniformly from [d/2, d], where
// d = min(First·2^(n-1), Max) ("equal jitter"): callers that failed
// together (every client of a writer that just died) spread out instead of
// retrying in lockstep, and no wait is shorter than half its step, so the
// attempts still span a predictable time.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy bounds one run of retries. Every field but Retryable, Rand and
// Clock is required: a policy without bounds is refused (Validate).
type Policy struct {
	// Attempts is the most attempts, the first included.
	Attempts int
	// Elapsed bounds the time from the first attempt's start to the start
	// of the last: no attempt starts later, and no wait is begun that
	// would end past it.
	Elapsed time.Duration
	// First and Max bound each wait (before jitter): the first is First,
	// each next one doubles, up to Max.
	First, Max time.Duration
	// Retryable reports whether a failure is worth another attempt; nil
	// means every failure is.
	Retryable func(error) bool
	// Rand returns a number in [0, 1) for the jitter; nil is math/rand/v2.
	// Tests pass a fixed sequence.
	Rand func() float64
	// Clock reads the time and waits; nil is the real clock.
	Clock Clock
}

// Clock is the time a policy reads and waits on, so tests control it.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, and returns ctx.Err() if it ended.
	Sleep(ctx context.Context, d time.Duration) error
}

// ErrNoBound is returned by Validate for a policy missing a bound.
var ErrNoBound = errors.New("retry: a policy needs Attempts >= 1, Elapsed > 0 and 0 < First <= Max")

// Validate reports a policy that lacks a bound.
func (p *Policy) Validate() error {
	if p.Attempts < 1 || p.Elapsed <= 0 || p.First <= 0 || p.Max < p.First {
		return ErrNoBound
	}
	return nil
}

// Do calls op until it succeeds, fails with an error Retryable refuses, or
// a bound is reached, and returns op's last error (nil on success). If ctx
// ends during a wait, it returns ctx's error joined with op's last. op is
// given ctx; it bounds its own attempt.
func Do(ctx context.Context, p Policy, op func(context.Context) error) error {
	b, err := New(p)
	if err != nil {
		return err
	}
	for {
		err := op(ctx)
		if err == nil || (p.Retryable != nil && !p.Retryable(err)) {
			return err
		}
		if werr := b.Wait(ctx, err); werr != nil {
			return werr
		}
	}
}

// Backoff is the state of one run of retries under a Policy, for a loop
// that must do more between attempts than Do allows (log, or Reset after
// progress). It is not safe for concurrent use.
type Backoff struct {
	p       Policy
	attempt int       // attempts made so far
	start   time.Time // the first attempt's start
}

// New starts a run of retries: the first attempt starts now.
func New(p Policy) (*Backoff, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	if p.Clock == nil {
		p.Clock = realClock{}
	}
	b := &Backoff{p: p}
	b.Reset()
	return b, nil
}

// Reset starts the count again, as if the next attempt were the first:
// for a loop whose attempt made progress before it failed (a follower
// that applied events), so one long-past outage does not use up the
// bounds of the next.
func (b *Backoff) Reset() {
	b.attempt = 1
	b.start = b.p.Clock.Now()
}

// Next returns the wait before the next attempt, and false when a bound
// says there is none (the attempt that failed was the last).
func (b *Backoff) Next() (time.Duration, bool) {
	if b.attempt >= b.p.Attempts {
		return 0, false
	}
	wait := Delay(b.p.First, b.p.Max, b.attempt, b.p.Rand())
	if b.p.Clock.Now().Add(wait).Sub(b.start) > b.p.Elapsed {
		return 0, false
	}
	return wait, true
}

// Wait waits before the next attempt after a failure, last. It returns
// nil when the next attempt may start, last when a bound is reached, and
// ctx's error joined with last when ctx ends first.
func (b *Backoff) Wait(ctx context.Context, last error) error {
	wait, ok := b.Next()
	if !ok {
		return last
	}
	if err := b.p.Clock.Sleep(ctx, wait); err != nil {
		return errors.Join(err, last)
	}
	b.attempt++
	return nil
}

// Attempt returns the number of the attempt about to run or running (1
// for the first).
func (b *Backoff) Attempt() int { return b.attempt }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Delay is the wait after the attempt-th failure in a row (1 is the
// first): first * 2^(attempt-1), capped at max, then jittered to a point
// in [step/2, step) by r, a uniform draw from [0, 1). For callers that
// keep the count elsewhere (a webhook's redelivery count lives in its
// consumer); Backoff uses it for its waits.
func Delay(first, max time.Duration, attempt int, r float64) time.Duration {
	d := first
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + time.Duration(r*float64(d-d/2))
}
