package projections

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go/jetstream"
)

// The writer never stops for a snapshot. A shadow, a second copy of the
// state on its own goroutine, applies every commit the writer makes
// durable, in order, and snapshots are encoded from it: while it encodes,
// the commits queue for it and the writer goes on deciding; then it
// catches up. The price is a second copy of the state in memory and about
// 2 µs of the other core per event (Apply).
//
// The shadow applies the very events the writer encoded into the commit
// (their structs, which nothing changes once encoded), not the commit's
// bytes decoded again: decoding was a quarter of its time, and its garbage
// the collector's. That the two are the same events is what the encoding
// promises and the tests hold it to (a replay from the bytes equals the
// live state, TestReplayAtAnyPrefixEqualsLiveState; the shadow's snapshot
// equals a replay's, TestShadowSnapshotEqualsReplay). Apply keeps no
// event's struct and changes none, so the writer's state and the shadow's
// may hold the same field values. For the same reason the shadow does not
// encode a remembered request again: it keeps the bytes the writer's
// idempotency window kept for it (ledger.State.Kept, ApplyKept), which
// neither state ever changes.
//
// The shadow starts from the log (the newest snapshot at or before the
// writer's sequence, then the commits up to it) while the writer already
// serves. If the commits waiting for it exceed ShadowQueueBytesMax, or one
// does not apply, it drops them and starts from the log again.
//
// A replay beside a serving writer is not free: it allocates a whole state
// again, and the collector's mark assists land on the writer. Measured at
// 3M events with no snapshot stored, the new leader's first answer waited
// 1.3 to 2.4 s; at 10M events the leader's lease lapsed. So when the
// newest stored snapshot is more than ShadowReplayEventsMax events behind
// the writer's state (or there is none), the writer encodes its own state
// before it serves, once, and starts storing it: the shadow starts from
// those bytes (a base) instead of the log.
const (
	// ShadowQueueBytesMax bounds the commits waiting for the shadow, by
	// their encoded bytes (their events' structs take a few times that).
	// A snapshot of 1,000,000 customers with a full idempotency window
	// takes about 4 s to encode, during which the writer commits about
	// 20 MB at 16,000 events/s: the bound leaves room for ten times that.
	ShadowQueueBytesMax = 256 << 20
	// ShadowReplayEventsMax bounds the events a starting shadow replays
	// from the log beside the serving writer (see above): about one
	// snapshot interval (SnapshotEventsEvery), so that a takeover after
	// snapshots that kept their schedule replays as before.
	ShadowReplayEventsMax = 1_000_000
	// shadowTick is how often an idle shadow checks whether the snapshot
	// schedule's interval has run out.
	shadowTick = time.Second
)

// FaultSnapshotEncoding is the Config.Fault point where the shadow is
// about to encode a snapshot (called on the shadow's goroutine): a test
// holds it there to show that the writer goes on answering.
const FaultSnapshotEncoding = "snapshot-encoding"

// shadowQueueBytesMax is ShadowQueueBytesMax, shadowReplayEventsMax
// ShadowReplayEventsMax; tests make them small.
var (
	shadowQueueBytesMax          = ShadowQueueBytesMax
	shadowReplayEventsMax uint64 = ShadowReplayEventsMax
)

// shadowOp is one commit for the shadow to apply, or a restart from the
// log at seq.
type shadowOp struct {
	seq     uint64
	id      string             // the commit's ID (Nats-Msg-Id)
	events  []*events.Envelope // the commit's events
	kept    [][]byte           // beside each, what the writer's state kept for it, or nil
	size    int                // the commit's encoded bytes
	restart bool               // start again from the log at seq
	base    *shadowBase        // with restart: start from the writer's own snapshot instead
	tick    bool               // nothing queued: look at the schedule
}

// shadow is the writer's snapshot source. Its queue is shared with the
// writer's loop (push, restart); the state is its goroutine's alone.
type shadow struct {
	w      *Writer
	mu     sync.Mutex
	ops    []shadowOp
	bytes  int
	last   uint64 // the newest sequence pushed
	cancel context.CancelFunc
	done   chan struct{}

	state  *ledger.State // nil until built from the log
	seq    uint64        // the last sequence state includes
	commit string        // the ID of the commit at seq; "" if unknown
}

// shadowBase is a snapshot of the writer's state that the writer encoded
// into snap.buf before serving (takeBase): the shadow's start.
type shadowBase struct {
	meta ledger.SnapshotMeta
}

// startShadow starts a shadow that reaches the writer's state at seq,
// from base if it is not nil.
func (w *Writer) startShadow(ctx context.Context, seq uint64, base *shadowBase) *shadow {
	ctx, cancel := context.WithCancel(ctx)
	s := &shadow{w: w, cancel: cancel, done: make(chan struct{})}
	s.restart(seq)
	s.ops[0].base = base
	go s.run(ctx)
	return s
}

// takeBase encodes the writer's state into snap.buf and starts storing
// it, if the shadow would otherwise replay more than
// shadowReplayEventsMax events (see above); it returns nil if that is not
// needed or cannot be done (the shadow then replays). It runs on the
// writer's goroutine before it serves: a pause of one encoding, with
// every core, once.
func (w *Writer) takeBase(ctx context.Context) *shadowBase {
	if w.cfg.Snapshots.Off || w.lastSeq == 0 || w.snap.uploading.Load() {
		return nil // an upload of an earlier term still reads snap.buf
	}
	applied := w.state.EventsApplied()
	stored, known, err := w.storedEvents(ctx)
	if err != nil {
		w.log.Warn("cannot list the stored snapshots; the snapshot shadow replays the log", "err", err)
		return nil
	}
	behind := applied - min(stored, applied)
	if !known || behind <= shadowReplayEventsMax {
		return nil
	}
	start := time.Now()
	commit := ""
	stream, err := w.js.Stream(ctx, events.StreamName)
	if err == nil {
		commit, err = commitAt(ctx, stream, w.lastSeq)
	}
	if err != nil {
		w.log.Warn("cannot read the last commit; the snapshot shadow replays the log", "err", err)
		return nil
	}
	meta := ledger.SnapshotMeta{Seq: w.lastSeq, Writer: w.cfg.Name, Commit: commit}
	buf := &w.snap.buf
	buf.reset()
	if err := w.state.WriteSnapshot(buf, meta); err != nil {
		w.stats.Snapshots.Failed.Add(1)
		w.log.Error("snapshot before serving not taken; the snapshot shadow replays the log", "err", err)
		return nil
	}
	took := time.Since(start)
	w.stats.Snapshots.Bases.Add(1)
	w.log.Info("snapshot taken before serving, for the snapshot shadow", "seq", meta.Seq,
		"events_since_stored", behind, "bytes", buf.n, "took", took.Round(time.Millisecond))
	w.storeInBackground(ctx, meta, applied, took)
	return &shadowBase{meta: meta}
}

// storeInBackground signs the snapshot encoded in snap.buf (if the writer
// signs) and starts storing it; snap.buf is the upload's until it ends.
func (w *Writer) storeInBackground(ctx context.Context, meta ledger.SnapshotMeta, eventsApplied uint64, encode time.Duration) {
	buf := &w.snap.buf
	var sig string
	if w.cfg.Signer != nil {
		sig = w.cfg.Signer.SignSnapshot(meta.Writer, meta.Seq, meta.Commit, buf.tail(sha256.Size))
	}
	w.snap.uploading.Store(true)
	w.snap.uploads.Add(1)
	go w.upload(ctx, meta, sig, eventsApplied, buf, encode)
}

// storedEvents returns the events applied at the writer's newest stored
// snapshot (0 if there is none); known is false if that snapshot does not
// say (stored before the count was kept: it is taken to be recent).
func (w *Writer) storedEvents(ctx context.Context) (applied uint64, known bool, err error) {
	obs, err := w.js.ObjectStore(ctx, SnapshotBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, err
	}
	stored, err := storedSnapshots(ctx, obs, w.cfg.Name)
	if err != nil || len(stored) == 0 {
		return 0, err == nil, err
	}
	applied, err = strconv.ParseUint(stored[0].parts[0].Metadata[snapshotEventsKey], 10, 64)
	return applied, err == nil, nil
}

// stop ends the shadow and waits for it (not for an upload it started).
func (s *shadow) stop() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
}

// push queues a commit the writer made durable at seq: its events, the
// bytes the writer's state kept for each (flight.kept), and its size
// encoded.
func (s *shadow) push(seq uint64, id string, evs []*events.Envelope, kept [][]byte, size int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.last = seq
	if s.bytes+size > shadowQueueBytesMax {
		s.restartLocked(seq)
		s.mu.Unlock()
		s.w.stats.Snapshots.ShadowRestarts.Add(1)
		s.w.log.Warn("snapshot shadow fell behind; rebuilding it from the log", "seq", seq, "queued_bytes_max", shadowQueueBytesMax)
		s.w.pokeShadow()
		return
	}
	s.ops = append(s.ops, shadowOp{seq: seq, id: id, events: evs, kept: kept, size: size})
	s.bytes += size
	s.mu.Unlock()
	s.w.pokeShadow()
}

// restart drops whatever is queued: the shadow starts again from the log
// at seq (the writer's state was rebuilt, or the shadow fell behind).
func (s *shadow) restart(seq uint64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.last = seq
	s.restartLocked(seq)
	s.mu.Unlock()
	s.w.pokeShadow()
}

func (s *shadow) restartLocked(seq uint64) {
	clear(s.ops)
	s.ops = append(s.ops[:0], shadowOp{seq: seq, restart: true})
	s.bytes = 0
}

// pokeShadow wakes the shadow: something is queued, or a snapshot is
// asked for.
func (w *Writer) pokeShadow() {
	select {
	case w.snap.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest op, waiting for one until ctx ends (false) or
// shadowTick passes (a tick op, to look at the schedule).
func (s *shadow) next(ctx context.Context, tick <-chan time.Time) (shadowOp, bool) {
	for {
		s.mu.Lock()
		if len(s.ops) > 0 {
			op := s.ops[0]
			s.ops[0] = shadowOp{}
			s.ops = s.ops[1:]
			s.bytes -= op.size
			s.mu.Unlock()
			return op, true
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return shadowOp{}, false
		case <-s.w.snap.wake:
		case <-tick:
			return shadowOp{tick: true}, true
		}
	}
}

// idle reports whether no op waits.
func (s *shadow) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ops) == 0
}

func (s *shadow) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(shadowTick)
	defer tick.Stop()
	for {
		op, ok := s.next(ctx, tick.C)
		if !ok {
			return
		}
		var err error
		switch {
		case op.tick:
		case op.restart && op.base != nil:
			err = s.start(op.base)
		case op.restart:
			err = s.build(ctx, op.seq)
		case s.state != nil && op.seq > s.seq:
			err = s.apply(op)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.state = nil
			s.w.stats.Snapshots.ShadowRestarts.Add(1)
			s.w.log.Error("snapshot shadow lost step with the log; rebuilding it", "err", err)
			s.mu.Lock()
			s.restartLocked(s.last)
			s.mu.Unlock()
			select { // do not spin on a log out of reach
			case <-ctx.Done():
				return
			case <-time.After(SnapshotRetryAfter):
			}
			continue
		}
		if s.state != nil && s.idle() && s.due() {
			s.snapshot(ctx)
		}
	}
}

// build replaces the state with the log's up to seq: the newest snapshot
// at or before seq, then the commits after it.
func (s *shadow) build(ctx context.Context, seq uint64) error {
	w := s.w
	s.state = nil
	start := time.Now()
	st, from, head := ledger.NewState(), uint64(1), ""
	if seq > 0 {
		snap, err := LoadSnapshot(ctx, w.js, w.cfg.Name, w.cfg.Keys, nil)
		switch {
		case err == nil && snap.Meta.Seq <= seq:
			if w.verifying() {
				if head, err = w.headAt(ctx, snap.Meta.Seq); err != nil {
					return err
				}
			}
			st, from = snap.State, snap.Meta.Seq+1
		case err != nil && !errors.Is(err, ErrNoSnapshot):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.log.Warn("snapshot shadow: no snapshot used; replaying the whole log", "err", err)
		}
	}
	st.Default = w.cfg.Default
	if seq >= from {
		stop := ReplayStop{StartSeq: from, UntilSeq: seq, Verify: w.verifier(from, head, true), KeepUncovered: true, Background: true,
			Recycle: true} // Apply keeps no event's struct
		if w.partitioned() {
			stop.Writer = w.cfg.Name
		}
		if _, err := Replay(ctx, w.js, stop, func(_ uint64, e *events.Envelope) error { return applySafely(st, e, nil) }); err != nil {
			return fmt.Errorf("replay to sequence %d: %w", seq, err)
		}
	}
	commit := ""
	if seq > 0 {
		stream, err := w.js.Stream(ctx, events.StreamName)
		if err == nil {
			commit, err = commitAt(ctx, stream, seq)
		}
		if err != nil {
			return err
		}
	}
	s.state, s.seq, s.commit = st, seq, commit
	w.stats.Snapshots.ShadowSeq.Store(seq)
	w.log.Info("snapshot shadow ready", "seq", seq, "customers", st.Customers(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// start replaces the state with the base the writer encoded.
func (s *shadow) start(base *shadowBase) error {
	start := time.Now()
	s.state = nil
	st, meta, err := ledger.ReadSnapshot(s.w.snap.buf.reader()) // no snapshot writes it until this returns
	if err != nil {
		return fmt.Errorf("the snapshot taken before serving: %w", err)
	}
	if meta.Seq != base.meta.Seq || meta.Commit != base.meta.Commit {
		return fmt.Errorf("the snapshot taken before serving covers sequence %d, want %d", meta.Seq, base.meta.Seq)
	}
	st.Default = s.w.cfg.Default
	s.state, s.seq, s.commit = st, meta.Seq, meta.Commit
	s.w.stats.Snapshots.ShadowSeq.Store(meta.Seq)
	s.w.log.Info("snapshot shadow ready", "seq", meta.Seq, "customers", st.Customers(), "from", "the snapshot taken before serving",
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// apply applies one commit.
func (s *shadow) apply(op shadowOp) error {
	for i, e := range op.events {
		if err := applySafely(s.state, e, op.kept[i]); err != nil {
			return fmt.Errorf("commit at sequence %d: %w", op.seq, err)
		}
	}
	s.seq, s.commit = op.seq, op.id
	s.w.stats.Snapshots.ShadowSeq.Store(op.seq)
	return nil
}

// applySafely applies e (keeping raw, if not nil: ledger.State.ApplyKept),
// turning a broken invariant (the state and the log disagree; Apply never
// fails on a state the log built) into an error.
func applySafely(s *ledger.State, e *events.Envelope, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: event %s does not apply: %v", errSnapshotDiverged, e.ID, r)
		}
	}()
	s.ApplyKept(e, raw)
	return nil
}

// due reports whether a snapshot of the shadow's state should be taken.
func (s *shadow) due() bool {
	sn := &s.w.snap
	if s.commit == "" || sn.uploading.Load() {
		return false
	}
	now := time.Now()
	if now.UnixNano() < sn.retryAt.Load() {
		return false
	}
	if sn.forced.Load() {
		return true
	}
	since := s.state.EventsApplied() - sn.savedEvents.Load()
	return since >= s.w.cfg.Snapshots.EventsEvery ||
		(since > 0 && now.Sub(time.Unix(0, sn.savedAt.Load())) >= s.w.cfg.Snapshots.IntervalMax)
}

// snapshot encodes the shadow's state, then stores it in the background
// (upload) while the shadow catches up.
func (s *shadow) snapshot(ctx context.Context) {
	w := s.w
	meta := ledger.SnapshotMeta{Seq: s.seq, Writer: w.cfg.Name, Commit: s.commit}
	start := time.Now()
	buf := &w.snap.buf // free: no upload is in flight
	buf.reset()
	if w.cfg.Fault != nil {
		w.cfg.Fault(FaultSnapshotEncoding)
	}
	if err := s.state.WriteSnapshotInBackground(buf, meta); err != nil {
		w.stats.Snapshots.Failed.Add(1)
		w.snap.retryAt.Store(time.Now().Add(SnapshotRetryAfter).UnixNano())
		w.log.Error("snapshot not taken", "seq", meta.Seq, "err", err)
		return
	}
	w.snap.forced.Store(false)
	w.storeInBackground(ctx, meta, s.state.EventsApplied(), time.Since(start))
}
