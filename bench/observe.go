package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// writerObserver splits a ledger scenario's latency: how long each commit
// waited for its ack (the append and its fsync) and how long each request
// spent in the writer, from its arrival on the writer's connection to its
// answer. What a client sees beyond the second is the network and the
// client itself (and, open loop, the wait for a late call before it). It
// records only between start and stop, so the other scenarios pay one
// atomic load per answer.
type writerObserver struct {
	on       atomic.Bool
	mu       sync.Mutex
	ackWait  Histogram
	inWriter Histogram
}

var _ projections.Observer = (*writerObserver)(nil)

// Answered implements projections.Observer.
func (o *writerObserver) Answered(_ events.Op, _ ledger.Reply, _ error, took time.Duration) {
	if !o.on.Load() {
		return
	}
	o.mu.Lock()
	o.inWriter.Record(took)
	o.mu.Unlock()
}

// Committed implements projections.Observer.
func (o *writerObserver) Committed(_, _ int, took time.Duration) {
	if !o.on.Load() {
		return
	}
	o.mu.Lock()
	o.ackWait.Record(took)
	o.mu.Unlock()
}

// IntegrityViolation implements projections.Observer.
func (o *writerObserver) IntegrityViolation(string) {}

func (o *writerObserver) start() {
	o.mu.Lock()
	o.ackWait, o.inWriter = Histogram{}, Histogram{}
	o.mu.Unlock()
	o.on.Store(true)
}

// stop ends the recording and describes it.
func (o *writerObserver) stop() string {
	o.on.Store(false)
	o.mu.Lock()
	defer o.mu.Unlock()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return fmt.Sprintf("commit ack wait p50 %.2f ms, p99 %.2f ms, max %.1f ms; time in the writer p50 %.2f ms, p99 %.2f ms, max %.1f ms",
		ms(o.ackWait.Quantile(0.5)), ms(o.ackWait.Quantile(0.99)), ms(o.ackWait.max),
		ms(o.inWriter.Quantile(0.5)), ms(o.inWriter.Quantile(0.99)), ms(o.inWriter.max))
}
