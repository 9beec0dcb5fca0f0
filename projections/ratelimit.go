package projections

import (
	"fmt"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/ratelimit"
	"github.com/agentbill/agentbill/ledger"
)

// Rate limits: each customer's preflights pass a token bucket (a budget's
// rate_limit, else Config.RateLimit) before anything else is done with
// them, so a customer sending faster than its rate costs the writer a
// subject parse and a short reply, and appends nothing (docs/PROTOCOL.md,
// "Rate limits"). Only preflights are limited: a record settles units
// already held (refusing it would lose usage), a release gives units
// back, and an extend keeps a running hold alive.
const (
	// RateLimitCustomersMax bounds the buckets tracked (internal/ratelimit:
	// a bucket full again is forgotten when room is needed; with every
	// bucket still refilling, a new customer passes untracked until one
	// fills, the table scanned at most once a ratelimit.ScanInterval).
	RateLimitCustomersMax = 100_000
	// RatePerSecondDefault and RateBurstDefault are serve's default rate
	// limit. An agent's preflight comes before a model or tool call of
	// 100 ms or more, so 1,000 a second is a hundred or more of one
	// customer's agents running at once, and a burst of 2,000 lets that
	// many start together: ordinary traffic never meets it. One customer
	// at the limit (1,000 preflight and record pairs a second) takes
	// about an eighth to a quarter of what the writer decides on the
	// benchmark machine (BENCHMARKS.md, "A flood" and "What we tried").
	RatePerSecondDefault = 1000
	RateBurstDefault     = 2000
)

// RateLimitDefault is serve's default rate limit.
func RateLimitDefault() events.RateLimit {
	return events.NewRateLimit(RatePerSecondDefault, RateBurstDefault)
}

// rateLimited is the refusal of a preflight past its customer's rate.
// remaining_units is 0: the writer refused without reading the balance.
func rateLimited(customer string, wait time.Duration) *ledger.PreflightReply {
	ms := ratelimit.RetryAfterMs(wait)
	return &ledger.PreflightReply{Reason: ledger.ReasonRateLimited, RetryAfterMs: ms,
		Message: fmt.Sprintf("customer %s is sending preflights faster than its rate limit; retry in %d ms", truncate(customer, 64), ms)}
}
