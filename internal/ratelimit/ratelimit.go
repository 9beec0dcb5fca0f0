// Package ratelimit is the token bucket both of AgentBill's rate limits
// use: the writer's per customer (projections/ratelimit.go) and the HTTP
// gateway's per API key (httpapi/ratelimit.go). It keeps one time per key
// (the generic cell rate algorithm), in a table of bounded size, and
// reads no clock: callers pass the time in, so tests control it.
package ratelimit

import (
	"sync"
	"time"

	"github.com/agentbill/agentbill/events"
)

// ScanInterval bounds how often a full table is scanned for buckets to
// forget, so a table of refilling buckets costs one scan of its keys
// (about a millisecond for 100,000) per interval, not one per request.
const ScanInterval = time.Second

// bucket is one rate: a request is admitted while now >= TAT - slack (the
// key's theoretical arrival time of its next request), and moves TAT on
// by one interval.
type bucket struct {
	interval time.Duration // 0: no limit
	slack    time.Duration // interval * (burst - 1)
}

func bucketOf(r events.RateLimit) bucket {
	iv := r.Interval()
	if iv == 0 {
		return bucket{}
	}
	return bucket{interval: iv, slack: iv * time.Duration(r.Burst-1)}
}

// Limiter holds every key's bucket. It is safe for concurrent use.
type Limiter struct {
	mu       sync.Mutex
	fallback bucket            // the rate of keys without their own
	rates    map[string]bucket // keys with their own rate
	tat      map[string]int64  // unix ns; absent: a full bucket
	keysMax  int
	scanAt   int64 // unix ns: no scan of a full table before it
	// untracked counts requests admitted without a bucket (table full).
	untracked uint64
}

// New returns a limiter with fallback as every key's rate (the zero
// RateLimit: none) that tracks at most keysMax buckets. A bucket that
// has filled up again is forgotten when room is needed (a new bucket is
// full, so nothing is lost); with every bucket still refilling, a new
// key passes untracked until one fills.
func New(fallback events.RateLimit, keysMax int) *Limiter {
	return &Limiter{fallback: bucketOf(fallback), rates: map[string]bucket{}, tat: map[string]int64{}, keysMax: keysMax}
}

// Allow takes a token of key's bucket at now, or reports how long until
// one is there.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, own := l.rates[key]
	if !own {
		b = l.fallback
	}
	if b.interval == 0 {
		return true, 0
	}
	t := now.UnixNano()
	tat, held := l.tat[key]
	if !held {
		if len(l.tat) >= l.keysMax && !l.makeRoom(t) {
			l.untracked++
			return true, 0
		}
		tat = t
	}
	if wait := time.Duration(tat - int64(b.slack) - t); wait > 0 {
		return false, wait
	}
	l.tat[key] = max(tat, t) + int64(b.interval)
	return true, 0
}

// makeRoom forgets the buckets that are full again at t, at most once per
// ScanInterval, and reports whether there is room.
func (l *Limiter) makeRoom(t int64) bool {
	if t >= l.scanAt {
		l.scanAt = t + int64(ScanInterval)
		for k, tat := range l.tat {
			if tat <= t {
				delete(l.tat, k)
			}
		}
	}
	return len(l.tat) < l.keysMax
}

// SetRate gives key its own rate (nil: the fallback). Its bucket keeps
// its place in time: the new rate applies from the next token.
func (l *Limiter) SetRate(key string, r *events.RateLimit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r == nil {
		delete(l.rates, key)
		return
	}
	l.rates[key] = bucketOf(*r)
}

// Reset replaces every key's own rate.
func (l *Limiter) Reset(rates map[string]events.RateLimit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rates = make(map[string]bucket, len(rates))
	for k, r := range rates {
		l.rates[k] = bucketOf(r)
	}
}

// Tracked and Untracked report the buckets held and the requests admitted
// without one because the table was full.
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tat)
}

// Untracked: see Tracked.
func (l *Limiter) Untracked() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.untracked
}

// RetryAfterMs is wait in whole milliseconds, rounded up, at least 1.
func RetryAfterMs(wait time.Duration) int64 {
	return max(int64((wait+time.Millisecond-1)/time.Millisecond), 1)
}
