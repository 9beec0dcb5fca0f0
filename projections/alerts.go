package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The alert stream. Every announced event (notifyTypes: budget_exhausted,
// budget_restored, threshold_crossed, denied) is published, after the
// commit holding it is acknowledged, to the stream AlertStream on its
// subject agentbill.events.<ctok>.<type>, so core subscribers hear it as
// before and durable consumers can resume where they stopped. Each alert
// carries Nats-Msg-Id = the event's ID, AlertLogSeqHeader = the log
// sequence of its commit and AlertWriterHeader = the writer. The stream is
// derived from the log: a writer publishes, before it serves, the alerts
// of every acknowledged commit the stream does not hold yet (catchUpAlerts),
// and RebuildAlerts makes it again from the log.
const (
	// AlertStream is the alert stream's name.
	AlertStream = events.AlertStreamName
	// WebhookStream is a copy of the alert stream (it sources it) that
	// only the service may touch: webhook deliveries keep their durable
	// consumers there, where readers of the alert stream, who may manage
	// consumers on it, cannot pull, acknowledge, delete or refilter them.
	WebhookStream = "AGENTBILL_WEBHOOK_EVENTS"
	// AlertSubjects is its subject filter: agentbill.events.<ctok>.<type>.
	AlertSubjects = events.EventSubjectPrefix + "*.*"
	// AlertLogSeqHeader names the log sequence an alert's commit is at.
	AlertLogSeqHeader = events.AlertLogSeqHeader
	// AlertWriterHeader names the writer (partition) that published it.
	AlertWriterHeader = events.AlertWriterHeader
	// AlertMaxAgeDefault is how long alerts are kept (serve --alerts-max-age).
	AlertMaxAgeDefault = 30 * 24 * time.Hour
	// AlertMaxAgeMin bounds --alerts-max-age from below: it must exceed
	// the duplicate window.
	AlertMaxAgeMin = time.Hour
	// AlertDuplicateWindow is the stream's Nats-Msg-Id window: a retried
	// publish is stored once. Restarts do not rely on it (catchUpAlerts
	// skips what the stream holds), so it only needs to cover retries.
	AlertDuplicateWindow = 10 * time.Minute
	// AlertQueueMax bounds the committed batches of alerts waiting for the
	// publisher; past it the writer drops them and the publisher reads
	// them back from the log (it is behind, not lossy).
	AlertQueueMax = 4096
	// AlertPublishTimeout bounds one alert's publish and ack.
	AlertPublishTimeout = 5 * time.Second
	// AlertRetryMax bounds the wait between retries of a failed publish.
	AlertRetryMax = 5 * time.Second
	// AlertTailScanMax bounds how many messages catchUpAlerts reads back
	// from the stream's end to find this writer's last alert (other
	// partitions' alerts lie between).
	AlertTailScanMax = 100_000
)

// FaultAfterAckBeforeAlerts is the point (Config.Fault) after a commit
// holding alerts is acknowledged and before its alerts are handed to the
// publisher.
const FaultAfterAckBeforeAlerts = "after-ack-before-alerts"

// AlertConfig configures the alert stream (Config.Alerts).
type AlertConfig struct {
	// MaxAge is how long alerts are kept; AlertMaxAgeDefault if 0.
	MaxAge time.Duration
	// DuplicateWindow is the stream's Nats-Msg-Id window;
	// AlertDuplicateWindow if 0 (tests shorten it to show that restarts
	// do not depend on it).
	DuplicateWindow time.Duration
}

// AlertStreamConfig returns the alert stream's configuration.
func AlertStreamConfig(replicas int, c AlertConfig) jetstream.StreamConfig {
	maxAge, window := c.MaxAge, c.DuplicateWindow
	if maxAge <= 0 {
		maxAge = AlertMaxAgeDefault
	}
	if window <= 0 {
		window = AlertDuplicateWindow
	}
	return jetstream.StreamConfig{
		Name:        AlertStream,
		Description: "AgentBill alerts (budget_exhausted, budget_restored, threshold_crossed, denied), derived from the AGENTBILL log",
		Subjects:    []string{AlertSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    max(replicas, 1),
		MaxAge:      maxAge,
		Duplicates:  min(window, maxAge),
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	}
}

// WebhookStreamConfig returns the webhook stream's configuration: the
// alert stream's retention, sourcing every alert from it (subjects kept).
func WebhookStreamConfig(replicas int, c AlertConfig) jetstream.StreamConfig {
	a := AlertStreamConfig(replicas, c)
	return jetstream.StreamConfig{
		Name:        WebhookStream,
		Description: "AgentBill alerts for webhook deliveries: a copy of " + AlertStream + " only the service may touch",
		Sources:     []*jetstream.StreamSource{{Name: AlertStream}},
		Storage:     a.Storage,
		Retention:   a.Retention,
		Replicas:    a.Replicas,
		MaxAge:      a.MaxAge,
		DenyDelete:  true,
		DenyPurge:   true,
	}
}

// EnsureAlertStream creates the alert stream and the webhook stream that
// copies it, or updates them to their configuration, and returns the
// alert stream.
func EnsureAlertStream(ctx context.Context, js jetstream.JetStream, replicas int, c AlertConfig) (jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, AlertStreamConfig(replicas, c))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", AlertStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, WebhookStreamConfig(replicas, c)); err != nil {
		return nil, fmt.Errorf("stream %s: %w", WebhookStream, err)
	}
	return st, nil
}

// alertMsg is one alert as published to the alert stream.
func alertMsg(nt notice, seq uint64, writer string) *nats.Msg {
	m := nats.NewMsg(nt.subject)
	m.Data = nt.body
	m.Header.Set(jetstream.MsgIDHeader, nt.id)
	m.Header.Set(AlertLogSeqHeader, strconv.FormatUint(seq, 10))
	m.Header.Set(AlertWriterHeader, writer)
	return m
}

// alertBatch is the alerts of one acknowledged commit.
type alertBatch struct {
	seq     uint64
	notices []notice
}

// alerter publishes alerts in log order on its own goroutine, so the
// writer never waits for the alert stream. It keeps published, the log
// sequence through which every alert is stored; if its queue overflows it
// reads the missed commits back from the log.
type alerter struct {
	name      string // the writer whose alerts these are
	only      string // its own subject's commits only (a partition), or every one ("")
	log       *slog.Logger
	js        jetstream.JetStream
	queue     chan alertBatch
	wake      chan struct{} // offer dropped a batch: run catches up even with nothing queued
	behind    atomic.Bool   // batches were dropped: read them from the log
	published atomic.Uint64 // every alert of commits up to here is stored
	target    atomic.Uint64 // the writer's last acknowledged sequence
}

// offer hands the alerts of the commit at seq to the publisher, never
// blocking the writer.
func (a *alerter) offer(seq uint64, notices []notice) {
	a.target.Store(seq) // before behind is read: see run
	if len(notices) == 0 || a.behind.Load() {
		return
	}
	select {
	case a.queue <- alertBatch{seq: seq, notices: notices}:
	default:
		a.behind.Store(true)
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// run publishes until ctx ends. When it is behind (offer dropped a
// batch), it catches up from the log once its queue is empty: it clears
// behind first and then reads target, so every commit whose batch offer
// dropped is at or below the target it reads (offer stores target before
// it reads behind), and every later one is queued.
func (a *alerter) run(ctx context.Context) {
	for {
		if a.behind.Load() && len(a.queue) == 0 {
			a.behind.Store(false)
			if err := a.catchUp(ctx, a.target.Load()); err != nil {
				return // only ctx ends catchUp's publishing
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case b := <-a.queue:
			if b.seq <= a.published.Load() {
				continue // already published by a catch-up from the log
			}
			if err := a.publish(ctx, b); err != nil {
				return // only ctx ends publish
			}
			a.published.Store(b.seq)
		}
	}
}

// publish stores one commit's alerts, in order, retrying with backoff
// (the IDs make a retry store each alert once) until they are stored or
// ctx ends.
func (a *alerter) publish(ctx context.Context, b alertBatch) error {
	backoff := 50 * time.Millisecond
	for i := 0; i < len(b.notices); {
		pctx, cancel := context.WithTimeout(ctx, AlertPublishTimeout)
		_, err := a.js.PublishMsg(pctx, alertMsg(b.notices[i], b.seq, a.name))
		cancel()
		if err == nil {
			i++
			backoff = 50 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("alert not stored yet; retrying", "seq", b.seq, "event", b.notices[i].id, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, AlertRetryMax)
	}
	return nil
}

// catchUp publishes the alerts of every commit after published up to
// through, reading them from the log. For the commit the stream's last
// alert of this writer came from, it skips the alerts already stored.
func (a *alerter) catchUp(ctx context.Context, through uint64) error {
	from := a.published.Load()
	if from >= through {
		return nil
	}
	stored, err := a.storedAt(ctx, from)
	if err != nil {
		return err
	}
	var batch alertBatch
	flush := func() error {
		if len(batch.notices) == 0 {
			return nil
		}
		err := a.publish(ctx, batch)
		batch.notices = batch.notices[:0]
		return err
	}
	stop := ReplayStop{StartSeq: max(from, 1), UntilSeq: through, Writer: a.only}
	_, err = Replay(ctx, a.js, stop, func(seq uint64, e *events.Envelope) error {
		if !notifyTypes[e.Type] || (seq == from && stored[e.ID]) {
			return nil
		}
		if seq != batch.seq {
			if err := flush(); err != nil {
				return err
			}
			batch.seq = seq
		}
		b, err := events.Encode(e)
		if err != nil {
			return err
		}
		batch.notices = append(batch.notices, notice{id: e.ID, subject: events.EventSubject(e.CustomerID, e.Type), body: b})
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("alerts after sequence %d: %w", from, err)
	}
	a.published.Store(through)
	return nil
}

// storedAt returns the IDs of the alerts of the commit at seq that the
// stream holds (its tail), to skip them when publishing that commit again.
func (a *alerter) storedAt(ctx context.Context, seq uint64) (map[string]bool, error) {
	ids := map[string]bool{}
	if seq == 0 {
		return ids, nil
	}
	st, err := a.js.Stream(ctx, AlertStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", AlertStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", AlertStream, err)
	}
	want := strconv.FormatUint(seq, 10)
	for s, n := info.State.LastSeq, 0; s >= info.State.FirstSeq && s > 0 && n < AlertTailScanMax; s, n = s-1, n+1 {
		m, err := st.GetMsg(ctx, s)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s message %d: %w", AlertStream, s, err)
		}
		if m.Header.Get(AlertWriterHeader) != a.name {
			continue
		}
		if m.Header.Get(AlertLogSeqHeader) != want {
			break // an earlier commit of ours: nothing of seq lies before it
		}
		ids[m.Header.Get(jetstream.MsgIDHeader)] = true
	}
	return ids, nil
}

// lastPublished returns the log sequence of this writer's last stored
// alert (0 if it has none within AlertTailScanMax messages of the end).
func (a *alerter) lastPublished(ctx context.Context) (uint64, error) {
	st, err := a.js.Stream(ctx, AlertStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", AlertStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", AlertStream, err)
	}
	for s, n := info.State.LastSeq, 0; s >= info.State.FirstSeq && s > 0 && n < AlertTailScanMax; s, n = s-1, n+1 {
		m, err := st.GetMsg(ctx, s)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("stream %s message %d: %w", AlertStream, s, err)
		}
		if m.Header.Get(AlertWriterHeader) == a.name {
			return strconv.ParseUint(strings.TrimSpace(m.Header.Get(AlertLogSeqHeader)), 10, 64)
		}
	}
	return 0, nil
}

// startAlerts makes sure the alert stream exists, publishes the alerts of
// every acknowledged commit it lacks (from this writer's last stored
// alert, or the stream's retention window, whichever is later), and starts
// the publisher. It returns a context that ends with stop, for the time
// this writer leads.
func (w *Writer) startAlerts(ctx context.Context) (context.Context, func(), error) {
	maxAge := w.cfg.Alerts.MaxAge
	if maxAge <= 0 {
		maxAge = AlertMaxAgeDefault
	}
	if _, err := EnsureAlertStream(ctx, w.js, w.cfg.Replicas, *w.cfg.Alerts); err != nil {
		return nil, nil, err
	}
	a := w.newAlerter()
	last, err := a.lastPublished(ctx)
	if err != nil {
		return nil, nil, err
	}
	if last == 0 && w.lastSeq > 0 {
		// Nothing of ours is stored: alerts older than the window would
		// age out at once, so start at the window (the whole log if it is
		// younger).
		first, err := SeqAtTime(ctx, w.js, w.now().Add(-maxAge), w.lastSeq)
		if err != nil {
			return nil, nil, err
		}
		last = first - 1
	}
	a.published.Store(last)
	start := time.Now()
	if err := a.catchUp(ctx, w.lastSeq); err != nil {
		return nil, nil, err
	}
	if w.lastSeq > last {
		w.log.Info("alerts caught up from the log", "from_seq", last+1, "to_seq", w.lastSeq, "took", time.Since(start).Round(time.Millisecond))
	}
	a.target.Store(w.lastSeq)
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.run(actx)
	}()
	w.alerts = a
	return actx, func() {
		cancel()
		<-done
		w.alerts = nil
	}, nil
}

// newAlerter returns the writer's alert publisher, not yet started.
func (w *Writer) newAlerter() *alerter {
	a := &alerter{name: w.cfg.Name, log: w.log, js: w.js, queue: make(chan alertBatch, AlertQueueMax),
		wake: make(chan struct{}, 1)}
	if w.partitioned() {
		a.only = w.cfg.Name
	}
	return a
}

// RebuildAlerts makes the alert stream again from the log: it checks the
// log (every chain link and each writer's last signature, with keys;
// nothing if keys is nil), deletes the stream, creates it with cfg, and
// publishes the alerts of every commit within cfg's max age, writer by
// writer (writers: "0" for an unpartitioned ledger, every partition's
// number for a partitioned one). Run it while no writer serves
// (`agentbill alerts rebuild`); durable consumers on the old stream are
// deleted with it. It returns the number of alerts stored.
func RebuildAlerts(ctx context.Context, js jetstream.JetStream, replicas int, cfg AlertConfig, writers []string, partitioned bool, keys events.Keyring, log *slog.Logger) (uint64, error) {
	maxAge := cfg.MaxAge
	if maxAge <= 0 {
		maxAge = AlertMaxAgeDefault
	}
	last, err := LastSequence(ctx, js)
	if err != nil {
		return 0, err
	}
	only := func(w string) string {
		if partitioned {
			return w
		}
		return ""
	}
	if keys != nil {
		for _, w := range writers {
			v := NewLogVerifier(keys, events.LogSubject(w), !partitioned, 1, "")
			v.Lazy = true
			if _, err := Replay(ctx, js, ReplayStop{Writer: only(w), Verify: v}, func(uint64, *events.Envelope) error { return nil }); err != nil {
				return 0, fmt.Errorf("the log of writer %s does not verify; no alert stream is made from it: %w", w, err)
			}
		}
	}
	// The webhook stream goes too: it would copy every rebuilt alert
	// again, and its consumers would deliver them twice.
	for _, name := range []string{WebhookStream, AlertStream} {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, fmt.Errorf("delete %s: %w", name, err)
		}
	}
	st, err := EnsureAlertStream(ctx, js, replicas, cfg)
	if err != nil || last == 0 {
		return 0, err
	}
	first, err := SeqAtTime(ctx, js, time.Now().Add(-maxAge), last)
	if err != nil {
		return 0, err
	}
	for _, w := range writers {
		a := &alerter{name: w, only: only(w), log: log, js: js}
		a.published.Store(first - 1)
		if err := a.catchUp(ctx, last); err != nil {
			return 0, err
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
