package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/ratelimit"
	"github.com/agentbill/agentbill/internal/retry"
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
	// SweepEventsMax bounds the expiries appended in one commit.
	SweepEventsMax = CommitEventsMax / 2
	// commandBytesMax bounds the encoded events of one command (the largest
	// is a budget_set with every agent limit); the writer stops adding
	// commands to a commit while one more could push it past CommitBytesMax.
	commandBytesMax = 192 * 1024
	// CommitsInFlightDefault is how many commits the writer keeps sent and
	// unacknowledged while it decides the next batch. Measured on a 2-core
	// machine with one fsync per commit (see BENCHMARKS.md): 1 in flight
	// gave 11.6k ops/s, 2 gave 10.7k, 4 gave 9.3k, 8 gave 8.0k: each commit
	// costs one serial fsync, so more in flight means smaller commits and
	// more fsyncs per request. Replication latency (R3) may favour more.
	CommitsInFlightDefault = 1
	// CommitsInFlightMax bounds Config.CommitsInFlight.
	CommitsInFlightMax = 16
	// FaultAfterAckBeforeSend is the point (Config.Fault) after a commit
	// is acknowledged and before the next is sent and the acknowledged
	// one's requests are answered: durable decisions nobody has heard of.
	FaultAfterAckBeforeSend = "after-ack-before-send"
	// RebuildBackoffMin and RebuildBackoffMax bound the wait between
	// attempts to reach the stream again (setup, the rebuild after a failed
	// append, opening the lease bucket, the follower), before jitter
	// (internal/retry).
	RebuildBackoffMin = 100 * time.Millisecond
	RebuildBackoffMax = 5 * time.Second
	// RebuildAttemptsMax and RebuildElapsedMax bound one outage's attempts
	// to reach the stream. Past them the writer stops with the error rather
	// than retry unseen forever: its supervisor restarts it (docker-compose:
	// restart: unless-stopped) and the outage shows. At RebuildBackoffMax
	// the elapsed bound is reached first (about 160 attempts).
	RebuildAttemptsMax = 1000
	RebuildElapsedMax  = 10 * time.Minute
)

// rebuildRetry is the policy of every attempt to reach the stream again.
// A break of the history (an *IntegrityError) is never retried: retrying
// cannot mend it.
func rebuildRetry() retry.Policy {
	return retry.Policy{Attempts: RebuildAttemptsMax, Elapsed: RebuildElapsedMax,
		First: RebuildBackoffMin, Max: RebuildBackoffMax,
		Retryable: func(err error) bool { return asIntegrity(err) == nil }}
}

// Config configures a Writer.
type Config struct {
	// Conn carries requests and replies. LogConn carries commits and their
	// acks; give it its own connection so an append never queues behind
	// the request traffic (head-of-line blocking on one connection costs
	// milliseconds per commit under load). Conn is used if it is nil.
	Conn     *nats.Conn
	LogConn  *nats.Conn
	Replicas int                   // stream replicas (1, or 3 on a cluster)
	Default  *ledger.DefaultBudget // nil: unknown customers get no_budget
	Now      func() time.Time      // the clock; time.Now if nil
	Sweep    time.Duration         // expiry sweep interval; SweepIntervalDefault if 0
	Logger   *slog.Logger
	// CommitsInFlight is how many commits may await their acks at once;
	// CommitsInFlightDefault if 0, at most CommitsInFlightMax.
	CommitsInFlight int
	// Name identifies this writer's commits (agentbill.log.<Name>);
	// events.WriterDefault if empty.
	Name string
	// Snapshots tunes the periodic snapshots a rebuild starts from.
	Snapshots SnapshotConfig
	// Observer, if set, hears every answer and every commit (metrics).
	Observer Observer
	// Lease, if set, makes the writer elect a leader with every other
	// writer of the same name (partition) on this NATS: it serves only
	// while it holds the lease and follows the log as a standby otherwise.
	Lease *LeaseConfig
	// Partitions > 1 makes this writer partition Partition of that many:
	// it serves the customers whose token hashes to it (events.PartitionOf)
	// on the mapped subjects (events.PartitionWildcards), appends to
	// agentbill.log.<Partition> fenced on that subject alone (one commit in
	// flight), and replays only that subject. Name is ignored.
	Partitions int
	Partition  int
	// Signer, if set, signs every commit and snapshot this writer makes
	// (events.SigHeader). Keys, if set, makes the writer verify every
	// commit it reads before applying it (chain link, writer, signature,
	// no gap) and every snapshot before using it, and halt on a break
	// (integrity.go). serve always sets both; without Keys the log is
	// trusted as it is (tests of fencing, tools).
	Signer *events.Signer
	Keys   events.Keyring
	// HistoryFile, if set, is where the writer records the stream it
	// serves (creation time, last sequence), so that after a restart it
	// can tell a deleted, replaced or truncated stream from a new one.
	HistoryFile string
	// AcceptReset, if set, is the operator's reason for accepting a
	// history that is gone or was replaced (KindMissing, KindRecreated,
	// KindBehind) instead of halting; the decision is recorded in the log
	// as a reset commit (ResetHeader). It never accepts a commit that
	// fails its checks.
	AcceptReset string
	// Alerts, if set, makes the leader publish every announced event to
	// the alert stream (alerts.go) after its commit is acknowledged, and
	// publish what the stream lacks before it serves; nil announces them
	// on core NATS only.
	Alerts *AlertConfig
	// Fault, if set, is called at named points (the Fault constants) so a
	// crash test can kill the process exactly there.
	Fault func(point string)
	// RateLimit is every customer's preflight rate unless its budget has
	// its own rate_limit (ratelimit.go); the zero value limits nothing.
	RateLimit events.RateLimit
	// AdoptUnsigned, if set, is the operator's reason for adopting the
	// unsigned commits a log written before commits were signed ends
	// with: instead of halting, the writer appends a signed adoption
	// commit (AdoptHeader) that covers them. Commits with a signature that
	// does not verify are never adopted.
	AdoptUnsigned string
}

// Observer hears what the writer does. Its methods run on the writer's
// goroutine, so they must be quick and must not block.
type Observer interface {
	// Answered is called for every request answered with a reply or an
	// error, with the time from its arrival to its answer.
	Answered(op events.Op, reply ledger.Reply, err error, took time.Duration)
	// Committed is called for every acknowledged commit, with its events,
	// its size and the time from sending it to its ack.
	Committed(events, bytes int, took time.Duration)
	// IntegrityViolation is called for every break of the history the
	// writer meets, with its kind (the Kind constants).
	IntegrityViolation(kind string)
}

// EventObserver is an Observer that also hears every event this writer
// decided, in log order, once the commit holding it is acknowledged (a
// failed append's events are never heard: their requests are decided
// again). Its method runs on the writer's goroutine and must not block.
type EventObserver interface {
	Appended(e *events.Envelope)
}

// Roles a writer reports (Writer.Role).
const (
	RoleStarting   = "starting"   // replaying the log for the first time
	RoleLeader     = "leader"     // serving requests
	RoleStandby    = "standby"    // following the log, ready to take over
	RoleRebuilding = "rebuilding" // an append failed; replaying again
	RoleStopped    = "stopped"
)

// Writer is the single writer: it owns the ledger state, decides requests
// in batches, appends each batch's events atomically, and replies only after
// the append is acknowledged (with fsync, on disk).
type Writer struct {
	cfg Config
	nc  *nats.Conn // requests and replies
	lc  *nats.Conn // commits, acks, replay
	js  jetstream.JetStream
	log *slog.Logger
	in  chan *pending
	// pricesIn queues price-list requests (prices.go), decided only into
	// an empty commit: their events are large.
	pricesIn chan *pending
	// admission counts each customer's places in in (receive adds, the
	// loop's dequeue gives back).
	admission admission
	// limits holds each customer's preflight rate bucket (receive takes
	// tokens, the loop sets budgets' own rates).
	limits *ratelimit.Limiter
	ready  atomic.Bool
	role   atomic.Value // string: one of the Role constants

	// Owned by the run loop.
	state     *ledger.State
	lastSeq   uint64
	lastNow   time.Time
	subject   string
	enc       events.CommitEncoder
	notify    []notice
	appended  []*events.Envelope // the open commit's events, if keepAppended
	kept      [][]byte           // beside appended: what the state kept for each (ledger.Kept), or nil
	inbox     string
	openID    string     // the open commit: being decided, not yet sent
	openBatch []*pending // the open commit's requests
	queue     []*flight  // sent batches, oldest first, awaiting answers
	inflight  int        // commits of queue sent and not acknowledged
	nextNo    uint64
	sentSeq   uint64 // the last sequence once every sent commit lands
	// chainHead is the chain hash of the last commit sent: the next one
	// links to it (events.ChainHeader).
	chainHead string
	snap      snapshotter
	shadow    *shadow // the snapshots' source while the loop runs; nil with Snapshots.Off
	// keepAppended: the shadow or an EventObserver takes each commit's
	// events (flight.appended).
	keepAppended bool
	// known is the stream this writer serves, as far as it has applied it
	// (and as Config.HistoryFile recorded it), last written at historyAt.
	known     history
	historyAt time.Time
	reset     *IntegrityError // a break accepted by Config.AcceptReset, to record
	uncovered uint64          // the first unsigned commit to adopt (Config.AdoptUnsigned)
	// snapStalls counts the restores in a row that the snapshot store
	// stalled (SnapshotStallsBeforeReplay).
	snapStalls int
	halted     atomic.Value // *IntegrityError: the break that halted the writer
	alerts     *alerter     // while leading with Config.Alerts
	haltSubs   []*nats.Subscription

	stats Stats
}

// Stats are counters the writer keeps; read them with Writer.Stats.
type Stats struct {
	Batches     atomic.Uint64
	AppendNanos atomic.Uint64 // total time spent waiting for append acks
	Events      atomic.Uint64
	Requests    atomic.Uint64
	Rebuilds    atomic.Uint64
	Overloaded  atomic.Uint64
	// Throttled counts requests answered unavailable because their
	// customer already held QueuedPerCustomerMax places in the queue.
	Throttled atomic.Uint64
	// RateLimited counts preflights refused rate_limited.
	RateLimited atomic.Uint64
	LastSeq     atomic.Uint64
	ReplayedSeq atomic.Uint64 // the sequence replay has reached
	// ReplayTarget is the last sequence the current (or last) replay
	// reads to: ReplayedSeq/ReplayTarget is its progress.
	ReplayTarget atomic.Uint64
	// Customers and OpenReservations are the state's, as of the last
	// acknowledged commit or rebuild.
	Customers        atomic.Uint64
	OpenReservations atomic.Uint64
	Snapshots        SnapshotStats
	// IntegrityViolations counts the breaks of the history met.
	IntegrityViolations atomic.Uint64
}

// notice is a committed event to announce on its own subject.
type notice struct {
	id      string // the event's ID: the alert's Nats-Msg-Id
	subject string
	body    []byte
}

// notifyTypes are announced one by one on agentbill.events.<ctok>.<type>
// after they are committed, for core NATS subscribers: events.AlertTypes.
var notifyTypes = func() map[events.Type]bool {
	m := make(map[events.Type]bool, len(events.AlertTypes))
	for _, t := range events.AlertTypes {
		m[t] = true
	}
	return m
}()

type pending struct {
	msg      *nats.Msg
	cmd      ledger.Command
	customer string // its place in the admission count
	reply    ledger.Reply
	err      error
	at       time.Time // arrival
	// afterOpen: a status read decided after events of the open commit,
	// so it is as of that commit; otherwise as of the one before.
	afterOpen bool
	// prices is a price-list request (prices.go) in place of cmd.
	prices *pricesOp
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
	if cfg.Name == "" {
		cfg.Name = events.WriterDefault
	}
	if cfg.Partitions > 1 {
		// A per-subject fence checks the subject's last sequence, known
		// only once the previous commit is acknowledged.
		cfg.Name, cfg.CommitsInFlight = strconv.Itoa(cfg.Partition), 1
	}
	if cfg.CommitsInFlight <= 0 {
		cfg.CommitsInFlight = CommitsInFlightDefault
	}
	cfg.CommitsInFlight = min(cfg.CommitsInFlight, CommitsInFlightMax)
	cfg.Snapshots.setDefaults()
	if cfg.LogConn == nil {
		cfg.LogConn = cfg.Conn
	}
	w := &Writer{cfg: cfg, nc: cfg.Conn, lc: cfg.LogConn, log: cfg.Logger, in: make(chan *pending, RequestQueueMax),
		pricesIn: make(chan *pending, PricesQueueMax),
		subject:  events.LogSubject(cfg.Name), limits: ratelimit.New(cfg.RateLimit, RateLimitCustomersMax)}
	w.snap.wake = make(chan struct{}, 1)
	w.role.Store(RoleStarting)
	return w
}

// Role reports what the writer is doing: one of the Role constants.
func (w *Writer) Role() string { return w.role.Load().(string) }

// Stats returns the writer's counters.
func (w *Writer) Stats() *Stats { return &w.stats }

// Ready reports whether the writer has replayed the log and is serving.
func (w *Writer) Ready() bool { return w.ready.Load() }

// subscribeFlushTimeout bounds the round trip that makes the writer's
// request subscriptions known to the server before it says it is ready.
const subscribeFlushTimeout = 5 * time.Second

// Run ensures the stream, rebuilds state from it, subscribes to requests
// and serves until ctx ends. It returns nil on a clean shutdown.
func (w *Writer) Run(ctx context.Context) error {
	js, err := jetstream.New(w.lc)
	if err != nil {
		return err
	}
	w.js = js
	defer w.role.Store(RoleStopped)
	if err := w.setup(ctx); err != nil {
		if ie := asIntegrity(err); ie != nil {
			return w.halt(ctx, ie)
		}
		if ctx.Err() != nil {
			return nil // stopped while waiting for NATS
		}
		return err
	}
	defer w.snap.uploads.Wait()
	defer w.noteHistory(true)
	if w.cfg.Lease != nil {
		return w.runElected(ctx)
	}
	if err := w.lead(ctx, nil); err != nil {
		if ie := asIntegrity(err); ie != nil {
			return w.halt(ctx, ie)
		}
		return err
	}
	return nil
}

// partitioned reports whether the writer is one partition of several.
func (w *Writer) partitioned() bool { return w.cfg.Partitions > 1 }

// requestSubjects returns what the writer serves.
func (w *Writer) requestSubjects() []string {
	prices := []string{events.PricesSubject, events.PriceListsSubject} // every partition's
	if w.partitioned() {
		return append(events.PartitionWildcards(w.cfg.Partition), prices...)
	}
	return append([]string{events.RequestWildcard, events.AdminWildcard}, prices...)
}

// lead serves requests until ctx ends (nil) or, with a lease, until the
// lease is lost (lost) or an append fails (both returned as errors: the
// caller rebuilds and competes again).
func (w *Writer) lead(ctx context.Context, lost <-chan error) error {
	// Anything still queued was received in an earlier term as leader,
	// and its client has retried since: it must not be decided now.
	w.refuseQueued()
	// A standby's state followed the log without telling the limiter.
	w.limits.Reset(w.state.RateLimits())
	base := w.takeBase(ctx) // before serving: it pauses the writer
	subs := make([]*nats.Subscription, 0, 2)
	defer func() {
		w.ready.Store(false)
		if w.Halted() != nil {
			w.haltSubs = subs // halt keeps answering on them, without a gap
			return
		}
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
		w.refuseQueued() // their clients retry at once, elsewhere
	}()
	if w.cfg.Alerts != nil {
		actx, stop, err := w.startAlerts(ctx)
		if err != nil {
			return err
		}
		defer stop()
		ctx = actx
	}
	for _, subj := range w.requestSubjects() {
		handler := w.receive
		if subj == events.PricesSubject || subj == events.PriceListsSubject {
			handler = w.receivePrices
		}
		sub, err := w.nc.Subscribe(subj, handler)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		// The writer queue is the bound; let the client library buffer
		// bursts without dropping.
		_ = sub.SetPendingLimits(RequestQueueMax, RequestQueueMax*RequestBytesMax/16)
		subs = append(subs, sub)
	}
	// The subscriptions are only buffered in the client until flushed: a
	// request sent on another connection the moment the writer says it is
	// ready could reach the server first and be answered "no responders"
	// (CI saw one, an empty reply, under a loaded machine).
	if err := w.nc.FlushTimeout(subscribeFlushTimeout); err != nil {
		return fmt.Errorf("subscribe to requests: %w", err)
	}
	w.ready.Store(true)
	w.role.Store(RoleLeader)
	w.log.Info("writer serving", "writer", w.cfg.Name, "last_seq", w.lastSeq, "customers", w.state.Customers())
	return w.loop(ctx, lost, base)
}

// refuseQueued answers every request queued and not yet decided with
// unavailable.
func (w *Writer) refuseQueued() {
	for {
		select {
		case p := <-w.pricesIn:
			w.respondErr(p.msg, ledger.Errorf(ledger.CodeUnavailable, "this writer is not serving; retry"))
		case p := <-w.in:
			w.admission.leave(p.customer)
			w.respondErr(p.msg, ledger.Errorf(ledger.CodeUnavailable, "this writer is not serving; retry"))
		default:
			return
		}
	}
}

// setup opens the stream (openStream: the one its history knows) and
// rebuilds the state, retrying (rebuildRetry) while NATS is unreachable (a
// cluster still starting), until ctx ends or RebuildElapsedMax passes. A
// break of the history is returned at once (an *IntegrityError): retrying
// cannot mend it.
func (w *Writer) setup(ctx context.Context) error {
	err := retry.Do(ctx, rebuildRetry(), func(ctx context.Context) error {
		err := w.setupOnce(ctx)
		if err != nil && asIntegrity(err) == nil && ctx.Err() == nil {
			w.log.Warn("cannot reach the ledger stream yet; retrying", "err", err)
		}
		return err
	})
	switch {
	case err == nil || asIntegrity(err) != nil:
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("cannot reach the ledger stream: gave up: %w", err)
}

// setupOnce is one attempt of setup.
func (w *Writer) setupOnce(ctx context.Context) error {
	known := w.known.LastSeq
	if err := w.openStream(ctx); err != nil {
		return err
	}
	if err := w.rebuild(ctx); err != nil {
		return err
	}
	if w.reset != nil {
		if err := w.appendReset(ctx, known); err != nil {
			return err
		}
	}
	if w.uncovered != 0 {
		if err := w.adoptUnsigned(ctx, w.uncovered); err != nil {
			return err
		}
		w.uncovered = 0
	}
	// The operator's word covers the start it was given for: a break
	// met later (a rebuild, a step-down) halts as always.
	w.cfg.AcceptReset, w.cfg.AdoptUnsigned = "", ""
	return nil
}

// rebuild replaces the state with one replayed from the log (from the
// newest good snapshot, if there is one).
func (w *Writer) rebuild(ctx context.Context) error {
	start := time.Now()
	s, seq, head, err := w.restore(ctx)
	if err != nil {
		return err
	}
	if seq < w.known.LastSeq {
		if err := w.breakOrReset(integrityErr(KindBehind, 0, "the log ends at sequence %d; this writer had applied up to %d", seq, w.known.LastSeq)); err != nil {
			return err
		}
	}
	s.NewID = newEventID
	w.state, w.lastSeq, w.chainHead = s, seq, head
	w.limits.Reset(s.RateLimits())
	w.noteHistory(true)
	w.stats.LastSeq.Store(seq)
	w.stats.ReplayedSeq.Store(seq)
	w.stats.Customers.Store(uint64(s.Customers()))
	w.stats.OpenReservations.Store(uint64(s.OpenReservations()))
	w.log.Info("state rebuilt from log", "events", s.EventsApplied(), "customers", s.Customers(),
		"last_seq", seq, "window_puts_skipped", s.ReplaySkipped(), "took", time.Since(start).Round(time.Millisecond))
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
		if ie := w.Halted(); ie != nil {
			w.respondErr(m, w.haltedErr(ie))
			return
		}
		w.respondErr(m, ledger.Errorf(ledger.CodeUnavailable, "the writer is rebuilding its state; retry"))
		return
	}
	subject := m.Subject
	if w.partitioned() {
		subject = events.UnmapPartition(subject) // subscribed to this partition's only
	}
	rs, err := parseSubject(subject)
	if err != nil {
		w.respondErr(m, err)
		return
	}
	// Rate limits and admission come before decoding, so a flood's excess
	// costs this goroutine a subject parse, not a body decode: the subject
	// names the customer (a body's customer_id must agree with it).
	cid, at := rs.customer, time.Now()
	if rs.op == events.OpPreflight {
		if ok, wait := w.limits.Allow(cid, at); !ok {
			w.stats.RateLimited.Add(1)
			w.respond(m, rateLimited(cid, wait))
			return
		}
	}
	if !w.admission.admit(cid) {
		w.stats.Throttled.Add(1)
		w.respondErr(m, ledger.Errorf(ledger.CodeUnavailable,
			"customer %s already has %d requests waiting for the writer; retry", truncate(cid, 64), QueuedPerCustomerMax))
		return
	}
	cmd, err := rs.decode(m.Data)
	if err != nil {
		w.admission.leave(cid)
		w.respondErr(m, err)
		return
	}
	if w.partitioned() {
		if p := events.PartitionOf(events.Token(cmd.Customer()), w.cfg.Partitions); p != w.cfg.Partition {
			// NATS's mapping and --partitions disagree: a deployment error
			// that a retry cannot fix, and a decision here could overspend.
			w.admission.leave(cid)
			w.respondErr(m, ledger.Errorf(ledger.CodeInternal,
				"customer belongs to partition %d of %d, not %d: the NATS subject mapping and serve --partitions disagree",
				p, w.cfg.Partitions, w.cfg.Partition))
			return
		}
	}
	select {
	case w.in <- &pending{msg: m, cmd: cmd, at: at, customer: cid}:
	default:
		w.admission.leave(cid)
		w.stats.Overloaded.Add(1)
		w.respondErr(m, ledger.Errorf(ledger.CodeUnavailable, "the writer queue is full; retry"))
	}
}

// flight is a decided batch waiting to be answered: its commit is sent and
// not yet acknowledged, or it has no events and waits for the commits ahead
// of it (its replies may depend on their undurable decisions).
type flight struct {
	no     uint64 // commit number, in the ack subject
	id     string // commit ID (Nats-Msg-Id)
	expect uint64 // the last sequence this commit is fenced on
	batch  []*pending
	notify []notice
	// appended are the commit's events (at most CommitEventsMax) when
	// the writer has a shadow or its Observer is an EventObserver, else
	// nil. Nothing changes them once they are encoded: the shadow applies
	// them on its own goroutine. kept is, beside each, the bytes the
	// writer's idempotency window keeps for it (nil if none), which the
	// shadow keeps too (ledger.State.ApplyKept).
	appended []*events.Envelope
	kept     [][]byte
	events   int
	bytes    int
	sent     time.Time
	// acked: the commit is durable and its batch waits only to be
	// answered (answerReady), with before the last sequence ahead of it.
	acked  bool
	before uint64
}

// loop is the single writer. It decides requests as they arrive into the
// open commit; it sends the open commit whenever fewer than
// Config.CommitsInFlight commits await their acks, so while a commit is
// being fsynced the next one fills up (one fsync per commit, and the
// deciding overlaps the fsync). Batches are answered strictly in order,
// each only once it and everything before it is durable; the first failure
// fails every batch after it too (see fail).
func (w *Writer) loop(ctx context.Context, lost <-chan error, base *shadowBase) error {
	acks := make(chan *nats.Msg, CommitsInFlightMax)
	w.inbox = w.lc.NewRespInbox()
	sub, err := w.lc.ChanSubscribe(w.inbox+".*", acks)
	if err != nil {
		return fmt.Errorf("subscribe to acks: %w", err)
	}
	defer sub.Unsubscribe()
	sweep := time.NewTicker(w.cfg.Sweep)
	defer sweep.Stop()
	deadline := time.NewTimer(AppendTimeout)
	defer deadline.Stop()
	w.sentSeq = w.lastSeq
	w.openCommit()
	if !w.cfg.Snapshots.Off {
		w.shadow = w.startShadow(ctx, w.lastSeq, base)
		defer func() {
			w.shadow.stop()
			w.shadow = nil
		}()
	}
	_, observed := w.cfg.Observer.(EventObserver)
	w.keepAppended = w.shadow != nil || observed
	for {
		in := w.in
		if w.openFull() {
			in = nil // the open commit is full: wait for an ack to send it
		}
		if len(w.queue) > 0 {
			deadline.Reset(time.Until(w.queue[0].sent.Add(AppendTimeout)))
		}
		prices := w.pricesIn
		if w.enc.Len() > 0 || in == nil {
			prices = nil // a price list's event opens a commit of its own
		}
		var failure error
		select {
		case p := <-prices:
			w.decide(p)
		case <-ctx.Done():
			w.abandon(ledger.Errorf(ledger.CodeUnavailable, "the writer is shutting down; retry"))
			return nil
		case p := <-in:
			w.decide(p)
			w.drain()
		case <-sweep.C:
			for _, e := range w.state.Sweep(w.now(), SweepEventsMax/ledger.SweepEventsPerExpiryMax) {
				w.add(e, nil)
			}
			w.noteHistory(false)
		case m := <-acks:
			failure = w.onAck(m)
			if failure == nil && w.cfg.Fault != nil {
				w.cfg.Fault(FaultAfterAckBeforeSend)
			}
		case <-deadline.C:
			if len(w.queue) > 0 && time.Since(w.queue[0].sent) >= AppendTimeout {
				failure = fmt.Errorf("%w: no ack within %s", ErrAppend, AppendTimeout)
			}
		case err := <-lost:
			w.abandon(ledger.Errorf(ledger.CodeUnavailable, "this writer lost its lease; retry"))
			return err
		}
		if failure == nil && w.inflight < w.cfg.CommitsInFlight {
			failure = w.send()
		}
		// After the send: the next commit's fsync starts before the acked
		// one's replies are written. Before the failure's: those replies
		// are durable and must not be abandoned with it.
		w.answerReady()
		if failure != nil {
			if ctx.Err() != nil {
				return nil
			}
			if lost != nil {
				// Elected: maybe deposed. Step down; the caller rebuilds
				// and competes for the lease again.
				w.abandon(ledger.Errorf(ledger.CodeUnavailable, "the ledger could not make this decision durable; retry"))
				return failure
			}
			if err := w.fail(ctx, failure); err != nil {
				return err // a break of the history (the caller halts), or the stream out of reach
			}
		}
	}
}

func (w *Writer) ackSubject(no uint64) string { return w.inbox + "." + strconv.FormatUint(no, 10) }

// openCommit starts a new open commit.
func (w *Writer) openCommit() {
	w.openID = newEventID()
	w.enc.Reset(w.openID, w.cfg.Name, w.now())
	w.openBatch = nil
	w.notify = w.notify[:0]
	w.appended = w.appended[:0]
	clear(w.kept)
	w.kept = w.kept[:0]
}

// openFull reports whether one more command might not fit the open commit.
func (w *Writer) openFull() bool {
	return w.enc.Len()+ledger.EventsPerCommandMax > CommitEventsMax || w.enc.Size()+commandBytesMax > CommitBytesMax
}

// decide decides one request into the open commit.
func (w *Writer) decide(p *pending) {
	w.admission.leave(p.customer)
	p.afterOpen = w.enc.Len() > 0
	var (
		reply ledger.Reply
		evs   []*events.Envelope
		err   error
	)
	if p.prices != nil {
		reply, evs, err = w.decidePrices(p.prices)
	} else {
		reply, evs, err = w.state.Decide(p.cmd, w.now())
	}
	p.reply, p.err = reply, err
	var kept []ledger.Kept
	if p.prices == nil {
		kept = w.state.Kept()
	}
	for _, e := range evs {
		var raw []byte
		if len(kept) > 0 && kept[0].Event == e {
			raw, kept = kept[0].Raw, kept[1:]
		}
		w.add(e, raw)
	}
	w.openBatch = append(w.openBatch, p)
}

// drain decides whatever else is queued, while the open commit has room.
func (w *Writer) drain() {
	for !w.openFull() {
		select {
		case p := <-w.in:
			w.decide(p)
		default:
			return
		}
	}
}

// send closes the open commit and, if it holds events, publishes them as
// one commit fenced on the sequence the commits ahead of it will leave.
// Requests without events (reads, errors) wait in order behind it.
func (w *Writer) send() error {
	w.drain()
	if len(w.openBatch) == 0 && w.enc.Len() == 0 {
		return nil
	}
	w.nextNo++
	f := &flight{no: w.nextNo, id: w.openID, batch: w.openBatch, events: w.enc.Len(), sent: time.Now()}
	w.queue = append(w.queue, f)
	if f.events == 0 {
		w.openCommit()
		return nil
	}
	f.notify = append([]notice(nil), w.notify...)
	if len(w.appended) > 0 {
		f.appended = append([]*events.Envelope(nil), w.appended...)
		f.kept = append([][]byte(nil), w.kept...)
	}
	f.expect, f.bytes = w.sentSeq, w.enc.Size()
	if w.partitioned() {
		f.expect = w.lastSeq // the one commit in flight: its predecessor is acknowledged
	}
	w.sentSeq++
	w.inflight++
	m, head := w.commitMsg(w.openID, w.enc.Bytes(), w.fence(f.expect))
	m.Reply = w.ackSubject(f.no)
	w.chainHead = head
	err := w.lc.PublishMsg(m)
	w.openCommit()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAppend, err)
	}
	return nil
}

// onAck takes the ack of the oldest commit in flight. Its batch is answered
// after the next commit is sent (answerReady, in loop).
func (w *Writer) onAck(m *nats.Msg) error {
	if len(w.queue) == 0 || w.queue[0].events == 0 || m.Subject != w.ackSubject(w.queue[0].no) {
		return nil // the ack of a commit already failed and answered
	}
	f := w.queue[0]
	seq, err := checkAck(m.Data, w.fence(f.expect))
	if err != nil {
		return err
	}
	before := w.lastSeq
	w.lastSeq = seq
	w.shadow.push(seq, f.id, f.appended, f.kept, f.bytes)
	w.inflight--
	w.stats.LastSeq.Store(seq)
	w.stats.Batches.Add(1)
	w.stats.Events.Add(uint64(f.events))
	took := time.Since(f.sent)
	w.stats.AppendNanos.Add(uint64(took))
	w.stats.Customers.Store(uint64(w.state.Customers()))
	w.stats.OpenReservations.Store(uint64(w.state.OpenReservations()))
	if o := w.cfg.Observer; o != nil {
		o.Committed(f.events, f.bytes, took)
	}
	if o, ok := w.cfg.Observer.(EventObserver); ok {
		for _, e := range f.appended {
			o.Appended(e)
		}
	}
	if w.cfg.Fault != nil && len(f.notify) > 0 {
		w.cfg.Fault(FaultAfterAckBeforeAlerts)
	}
	if w.alerts != nil {
		w.alerts.offer(seq, f.notify)
	} else {
		for _, nt := range f.notify {
			_ = w.nc.Publish(nt.subject, nt.body)
		}
	}
	f.acked, f.before = true, before
	return nil
}

// answerReady answers, in order, the acknowledged batches and those
// without events that no commit precedes.
func (w *Writer) answerReady() {
	for len(w.queue) > 0 && (w.queue[0].acked || w.queue[0].events == 0) {
		f, before := w.queue[0], w.lastSeq
		if f.acked {
			before = f.before
		}
		w.answer(f, before)
		w.queue = w.queue[1:]
	}
}

func (w *Writer) answer(f *flight, before uint64) {
	w.stats.Requests.Add(uint64(len(f.batch)))
	for _, p := range f.batch {
		if st, ok := p.reply.(*ledger.StatusReply); ok {
			// Every commit before this one is durable, the last at before;
			// this one (if it read its events) at lastSeq.
			st.AsOfSeq = before
			if p.afterOpen {
				st.AsOfSeq = w.lastSeq
			}
		}
		if p.err != nil {
			w.respondErr(p.msg, p.err)
		} else {
			w.respond(p.msg, p.reply)
		}
		if o := w.cfg.Observer; o != nil {
			o.Answered(p.op(), p.reply, p.err, time.Since(p.at))
		}
	}
}

// add encodes an event into the commit being built.
// add encodes e into the open commit; raw is what the state kept for it
// (ledger.Kept), or nil.
func (w *Writer) add(e *events.Envelope, raw []byte) {
	b, err := events.Encode(e)
	if err != nil {
		panic(fmt.Sprintf("agentbill: cannot encode event %s: %v", e.ID, err))
	}
	w.enc.Add(b)
	if bs, ok := e.Data.(*events.BudgetSet); ok {
		// From this decision on, not from its ack: a rate is not a
		// ledger decision, and a failed commit's rebuild resets them all.
		w.limits.SetRate(e.CustomerID, bs.RateLimit)
	}
	if w.keepAppended {
		w.appended = append(w.appended, e)
		w.kept = append(w.kept, raw)
	}
	if notifyTypes[e.Type] {
		w.notify = append(w.notify, notice{id: e.ID, subject: events.EventSubject(e.CustomerID, e.Type), body: b})
	}
}

// fail handles a failed append: no request of that batch or of any batch
// after it is answered with a decision (they get unavailable and retry with
// their idempotency keys), the in-memory state, which holds their undurable
// decisions, is dropped and rebuilt from the log, and serving resumes. A
// commit after the failed one that did land is in the log, so the retries
// find it through their idempotency keys. If the rebuild meets a break of
// the history, fail returns it (an *IntegrityError) and nothing is served;
// if the stream stays out of reach past rebuildRetry's bounds, fail returns
// that error and the writer stops.
func (w *Writer) fail(ctx context.Context, cause error) error {
	w.ready.Store(false)
	w.role.Store(RoleRebuilding)
	w.stats.Rebuilds.Add(1)
	w.log.Error("append failed; rebuilding state from the log", "err", cause, "last_seq", w.lastSeq, "in_flight", w.inflight)
	w.abandon(ledger.Errorf(ledger.CodeUnavailable, "the ledger could not make this decision durable; retry"))
	err := retry.Do(ctx, rebuildRetry(), func(ctx context.Context) error {
		err := w.openStream(ctx)
		if err == nil {
			err = w.rebuild(ctx)
		}
		if err != nil && asIntegrity(err) == nil && ctx.Err() == nil {
			w.log.Error("rebuild failed; retrying", "err", err)
		}
		return err
	})
	switch ie := asIntegrity(err); {
	case err == nil:
		w.sentSeq = w.lastSeq
		w.shadow.restart(w.lastSeq) // it may hold decisions that were never durable
		w.ready.Store(true)
		w.role.Store(RoleLeader)
		return nil
	case ie != nil:
		w.markHalted(ie)
		return err
	case ctx.Err() != nil:
		return nil
	}
	return fmt.Errorf("rebuild after a failed append: gave up: %w", err)
}

// abandon answers every request not yet answered (sent or open) with err,
// and forgets them; their decisions are not durable and must not be told.
func (w *Writer) abandon(err error) {
	for _, f := range w.queue {
		for _, p := range f.batch {
			w.respondErr(p.msg, err)
		}
	}
	for _, p := range w.openBatch {
		w.respondErr(p.msg, err)
	}
	w.queue, w.inflight = w.queue[:0], 0
	w.openCommit()
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

func (w *Writer) respond(m *nats.Msg, reply ledger.Reply) {
	b, ok := ledger.AppendReply(nil, reply) // the plain preflight and record replies, without reflection
	var err error
	if !ok {
		b, err = encodeReply(reply)
	}
	if err != nil {
		w.respondErr(m, ledger.Errorf(ledger.CodeInternal, "cannot encode reply: %v", err))
		return
	}
	if err := m.Respond(b); err != nil {
		// Only a reply over max_payload fails here; say so rather than
		// leave the client to time out.
		w.log.Error("reply not sent", "subject", m.Subject, "bytes", len(b), "err", err)
		w.respondErr(m, ledger.Errorf(ledger.CodeInternal, "reply of %d bytes could not be sent: %v", len(b), err))
	}
}

func (w *Writer) respondErr(m *nats.Msg, err error) {
	var le *ledger.Error
	if !errors.As(err, &le) {
		le = ledger.Errorf(ledger.CodeInternal, "%v", err)
	}
	b, _ := encodeReply(ledger.ErrorReply{Error: le})
	_ = m.Respond(b)
}

// encodeReply encodes a reply as JSON without HTML escaping (IDs with < or
// > would otherwise grow sixfold).
func encodeReply(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
