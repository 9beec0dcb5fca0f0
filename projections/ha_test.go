package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testLeaseTTL keeps failovers in these tests short; roleTimeout bounds
// waiting for a writer to lead or stand by.
const (
	testLeaseTTL = time.Second
	roleTimeout  = 10 * time.Second
)

// elected is a writer started with a lease on its own two connections,
// which crash() closes without a word, as a killed process would.
type elected struct {
	*projections.Writer
	nc, lc *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func startElected(t testing.TB, s *testenv.Server, instance string, opts ...func(*projections.Config)) *elected {
	t.Helper()
	nc, lc := testenv.Connect(t, s), testenv.Connect(t, s)
	cfg := projections.Config{Conn: nc, LogConn: lc, Sweep: 20 * time.Millisecond,
		Default: &ledger.DefaultBudget{Limit: events.NewUnits(100, 0), Period: ledger.PeriodMonth},
		Lease:   &projections.LeaseConfig{Instance: instance, TTL: testLeaseTTL}}
	for _, o := range opts {
		o(&cfg)
	}
	w := projections.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	e := &elected{Writer: w, nc: nc, lc: lc, cancel: cancel, done: make(chan struct{})}
	go func() {
		if err := w.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", instance, err)
		}
		close(e.done)
	}()
	t.Cleanup(func() { cancel(); <-e.done })
	return e
}

// crash cuts the writer off NATS before stopping it, so it neither
// releases its lease nor appends anything more.
func (e *elected) crash() {
	e.nc.Close()
	e.lc.Close()
	e.cancel()
	<-e.done
}

// startPair starts a leader, a, and once it leads, a standby, b.
func startPair(t *testing.T, s *testenv.Server) (a, b *elected) {
	t.Helper()
	a = startElected(t, s, "a")
	waitRole(t, a.Writer, projections.RoleLeader, roleTimeout)
	b = startElected(t, s, "b")
	waitRole(t, b.Writer, projections.RoleStandby, roleTimeout)
	return a, b
}

func waitRole(t testing.TB, w *projections.Writer, role string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for w.Role() != role {
		if time.Since(start) > within {
			t.Fatalf("role %s after %s, want %s", w.Role(), within, role)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// A standby follows the log and takes over when the leader dies: within
// the lease TTL and a little, with every approval the old leader gave
// still there, a retried request answered from the log (not charged
// twice), and a takeover commit that fences off anything the old leader
// might still try to append.
func TestStandbyTakesOverWhenTheLeaderDies(t *testing.T) {
	s := testenv.StartServer(t, "")
	a, b := startPair(t, s)
	c := testenv.Client(t, s)
	ctx := context.Background()

	first, err := c.Preflight(ctx, "u", ledger.PreflightRequest{AgentID: "x", EstimatedUnits: testenv.Ptr(t, "30"), IdempotencyKey: "k1"})
	if err != nil || !first.Approved {
		t.Fatalf("preflight on the first leader: %v %+v", err, first)
	}
	preflight(t, c, "u", "x", "20")
	// The standby keeps its state warm.
	waitFor(t, func() bool { return b.Stats().LastSeq.Load() == a.Stats().LastSeq.Load() })
	fenceBefore := a.Stats().LastSeq.Load()

	killed := time.Now()
	a.crash()
	waitRole(t, b.Writer, projections.RoleLeader, roleTimeout)
	// Before anything else is appended, a commit fenced on the old
	// leader's last sequence (what it would send next) is refused: only
	// the takeover commit stands in its way.
	js := testenv.JetStream(t, c.Conn())
	stale := nats.NewMsg(events.LogSubject(events.WriterDefault))
	stale.Data = []byte(`{"v":1,"id":"stale","writer":"0","at":"2026-01-01T00:00:00Z","events":[]}`)
	stale.Header.Set(jetstream.ExpectedLastSeqHeader, fmt.Sprint(fenceBefore))
	_, err = js.PublishMsg(ctx, stale)
	var jsErr jetstream.JetStreamError
	if !errors.As(err, &jsErr) || jsErr.APIError().ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("stale commit: %v, want wrong last sequence", err)
	}
	r, err := c.Preflight(ctx, "u", ledger.PreflightRequest{AgentID: "x", EstimatedUnits: testenv.Ptr(t, "40")})
	failover := time.Since(killed)
	if err != nil || !r.Approved {
		t.Fatalf("preflight after the failover: %v %+v", err, r)
	}
	if b.Role() != projections.RoleLeader {
		t.Fatalf("standby role %s, want leader", b.Role())
	}
	if max := testLeaseTTL + 3*time.Second; failover > max {
		t.Errorf("failover took %s, want under %s (lease TTL %s)", failover, max, testLeaseTTL)
	}
	t.Logf("failover: %s (lease TTL %s)", failover, testLeaseTTL)
	wantUnits(t, "remaining after failover", r.RemainingUnits.Units, "10")

	// The retry of the first request (same key) is answered from the log.
	again, err := c.Preflight(ctx, "u", ledger.PreflightRequest{AgentID: "x", EstimatedUnits: testenv.Ptr(t, "30"), IdempotencyKey: "k1"})
	if err != nil || again.ReservationID != first.ReservationID {
		t.Fatalf("retry after failover: %v %+v, want reservation %s", err, again, first.ReservationID)
	}
	if n := testenv.CountType(testenv.StreamEvents(t, c.Conn()), "u", events.TypeReserved); n != 3 {
		t.Errorf("reserved events = %d, want 3", n)
	}

	// What refused the stale commit is the takeover commit.
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, fenceBefore+1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(projections.TakeoverHeader) == "" {
		t.Fatalf("sequence %d is not a takeover commit (headers %v)", fenceBefore+1, m.Header)
	}

	// The new leader's state is the log's.
	want, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := status(t, c, "u")
	wantSt, err := want.Status("u", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.Used.String() != wantSt.Used.String() || got.Reserved.String() != wantSt.Reserved.String() {
		t.Errorf("live used/reserved %s/%s, replayed %s/%s", got.Used, got.Reserved, wantSt.Used, wantSt.Reserved)
	}
}

// A leader stopped cleanly hands over at once: it releases its lease.
func TestCleanStopReleasesTheLease(t *testing.T) {
	s := testenv.StartServer(t, "")
	a, b := startPair(t, s)
	a.cancel()
	<-a.done
	took := waitRole(t, b.Writer, projections.RoleLeader, roleTimeout)
	if took >= testLeaseTTL {
		t.Errorf("takeover after a clean stop took %s, want under the TTL %s", took, testLeaseTTL)
	}
}

// Two partitions share the stream but each is fenced on its own subject:
// a foreign append on partition 0's subject makes partition 0 rebuild and
// leaves partition 1 alone; each serves only its own customers, and
// replay works per partition and across them.
func TestPartitionsAreFencedIndependently(t *testing.T) {
	s := testenv.StartServer(t, "")
	def := &ledger.DefaultBudget{Limit: events.NewUnits(100, 0), Period: ledger.PeriodMonth}
	var ws [2]*testenv.Writer
	for i := range ws {
		ws[i] = testenv.StartWriter(t, s, nil, def, func(c *projections.Config) { c.Partitions, c.Partition = 2, i })
	}
	nc := testenv.Connect(t, s)
	// Customers of each partition, found as NATS's mapping would route them.
	var owned [2][]string
	for i := 0; len(owned[0]) < 3 || len(owned[1]) < 3; i++ {
		id := fmt.Sprintf("cust-%d", i)
		p := events.PartitionOf(events.Token(id), 2)
		owned[p] = append(owned[p], id)
	}
	request := func(p int, op events.Op, cid, body string) map[string]any {
		t.Helper()
		orig := events.RequestSubject(op, cid)
		m, err := nc.Request(fmt.Sprintf("%s%d.%s", events.PartitionPrefix, p, orig[len("agentbill."):]), []byte(body), 5*time.Second)
		if err != nil {
			t.Fatalf("%s on partition %d: %v", orig, p, err)
		}
		var out map[string]any
		if err := json.Unmarshal(m.Data, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for p := range 2 {
		for _, cid := range owned[p] {
			if r := request(p, events.OpPreflight, cid, `{"agent_id":"a","estimated_units":60}`); r["approved"] != true {
				t.Fatalf("partition %d, %s: %v", p, cid, r)
			}
		}
	}
	// A request routed to the wrong partition is refused, not decided.
	if r := request(1, events.OpPreflight, owned[0][0], `{"agent_id":"a","estimated_units":1}`); r["error"] == nil {
		t.Fatalf("wrong partition answered %v", r)
	}

	// A foreign commit on partition 0's subject moves only its fence.
	ctx := context.Background()
	js := testenv.JetStream(t, nc)
	var enc events.CommitEncoder
	enc.Reset("foreign", "0", time.Now())
	if _, err := js.Publish(ctx, events.LogSubject("0"), enc.Bytes()); err != nil {
		t.Fatal(err)
	}
	for p := range 2 {
		// 60 of 100 are held: 50 more is refused by either partition, after
		// partition 0 has rebuilt (its first attempt is unavailable).
		for attempt := 0; ; attempt++ {
			r := request(p, events.OpPreflight, owned[p][1], `{"agent_id":"a","estimated_units":50,"idempotency_key":"k"}`)
			if r["error"] != nil && attempt < 50 {
				time.Sleep(20 * time.Millisecond) // partition 0 rebuilding
				continue
			}
			if r["approved"] != false || r["reason"] != "budget_exhausted" {
				t.Fatalf("partition %d: %v, want refused for budget", p, r)
			}
			break
		}
	}
	if n0, n1 := ws[0].Stats().Rebuilds.Load(), ws[1].Stats().Rebuilds.Load(); n0 != 1 || n1 != 0 {
		t.Errorf("rebuilds: partition 0 %d, partition 1 %d; want 1 and 0", n0, n1)
	}

	// Replay per partition holds only its customers; across them, all.
	for p := range 2 {
		st, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{Writer: fmt.Sprint(p)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Customers() != len(owned[p]) || st.Customer(owned[1-p][0]) != nil {
			t.Errorf("partition %d replays %d customers, want its %d", p, st.Customers(), len(owned[p]))
		}
	}
	all, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if all.Customers() != len(owned[0])+len(owned[1]) {
		t.Errorf("whole log replays %d customers, want %d", all.Customers(), len(owned[0])+len(owned[1]))
	}
}

// A leader whose lease is taken (here: overwritten by a holder that then
// dies) stops serving at its next renewal, and takes the lease back once
// the usurper's expires, with a takeover commit.
func TestDeposedLeaderStepsDown(t *testing.T) {
	s := testenv.StartServer(t, "")
	a := startElected(t, s, "a")
	waitRole(t, a.Writer, projections.RoleLeader, roleTimeout)
	c := testenv.Client(t, s)
	preflight(t, c, "u", "x", "10")
	ctx := context.Background()
	kv, err := testenv.JetStream(t, c.Conn()).KeyValue(ctx, projections.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, projections.LeaseKey(events.WriterDefault), []byte(`{"holder":"usurper/1","ttl_ms":1000}`)); err != nil {
		t.Fatal(err)
	}
	waitRole(t, a.Writer, projections.RoleStandby, testLeaseTTL)
	waitRole(t, a.Writer, projections.RoleLeader, 3*testLeaseTTL)
	if r := preflight(t, c, "u", "x", "10"); !r.Approved {
		t.Fatalf("after taking the lease back: %+v", r)
	}
	st, err := testenv.JetStream(t, c.Conn()).Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	takeovers := 0
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(m.Header.Get(projections.TakeoverHeader), "a/") {
			takeovers++
		}
	}
	if takeovers != 1 {
		t.Errorf("%d takeover commits by a, want 1", takeovers)
	}
}

// A standby that follows another writer's commit and then takes over a
// released lease (no takeover commit) names that commit in its next
// snapshot, so the snapshot is good: a writer started after it loads it
// rather than refusing it and replaying the whole log.
func TestSnapshotAfterFollowingAForeignCommit(t *testing.T) {
	s := testenv.StartServer(t, "")
	a := startElected(t, s, "a", manualSnapshots(nil))
	waitRole(t, a.Writer, projections.RoleLeader, roleTimeout)
	b := startElected(t, s, "b", manualSnapshots(nil))
	waitRole(t, b.Writer, projections.RoleStandby, roleTimeout)
	c := testenv.Client(t, s)
	preflight(t, c, "u", "x", "10")

	// A commit by another writer, fenced on the end of the log as a
	// writer's would be.
	ctx := context.Background()
	js := testenv.JetStream(t, c.Conn())
	last := a.Stats().LastSeq.Load()
	foreign := nats.NewMsg(events.LogSubject("7"))
	foreign.Data = []byte(`{"v":1,"id":"foreign-1","writer":"7","at":"2026-01-01T00:00:00Z","events":[]}`)
	foreign.Header.Set(jetstream.MsgIDHeader, "foreign-1")
	foreign.Header.Set(jetstream.ExpectedLastSeqHeader, fmt.Sprint(last))
	if _, err := js.PublishMsg(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.Stats().LastSeq.Load() == last+1 })

	a.cancel() // a clean stop releases the lease: b takes it without a takeover commit
	<-a.done
	waitRole(t, b.Writer, projections.RoleLeader, roleTimeout)
	saved := b.Stats().Snapshots.Saved.Load()
	b.SnapshotNow()
	waitFor(t, func() bool { return b.Stats().Snapshots.Saved.Load() > saved })
	if got := b.Stats().Snapshots.SavedSeq.Load(); got != last+1 {
		t.Fatalf("snapshot at sequence %d, want %d (the foreign commit)", got, last+1)
	}
	b.cancel()
	<-b.done

	w := testenv.StartWriter(t, s, nil, nil, manualSnapshots(nil))
	defer w.Stop(t)
	st := &w.Stats().Snapshots
	if st.Rejected.Load() != 0 || st.LoadedSeq.Load() != last+1 {
		t.Errorf("restart refused %d snapshots and started from sequence %d; want 0 and %d", st.Rejected.Load(), st.LoadedSeq.Load(), last+1)
	}
}
