package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/retry"
	"github.com/nats-io/nats.go/jetstream"
)

// TakeoverHeader marks a takeover commit: a commit without events that a
// new leader appends, fenced, before it serves, when it took the lease from
// a holder that did not release it (and so may still be running). It names
// the new holder; once it is in the log, a deposed leader's next commit
// fails its fence. (Without it, such a commit could still land, but only if
// it was decided on the log's latest state: the fence keeps the log a
// serial history either way.)
const TakeoverHeader = "Agentbill-Takeover"

// followBufferMax bounds commits received by a standby and not yet applied.
const followBufferMax = 256

// tailStopWaitMax bounds how long stopping a tail waits for its consumer
// to end. nats.go's ordered consumer holds its lock while it recreates its
// consumer after losing JetStream (each attempt up to 10 s, then a backoff
// of up to 10 s), and stopping it needs that lock: a standby or follower
// shutting down while the cluster has no quorum would wait that long. Past
// this bound it stops anyway; the consumer's callback drops what still
// arrives, and it ends with its attempt or with the connection.
const tailStopWaitMax = 2 * time.Second

// replayStop returns where the writer's replays read: from start, its own
// commits (a partition) or every writer's, reporting progress in Stats.
func (w *Writer) replayStop(start uint64) ReplayStop {
	stop := ReplayStop{StartSeq: start, Progress: func(seq, last uint64) {
		w.stats.ReplayedSeq.Store(seq)
		w.stats.ReplayTarget.Store(last)
	}}
	if w.partitioned() {
		stop.Writer = w.cfg.Name
	}
	return stop
}

// logFilter is the subject the writer's replays and follower read.
func (w *Writer) logFilter() string {
	if w.partitioned() {
		return w.subject
	}
	return events.LogSubjects
}

// runElected competes for the lease: as a standby it follows the log;
// holding the lease it takes over and serves until it loses it or an
// append fails, then rebuilds and competes again.
func (w *Writer) runElected(ctx context.Context) error {
	var l *lease
	err := retry.Do(ctx, rebuildRetry(), func(ctx context.Context) error {
		var err error
		if l, err = openLease(ctx, w.js, w.cfg.Replicas, w.cfg.Name, *w.cfg.Lease); err != nil && ctx.Err() == nil {
			w.log.Warn("cannot open the lease bucket yet; retrying", "err", err)
		}
		return err
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot open the lease bucket: gave up: %w", err)
	}
	defer l.release()
	for {
		w.role.Store(RoleStandby)
		w.log.Info("standby: following the log", "writer", w.cfg.Name, "holder", l.holder, "last_seq", w.lastSeq)
		err := w.follow(ctx, l)
		if err == nil {
			if err = w.takeover(ctx, l); err == nil {
				lost, stop := l.keep(ctx)
				err = w.lead(ctx, lost)
				stop()
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if ie := asIntegrity(err); ie != nil {
			// Let another instance try: it reads the same log, so it halts
			// too unless the break was in this one's view alone.
			l.release()
			return w.halt(ctx, ie)
		}
		// Whatever the state holds may include decisions that never
		// became durable: replay it from the log before competing again.
		w.log.Warn("stepping down", "writer", w.cfg.Name, "err", err)
		l.release()
		w.role.Store(RoleRebuilding)
		w.stats.Rebuilds.Add(1)
		if err := w.setup(ctx); err != nil {
			if ie := asIntegrity(err); ie != nil {
				return w.halt(ctx, ie)
			}
			if ctx.Err() != nil {
				return nil
			}
			return err // the stream stayed out of reach: stop, to be restarted
		}
	}
}

// follow applies the commits appended after the state's last sequence as
// they arrive, and polls the lease; it returns nil once this writer holds
// the lease, with the state caught up to what it has received.
func (w *Writer) follow(ctx context.Context, l *lease) error {
	if ok, _ := l.tryAcquire(ctx); ok { // an error: the polls below try again
		return nil
	}
	msgs, stop, err := tail(ctx, w.js, w.logFilter(), w.lastSeq+1)
	if err != nil {
		return err
	}
	defer stop()
	poll := time.NewTicker(LeasePollInterval)
	defer poll.Stop()
	v := w.verifier(w.lastSeq+1, w.chainHead, false) // live commits: each checked before it is applied
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			if err := w.applyFollowed(m, v); err != nil {
				return err
			}
		case <-poll.C:
			w.noteHistory(false)
			ok, err := l.tryAcquire(ctx)
			if err != nil {
				w.log.Warn("cannot read the lease", "err", err)
			}
			if ok {
				return nil
			}
		}
	}
}

// tail delivers the commits on filter from sequence start on, as they
// are appended, until stop is called.
func tail(ctx context.Context, js jetstream.JetStream, filter string, start uint64) (<-chan jetstream.Msg, func(), error) {
	ccfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter},
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start, InactiveThreshold: events.ConsumerInactiveMax}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, ccfg)
	if err != nil {
		return nil, nil, fmt.Errorf("follow the log: %w", err)
	}
	msgs := make(chan jetstream.Msg, followBufferMax)
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-done:
		}
	}, jetstream.PullMaxBytes(ReplayFetchBytesMax))
	if err != nil {
		return nil, nil, fmt.Errorf("follow the log: %w", err)
	}
	return msgs, func() {
		close(done)
		stopped := make(chan struct{})
		go func() {
			cc.Stop()
			<-cc.Closed()
			close(stopped)
		}()
		wait := time.NewTimer(tailStopWaitMax)
		defer wait.Stop()
		select {
		case <-stopped:
		case <-wait.C:
		}
	}, nil
}

// applyFollowed applies one commit received by the follower, once v (if
// the writer verifies) finds nothing wrong with it.
func (w *Writer) applyFollowed(m jetstream.Msg, v *LogVerifier) error {
	md, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	if md.Sequence.Stream <= w.lastSeq {
		return nil // already applied
	}
	c, err := events.DecodeCommit(m.Data())
	if err != nil {
		return fmt.Errorf("follow: commit at sequence %d: %w", md.Sequence.Stream, err)
	}
	if v != nil {
		if err := v.verify(md.Sequence.Stream, m.Subject(), m.Headers(), m.Data(), c); err != nil {
			return err
		}
	}
	for _, e := range c.Events {
		w.state.Apply(e)
	}
	// Any writer's commit moves the fence.
	w.lastSeq = md.Sequence.Stream
	if m.Subject() == w.subject {
		w.chainHead = events.ChainHash(m.Headers().Get(events.ChainHeader), m.Data())
	}
	if c.At.After(w.lastNow) {
		w.lastNow = c.At // the old leader's clock may run ahead of ours
	}
	w.stats.LastSeq.Store(w.lastSeq)
	w.stats.ReplayedSeq.Store(w.lastSeq)
	w.stats.Customers.Store(uint64(w.state.Customers()))
	w.stats.OpenReservations.Store(uint64(w.state.OpenReservations()))
	return nil
}

// takeover catches up with the end of the log and, if the lease was taken
// from another holder, appends a takeover commit fenced on it: from then
// on, a deposed leader still running cannot append anything.
func (w *Writer) takeover(ctx context.Context, l *lease) error {
	start := time.Now()
	stop := w.replayStop(w.lastSeq + 1)
	stop.Verify = w.verifier(w.lastSeq+1, w.chainHead, true)
	stop.Recycle = true // Apply keeps no event's struct
	seq, err := Replay(ctx, w.js, stop, func(seq uint64, e *events.Envelope) error {
		w.state.Apply(e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("takeover: catch up: %w", err)
	}
	if seq > w.lastSeq {
		w.lastSeq = seq
	}
	if w.chainHead, err = ChainHead(ctx, w.js, w.cfg.Name); err != nil {
		return fmt.Errorf("takeover: %w", err)
	}
	if !l.taken {
		w.log.Info("leading", "writer", w.cfg.Name, "holder", l.holder, "seq", w.lastSeq,
			"caught_up_in", time.Since(start).Round(time.Millisecond))
		return nil
	}
	if err := w.appendEmpty(ctx, TakeoverHeader, l.holder); err != nil {
		return fmt.Errorf("takeover %w", err)
	}
	w.log.Info("took over as leader", "writer", w.cfg.Name, "holder", l.holder, "seq", w.lastSeq,
		"caught_up_in", time.Since(start).Round(time.Millisecond))
	return nil
}
