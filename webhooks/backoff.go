package webhooks

import (
	"errors"
	"fmt"
	"time"

	"github.com/agentbill/agentbill/internal/retry"
)

// The retry schedule's defaults and bounds (serve --webhook-backoff-min,
// --webhook-backoff-max, --webhook-retry-max-age).
const (
	// BackoffMinDefault is the wait after the first failed attempt; each
	// further failure doubles it.
	BackoffMinDefault = time.Second
	// BackoffMaxDefault caps the wait: past about 12 failures, a
	// receiver that stays down is tried once an hour.
	BackoffMaxDefault = time.Hour
	// RetryMaxAgeDefault is how long an endpoint keeps failing before it
	// is parked (Standard Webhooks' common 24 hours).
	RetryMaxAgeDefault = 24 * time.Hour
	// BackoffMinFloor bounds the first wait from below, so a broken
	// receiver cannot make the leader spin.
	BackoffMinFloor = 10 * time.Millisecond
	// RetryMaxAgeMax bounds the retry window: it must end well before the
	// alert stream (30 days by default) drops the events waiting.
	RetryMaxAgeMax = 7 * 24 * time.Hour
)

// Schedule is the retry schedule of failed deliveries: exponential from
// Min, capped at Max, with jitter; an endpoint failing for longer than
// MaxAge is parked.
type Schedule struct {
	Min, Max, MaxAge time.Duration
}

// DefaultSchedule is the production schedule.
func DefaultSchedule() Schedule {
	return Schedule{Min: BackoffMinDefault, Max: BackoffMaxDefault, MaxAge: RetryMaxAgeDefault}
}

// Validate reports every problem at once.
func (s Schedule) Validate() error {
	var errs []error
	if s.Min < BackoffMinFloor {
		errs = append(errs, fmt.Errorf("--webhook-backoff-min %s: at least %s", s.Min, BackoffMinFloor))
	}
	if s.Max < s.Min {
		errs = append(errs, fmt.Errorf("--webhook-backoff-max %s: at least --webhook-backoff-min (%s)", s.Max, s.Min))
	}
	if s.MaxAge < s.Min || s.MaxAge > RetryMaxAgeMax {
		errs = append(errs, fmt.Errorf("--webhook-retry-max-age %s: use %s to %s", s.MaxAge, s.Min, RetryMaxAgeMax))
	}
	return errors.Join(errs...)
}

// Delay is the wait after the attempt-th failure in a row (1 is the
// first): Min * 2^(attempt-1), capped at Max, then scaled by a factor in
// [1/2, 1) from rnd (a uniform [0, 1) source) so that endpoints failing
// together do not retry together, and never below half the step.
func (s Schedule) Delay(attempt int, rnd func() float64) time.Duration {
	return retry.Delay(s.Min, s.Max, attempt, rnd())
}
