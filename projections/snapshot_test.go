package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go/jetstream"
)

const snapTestCustomers = 24

var snapDefault = &ledger.DefaultBudget{Limit: events.NewUnits(500, 0), Period: ledger.PeriodMonth}

// manualSnapshots leaves snapshots to Writer.SnapshotNow, and captures the
// writer's log.
func manualSnapshots(logs *testenv.SyncBuffer) func(*projections.Config) {
	return func(cfg *projections.Config) {
		cfg.Snapshots.EventsEvery = 1 << 62
		if logs != nil {
			cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
}

// snapTraffic runs one round of keyed preflights and records for every
// customer, concurrently, and returns the first reply of each preflight by
// idempotency key.
func snapTraffic(t *testing.T, c *client.Client, round int) map[string]*ledger.PreflightReply {
	t.Helper()
	ctx := context.Background()
	var (
		mu      sync.Mutex
		replies = map[string]*ledger.PreflightReply{}
		wg      sync.WaitGroup
	)
	for i := range snapTestCustomers {
		wg.Go(func() {
			cid := fmt.Sprintf("cust-%02d", i)
			key := fmt.Sprintf("p-%d-%d", round, i)
			r, err := c.Preflight(ctx, cid, ledger.PreflightRequest{AgentID: fmt.Sprintf("agent%d", i%3),
				EstimatedUnits: testenv.Ptr(t, fmt.Sprintf("%d.25", 3+i%5)), TaskRef: "task", IdempotencyKey: key})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			replies[cid+"/"+key] = r
			mu.Unlock()
			if r.Approved && (i+round)%4 != 0 { // some holds stay open
				if _, err := c.Record(ctx, cid, ledger.RecordRequest{AgentID: fmt.Sprintf("agent%d", i%3),
					Units: testenv.Ptr(t, "2.5"), ReservationID: r.ReservationID, IdempotencyKey: "r-" + key}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return replies
}

func allStatuses(t *testing.T, c *client.Client) map[string]string {
	t.Helper()
	out := make(map[string]string, snapTestCustomers)
	for i := range snapTestCustomers {
		cid := fmt.Sprintf("cust-%02d", i)
		b, err := json.Marshal(status(t, c, cid))
		if err != nil {
			t.Fatal(err)
		}
		out[cid] = string(b)
	}
	return out
}

func checkStatuses(t *testing.T, c *client.Client, want map[string]string) {
	t.Helper()
	for cid, got := range allStatuses(t, c) {
		if got != want[cid] {
			t.Errorf("customer %s after restart:\n got %s\nwant %s", cid, got, want[cid])
		}
	}
}

// takeSnapshot forces a snapshot and waits until it is stored.
func takeSnapshot(t *testing.T, w *testenv.Writer) uint64 {
	t.Helper()
	saved := w.Stats().Snapshots.Saved.Load()
	w.SnapshotNow()
	waitFor(t, func() bool { return w.Stats().Snapshots.Saved.Load() > saved })
	return w.Stats().Snapshots.SavedSeq.Load()
}

// snapshotAmidTraffic runs a round of traffic, snapshots, runs another,
// and stops w: it returns the snapshot's sequence, every status and the
// events in the log.
func snapshotAmidTraffic(t *testing.T, s *testenv.Server, w *testenv.Writer, c *client.Client) (seq uint64, want map[string]string, total uint64) {
	t.Helper()
	snapTraffic(t, c, 0)
	seq = takeSnapshot(t, w)
	snapTraffic(t, c, 1)
	want = allStatuses(t, c)
	total = eventsAfter(t, s, 0)
	w.Stop(t)
	return seq, want, total
}

// eventsAfter counts the events stored after sequence seq.
func eventsAfter(t *testing.T, s *testenv.Server, seq uint64) uint64 {
	t.Helper()
	var n uint64
	_, err := projections.Replay(context.Background(), testenv.JetStream(t, testenv.Connect(t, s)),
		projections.ReplayStop{StartSeq: seq + 1}, func(uint64, *events.Envelope) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A restart loads the snapshot and replays only the log after it; every
// customer reads as before, and requests answered before the snapshot are
// still recognised by their keys.
func TestSnapshotRestartReplaysOnlyTheTail(t *testing.T) {
	s := testenv.StartServer(t, "")
	clock := testenv.NewClock(t0)
	w := testenv.StartWriter(t, s, clock, snapDefault, manualSnapshots(nil))
	c := testenv.Client(t, s)
	first := snapTraffic(t, c, 0)
	snapTraffic(t, c, 1)
	snapSeq := takeSnapshot(t, w)
	if got := w.Stats().LastSeq.Load(); snapSeq != got {
		t.Fatalf("snapshot covers sequence %d, the writer is at %d", snapSeq, got)
	}
	snapTraffic(t, c, 2)
	want := allStatuses(t, c)
	total, tail := eventsAfter(t, s, 0), eventsAfter(t, s, snapSeq)
	if tail == 0 || tail*2 > total {
		t.Fatalf("test setup: %d events after the snapshot of %d", tail, total)
	}
	w.Stop(t)

	w = testenv.StartWriter(t, s, clock, snapDefault, manualSnapshots(nil))
	st := &w.Stats().Snapshots
	if got := st.LoadedSeq.Load(); got != snapSeq {
		t.Errorf("restart started from the snapshot at sequence %d, want %d", got, snapSeq)
	}
	if got := st.TailEvents.Load(); got != tail {
		t.Errorf("restart replayed %d events, want the %d after the snapshot (of %d)", got, tail, total)
	}
	checkStatuses(t, c, want)
	for k, r := range first {
		cid, key, _ := strings.Cut(k, "/")
		i := 0
		fmt.Sscanf(cid, "cust-%d", &i)
		again, err := c.Preflight(context.Background(), cid, ledger.PreflightRequest{AgentID: fmt.Sprintf("agent%d", i%3),
			EstimatedUnits: testenv.Ptr(t, fmt.Sprintf("%d.25", 3+i%5)), TaskRef: "task", IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if g, w := mustJSON(t, again), mustJSON(t, r); g != w {
			t.Errorf("retry of %s after restart:\n got %s\nwant %s", k, g, w)
		}
	}
	if got := eventsAfter(t, s, 0); got != total {
		t.Errorf("retries appended %d events", got-total)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A stored snapshot that does not verify is reported and not used: the
// restart replays the whole log and every customer still reads as before.
// The snapshot's own bytes are changed (and compressed again, as stored),
// or the compressed bytes as stored.
func TestCorruptSnapshotFallsBackToFullReplay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stored  bool // corrupt the bytes as stored, not the snapshot's
		corrupt func([]byte) []byte
		why     string
	}{
		// A flipped byte in the body is refused by the decoder's checks or
		// by the digest, whichever it meets first (which depends on what
		// the byte held); one in the digest by the digest alone.
		{"flipped byte", false, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }, "invalid snapshot"},
		{"flipped digest", false, func(b []byte) []byte { b[len(b)-1] ^= 0x10; return b }, "SHA-256 does not match"},
		{"garbage", false, func([]byte) []byte { return []byte("not a snapshot") }, "bad magic"},
		{"truncated", false, func(b []byte) []byte { return b[:len(b)-100] }, "unexpected EOF"},
		// The compressed blocks carry a CRC of what they hold.
		{"flipped stored byte", true, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }, "s2: corrupt input"},
		{"truncated as stored", true, func(b []byte) []byte { return b[:len(b)-10] }, "s2: corrupt input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testenv.StartServer(t, "")
			var logs testenv.SyncBuffer
			w := testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(&logs))
			c := testenv.Client(t, s)
			seq, want, total := snapshotAmidTraffic(t, s, w, c)

			ctx := context.Background()
			obs, err := testenv.JetStream(t, testenv.Connect(t, s)).ObjectStore(ctx, projections.SnapshotBucket)
			if err != nil {
				t.Fatal(err)
			}
			name := projections.SnapshotName(events.WriterDefault, seq)
			good, err := obs.GetBytes(ctx, projections.SnapshotPartName(events.WriterDefault, seq, 0))
			if err != nil {
				t.Fatal(err)
			}
			if tc.stored {
				replacePart(t, obs, projections.SnapshotPartName(events.WriterDefault, seq, 0), tc.corrupt(good))
			} else {
				replacePart(t, obs, projections.SnapshotPartName(events.WriterDefault, seq, 0), s2Stream(t, tc.corrupt(s2Body(t, good))))
			}

			w = testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(&logs))
			st := &w.Stats().Snapshots
			if st.Rejected.Load() != 1 || st.LoadedSeq.Load() != 0 || st.TailEvents.Load() != total {
				t.Errorf("refused %d snapshots, started from sequence %d, replayed %d events; want 1, 0, %d",
					st.Rejected.Load(), st.LoadedSeq.Load(), st.TailEvents.Load(), total)
			}
			if !strings.Contains(logs.String(), `level=ERROR msg="snapshot refused, not used" snapshot=`+name) ||
				!strings.Contains(logs.String(), tc.why) {
				t.Errorf("no error logged for the corrupt snapshot; log:\n%s", logs.String())
			}
			checkStatuses(t, c, want)
		})
	}
}

// A snapshot store that stalls on every restore (here a part whose chunks
// are gone, so its read waits for bytes that never come) costs the writer
// SnapshotStallsBeforeReplay attempts, each ended by Snapshots.ReadStallMax,
// and then it replays the whole log: it serves, with nothing lost, and
// refuses no snapshot (the snapshot was not at fault).
func TestStalledSnapshotStoreFallsBackToFullReplay(t *testing.T) {
	s := testenv.StartServer(t, "")
	var logs testenv.SyncBuffer
	config := func(cfg *projections.Config) {
		manualSnapshots(&logs)(cfg)
		cfg.Snapshots.ReadStallMax = 300 * time.Millisecond
	}
	w := testenv.StartWriter(t, s, nil, snapDefault, config)
	c := testenv.Client(t, s)
	seq, want, total := snapshotAmidTraffic(t, s, w, c)

	ctx := context.Background()
	js := testenv.JetStream(t, testenv.Connect(t, s))
	obs, err := js.ObjectStore(ctx, projections.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := obs.GetInfo(ctx, projections.SnapshotPartName(events.WriterDefault, seq, 0))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "OBJ_"+projections.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("$O."+projections.SnapshotBucket+".C."+info.NUID)); err != nil {
		t.Fatal(err)
	}

	w = testenv.StartWriter(t, s, nil, snapDefault, config)
	stats := &w.Stats().Snapshots
	if stats.Rejected.Load() != 0 || stats.LoadedSeq.Load() != 0 || stats.TailEvents.Load() != total {
		t.Errorf("refused %d snapshots, started from sequence %d, replayed %d events; want 0, 0, %d",
			stats.Rejected.Load(), stats.LoadedSeq.Load(), stats.TailEvents.Load(), total)
	}
	if n := strings.Count(logs.String(), "snapshot read stalled"); n < projections.SnapshotStallsBeforeReplay ||
		!strings.Contains(logs.String(), `msg="the snapshot store stalled again; replaying the whole log"`) {
		t.Errorf("%d stalls logged, no full replay after them; log:\n%s", n, logs.String())
	}
	checkStatuses(t, c, want)
}

// A snapshot is used only with the log it was taken from, and by the
// writer that took it: one ahead of the stream, one whose sequence holds
// another commit, and another writer's are refused.
func TestSnapshotOfAnotherLogIsRefused(t *testing.T) {
	ctx := context.Background()
	a := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, a, nil, snapDefault, manualSnapshots(nil))
	ca := testenv.Client(t, a)
	snapTraffic(t, ca, 0)
	seq := takeSnapshot(t, w)
	w.Stop(t)
	obsA, err := testenv.JetStream(t, testenv.Connect(t, a)).ObjectStore(ctx, projections.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}

	// Another writer of the same log.
	copyPart(t, obsA, projections.SnapshotPartName(events.WriterDefault, seq, 0), obsA, projections.SnapshotPartName("7", seq, 0))
	checkRefused(t, a, "7", "not writer")

	// A log with fewer commits, then one with as many but other commits.
	b := testenv.StartServer(t, "")
	wb := testenv.StartWriter(t, b, nil, snapDefault, manualSnapshots(nil))
	cb := testenv.Client(t, b)
	setBudget(t, cb, "other", "10", ledger.PeriodMonth)
	own := takeSnapshot(t, wb) // creates the store
	wb.Stop(t)
	obsB, err := testenv.JetStream(t, testenv.Connect(t, b)).ObjectStore(ctx, projections.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := obsB.Delete(ctx, projections.SnapshotPartName(events.WriterDefault, own, 0)); err != nil {
		t.Fatal(err)
	}
	copyPart(t, obsA, projections.SnapshotPartName(events.WriterDefault, seq, 0), obsB, projections.SnapshotPartName(events.WriterDefault, seq, 0))
	checkRefused(t, b, events.WriterDefault, "beyond the stream's last")
	wb = testenv.StartWriter(t, b, nil, snapDefault, manualSnapshots(nil))
	for i := 0; wb.Stats().LastSeq.Load() < seq; i++ {
		setBudget(t, cb, fmt.Sprintf("other-%d", i), "10", ledger.PeriodMonth)
	}
	wb.Stop(t)
	checkRefused(t, b, events.WriterDefault, "not this log")
}

// s2Body decompresses a stored part (projections.SnapshotEncoding), and
// s2Stream compresses one.
func s2Body(t *testing.T, stored []byte) []byte {
	t.Helper()
	b, err := io.ReadAll(s2.NewReader(bytes.NewReader(stored)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func s2Stream(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := s2.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// replacePart stores body in place of a snapshot part, with its metadata.
func replacePart(t *testing.T, obs jetstream.ObjectStore, name string, body []byte) {
	t.Helper()
	copyBody(t, obs, name, obs, name, body)
}

// copyPart copies a snapshot part, with its metadata, under another name.
func copyPart(t *testing.T, from jetstream.ObjectStore, name string, to jetstream.ObjectStore, as string) {
	t.Helper()
	body, err := from.GetBytes(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	copyBody(t, from, name, to, as, body)
}

func copyBody(t *testing.T, from jetstream.ObjectStore, name string, to jetstream.ObjectStore, as string, body []byte) {
	t.Helper()
	ctx := context.Background()
	info, err := from.GetInfo(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	meta := info.ObjectMeta
	meta.Name = as
	if _, err := to.Put(ctx, meta, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

// checkRefused starts a writer that must refuse its snapshot, for why,
// and replay the whole log.
func checkRefused(t *testing.T, s *testenv.Server, writer, why string) {
	t.Helper()
	var logs testenv.SyncBuffer
	w := testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(&logs), func(cfg *projections.Config) { cfg.Name = writer })
	defer w.Stop(t)
	st := &w.Stats().Snapshots
	if st.Rejected.Load() != 1 || st.LoadedSeq.Load() != 0 {
		t.Errorf("writer %s: refused %d snapshots, started from sequence %d; want 1, 0", writer, st.Rejected.Load(), st.LoadedSeq.Load())
	}
	if !strings.Contains(logs.String(), why) {
		t.Errorf("writer %s: log does not say %q:\n%s", writer, why, logs.String())
	}
}

// Each writer keeps SnapshotVersionsKept snapshots, and a restart uses the
// newest.
func TestSnapshotVersionsKept(t *testing.T) {
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	c := testenv.Client(t, s)
	var seqs []uint64
	for round := range projections.SnapshotVersionsKept + 2 {
		snapTraffic(t, c, round)
		seqs = append(seqs, takeSnapshot(t, w))
	}
	w.Stop(t)
	obs, err := testenv.JetStream(t, testenv.Connect(t, s)).ObjectStore(context.Background(), projections.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := obs.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, info := range infos {
		names = append(names, info.Name)
	}
	var want []string
	for _, seq := range seqs[len(seqs)-projections.SnapshotVersionsKept:] {
		want = append(want, projections.SnapshotPartName(events.WriterDefault, seq, 0))
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("stored snapshots %v, want %v", names, want)
	}
	w = testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	if got, want := w.Stats().Snapshots.LoadedSeq.Load(), seqs[len(seqs)-1]; got != want {
		t.Errorf("restart started from sequence %d, want %d", got, want)
	}
}

// Snapshots on a schedule: after Config.Snapshots.EventsEvery events the
// writer stores one by itself, between commits, and keeps serving.
func TestSnapshotEveryNEvents(t *testing.T) {
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, nil, snapDefault, func(cfg *projections.Config) { cfg.Snapshots.EventsEvery = 40 })
	c := testenv.Client(t, s)
	for round := range 4 {
		snapTraffic(t, c, round)
	}
	waitFor(t, func() bool { return w.Stats().Snapshots.Saved.Load() >= 2 })
	want := allStatuses(t, c)
	w.Stop(t)
	w = testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	if w.Stats().Snapshots.LoadedSeq.Load() == 0 {
		t.Errorf("restart did not start from a snapshot")
	}
	checkStatuses(t, c, want)
}

// After a failed append the writer rebuilds from its snapshot and the log
// after it, including what another appender wrote there.
func TestFailedAppendRebuildsFromSnapshot(t *testing.T) {
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	c := testenv.Client(t, s)
	ctx := context.Background()
	snapTraffic(t, c, 0)
	snapSeq := takeSnapshot(t, w)
	before := status(t, c, "cust-01")

	forged := &events.Envelope{ID: "forged-1", Type: events.TypeToppedUp, V: events.Version, At: time.Now().UTC(),
		CustomerID: "cust-01", Data: &events.ToppedUp{Units: events.NewUnits(50, 0)}}
	body, err := events.Encode(forged)
	if err != nil {
		t.Fatal(err)
	}
	var enc events.CommitEncoder
	enc.Reset("forged-commit", "rogue", time.Now())
	enc.Add(body)
	if _, err := testenv.JetStream(t, testenv.Connect(t, s)).Publish(ctx, events.LogSubject("rogue"), enc.Bytes()); err != nil {
		t.Fatal(err)
	}
	// The client retries the unavailable reply once the writer rebuilt.
	r, err := c.Preflight(ctx, "cust-01", ledger.PreflightRequest{AgentID: "agent1", EstimatedUnits: testenv.Ptr(t, "1"), IdempotencyKey: "after"})
	if err != nil || !r.Approved {
		t.Fatalf("preflight after the forged commit: %v %+v", err, r)
	}
	if n := w.Stats().Rebuilds.Load(); n != 1 {
		t.Fatalf("rebuilds = %d, want 1", n)
	}
	st := &w.Stats().Snapshots
	if st.LoadedSeq.Load() != snapSeq || st.TailEvents.Load() != 1 {
		t.Errorf("rebuild started from sequence %d and replayed %d events; want %d and the forged one",
			st.LoadedSeq.Load(), st.TailEvents.Load(), snapSeq)
	}
	want := before.Remaining.Add(events.NewUnits(50, 0)).Sub(events.NewUnits(1, 0))
	wantUnits(t, "remaining after the forged top-up", r.RemainingUnits.Units, want.String())
}

// A snapshot is stored in parts; a restart reads them in order, and a
// snapshot with a part missing is refused.
func TestSnapshotInParts(t *testing.T) {
	defer projections.SetSnapshotPartBytes(4096)()
	s := testenv.StartServer(t, "")
	w := testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	c := testenv.Client(t, s)
	snapTraffic(t, c, 0)
	seq := takeSnapshot(t, w)
	size := w.Stats().Snapshots.SavedBytes.Load()
	want := allStatuses(t, c)
	w.Stop(t)
	parts := int((size + 4095) / 4096)
	if parts < 3 {
		t.Fatalf("test setup: a snapshot of %d bytes is %d parts", size, parts)
	}

	w = testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	if got := w.Stats().Snapshots.LoadedSeq.Load(); got != seq {
		t.Fatalf("restart started from sequence %d, want the snapshot's %d", got, seq)
	}
	checkStatuses(t, c, want)
	w.Stop(t)

	obs, err := testenv.JetStream(t, testenv.Connect(t, s)).ObjectStore(context.Background(), projections.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(context.Background(), projections.SnapshotPartName(events.WriterDefault, seq, parts/2)); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, s, events.WriterDefault, "incomplete")
}

// Snapshots are stored compressed (projections.SnapshotEncoding, named in
// every part's metadata); one stored as it is, as before compression, is
// still read, and one in an encoding this version does not know is
// refused.
func TestSnapshotEncodings(t *testing.T) {
	ctx := context.Background()
	s := testenv.StartServer(t, "")
	obs := func() jetstream.ObjectStore {
		obs, err := testenv.JetStream(t, testenv.Connect(t, s)).ObjectStore(ctx, projections.SnapshotBucket)
		if err != nil {
			t.Fatal(err)
		}
		return obs
	}
	w := testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	c := testenv.Client(t, s)
	snapTraffic(t, c, 0)
	seq := takeSnapshot(t, w)
	st := &w.Stats().Snapshots
	if saved, stored := st.SavedBytes.Load(), st.StoredBytes.Load(); stored == 0 || stored >= saved {
		t.Errorf("a snapshot of %d bytes took %d bytes stored; want fewer, compressed", saved, stored)
	}
	part := projections.SnapshotPartName(events.WriterDefault, seq, 0)
	info, err := obs().GetInfo(ctx, part)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Metadata["encoding"]; got != projections.SnapshotEncoding {
		t.Errorf("part stored with encoding %q, want %q", got, projections.SnapshotEncoding)
	}
	w.Stop(t)

	// As an older version stored it.
	restore := projections.SetSnapshotEncoding("")
	w = testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	snapTraffic(t, c, 1)
	raw := takeSnapshot(t, w)
	st = &w.Stats().Snapshots
	if saved, stored := st.SavedBytes.Load(), st.StoredBytes.Load(); stored != saved {
		t.Errorf("uncompressed: a snapshot of %d bytes took %d bytes stored", saved, stored)
	}
	want := allStatuses(t, c)
	w.Stop(t)
	restore()
	if info, err := obs().GetInfo(ctx, projections.SnapshotPartName(events.WriterDefault, raw, 0)); err != nil {
		t.Fatal(err)
	} else if enc, ok := info.Metadata["encoding"]; ok {
		t.Fatalf("uncompressed part names encoding %q", enc)
	}
	w = testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(nil))
	if got := w.Stats().Snapshots.LoadedSeq.Load(); got != raw {
		t.Fatalf("restart started from sequence %d, want the uncompressed snapshot's %d", got, raw)
	}
	checkStatuses(t, c, want)
	w.Stop(t)

	// An encoding from the future.
	info, err = obs().GetInfo(ctx, projections.SnapshotPartName(events.WriterDefault, raw, 0))
	if err != nil {
		t.Fatal(err)
	}
	meta := info.ObjectMeta
	meta.Metadata["encoding"] = "zstd"
	if err := obs().UpdateMeta(ctx, meta.Name, meta); err != nil {
		t.Fatal(err)
	}
	var logs testenv.SyncBuffer
	w = testenv.StartWriter(t, s, nil, snapDefault, manualSnapshots(&logs))
	if got := w.Stats().Snapshots.LoadedSeq.Load(); got != seq {
		t.Errorf("restart started from sequence %d, want the older compressed snapshot's %d", got, seq)
	}
	if !strings.Contains(logs.String(), `with encoding \"zstd\", which this version does not read`) {
		t.Errorf("log does not say why the snapshot was refused:\n%s", logs.String())
	}
	checkStatuses(t, c, want)
	w.Stop(t)
}
