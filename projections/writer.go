package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Writer bounds.
const (
	// RequestQueueMax bounds requests decoded and waiting for the writer;
	// past it a request is answered unavailable at once (the client retries
	// with the same idempotency key).
	RequestQueueMax = 16_384
	// RequestBytesMax bounds a request body.
	RequestBytesMax = 64 * 1024
	// SweepIntervalDefault is how often expired holds are swept.
	SweepIntervalDefault = time.Second
	// SweepEventsMax bounds the expiries appended in one batch.
	SweepEventsMax = BatchMessagesMax / 2
	// RebuildBackoffMax bounds the wait between failed rebuild attempts.
	RebuildBackoffMax = 5 * time.Second
)

// Config configures a Writer.
type Config struct {
	Conn     *nats.Conn
	Replicas int                   // stream replicas (1, or 3 on a cluster)
	Default  *ledger.DefaultBudget // nil: unknown customers get no_budget
	Now      func() time.Time      // the clock; time.Now if nil
	Sweep    time.Duration         // expiry sweep interval; SweepIntervalDefault if 0
	Logger   *slog.Logger
}

// Writer is the single writer: it owns the ledger state, decides requests
// in batches, appends each batch's events atomically, and replies only after
// the append is acknowledged (with fsync, on disk).
type Writer struct {
	cfg   Config
	nc    *nats.Conn
	js    jetstream.JetStream
	log   *slog.Logger
	in    chan *pending
	ready atomic.Bool

	// Owned by the run loop.
	state   *ledger.State
	lastSeq uint64
	lastNow time.Time

	stats Stats
}

// Stats are counters the writer keeps; read them with Writer.Stats.
type Stats struct {
	Batches     atomic.Uint64
	Events      atomic.Uint64
	Requests    atomic.Uint64
	Rebuilds    atomic.Uint64
	Overloaded  atomic.Uint64
	LastSeq     atomic.Uint64
	ReplayedSeq atomic.Uint64
}

type pending struct {
	msg   *nats.Msg
	cmd   ledger.Command
	reply ledger.Reply
	err   error
}

// New returns a writer; Run starts it.
func New(cfg Config) *Writer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = SweepIntervalDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Writer{cfg: cfg, nc: cfg.Conn, log: cfg.Logger, in: make(chan *pending, RequestQueueMax)}
}

// Stats returns the writer's counters.
func (w *Writer) Stats() *Stats { return &w.stats }

// Ready reports whether the writer has replayed the log and is serving.
func (w *Writer) Ready() bool { return w.ready.Load() }

// Run ensures the stream, rebuilds state from it, subscribes to requests
// and serves until ctx ends. It returns nil on a clean shutdown.
func (w *Writer) Run(ctx context.Context) error {
	js, err := jetstream.New(w.nc)
	if err != nil {
		return err
	}
	w.js = js
	if _, err := EnsureStream(ctx, js, w.cfg.Replicas); err != nil {
		return err
	}
	if err := w.rebuild(ctx); err != nil {
		return err
	}
	subs := make([]*nats.Subscription, 0, 2)
	for _, subj := range []string{events.RequestWildcard, events.AdminWildcard} {
		sub, err := w.nc.Subscribe(subj, w.receive)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		// The writer queue is the bound; let the client library buffer
		// bursts without dropping.
		_ = sub.SetPendingLimits(RequestQueueMax, RequestQueueMax*RequestBytesMax/16)
		subs = append(subs, sub)
	}
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	w.ready.Store(true)
	w.log.Info("writer serving", "last_seq", w.lastSeq, "customers", w.state.Customers())
	return w.loop(ctx)
}

// rebuild replaces the state with one replayed from the log.
func (w *Writer) rebuild(ctx context.Context) error {
	start := time.Now()
	s, seq, err := Rebuild(ctx, w.js, ReplayStop{}, w.cfg.Default)
	if err != nil {
		return err
	}
	s.NewID = newEventID
	w.state, w.lastSeq = s, seq
	w.stats.LastSeq.Store(seq)
	w.stats.ReplayedSeq.Store(seq)
	w.log.Info("state rebuilt from log", "events", s.EventsApplied(), "customers", s.Customers(),
		"last_seq", seq, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func newEventID() string { return uuid.Must(uuid.NewV7()).String() }

// receive runs on the subscription's goroutine: it decodes and validates,
// answers bad requests at once (they touch no state), and queues the rest.
func (w *Writer) receive(m *nats.Msg) {
	if m.Reply == "" {
		return // nobody to answer; a request must be a request
	}
	if !w.ready.Load() {
		w.respondErr(m, ledger.Errorf(ledger.CodeUnavailable, "the writer is rebuilding its state; retry"))
		return
	}
	cmd, err := DecodeRequest(m.Subject, m.Data)
	if err != nil {
		w.respondErr(m, err)
		return
	}
	select {
	case w.in <- &pending{msg: m, cmd: cmd}:
	default:
		w.stats.Overloaded.Add(1)
		w.respondErr(m, ledger.Errorf(ledger.CodeUnavailable, "the writer queue is full; retry"))
	}
}

// loop is the single writer: collect a batch, decide it, append it, reply.
func (w *Writer) loop(ctx context.Context) error {
	sweep := time.NewTicker(w.cfg.Sweep)
	defer sweep.Stop()
	batch := make([]*pending, 0, BatchMessagesMax)
	for {
		batch = batch[:0]
		sweepDue := false
		select {
		case <-ctx.Done():
			return nil
		case p := <-w.in:
			batch = append(batch, p)
		case <-sweep.C:
			sweepDue = true
		}
		if err := w.commit(&batch, sweepDue); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.fail(ctx, batch, err)
		}
	}
}

// commit decides the batch (draining the queue into it while the append has
// room), appends its events, and replies. On error no request of *batch has
// been answered.
func (w *Writer) commit(batchp *[]*pending, sweepDue bool) error {
	batch := *batchp
	defer func() { *batchp = batch }()
	now := w.now()
	var out []*nats.Msg
	if sweepDue {
		for _, e := range w.state.Sweep(now, SweepEventsMax) {
			out = append(out, w.encode(e))
		}
	}
	for i := 0; ; i++ {
		if i == len(batch) {
			if len(out)+ledger.EventsPerCommandMax > BatchMessagesMax {
				break
			}
			select {
			case p := <-w.in:
				batch = append(batch, p)
			default:
			}
			if i == len(batch) {
				break
			}
		}
		p := batch[i]
		reply, evs, err := w.state.Decide(p.cmd, now)
		p.reply, p.err = reply, err
		for _, e := range evs {
			out = append(out, w.encode(e))
		}
	}
	if len(out) > 0 {
		seq, err := appendBatch(w.nc, out, w.lastSeq)
		if err != nil {
			return err
		}
		w.lastSeq = seq
		w.stats.LastSeq.Store(seq)
		w.stats.Batches.Add(1)
		w.stats.Events.Add(uint64(len(out)))
	}
	w.stats.Requests.Add(uint64(len(batch)))
	for _, p := range batch {
		if p.err != nil {
			w.respondErr(p.msg, p.err)
		} else {
			w.respond(p.msg, p.reply)
		}
	}
	return nil
}

// fail handles a failed append: no request of the batch is answered with a
// decision (they get unavailable and retry with their idempotency keys),
// the in-memory state, which already holds the undurable decisions, is
// dropped, and the writer rebuilds from the log before serving again.
func (w *Writer) fail(ctx context.Context, batch []*pending, cause error) {
	w.ready.Store(false)
	w.stats.Rebuilds.Add(1)
	w.log.Error("append failed; rebuilding state from the log", "err", cause, "last_seq", w.lastSeq)
	unavailable := ledger.Errorf(ledger.CodeUnavailable, "the ledger could not make this decision durable; retry")
	for _, p := range batch {
		w.respondErr(p.msg, unavailable)
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := w.rebuild(ctx)
		if err == nil {
			w.ready.Store(true)
			return
		}
		w.log.Error("rebuild failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, RebuildBackoffMax)
	}
}

// now is the writer's clock, never going backwards: decisions and the
// events that record them are ordered in time as in the log.
func (w *Writer) now() time.Time {
	t := w.cfg.Now().UTC()
	if t.Before(w.lastNow) {
		t = w.lastNow
	}
	w.lastNow = t
	return t
}

func (w *Writer) encode(e *events.Envelope) *nats.Msg {
	b, err := events.Encode(e)
	if err != nil {
		panic(fmt.Sprintf("agentbill: cannot encode event %s: %v", e.ID, err))
	}
	m := nats.NewMsg(events.EventSubject(e.CustomerID, e.Type))
	m.Data = b
	m.Header.Set(jetstream.MsgIDHeader, e.ID)
	return m
}

func (w *Writer) respond(m *nats.Msg, reply ledger.Reply) {
	b, err := json.Marshal(reply)
	if err != nil {
		w.respondErr(m, ledger.Errorf(ledger.CodeInternal, "cannot encode reply: %v", err))
		return
	}
	_ = m.Respond(b)
}

func (w *Writer) respondErr(m *nats.Msg, err error) {
	var le *ledger.Error
	if !errors.As(err, &le) {
		le = ledger.Errorf(ledger.CodeInternal, "%v", err)
	}
	b, _ := json.Marshal(ledger.ErrorReply{Error: le})
	_ = m.Respond(b)
}
