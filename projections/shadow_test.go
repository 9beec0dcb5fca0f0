package projections_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/prices"
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

// The shadow applies the events the writer encoded, not the commit's
// bytes decoded again; its snapshot is still, byte for byte, the state a
// replay of the log builds. The traffic makes every type of event, with
// the fields a state keeps (agent and scope limits, thresholds, rollover,
// overdraft, grants, prices, metadata, tasks, idempotency keys), across a
// period's end.
func TestShadowSnapshotEqualsReplay(t *testing.T) {
	s := testenv.StartServer(t, "")
	clock := testenv.NewClock(time.Date(2026, 1, 31, 21, 0, 0, 0, time.UTC))
	w := testenv.StartWriter(t, s, clock, snapDefault, manualSnapshots(nil))
	c := testenv.Client(t, s)
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	u := func(v string) *events.Units { return testenv.Ptr(t, v) }
	must(c.SetPrices(ctx, []byte(`{"list":"default","version":"v1","models":[{"id":"m","rates":{"input":"3","output":"15"}}]}`)))
	for i, cid := range []string{"sh-0", "sh-1", "sh-2"} {
		req := ledger.BudgetRequest{Limit: u("20"), Period: "month", Thresholds: []events.Units{testenv.Units(t, "0.5"), testenv.Units(t, "0.9")},
			AgentLimits: map[string]events.Units{"a0": testenv.Units(t, "15")}, MaxRuns: 6, UpgradeURL: "https://example.com/up",
			ScopeLimits: []ledger.ScopeLimitRequest{{Dimension: "team", Value: "red", Limit: u("8")}},
			RateLimit:   &events.RateLimit{PerSecond: testenv.Units(t, "500"), Burst: 500}}
		switch i {
		case 0:
			req.Rollover = "all"
		case 1:
			req.Overdraft = u("4")
		}
		must(c.SetBudget(ctx, cid, req))
	}
	expires := clock.Now().Add(90 * time.Minute)
	must(c.Grant(ctx, "sh-0", ledger.GrantRequest{Units: u("5"), ExpiresAt: &expires, Note: "trial"}))
	must(c.TopUp(ctx, "sh-2", ledger.TopUpRequest{Units: u("1.5"), IdempotencyKey: "top-1"}))
	in, out := int64(1000), int64(200)
	type hold struct{ cid, agent, id string }
	var holds []hold
	for i := range 12 {
		cid := []string{"sh-0", "sh-1", "sh-2"}[i%3]
		req := ledger.PreflightRequest{AgentID: "a" + strconv.Itoa(i%2), EstimatedUnits: u("3.25"), TaskRef: "task-" + strconv.Itoa(i%4),
			TTL: []string{"1m", "2h"}[i%2], IdempotencyKey: "p-" + strconv.Itoa(i), Metadata: []byte(`{"run":` + strconv.Itoa(i) + `}`)}
		if i%3 == 0 {
			req.Scope = map[string]string{"team": "red"}
		}
		if i%4 == 1 {
			req.MinUnits = u("1")
		}
		if i%5 == 2 {
			req.EstimatedUnits = nil
			req.UsageEstimate = &prices.Estimate{Model: "m", InputTokens: &in, MaxOutputTokens: &out}
		}
		r, err := c.Preflight(ctx, cid, req)
		if err != nil {
			t.Fatal(err)
		}
		if r.Approved {
			holds = append(holds, hold{cid, req.AgentID, r.ReservationID})
		}
	}
	for i, h := range holds {
		switch i % 4 {
		case 0:
			must(c.Record(ctx, h.cid, ledger.RecordRequest{AgentID: h.agent, Units: u("4.5"), ReservationID: h.id,
				IdempotencyKey: "r-" + strconv.Itoa(i), Metadata: []byte(`{"ok":true}`)}))
		case 1:
			must(c.Release(ctx, h.cid, h.id))
		case 2:
			must(c.Extend(ctx, h.cid, h.id, 3*time.Hour))
		}
	}
	must(c.Record(ctx, "sh-1", ledger.RecordRequest{AgentID: "a0", Units: u("0.1"),
		Usage: &events.Usage{Model: "m", InputTokens: &in, OutputTokens: &out}}))
	must(c.Record(ctx, "sh-1", ledger.RecordRequest{AgentID: "a0", Units: u("18"), IdempotencyKey: "big"})) // into the overdraft
	must(c.Record(ctx, "sh-2", ledger.RecordRequest{AgentID: "a1", Units: u("30")}))                        // exhausted
	must(c.TopUp(ctx, "sh-2", ledger.TopUpRequest{Units: u("40")}))                                         // restored
	must(c.Preflight(ctx, "sh-1", ledger.PreflightRequest{AgentID: "a1", EstimatedUnits: u("50")}))         // denied
	clock.Advance(2 * time.Hour)                                                                            // the 1m holds expire, so does the grant; the month ends
	waitFor(t, func() bool { return w.Stats().OpenReservations.Load() <= uint64(len(holds)) })
	time.Sleep(100 * time.Millisecond)                                                             // the sweeps' commits
	must(c.Preflight(ctx, "sh-0", ledger.PreflightRequest{AgentID: "a0", EstimatedUnits: u("2")})) // the new period: rollover
	snapTraffic(t, c, 0)                                                                           // many events of a type in one commit

	types := map[events.Type]int{}
	js := testenv.JetStream(t, testenv.Connect(t, s))
	if _, err := projections.Replay(ctx, js, projections.ReplayStop{}, func(_ uint64, e *events.Envelope) error {
		types[e.Type]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []events.Type{events.TypeBudgetSet, events.TypeToppedUp, events.TypeReserved, events.TypeDenied,
		events.TypeRecorded, events.TypeReleased, events.TypeExpired, events.TypeExtended, events.TypeThresholdCrossed,
		events.TypeBudgetExhausted, events.TypeBudgetRestored, events.TypeGranted, events.TypeGrantExpired,
		events.TypeOverdraftStarted, events.TypePricesSet} {
		if types[typ] == 0 {
			t.Errorf("test setup: the log holds no %s event (%v)", typ, types)
		}
	}
	last := w.Stats().LastSeq.Load()
	waitFor(t, func() bool { return w.Stats().Snapshots.ShadowSeq.Load() == last })
	if seq := takeSnapshot(t, w); seq != last {
		t.Fatalf("snapshot at sequence %d, want the log's last, %d", seq, last)
	}
	checkSnapshotIsReplay(t, s, last)
}
