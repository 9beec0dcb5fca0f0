package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/retry"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Integrity: a writer (or standby) that meets any break of its history
// stops approving anything until an operator acts (fail closed). It stays
// up, answers every request unavailable with the problem named, reports
// RoleHalted (so /readyz is 503) and counts the break by kind.
//
// The kinds of break.
const (
	// KindChain: a commit's Agentbill-Chain-Prev is not the chain hash of
	// its writer's previous commit (one was changed, removed, inserted or
	// published again out of place).
	KindChain = "chain"
	// KindSignature: a commit is unsigned, or not signed by a trusted key.
	KindSignature = "signature"
	// KindWriter: a commit on another writer's subject than this one's
	// ledger, or whose body names a writer other than its subject's.
	KindWriter = "writer"
	// KindGap: the stream's sequences skip (messages removed).
	KindGap = "gap"
	// KindBehind: the stream ends before what this writer has applied, or
	// before what its snapshot or history file says (truncated, or an
	// older copy put back).
	KindBehind = "behind"
	// KindRecreated: the stream was deleted and created again (its
	// creation time changed).
	KindRecreated = "recreated"
	// KindMissing: the stream is gone, though a history proves it existed;
	// the writer never creates an empty stream over a history it knew.
	KindMissing = "missing"
	// KindSnapshot: a stored snapshot whose signature does not verify. It
	// is refused and the log replayed instead (the log is verified), so
	// this kind is counted but does not halt.
	KindSnapshot = "snapshot"
)

// RoleHalted: the writer met a break of its history and approves nothing
// (Writer.Halted says which).
const RoleHalted = "halted"

// StreamBehindWait is how long a starting writer whose stream reports
// fewer commits than the writer has applied waits for it to report them
// before it halts (KindBehind): a replicated stream whose leader was just
// elected, as its nodes come back from a lost quorum, can report its state
// before it has applied every commit its peers acknowledged (seen once in
// TestServicesStopWithoutQuorum: 388 reported, 389 applied, all 389 in the
// log moments later). A stream cut short stays short, and the writer then
// halts as before; it serves nothing while it waits. streamBehindPoll is
// the longest wait between two asks (retry's jitter draws each from its
// upper half).
const (
	StreamBehindWait = 10 * time.Second
	streamBehindPoll = 250 * time.Millisecond
)

// streamBehindWait is StreamBehindWait; tests of the halt shorten it.
var streamBehindWait = StreamBehindWait

// errStreamBehind is caughtUpInfo's failed attempt: the stream still
// reports fewer commits than the writer applied.
var errStreamBehind = errors.New("the stream reports fewer commits than this writer applied")

// caughtUpInfo returns st's info once it reports at least the commits
// this writer has applied (w.known.LastSeq), asking again (retry.Do) for
// at most streamBehindWait, or else the last info it read, which the
// caller finds behind.
func (w *Writer) caughtUpInfo(ctx context.Context, st jetstream.Stream) (*jetstream.StreamInfo, error) {
	info, err := st.Info(ctx)
	if err != nil || info.State.LastSeq >= w.known.LastSeq {
		return info, err
	}
	w.log.Warn("the ledger stream reports fewer commits than this writer applied; waiting for it before halting",
		"stream_last_seq", info.State.LastSeq, "applied", w.known.LastSeq, "wait", streamBehindWait)
	// Each wait is at least half of streamBehindPoll: Elapsed ends it first.
	policy := retry.Policy{Attempts: int(streamBehindWait/(streamBehindPoll/2)) + 1, Elapsed: streamBehindWait,
		First: streamBehindPoll, Max: streamBehindPoll}
	err = retry.Do(ctx, policy, func(ctx context.Context) error {
		next, err := st.Info(ctx)
		if err != nil {
			return err // the stream between leaders again: its last answer stands
		}
		if info = next; info.State.LastSeq < w.known.LastSeq {
			return errStreamBehind
		}
		return nil
	})
	switch {
	case err == nil:
		w.log.Info("the ledger stream caught up", "stream_last_seq", info.State.LastSeq)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	return info, nil
}

// ResetHeader marks a reset commit: a commit without events that a writer
// started with Config.AcceptReset appends, signed, before it serves over a
// lost or replaced history. Its value (JSON, resetRecord) records the
// operator's decision: the break accepted, the history known before, and
// the reason given.
const ResetHeader = "Agentbill-Reset"

// AdoptHeader marks an adoption commit: a signed commit without events
// that a writer started with Config.AdoptUnsigned appends over a log whose
// commits before it are unsigned (written before commits were signed).
// Its signature covers the chain, so those commits verify from then on;
// its value (JSON) records the unsigned range and the operator's reason.
const AdoptHeader = "Agentbill-Adopt"

// HistoryWriteInterval is how often, at most, the writer records its
// position in Config.HistoryFile while commits arrive.
const HistoryWriteInterval = time.Second

// IntegrityError is a break of the writer's history.
type IntegrityError struct {
	Kind   string // one of the Kind constants
	Seq    uint64 // the stream sequence where it was found (0: the stream as a whole)
	Detail string
}

func (e *IntegrityError) Error() string {
	if e.Seq == 0 {
		return fmt.Sprintf("integrity violation (%s): %s", e.Kind, e.Detail)
	}
	return fmt.Sprintf("integrity violation (%s) at sequence %d: %s", e.Kind, e.Seq, e.Detail)
}

func integrityErr(kind string, seq uint64, format string, args ...any) *IntegrityError {
	return &IntegrityError{Kind: kind, Seq: seq, Detail: fmt.Sprintf(format, args...)}
}

// resettable reports whether Config.AcceptReset may accept the break:
// history that is gone or was replaced, never a commit that fails its
// checks (a forged or altered commit is not applied whatever the flag).
func (e *IntegrityError) resettable() bool {
	return e.Kind == KindMissing || e.Kind == KindRecreated || e.Kind == KindBehind
}

// LogVerifier checks commits before they are applied: each commit's body
// names its subject's writer, its signature verifies (if Keys is set), it
// links to the chain hash of its writer's previous commit, it is on
// Subject (if set), and, if Contiguous, the sequences do not skip.
//
// Unsigned commits (a log written before commits were signed) pass only
// as a prefix of their writer's chain, and only when a later commit of the
// same writer is signed: its signature covers the chain, and so them (an
// adoption commit, AdoptHeader, is made for that). Until then they are
// uncovered: Uncovered reports the first, and a replay that ends with one
// fails with KindSignature. An unsigned commit after a signed one, and a
// commit with a signature that does not verify, never pass.
//
// Lazy defers signature checks to the end of a replay, where only each
// writer's last signed commit is checked: its signature covers its chain,
// and every chain link is checked. That is sound because the service
// never signs over a commit it has not verified: a commit whose signature
// is bad is followed by no genuine signed commit of its writer, so it is
// the last signed one, or an unsigned commit follows it and it is again
// the last signed one. When the final check fails, Replay reads the range
// again checking every signature, to name the first bad commit.
type LogVerifier struct {
	Keys       events.Keyring
	Subject    string // the only subject commits may be on; "" for any
	Contiguous bool   // every sequence is read (no subject filter)
	Lazy       bool   // check only each writer's last signature, at the end
	heads      map[string]string
	next       uint64            // the sequence the next commit must have; 0 before the first
	unsigned   map[string]uint64 // per subject, the first unsigned commit no signature covers yet
	signed     map[string]bool   // per subject, a signed commit was seen (or lies before next)
	lastSigned map[string]signedCommit
	from       verifierStart // where it started, for a strict second pass
}

// signedCommit is a signature to check at the end of a lazy replay.
type signedCommit struct {
	seq       uint64
	hash, sig string
}

// verifierStart is a verifier's starting point.
type verifierStart struct {
	next    uint64
	subject string
	head    string
}

// NewLogVerifier returns a verifier for commits after next-1, where the
// chain head of subject is head.
func NewLogVerifier(keys events.Keyring, subject string, contiguous bool, next uint64, head string) *LogVerifier {
	v := &LogVerifier{Keys: keys, Subject: subject, Contiguous: contiguous, heads: map[string]string{}, next: next,
		unsigned: map[string]uint64{}, signed: map[string]bool{}, lastSigned: map[string]signedCommit{},
		from: verifierStart{next, subject, head}}
	if subject != "" {
		v.heads[subject] = head
		// A verifier that starts past the first commit continues from a
		// state that was verified, signed: no unsigned prefix is left.
		v.signed[subject] = next > 1
	}
	return v
}

// Head returns the chain hash of the last commit verified on subject.
func (v *LogVerifier) Head(subject string) string { return v.heads[subject] }

// checked is what the parallel part of verification (checkAlone) found.
type checked struct {
	hash     string // the commit's chain hash
	sig      string // its signature, not yet checked (Lazy)
	unsigned bool   // it has no signature (an error only if nothing covers it)
	err      error
}

// strict returns a verifier that checks every signature, from the same
// starting point as v.
func (v *LogVerifier) strict() *LogVerifier {
	return NewLogVerifier(v.Keys, v.from.subject, v.Contiguous, v.from.next, v.from.head)
}

// restart takes v back to its starting point, Lazy as it was, for a
// replay that starts again (Rebuild).
func (v *LogVerifier) restart() {
	lazy := v.Lazy
	*v = *NewLogVerifier(v.Keys, v.from.subject, v.Contiguous, v.from.next, v.from.head)
	v.Lazy = lazy
}

// checkAlone runs the checks that need only the commit itself, so replay
// runs them on its decoding goroutines: the chain hash, the signature and
// the writer its body names.
func (v *LogVerifier) checkAlone(seq uint64, subject string, h nats.Header, body []byte, c *events.Commit) checked {
	prev := h.Get(events.ChainHeader)
	hash := events.ChainHash(prev, body)
	if w := strings.TrimPrefix(subject, events.LogSubjectPrefix); c != nil && c.Writer != w {
		return checked{hash: hash, err: integrityErr(KindWriter, seq, "commit %s on %s names writer %q", c.ID, subject, c.Writer)}
	}
	if v.Keys != nil && v.Lazy {
		sig := h.Get(events.SigHeader)
		return checked{hash: hash, sig: sig, unsigned: sig == ""}
	}
	if v.Keys != nil {
		err := v.Keys.VerifyCommit(subject, hash, h.Get(events.SigHeader))
		if errors.Is(err, events.ErrUnsigned) {
			return checked{hash: hash, unsigned: true}
		}
		if err != nil {
			return checked{hash: hash, err: integrityErr(KindSignature, seq, "commit on %s: %v", subject, err)}
		}
	}
	return checked{hash: hash}
}

// link runs the checks that depend on the commits before it, in log order,
// and moves the chain on.
func (v *LogVerifier) link(seq uint64, subject string, h nats.Header, ck checked) error {
	if ck.err != nil {
		return ck.err
	}
	if v.Subject != "" && subject != v.Subject {
		return integrityErr(KindWriter, seq, "a commit on %s, in a ledger that only %s writes", subject, v.Subject)
	}
	if v.Contiguous && v.next != 0 && seq != v.next {
		return integrityErr(KindGap, seq, "sequence %d follows %d", seq, v.next-1)
	}
	if got, want := h.Get(events.ChainHeader), v.heads[subject]; got != want {
		return integrityErr(KindChain, seq, "commit on %s links to %.16q, its writer's previous commit hashes to %.16q", subject, got, want)
	}
	switch {
	case !ck.unsigned:
		delete(v.unsigned, subject) // its signature covers the chain before it
		v.signed[subject] = true
		if v.Lazy {
			v.lastSigned[subject] = signedCommit{seq: seq, hash: ck.hash, sig: ck.sig}
		}
	case v.signed[subject]:
		// Unsigned commits are a log's prefix from before signatures;
		// one after a signed commit of its writer is never genuine.
		return integrityErr(KindSignature, seq, "commit on %s: %v, after signed commits of its writer", subject, events.ErrUnsigned)
	case v.unsigned[subject] == 0:
		v.unsigned[subject] = seq
	}
	v.heads[subject], v.next = ck.hash, seq+1
	return nil
}

// Uncovered returns the first unsigned commit no later signature covers,
// and its subject (0 if there is none).
func (v *LogVerifier) Uncovered() (uint64, string) {
	var first uint64
	var subject string
	for subj, seq := range v.unsigned {
		if first == 0 || seq < first {
			first, subject = seq, subj
		}
	}
	return first, subject
}

// finish is the check at the end of a replay: with Lazy, each writer's
// last signature verifies; unless keepUncovered, no unsigned commit is
// left uncovered.
func (v *LogVerifier) finish(keepUncovered bool) error {
	for subject, sc := range v.lastSigned {
		if err := v.Keys.VerifyCommit(subject, sc.hash, sc.sig); err != nil {
			return integrityErr(KindSignature, sc.seq, "commit on %s: %v", subject, err)
		}
	}
	if keepUncovered {
		return nil
	}
	if seq, subject := v.Uncovered(); seq != 0 {
		return integrityErr(KindSignature, seq, "commit on %s: %v, and no later commit of its writer is signed", subject, events.ErrUnsigned)
	}
	return nil
}

// verify runs every check on one commit as it is appended (a standby's,
// one at a time): a live commit must be signed, since nothing after it
// can cover it before it is applied.
func (v *LogVerifier) verify(seq uint64, subject string, h nats.Header, body []byte, c *events.Commit) error {
	ck := v.checkAlone(seq, subject, h, body, c)
	if ck.unsigned && ck.err == nil {
		ck.err = integrityErr(KindSignature, seq, "commit on %s: %v", subject, events.ErrUnsigned)
	}
	return v.link(seq, subject, h, ck)
}

// verifying reports whether the writer verifies what it reads.
func (w *Writer) verifying() bool { return w.cfg.Keys != nil }

// verifier returns a verifier for the writer's commits from sequence
// start on, its chain head being head: lazy for a replay (signatures at
// its end), strict for commits applied one by one as they arrive.
func (w *Writer) verifier(start uint64, head string, lazy bool) *LogVerifier {
	if !w.verifying() {
		return nil
	}
	v := NewLogVerifier(w.cfg.Keys, w.subject, !w.partitioned(), start, head)
	v.Lazy = lazy
	return v
}

// history is what Config.HistoryFile records: the stream this writer
// served and how far, so a restart can tell a deleted, replaced or
// truncated stream from a new one.
type history struct {
	Stream  string    `json:"stream"`
	Created time.Time `json:"created"`
	LastSeq uint64    `json:"last_seq"`
}

func readHistory(path string) (history, error) {
	var h history
	if path == "" {
		return h, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &h)
	}
	if err != nil {
		return h, fmt.Errorf("history file %s: %w", path, err)
	}
	return h, nil
}

// noteHistory records the writer's position in Config.HistoryFile, at most
// every HistoryWriteInterval unless force. A failure is logged: the file
// is evidence for the next start, not part of any decision.
func (w *Writer) noteHistory(force bool) {
	if w.cfg.HistoryFile == "" || w.known.Created.IsZero() {
		return
	}
	if !force && (w.known.LastSeq == w.lastSeq || time.Since(w.historyAt) < HistoryWriteInterval) {
		return
	}
	w.known.LastSeq = max(w.known.LastSeq, w.lastSeq)
	w.historyAt = time.Now()
	b, _ := json.Marshal(w.known)
	tmp := w.cfg.HistoryFile + ".tmp"
	err := os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, w.cfg.HistoryFile)
	}
	if err != nil {
		w.log.Warn("cannot record the ledger's position", "file", w.cfg.HistoryFile, "err", err)
	}
}

// openStream finds the stream and checks it is the one this writer's
// history knows; it creates the stream only when no history says one
// existed. It then makes sure the stream's configuration is ours.
func (w *Writer) openStream(ctx context.Context) error {
	known, err := readHistory(w.cfg.HistoryFile)
	if err != nil {
		return err
	}
	if w.known.Created.IsZero() {
		w.known = known
	}
	w.known.Stream = events.StreamName
	w.known.LastSeq = max(w.known.LastSeq, w.lastSeq)
	st, err := w.js.Stream(ctx, events.StreamName)
	var info *jetstream.StreamInfo
	if err == nil {
		info, err = w.caughtUpInfo(ctx, st)
	}
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		proof, err := w.historyProof(ctx)
		if err != nil {
			return err
		}
		if proof != "" {
			if err := w.breakOrReset(integrityErr(KindMissing, 0, "stream %s does not exist, but %s", events.StreamName, proof)); err != nil {
				return err
			}
		}
	case err != nil:
		return fmt.Errorf("stream %s: %w", events.StreamName, err)
	default:
		if ie := w.checkIdentity(info); ie != nil {
			if err := w.breakOrReset(ie); err != nil {
				return err
			}
		}
	}
	st, err = EnsureStream(ctx, w.js, w.cfg.Replicas)
	if err != nil {
		return err
	}
	if info, err = st.Info(ctx); err != nil {
		return fmt.Errorf("stream %s info: %w", events.StreamName, err)
	}
	w.known.Created = info.Created
	return nil
}

// checkIdentity compares the stream with what the writer knows of it.
func (w *Writer) checkIdentity(info *jetstream.StreamInfo) *IntegrityError {
	k := w.known
	if !k.Created.IsZero() && !info.Created.Equal(k.Created) {
		return integrityErr(KindRecreated, 0, "stream %s was created at %s; this writer served the one created at %s",
			events.StreamName, info.Created.UTC().Format(time.RFC3339Nano), k.Created.UTC().Format(time.RFC3339Nano))
	}
	if info.State.LastSeq < k.LastSeq {
		return integrityErr(KindBehind, 0, "stream %s ends at sequence %d; this writer had applied up to %d",
			events.StreamName, info.State.LastSeq, k.LastSeq)
	}
	if info.State.Msgs > 0 && info.State.FirstSeq > 1 {
		return integrityErr(KindGap, info.State.FirstSeq, "stream %s starts at sequence %d: earlier commits were removed",
			events.StreamName, info.State.FirstSeq)
	}
	return nil
}

// historyProof says what proves a stream existed ("" if nothing does):
// this writer's own memory or history file, or a stored snapshot.
func (w *Writer) historyProof(ctx context.Context) (string, error) {
	if w.known.LastSeq > 0 {
		return fmt.Sprintf("this writer had applied it up to sequence %d", w.known.LastSeq), nil
	}
	if !w.known.Created.IsZero() {
		return fmt.Sprintf("this writer served the one created at %s (%s)", w.known.Created.UTC().Format(time.RFC3339Nano), w.cfg.HistoryFile), nil
	}
	obs, err := w.js.ObjectStore(ctx, SnapshotBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("object store %s: %w", SnapshotBucket, err)
	}
	stored, err := storedSnapshots(ctx, obs, w.cfg.Name)
	if err != nil || len(stored) == 0 {
		return "", err
	}
	return fmt.Sprintf("a snapshot of it at sequence %d is stored", stored[0].seq), nil
}

// breakOrReset returns the break, unless the operator accepted a reset
// (Config.AcceptReset) and the break is one it may accept: then it is
// kept to be recorded in the log (appendReset) and the writer goes on.
func (w *Writer) breakOrReset(ie *IntegrityError) error {
	if w.cfg.AcceptReset == "" || !ie.resettable() {
		return ie
	}
	w.log.Warn("accepting a break of the ledger's history, as told (--accept-reset)", "kind", ie.Kind, "detail", ie.Detail,
		"reason", w.cfg.AcceptReset)
	w.reset = ie
	w.known = history{Stream: events.StreamName}
	return nil
}

// resetRecord is a reset commit's ResetHeader value.
type resetRecord struct {
	Kind      string `json:"kind"`
	Detail    string `json:"detail"`
	KnownSeq  uint64 `json:"known_seq"`
	StreamSeq uint64 `json:"stream_seq"`
	Reason    string `json:"reason"`
}

// appendReset records an accepted break in the log: a signed commit with
// no events and the decision in ResetHeader, fenced on the log's end.
func (w *Writer) appendReset(ctx context.Context, known uint64) error {
	rec, _ := json.Marshal(resetRecord{Kind: w.reset.Kind, Detail: w.reset.Detail, KnownSeq: known,
		StreamSeq: w.lastSeq, Reason: w.cfg.AcceptReset})
	if err := w.appendEmpty(ctx, ResetHeader, string(rec)); err != nil {
		return fmt.Errorf("reset commit: %w", err)
	}
	w.log.Warn("reset recorded in the log", "seq", w.lastSeq, "kind", w.reset.Kind)
	w.reset = nil
	return nil
}

// adoptRecord is an adoption commit's AdoptHeader value.
type adoptRecord struct {
	FirstUnsigned uint64 `json:"first_unsigned_seq"`
	LastSeq       uint64 `json:"last_seq"`
	Reason        string `json:"reason"`
}

// adoptUnsigned covers the unsigned commits at the end of the writer's log
// with a signed adoption commit, if the operator said so.
func (w *Writer) adoptUnsigned(ctx context.Context, first uint64) error {
	rec, _ := json.Marshal(adoptRecord{FirstUnsigned: first, LastSeq: w.lastSeq, Reason: w.cfg.AdoptUnsigned})
	if err := w.appendEmpty(ctx, AdoptHeader, string(rec)); err != nil {
		return fmt.Errorf("adoption commit: %w", err)
	}
	w.log.Warn("unsigned commits adopted: the signed adoption commit now covers them", "first_unsigned_seq", first,
		"through_seq", w.lastSeq-1, "reason", w.cfg.AdoptUnsigned)
	return nil
}

// appendEmpty appends a commit without events carrying header=value,
// fenced on the writer's last sequence (a takeover or reset commit).
func (w *Writer) appendEmpty(ctx context.Context, header, value string) error {
	id := newEventID()
	w.enc.Reset(id, w.cfg.Name, w.now())
	body := w.enc.Bytes()
	fence := w.fence(w.lastSeq)
	m, head := w.commitMsg(id, body, fence)
	m.Header.Set(header, value)
	actx, cancel := context.WithTimeout(ctx, AppendTimeout)
	defer cancel()
	ack, err := w.js.PublishMsg(actx, m)
	if err != nil {
		return fmt.Errorf("commit on sequence %d: %w", w.lastSeq, err)
	}
	if ack.Duplicate || !fence.next(ack.Sequence) {
		return fmt.Errorf("%w: commit acknowledged at sequence %d after %d", ErrAppend, ack.Sequence, w.lastSeq)
	}
	w.lastSeq, w.chainHead = ack.Sequence, head
	w.stats.LastSeq.Store(w.lastSeq)
	w.noteHistory(true)
	return nil
}

// Halted returns the break that halted the writer, nil if none did.
func (w *Writer) Halted() *IntegrityError {
	ie, _ := w.halted.Load().(*IntegrityError)
	return ie
}

// markHalted stops approving at once: from now on every request is
// answered unavailable, naming ie.
func (w *Writer) markHalted(ie *IntegrityError) {
	w.ready.Store(false)
	w.halted.Store(ie)
	w.role.Store(RoleHalted)
}

// halt stops approving for good (until restarted): it counts and logs the
// break, answers every request unavailable naming it, and waits for ctx.
// It reports RoleHalted only once it answers requests.
func (w *Writer) halt(ctx context.Context, ie *IntegrityError) error {
	w.ready.Store(false)
	w.halted.Store(ie)
	w.noteHistory(true) // what this writer knew stays evidence for the next start
	w.countIntegrity(ie.Kind)
	w.log.Error("ledger halted: its history is broken; nothing is approved until an operator acts (SECURITY.md, \"When the writer halts\")",
		"kind", ie.Kind, "seq", ie.Seq, "detail", ie.Detail)
	w.refuseQueued()
	subs := w.haltSubs // lead's, if it was serving
	if subs == nil {
		for _, subj := range w.requestSubjects() {
			sub, err := w.nc.Subscribe(subj, w.receive)
			if err != nil {
				w.log.Error("halted writer cannot subscribe to answer requests", "subject", subj, "err", err)
				continue
			}
			subs = append(subs, sub)
		}
		_ = w.nc.Flush() // the server has the subscriptions before we say halted
	}
	w.role.Store(RoleHalted)
	<-ctx.Done()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	return nil
}

// countIntegrity counts a break of kind (Stats and the Observer).
func (w *Writer) countIntegrity(kind string) {
	w.stats.IntegrityViolations.Add(1)
	if o := w.cfg.Observer; o != nil {
		o.IntegrityViolation(kind)
	}
}

// haltedErr is the answer to every request while halted.
func (w *Writer) haltedErr(ie *IntegrityError) error {
	return ledger.Errorf(ledger.CodeUnavailable, "the ledger is halted: %v; an operator must act before anything is approved", ie)
}

// asIntegrity returns err's IntegrityError, if it wraps one.
func asIntegrity(err error) *IntegrityError {
	var ie *IntegrityError
	if errors.As(err, &ie) {
		return ie
	}
	return nil
}
