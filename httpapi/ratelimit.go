package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/internal/ratelimit"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
)

// Each API key's requests pass a token bucket (Config.KeyRateLimit) right
// after the key is authenticated, before anything else is done with them:
// past it the answer is 429 rate_limited with Retry-After, at once
// (docs/PROTOCOL.md, "HTTP mapping").
const (
	// KeyRatePerSecondDefault and KeyRateBurstDefault are serve's default
	// per-key limit: twice the writer's per-customer preflight default
	// (projections.RatePerSecondDefault), since one key carries records
	// as well as preflights, and often for many customers. A deployment
	// that sends more through one key raises it (0: no limit).
	KeyRatePerSecondDefault = 2000
	KeyRateBurstDefault     = 4000
	// RateLimitKeysMax bounds the keys' buckets tracked (internal/ratelimit:
	// a bucket full again is forgotten when room is needed).
	RateLimitKeysMax = 10_000
)

// keyRateLimited is a request refused by its key's rate limit.
type keyRateLimited struct {
	keyID string
	wait  time.Duration
}

func (e *keyRateLimited) Error() string {
	return fmt.Sprintf("API key %s is sending requests faster than its rate limit; retry in %d ms",
		truncate(e.keyID, 64), ratelimit.RetryAfterMs(e.wait))
}

// limitKey takes a token of k's bucket, or returns *keyRateLimited.
func (s *Server) limitKey(k *keys.Key) error {
	if ok, wait := s.keyLimits.Allow(k.ID, time.Now()); !ok {
		return &keyRateLimited{keyID: k.ID, wait: wait}
	}
	return nil
}

// writeFailure writes err as the gateway does; a key's rate limit also
// gets Retry-After, in whole seconds rounded up (at least 1).
func writeFailure(w http.ResponseWriter, err error) {
	var rl *keyRateLimited
	if errors.As(err, &rl) {
		secs := max(int64((rl.wait+time.Second-1)/time.Second), 1)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeError(w, ledger.Errorf(ledger.CodeRateLimited, "%s", rl.Error()))
		return
	}
	writeError(w, toError(err))
}
