package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram buckets latencies with about 1.5% relative precision
// (64 sub-buckets per power of two) from 1 ns to about 1 hour, in fixed
// memory, so a long run never grows it.
type Histogram struct {
	counts [histExponents * histSub]uint64
	n      uint64
	max    time.Duration
}

const (
	histSubBits   = 6
	histSub       = 1 << histSubBits
	histExponents = 42 // 2^42 ns is about 73 minutes
)

func histIndex(d time.Duration) int {
	v := uint64(max(d, 1))
	exp := bits.Len64(v) - 1
	if exp < histSubBits {
		return int(v)
	}
	sub := (v >> (exp - histSubBits)) & (histSub - 1)
	i := (exp-histSubBits+1)*histSub + int(sub)
	return min(i, len(Histogram{}.counts)-1)
}

func histValue(i int) time.Duration {
	if i < histSub {
		return time.Duration(i)
	}
	exp := i/histSub + histSubBits - 1
	sub := uint64(i % histSub)
	return time.Duration((histSub + sub) << (exp - histSubBits))
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	h.counts[histIndex(d)]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

// Merge adds o's counts into h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of latencies recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the latency at quantile q (0..1).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want && c > 0 {
			return min(histValue(i), h.max)
		}
	}
	return h.max
}
