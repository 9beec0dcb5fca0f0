package projections_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// shadowAnswerWithin bounds how long a round of requests may take while
// the shadow is held in the middle of a snapshot: a writer that waited for
// the snapshot would never answer.
const shadowAnswerWithin = 20 * time.Second

// A snapshot does not stop the writer: with the shadow held just before it
// encodes, every customer's preflights and records are still answered.
// The snapshot covers the log up to where the shadow stood, and a restart
// from it replays the rest to the same state.
func TestSnapshotEncodesWhileTheWriterServes(t *testing.T) {
	s := testenv.StartServer(t, "")
	reached, release := make(chan struct{}), make(chan struct{})
	held := false
	hold := func(cfg *projections.Config) {
		cfg.Fault = func(point string) {
			if point != projections.FaultSnapshotEncoding || held {
				return
			}
			held = true // the shadow's goroutine alone calls this point
			close(reached)
			<-release
		}
	}
	w := testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil), hold)
	c := testenv.Client(t, s)
	snapTraffic(t, c, 0)
	before := w.Stats().LastSeq.Load()
	saved := w.Stats().Snapshots.Saved.Load()
	w.SnapshotNow()
	select {
	case <-reached:
	case <-time.After(shadowAnswerWithin):
		t.Fatal("the shadow never started the snapshot")
	}
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		snapTraffic(t, c, 1)
		snapTraffic(t, c, 2)
	}()
	select {
	case <-answered:
	case <-time.After(shadowAnswerWithin):
		close(release)
		t.Fatalf("the writer did not answer within %s while a snapshot was being taken", shadowAnswerWithin)
	}
	after := w.Stats().LastSeq.Load()
	if after <= before {
		t.Fatalf("test setup: the log did not grow during the snapshot (%d, %d)", before, after)
	}
	close(release)
	waitFor(t, func() bool { return w.Stats().Snapshots.Saved.Load() > saved })
	snapSeq := w.Stats().Snapshots.SavedSeq.Load()
	if snapSeq != before {
		t.Errorf("the snapshot covers sequence %d, want %d (where the log stood when it was asked for)", snapSeq, before)
	}
	want := allStatuses(t, c)
	w.Stop(t)

	w = testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	st := &w.Stats().Snapshots
	if got := st.LoadedSeq.Load(); got != snapSeq {
		t.Errorf("restart started from sequence %d, want the snapshot's %d", got, snapSeq)
	}
	if got, tail := st.TailEvents.Load(), eventsAfter(t, s, snapSeq); got != tail || tail == 0 {
		t.Errorf("restart replayed %d events after the snapshot, want the %d the log holds", got, tail)
	}
	checkStatuses(t, c, want)
}

// When the commits waiting for the shadow exceed their bound, it drops
// them and starts again from the log; the snapshot it then takes is, byte
// for byte, the state a replay of the log to its sequence builds.
func TestShadowFallenBehindRebuildsFromTheLog(t *testing.T) {
	defer projections.SetShadowQueueBytes(1)() // every commit overflows
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	c := testenv.Client(t, s)
	snapTraffic(t, c, 0)
	first := takeSnapshot(t, w) // the rebuilds below start from it
	snapTraffic(t, c, 1)
	snapTraffic(t, c, 2)
	if w.Stats().Snapshots.ShadowRestarts.Load() == 0 {
		t.Fatal("the shadow never started again from the log")
	}
	last := w.Stats().LastSeq.Load()
	waitFor(t, func() bool { return w.Stats().Snapshots.ShadowSeq.Load() == last })
	snapSeq := takeSnapshot(t, w)
	if snapSeq != last || snapSeq <= first {
		t.Fatalf("snapshot at sequence %d, want the log's last, %d", snapSeq, last)
	}
	checkSnapshotIsReplay(t, s, snapSeq)
}

// A writer whose newest stored snapshot is more than
// ShadowReplayEventsMax events behind its state (here: none is stored)
// snapshots its own state before it serves, and the shadow starts from
// that instead of replaying the log beside it. That snapshot is stored,
// the shadow keeps step from it (its next snapshot is, byte for byte, a
// replay of the log), and a writer started later loads it.
func TestShadowStartsFromTheWritersOwnSnapshot(t *testing.T) {
	defer projections.SetShadowReplayEvents(10)()
	for _, signing := range []bool{false, true} {
		t.Run(map[bool]string{false: "unsigned", true: "signed"}[signing], func(t *testing.T) {
			s := testenv.StartServer(t, "")
			c := testenv.Client(t, s)
			opts, keys := []func(*projections.Config){manualSnapshots(nil)}, events.Keyring(nil)
			if signing {
				sg := newSigner(t)
				opts, keys = append(opts, signed(sg, "", nil)), events.NewKeyring(sg.Public())
			}
			w := testenv.StartWriter(t, s, nil, snapDefault, append(opts, func(c *projections.Config) { c.Snapshots.Off = true })...)
			snapTraffic(t, c, 0)
			w.Stop(t)

			w = testenv.StartWriter(t, s, nil, snapDefault, opts...)
			st := &w.Stats().Snapshots
			start := w.Stats().LastSeq.Load()
			if got := st.Bases.Load(); got != 1 {
				t.Fatalf("the writer took %d snapshots before serving, want 1 (none was stored)", got)
			}
			waitFor(t, func() bool { return st.Saved.Load() == 1 })
			// Stored whole, signed if the writer signs, of this log.
			base, err := projections.LoadSnapshot(context.Background(), testenv.JetStream(t, testenv.Connect(t, s)), events.WriterDefault, keys, nil)
			if err != nil || base.Meta.Seq != start {
				t.Fatalf("the snapshot taken before serving: %v; want it loadable at the writer's sequence %d", err, start)
			}
			snapTraffic(t, c, 1)
			last := w.Stats().LastSeq.Load()
			waitFor(t, func() bool { return st.ShadowSeq.Load() == last })
			if got := st.ShadowRestarts.Load(); got != 0 {
				t.Errorf("the shadow started again from the log %d times", got)
			}
			snapSeq := takeSnapshot(t, w)
			if snapSeq != last {
				t.Fatalf("snapshot at sequence %d, want the log's last, %d", snapSeq, last)
			}
			checkSnapshotIsReplay(t, s, snapSeq)
			want := allStatuses(t, c)
			w.Stop(t)

			w = testenv.StartWriter(t, s, nil, snapDefault, opts...)
			if got := w.Stats().Snapshots.LoadedSeq.Load(); got != snapSeq {
				t.Errorf("restart started from sequence %d, want the snapshot's %d", got, snapSeq)
			}
			if got := w.Stats().Snapshots.Bases.Load(); got != 0 {
				t.Errorf("a writer whose snapshot is current took %d snapshots before serving, want 0", got)
			}
			checkStatuses(t, c, want)
		})
	}
}

// checkSnapshotIsReplay requires the stored snapshot at snapSeq to be,
// byte for byte, the state a replay of the log to snapSeq builds.
func checkSnapshotIsReplay(t *testing.T, s *testenv.Server, snapSeq uint64) {
	t.Helper()
	ctx := context.Background()
	js := testenv.JetStream(t, testenv.Connect(t, s))
	snap, err := projections.LoadSnapshot(ctx, js, events.WriterDefault, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Meta.Seq != snapSeq {
		t.Fatalf("the newest stored snapshot covers sequence %d, want %d", snap.Meta.Seq, snapSeq)
	}
	replayed, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{UntilSeq: snapSeq}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got, want bytes.Buffer
	meta := ledger.SnapshotMeta{Seq: snap.Meta.Seq, Writer: snap.Meta.Writer, Commit: snap.Meta.Commit}
	if err := snap.State.WriteSnapshot(&got, meta); err != nil {
		t.Fatal(err)
	}
	if err := replayed.WriteSnapshot(&want, meta); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("the shadow's snapshot (%d bytes) differs from the replayed state's (%d bytes)", got.Len(), want.Len())
	}
}
