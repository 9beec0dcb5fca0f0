package projections_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// newSigner returns a fresh service key.
func newSigner(t *testing.T) *events.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return events.NewSigner(key)
}

// integrityLog counts the breaks the writer reports to its Observer.
type integrityLog struct {
	mu    sync.Mutex
	kinds []string
}

func (l *integrityLog) Answered(events.Op, ledger.Reply, error, time.Duration) {}
func (l *integrityLog) Committed(int, int, time.Duration)                      {}
func (l *integrityLog) IntegrityViolation(kind string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kinds = append(l.kinds, kind)
}

func (l *integrityLog) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.kinds...)
}

// signed makes a writer sign with sg and verify with sg's key, record its
// history in dir (if not ""), and report breaks to obs (if not nil).
func signed(sg *events.Signer, dir string, obs *integrityLog) func(*projections.Config) {
	return func(c *projections.Config) {
		c.Signer, c.Keys = sg, events.NewKeyring(sg.Public())
		if dir != "" {
			c.HistoryFile = filepath.Join(dir, "history-0.json")
		}
		if obs != nil {
			c.Observer = obs
		}
	}
}

// runUntilRole runs a writer until the test ends (or stop is called) and
// waits until it reports role.
func runUntilRole(t *testing.T, s *testenv.Server, role string, opts ...func(*projections.Config)) (w *projections.Writer, stop func()) {
	t.Helper()
	cfg := projections.Config{Conn: testenv.Connect(t, s), LogConn: testenv.ConnectLog(t, s)}
	for _, o := range opts {
		o(&cfg)
	}
	w = projections.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	deadline := time.Now().Add(testenv.ReadyTimeout)
	for w.Role() != role {
		select {
		case err := <-done:
			t.Fatalf("writer returned %v in role %s, want role %s", err, w.Role(), role)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer role %s after %s, want %s", w.Role(), testenv.ReadyTimeout, role)
		}
	}
	return w, stop
}

// wantHalted waits until w halts and checks the break it names, that a
// request is refused unavailable naming it, and that obs counted it.
func wantHalted(t *testing.T, w *projections.Writer, c *testenv.Server, kind string, seq uint64, obs *integrityLog) {
	t.Helper()
	waitFor(t, func() bool { return w.Role() == projections.RoleHalted })
	ie := w.Halted()
	if ie == nil || ie.Kind != kind || ie.Seq != seq {
		t.Fatalf("halted on %v, want kind %s at sequence %d", ie, kind, seq)
	}
	if w.Ready() {
		t.Error("a halted writer reports ready")
	}
	msg, err := testenv.Connect(t, c).Request(events.RequestSubject(events.OpStatus, "u"), []byte(`{}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var er ledger.ErrorReply
	if err := json.Unmarshal(msg.Data, &er); err != nil || er.Error == nil || er.Error.Code != ledger.CodeUnavailable ||
		!strings.Contains(er.Error.Message, "halted") || !strings.Contains(er.Error.Message, kind) {
		t.Errorf("status while halted: %s; want unavailable naming the %s break", msg.Data, kind)
	}
	if obs != nil {
		// A writer halted by a rebuild reports the role first (it stops
		// approving at once) and counts the break just after.
		heard := func() bool { got := obs.seen(); return len(got) > 0 && got[len(got)-1] == kind }
		deadline := time.Now().Add(testenv.ReadyTimeout)
		for !heard() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if !heard() {
			t.Errorf("observer heard %v, want %s last", obs.seen(), kind)
		}
	}
}

// A forger who can publish on the log, fences correctly and recomputes the
// SHA-256 chain link is still caught: the commit is not signed by the
// service. The writer's next append is fenced out, its rebuild meets the
// forged commit and halts without serving it; a restart halts as well,
// from the whole log and from a snapshot taken before the forgery.
func TestForgedCommitWithAValidChainLinkIsNeverApplied(t *testing.T) {
	for _, tc := range []struct {
		name   string
		signer func(t *testing.T) *events.Signer // the forger's key (nil: none)
	}{
		{"unsigned", func(*testing.T) *events.Signer { return nil }},
		{"signed with another key", newSigner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testenv.StartServer(t, "")
			sg, obs := newSigner(t), &integrityLog{}
			w := testenv.StartWriter(t, s, nil, nil, signed(sg, t.TempDir(), obs), manualSnapshots(nil))
			c := testenv.Client(t, s)
			setBudget(t, c, "u", "100", ledger.PeriodMonth)
			preflight(t, c, "u", "a", "10")
			takeSnapshot(t, w)
			js := testenv.JetStream(t, testenv.Connect(t, s))
			seq := testenv.ForgeTopUp(t, js, "u", tc.signer(t))

			// The next append is fenced out: unavailable, then halted.
			msg, err := c.Conn().Request(events.RequestSubject(events.OpPreflight, "u"),
				[]byte(`{"agent_id":"a","estimated_units":10,"idempotency_key":"k1"}`), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(msg.Data), `"approved"`) {
				t.Fatalf("preflight after the forgery answered %s", msg.Data)
			}
			wantHalted(t, w.Writer, s, projections.KindSignature, seq, obs)
			if n := testenv.CountType(testenv.StreamEvents(t, c.Conn()), "u", events.TypeReserved); n != 1 {
				t.Errorf("%d reservations in the log, want only the one before the forgery", n)
			}
			w.Stop(t)

			for _, snaps := range []bool{false, true} {
				opts := []func(*projections.Config){signed(sg, "", nil)}
				if !snaps {
					opts = append(opts, func(c *projections.Config) { c.Snapshots.Off = true })
				}
				r, stop := runUntilRole(t, s, projections.RoleHalted, opts...)
				wantHalted(t, r, s, projections.KindSignature, seq, nil)
				if n := r.Stats().Snapshots.Rejected.Load(); n != 0 {
					t.Errorf("restart refused %d snapshots; the genuine one is fine, the log after it is not", n)
				}
				stop()
			}
		})
	}
}

// A genuine commit published again later (signature and all) fails its
// chain link: its events are not applied twice.
func TestReplayedOldCommitIsCaught(t *testing.T) {
	s := testenv.StartServer(t, "")
	sg, obs := newSigner(t), &integrityLog{}
	w := testenv.StartWriter(t, s, nil, nil, signed(sg, "", obs))
	c := testenv.Client(t, s)
	setBudget(t, c, "u", "100", ledger.PeriodMonth)
	js := testenv.JetStream(t, testenv.Connect(t, s))
	topup := testenv.LastCommit(t, js) // the budget_set commit
	preflight(t, c, "u", "a", "10")

	again := nats.NewMsg(topup.Subject)
	again.Data = topup.Data
	again.Header.Set(events.ChainHeader, topup.Header.Get(events.ChainHeader))
	again.Header.Set(events.SigHeader, topup.Header.Get(events.SigHeader))
	ack, err := js.PublishMsg(context.Background(), again)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Conn().Request(events.RequestSubject(events.OpPreflight, "u"),
		[]byte(`{"agent_id":"a","estimated_units":1}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	wantHalted(t, w.Writer, s, projections.KindChain, ack.Sequence, obs)
}

// A commit on another writer's subject, even one signed with the service's
// own key, has no place in an unpartitioned ledger.
func TestCommitOfAnotherWriterIsCaught(t *testing.T) {
	s := testenv.StartServer(t, "")
	sg := newSigner(t)
	testenv.StartWriter(t, s, nil, nil, signed(sg, "", nil)).Stop(t)
	js := testenv.JetStream(t, testenv.Connect(t, s))
	var enc events.CommitEncoder
	enc.Reset("other", "7", time.Now())
	m := nats.NewMsg(events.LogSubject("7"))
	m.Data = enc.Bytes()
	m.Header.Set(events.SigHeader, sg.SignCommit(m.Subject, events.ChainHash("", m.Data)))
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := runUntilRole(t, s, projections.RoleHalted, signed(sg, "", nil))
	wantHalted(t, r, s, projections.KindWriter, ack.Sequence, nil)
}

// A standby applies nothing it cannot verify: following a forged commit,
// it halts instead of taking it into the state it would serve from.
func TestStandbyRefusesAForgedCommit(t *testing.T) {
	s := testenv.StartServer(t, "")
	sg := newSigner(t)
	a := startElected(t, s, "a", signed(sg, "", nil))
	waitRole(t, a.Writer, projections.RoleLeader, roleTimeout)
	b := startElected(t, s, "b", signed(sg, "", nil))
	waitRole(t, b.Writer, projections.RoleStandby, roleTimeout)
	c := testenv.Client(t, s)
	setBudget(t, c, "u", "100", ledger.PeriodMonth)
	seq := testenv.ForgeTopUp(t, testenv.JetStream(t, testenv.Connect(t, s)), "u", newSigner(t))
	waitFor(t, func() bool { return b.Role() == projections.RoleHalted })
	if ie := b.Halted(); ie.Kind != projections.KindSignature || ie.Seq != seq {
		t.Fatalf("standby halted on %v, want a signature break at %d", ie, seq)
	}
	if got := b.Stats().LastSeq.Load(); got >= seq {
		t.Errorf("standby applied up to sequence %d, including the forged %d", got, seq)
	}
}

// streamExists reports whether the ledger stream exists.
func streamExists(t *testing.T, js jetstream.JetStream) bool {
	t.Helper()
	_, err := js.Stream(context.Background(), events.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// After the stream is deleted behind its back, the writer refuses to serve
// rather than start from zero: it never creates an empty stream over a
// history it knew, whether it learns of it live, on a restart from its
// history file, or from a stored snapshot. --accept-reset starts over and
// records the decision in the log.
func TestDeletedStreamHaltsAndIsNeverRecreatedEmpty(t *testing.T) {
	s := testenv.StartServer(t, "")
	sg, obs, dir := newSigner(t), &integrityLog{}, t.TempDir()
	w := testenv.StartWriter(t, s, nil, nil, signed(sg, dir, obs))
	c := testenv.Client(t, s)
	setBudget(t, c, "u", "100", ledger.PeriodMonth)
	preflight(t, c, "u", "a", "10")
	js := testenv.JetStream(t, testenv.Connect(t, s))
	if err := js.DeleteStream(context.Background(), events.StreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Conn().Request(events.RequestSubject(events.OpPreflight, "u"),
		[]byte(`{"agent_id":"a","estimated_units":1}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	wantHalted(t, w.Writer, s, projections.KindMissing, 0, obs)
	if streamExists(t, js) {
		t.Fatal("the halted writer created a stream")
	}
	w.Stop(t)

	// A restart knows the history from its file.
	r, stop := runUntilRole(t, s, projections.RoleHalted, signed(sg, dir, nil))
	wantHalted(t, r, s, projections.KindMissing, 0, nil)
	if streamExists(t, js) {
		t.Fatal("a restarted writer created a stream over its history")
	}
	stop()

	// The operator accepts the reset: the writer serves a new stream whose
	// first commit records the decision, and later starts need no flag.
	reset := testenv.StartWriter(t, s, nil, nil, signed(sg, dir, nil),
		func(c *projections.Config) { c.AcceptReset = "restore failed, ticket 42" })
	first := testenv.LastCommit(t, js)
	if rec := first.Header.Get(projections.ResetHeader); first.Sequence != 1 ||
		!strings.Contains(rec, `"kind":"missing"`) || !strings.Contains(rec, "ticket 42") {
		t.Fatalf("first commit after the reset: sequence %d, %s %q", first.Sequence, projections.ResetHeader, rec)
	}
	reset.Stop(t)
	testenv.StartWriter(t, s, nil, nil, signed(sg, dir, nil)).Stop(t)
}

// A stream deleted and created again by someone else, or one that ends
// before what this writer knew, halts it (the latter once the writer has
// waited for it to catch up, shortened here).
func TestReplacedOrTruncatedStreamHalts(t *testing.T) {
	defer projections.SetStreamBehindWait(300 * time.Millisecond)()
	s := testenv.StartServer(t, "")
	sg, dir, _ := signedAndStopped(t, s)
	js := testenv.JetStream(t, testenv.Connect(t, s))
	if err := js.DeleteStream(context.Background(), events.StreamName); err != nil {
		t.Fatal(err)
	}
	// The server may still be removing the old store: it refuses a new
	// one meanwhile ("error creating store for stream"), so try again.
	for deadline := time.Now().Add(testenv.ReadyTimeout); ; time.Sleep(20 * time.Millisecond) {
		_, err := projections.EnsureStream(context.Background(), js, 1)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	r, stop := runUntilRole(t, s, projections.RoleHalted, signed(sg, dir, nil))
	wantHalted(t, r, s, projections.KindRecreated, 0, nil)
	stop()

	// The same history file against a stream that ends too early: the
	// file's creation time is that of the stream now, its sequence later.
	info, err := js.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	editHistory(t, dir, func(rec map[string]any) { rec["created"] = info.CachedInfo().Created })
	r2, _ := runUntilRole(t, s, projections.RoleHalted, signed(sg, dir, nil))
	wantHalted(t, r2, s, projections.KindBehind, 0, nil)
}

// signedAndStopped runs a signing writer with its history file in dir,
// which sets customer u's budget and approves one preflight, and stops
// it; c is a client of s.
func signedAndStopped(t *testing.T, s *testenv.Server) (sg *events.Signer, dir string, c *client.Client) {
	t.Helper()
	sg, dir = newSigner(t), t.TempDir()
	w := testenv.StartWriter(t, s, nil, nil, signed(sg, dir, nil))
	c = testenv.Client(t, s)
	setBudget(t, c, "u", "100", ledger.PeriodMonth)
	preflight(t, c, "u", "a", "10")
	w.Stop(t)
	return sg, dir, c
}

// editHistory changes the history file of writer 0 in dir with edit.
func editHistory(t *testing.T, dir string, edit func(rec map[string]any)) {
	t.Helper()
	h := filepath.Join(dir, "history-0.json")
	b, err := os.ReadFile(h)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	edit(rec)
	b, _ = json.Marshal(rec)
	if err := os.WriteFile(h, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A stream that reports fewer commits than the writer applied and then
// reports them, as a replicated stream's new leader can while it applies
// what its peers acknowledged, does not halt the writer: it waits for the
// stream, then serves with every commit applied.
func TestStreamThatCatchesUpDoesNotHalt(t *testing.T) {
	s := testenv.StartServer(t, "")
	sg, dir, c := signedAndStopped(t, s)

	// The history file one commit ahead of the stream.
	js := testenv.JetStream(t, testenv.Connect(t, s))
	last := testenv.LastCommit(t, js).Sequence
	editHistory(t, dir, func(rec map[string]any) { rec["last_seq"] = last + 1 })

	logs := &testenv.SyncBuffer{}
	cfg := projections.Config{Conn: testenv.Connect(t, s), LogConn: testenv.ConnectLog(t, s),
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	signed(sg, dir, nil)(&cfg)
	r := projections.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "waiting for it before halting") })
	if r.Ready() || r.Role() == projections.RoleHalted {
		t.Fatalf("while it waits for the stream: ready %v, role %s", r.Ready(), r.Role())
	}
	// The commit the stream "had not applied" arrives, genuine.
	if seq := testenv.ForgeTopUp(t, js, "u", sg); seq != last+1 {
		t.Fatalf("top-up at sequence %d, want %d", seq, last+1)
	}
	waitFor(t, r.Ready)
	if r.Role() == projections.RoleHalted {
		t.Fatalf("halted on %v", r.Halted())
	}
	st, err := c.Status(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	if st.TopUps.String() != "1000000" {
		t.Errorf("top-ups %s after the stream caught up, want 1000000", st.TopUps)
	}
}

// A snapshot not signed by the service is refused (and counted), and the
// verified log replayed instead; a genuine snapshot that covers more than
// the stream holds proves the stream lost commits.
func TestUnsignedSnapshotIsRefused(t *testing.T) {
	s := testenv.StartServer(t, "")
	sg := newSigner(t)
	w := testenv.StartWriter(t, s, nil, snapDefault, signed(sg, "", nil), manualSnapshots(nil))
	c := testenv.Client(t, s)
	snapTraffic(t, c, 0)
	seq := takeSnapshot(t, w)
	want := allStatuses(t, c)
	w.Stop(t)

	ctx := context.Background()
	obs, err := testenv.JetStream(t, testenv.Connect(t, s)).ObjectStore(ctx, projections.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	name := projections.SnapshotPartName(events.WriterDefault, seq, 0)
	info, err := obs.GetInfo(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	body, err := obs.GetBytes(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	meta := info.ObjectMeta
	meta.Metadata["sig"] = newSigner(t).SignSnapshot(events.WriterDefault, seq, meta.Metadata["commit"], body[len(body)-32:])
	copyBody(t, obs, name, obs, name, body)
	if err := obs.UpdateMeta(ctx, name, meta); err != nil {
		t.Fatal(err)
	}
	il := &integrityLog{}
	r := testenv.StartWriter(t, s, nil, snapDefault, signed(sg, "", il), manualSnapshots(nil))
	if st := &r.Stats().Snapshots; st.Rejected.Load() != 1 || st.LoadedSeq.Load() != 0 {
		t.Errorf("refused %d snapshots and started from %d; want 1 and 0", st.Rejected.Load(), st.LoadedSeq.Load())
	}
	if got := il.seen(); len(got) != 1 || got[0] != projections.KindSnapshot {
		t.Errorf("breaks counted %v, want one snapshot", got)
	}
	checkStatuses(t, c, want)
}

// A log written before commits were signed halts a writer that verifies,
// unless the operator adopts it: then one signed adoption commit covers
// the unsigned ones, later starts need no flag, and audit's chain walk
// accepts them. An unsigned commit appended after the adoption is caught
// (the flag, given again, would adopt it: it is the operator's word that
// the log's unsigned end is genuine).
func TestUnsignedLogIsAdoptedOnlyWhenTold(t *testing.T) {
	s := testenv.StartServer(t, "")
	old := testenv.StartWriter(t, s, nil, nil) // before signatures
	c := testenv.Client(t, s)
	setBudget(t, c, "u", "100", ledger.PeriodMonth)
	preflight(t, c, "u", "a", "10")
	old.Stop(t)

	sg := newSigner(t)
	r, stop := runUntilRole(t, s, projections.RoleHalted, signed(sg, "", nil))
	wantHalted(t, r, s, projections.KindSignature, 1, nil)
	stop()

	w := testenv.StartWriter(t, s, nil, nil, signed(sg, "", nil), func(c *projections.Config) { c.AdoptUnsigned = "upgrade to signed commits" })
	js := testenv.JetStream(t, testenv.Connect(t, s))
	adopt := testenv.LastCommit(t, js)
	if rec := adopt.Header.Get(projections.AdoptHeader); !strings.Contains(rec, `"first_unsigned_seq":1`) || !strings.Contains(rec, "upgrade") {
		t.Fatalf("last commit %d: %s %q, want the adoption record", adopt.Sequence, projections.AdoptHeader, rec)
	}
	preflight(t, c, "u", "a", "10")
	wantUnits(t, "remaining after the adoption", status(t, c, "u").Remaining.Units, "80")
	w.Stop(t)
	testenv.StartWriter(t, s, nil, nil, signed(sg, "", nil)).Stop(t) // no flag needed now

	forged := nats.NewMsg(events.LogSubject(events.WriterDefault))
	last := testenv.LastCommit(t, js)
	var enc events.CommitEncoder
	enc.Reset("late", events.WriterDefault, time.Now())
	forged.Data = enc.Bytes()
	forged.Header.Set(events.ChainHeader, events.ChainHash(last.Header.Get(events.ChainHeader), last.Data))
	ack, err := js.PublishMsg(context.Background(), forged)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := runUntilRole(t, s, projections.RoleHalted, signed(sg, "", nil))
	wantHalted(t, r2, s, projections.KindSignature, ack.Sequence, nil)
}

// A replay checks only each writer's last signature (the chain carries
// it over the rest); when that fails it reads the range again to name the
// first forged commit, not the last.
func TestReplayNamesTheFirstForgedCommit(t *testing.T) {
	s := testenv.StartServer(t, "")
	sg := newSigner(t)
	w := testenv.StartWriter(t, s, nil, nil, signed(sg, "", nil))
	c := testenv.Client(t, s)
	setBudget(t, c, "u", "100", ledger.PeriodMonth)
	w.Stop(t)
	js := testenv.JetStream(t, testenv.Connect(t, s))
	forger := newSigner(t)
	first := testenv.ForgeTopUp(t, js, "u", forger)
	testenv.ForgeTopUp(t, js, "u", forger)
	testenv.ForgeTopUp(t, js, "u", nil)
	r, _ := runUntilRole(t, s, projections.RoleHalted, signed(sg, "", nil))
	wantHalted(t, r, s, projections.KindSignature, first, nil)
}

// The operator's flags cover the log's unsigned prefix and the start they
// were given for, never more: a forged unsigned commit after signed ones
// halts a writer started with --adopt-unsigned, and a stream deleted
// under a writer started with --accept-reset halts it.
func TestOperatorFlagsAreNarrow(t *testing.T) {
	t.Run("adopt-unsigned", func(t *testing.T) {
		s := testenv.StartServer(t, "")
		sg := newSigner(t)
		w := testenv.StartWriter(t, s, nil, nil, signed(sg, "", nil))
		c := testenv.Client(t, s)
		setBudget(t, c, "u", "100", ledger.PeriodMonth)
		w.Stop(t)
		seq := testenv.ForgeTopUp(t, testenv.JetStream(t, testenv.Connect(t, s)), "u", nil)
		r, _ := runUntilRole(t, s, projections.RoleHalted, signed(sg, "", nil), func(c *projections.Config) { c.AdoptUnsigned = "upgrade" })
		wantHalted(t, r, s, projections.KindSignature, seq, nil)
	})
	t.Run("adopt-unsigned, later", func(t *testing.T) {
		s := testenv.StartServer(t, "")
		sg := newSigner(t)
		w := testenv.StartWriter(t, s, nil, nil, signed(sg, "", nil), func(c *projections.Config) { c.AdoptUnsigned = "upgrade" })
		c := testenv.Client(t, s)
		setBudget(t, c, "u", "100", ledger.PeriodMonth)
		seq := testenv.ForgeTopUp(t, testenv.JetStream(t, testenv.Connect(t, s)), "u", nil)
		if _, err := c.Conn().Request(events.RequestSubject(events.OpPreflight, "u"), []byte(`{"agent_id":"a"}`), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		wantHalted(t, w.Writer, s, projections.KindSignature, seq, nil)
	})
	t.Run("accept-reset, later", func(t *testing.T) {
		s := testenv.StartServer(t, "")
		sg := newSigner(t)
		w := testenv.StartWriter(t, s, nil, nil, signed(sg, t.TempDir(), nil), func(c *projections.Config) { c.AcceptReset = "new ledger" })
		c := testenv.Client(t, s)
		setBudget(t, c, "u", "100", ledger.PeriodMonth)
		js := testenv.JetStream(t, testenv.Connect(t, s))
		if err := js.DeleteStream(context.Background(), events.StreamName); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Conn().Request(events.RequestSubject(events.OpPreflight, "u"), []byte(`{"agent_id":"a"}`), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		wantHalted(t, w.Writer, s, projections.KindMissing, 0, nil)
		if streamExists(t, js) {
			t.Error("the writer created a stream over the history it knew")
		}
	})
}
