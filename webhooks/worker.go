package webhooks

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// AckTimeout bounds acknowledging a delivered event, which is done even
// after the worker was told to stop.
const AckTimeout = 5 * time.Second

// Worker timing.
const (
	// FetchWait bounds one pull for the next event. A stopping worker
	// waits for its pull to end (and hands back a message it brings), so
	// this is also how long a leader that steps down may take to let go.
	FetchWait = 2 * time.Second
	// StatusFlushInterval is how often a succeeding endpoint's last
	// success is written (a change to or from failing is written at once):
	// each write is an fsynced append, too costly per delivery.
	StatusFlushInterval = 5 * time.Second
	// errorPauseMax bounds the wait after a NATS error before pulling again.
	errorPauseMax = 5 * time.Second
)

// worker delivers one endpoint's events, in order: it pulls the next
// message of the endpoint's consumer (which hands out one at a time),
// POSTs it, and acknowledges it on 2xx. On a failure it hands the message
// back with the schedule's delay (NakWithDelay), so the consumer, not the
// worker, holds it: the same message comes back first, to this worker or,
// after a failover, to the next leader's.
type worker struct {
	ep    *Endpoint
	key   []byte
	reg   *Registry
	cons  jetstream.Consumer
	send  *Sender
	sched Schedule
	met   *Metrics
	log   *slog.Logger
	now   func() time.Time
	rnd   func() float64

	st        Status
	dirty     bool
	flushedAt time.Time
}

// run delivers until ctx ends or the endpoint is parked or disabled.
func (w *worker) run(ctx context.Context) {
	defer w.flush(context.WithoutCancel(ctx), true)
	pause := w.sched.Min
	for ctx.Err() == nil {
		batch, err := w.cons.Fetch(1, jetstream.FetchMaxWait(FetchWait))
		if err == nil {
			for m := range batch.Messages() {
				if w.deliver(ctx, m) {
					return
				}
			}
			err = batch.Error()
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoMessages) {
			w.log.Warn("webhook: cannot pull the next event; retrying", "endpoint", w.ep.ID, "err", err, "in", pause)
			sleep(ctx, pause)
			pause = min(pause*2, errorPauseMax)
			continue
		}
		pause = w.sched.Min
		w.flush(ctx, false)
	}
}

// deliver makes one attempt at m and reports whether the worker stops.
func (w *worker) deliver(ctx context.Context, m jetstream.Msg) bool {
	if ctx.Err() != nil { // stopping: let the next leader have it now
		w.handBack(m)
		return true
	}
	id := m.Headers().Get(jetstream.MsgIDHeader)
	a := w.send.Send(ctx, w.ep, w.key, id, m.Data())
	w.met.attempted(a)
	if a.Outcome == OutcomeDelivered {
		// Acknowledge even if leadership was lost meanwhile: the receiver
		// has it, and a redelivery would only repeat it.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), AckTimeout)
		err := m.DoubleAck(actx)
		cancel()
		if err != nil {
			// Delivered but not acknowledged: the consumer hands it out
			// again (at least once; receivers deduplicate on webhook-id).
			w.log.Warn("webhook: delivered but not acknowledged", "endpoint", w.ep.ID, "event", id, "err", err)
		}
		if meta, err := m.Metadata(); err == nil {
			w.met.lag.Observe(w.now().Sub(meta.Timestamp).Seconds())
		}
		w.succeeded()
		return false
	}
	if ctx.Err() != nil { // the attempt was cut short by stopping
		w.handBack(m)
		return true
	}
	w.failed(a)
	switch {
	case a.Outcome == OutcomeGone:
		return w.stop(ctx, m, StateDisabled, a.Err.Error())
	case w.now().Sub(*w.st.FailingSince) >= w.sched.MaxAge:
		return w.stop(ctx, m, StateParked, "failing for "+w.sched.MaxAge.String()+": "+a.Err.Error())
	}
	delay := w.sched.Delay(w.st.Attempts, w.rnd)
	w.log.Info("webhook: delivery failed; retrying", "endpoint", w.ep.ID, "event", id, "attempt", w.st.Attempts, "err", a.Err, "in", delay.Round(time.Millisecond))
	if err := m.NakWithDelay(delay); err != nil {
		w.log.Warn("webhook: cannot schedule the retry", "endpoint", w.ep.ID, "err", err) // AckWait brings it back
	}
	w.flush(ctx, false)
	return false
}

// stop parks or disables the endpoint and hands m back, to be delivered
// first after `webhooks resume`.
func (w *worker) stop(ctx context.Context, m jetstream.Msg, s State, reason string) bool {
	w.flush(ctx, true)
	if _, err := w.reg.setState(ctx, w.ep.ID, s, reason, false); err != nil {
		w.log.Error("webhook: cannot record the endpoint's state", "endpoint", w.ep.ID, "state", s, "err", err)
	}
	w.log.Warn("webhook: endpoint stopped; `agentbill webhooks resume` restarts it", "endpoint", w.ep.ID, "state", s, "reason", reason)
	w.handBack(m)
	return true
}

// handBack returns m to the consumer for immediate redelivery.
func (w *worker) handBack(m jetstream.Msg) {
	if err := m.Nak(); err != nil {
		w.log.Warn("webhook: cannot hand the event back; it returns after the ack wait", "endpoint", w.ep.ID, "err", err, "ack_wait", AckWait)
	}
}

func (w *worker) succeeded() {
	at := w.now().UTC()
	w.st.LastSuccessAt = &at
	w.dirty = true
	if w.st.FailingSince != nil {
		w.st.FailingSince, w.st.Attempts = nil, 0
		w.flush(context.Background(), true)
	}
}

func (w *worker) failed(a Attempt) {
	at := w.now().UTC()
	w.st.LastErrorAt, w.st.LastError = &at, truncateReason(a.Err.Error())
	w.st.Attempts++
	first := w.st.FailingSince == nil
	if first {
		w.st.FailingSince = &at
	}
	w.dirty = true
	if first {
		w.flush(context.Background(), true)
	}
}

// flush writes the status if it changed, at most every
// StatusFlushInterval unless force.
func (w *worker) flush(ctx context.Context, force bool) {
	if !w.dirty || (!force && w.now().Sub(w.flushedAt) < StatusFlushInterval) {
		return
	}
	if err := w.reg.putStatus(ctx, w.ep.ID, &w.st); err != nil {
		w.log.Warn("webhook: cannot store the delivery status", "endpoint", w.ep.ID, "err", err)
		return
	}
	w.dirty, w.flushedAt = false, w.now()
}

// resumeStatus is the status a new worker starts from: the stored one,
// without failures from before the endpoint was last resumed.
func resumeStatus(st *Status, ep *Endpoint) Status {
	s := *st
	if s.FailingSince != nil && ep.ResumedAt != nil && !s.FailingSince.After(*ep.ResumedAt) {
		s.FailingSince, s.Attempts = nil, 0
	}
	return s
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
