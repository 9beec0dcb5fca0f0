package ledger

import "github.com/agentbill/agentbill/events"

// Bounds of a rate limit (a budget's rate_limit, serve's default). The
// writer enforces it before deciding (projections/ratelimit.go); the
// ledger only validates and keeps it with the budget.
const (
	// RatePerSecondMax is above what one writer decides (about 8,000
	// preflight and record pairs a second on the benchmark machine,
	// BENCHMARKS.md), so no real rate is refused as too high.
	RatePerSecondMax = 100_000
	// RatePerSecondMinExponent: the slowest rate is 10^-3 a second (one
	// preflight every 1,000 s), which keeps a token's interval in int64
	// nanoseconds with any burst.
	RatePerSecondMinExponent = -3
	// RateBurstMax bounds a burst: the preflights one customer may send at
	// once after a pause.
	RateBurstMax = 100_000
)

var (
	ratePerSecondMax = events.NewUnits(RatePerSecondMax, 0)
	ratePerSecondMin = events.NewUnits(1, RatePerSecondMinExponent)
)

// ValidateRateLimit checks a rate limit: per_second 0 (no limit, burst 0)
// or from 0.001 to RatePerSecondMax with a burst of 1 to RateBurstMax.
func ValidateRateLimit(r *events.RateLimit) error {
	if r == nil {
		return nil
	}
	if err := r.PerSecond.CheckRequestBound(); err != nil {
		return invalid("rate_limit per_second: %v", err)
	}
	if r.PerSecond.IsZero() {
		if r.Burst != 0 {
			return invalid("rate_limit burst %d with per_second 0 (no limit): leave burst out", r.Burst)
		}
		return nil
	}
	var errs []error
	if r.PerSecond.Cmp(ratePerSecondMin) < 0 || r.PerSecond.Cmp(ratePerSecondMax) > 0 {
		errs = append(errs, invalid("rate_limit per_second %s is outside %s..%s (or 0: no limit)",
			r.PerSecond, ratePerSecondMin, ratePerSecondMax))
	}
	if r.Burst < 1 || r.Burst > RateBurstMax {
		errs = append(errs, invalid("rate_limit burst %d is outside 1..%d", r.Burst, RateBurstMax))
	}
	return firstErr(errs...)
}
