package events

import (
	"time"

	"github.com/cockroachdb/apd/v3"
)

// RateLimit is how fast a customer's preflights may arrive: PerSecond on
// average, up to Burst at once (a token bucket). It is not a ledger
// decision: the writer refuses past it before deciding (docs/PROTOCOL.md,
// "Rate limits"). A zero PerSecond is no limit.
type RateLimit struct {
	PerSecond Units `json:"per_second"`
	Burst     int   `json:"burst"`
}

// NewRateLimit returns a limit of a whole number of requests a second.
func NewRateLimit(perSecond int64, burst int) RateLimit {
	return RateLimit{PerSecond: NewUnits(perSecond, 0), Burst: burst}
}

// Unlimited reports whether r limits nothing.
func (r RateLimit) Unlimited() bool { return r.PerSecond.IsZero() || r.Burst <= 0 }

// Interval is the time one token takes to come back, 1 s / PerSecond,
// rounded down to the nanosecond (at least 1 ns); 0 for no limit. Rates
// are bounded where they enter (ledger.ValidateRateLimit), so it is
// between a microsecond and a thousand seconds.
func (r RateLimit) Interval() time.Duration {
	if r.Unlimited() {
		return 0
	}
	c := apd.BaseContext.WithPrecision(unitsPrecision)
	c.Rounding = apd.RoundDown
	var q apd.Decimal
	_, _ = c.Quo(&q, apd.New(int64(time.Second), 0), &r.PerSecond.d)
	var i apd.Decimal
	_, _ = c.RoundToIntegralValue(&i, &q)
	ns, err := i.Int64()
	if err != nil || ns < 1 {
		return 1
	}
	return time.Duration(ns)
}
