package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
)

// BenchmarkTakeover measures a standby's takeover at the size
// BenchmarkRestart uses (AGENTBILL_BENCH_CUSTOMERS, AGENTBILL_BENCH_EVENTS,
// AGENTBILL_BENCH_SPAN; 1,000,000 customers and 4M events by default):
//
//	AGENTBILL_BENCH_EVENTS=10000000 go test -run '^$' -bench Takeover -benchtime 1x -timeout 30m -v ./projections
//
// The log is generated and published, and a first writer replays it and
// stores a snapshot, as a ledger that has been running has; then a leader
// starts from it, and a standby starts from it and follows the log.
// Then the leader is cut off NATS without a word, as a killed process
// is, and the figures are the time from the cut to the standby leading,
// and to its first answered preflight. A crashed leader's lease must run
// out first (projections.LeaseTTLDefault, as `serve` uses), so the time
// beyond the TTL is reported too: what the standby's own work costs.
func BenchmarkTakeover(b *testing.B) {
	customers := benchEnv(b, "AGENTBILL_BENCH_CUSTOMERS", 1_000_000)
	total := benchEnv(b, "AGENTBILL_BENCH_EVENTS", 4_000_000)
	if total < 3*customers {
		b.Fatalf("events %d must be at least 3 per customer (%d)", total, 3*customers)
	}
	s := testenv.StartServer(b, "")
	g := newLogGen(b, s, customers, total, benchSpan(b))
	g.generate(total)
	g.publish(0, len(g.commits))
	b.Logf("published %d events over %d customers in %d commits", g.events, customers, len(g.commits))
	g.commits = nil // the writers measured share the heap with nothing else
	// A ledger that has been running has a snapshot: one writer replays
	// the log and stores one, as BenchmarkRestart's first step does.
	w, _ := benchWriter(b, s, false)
	snapMetrics(b, w, "first")
	w.Stop(b)
	c := testenv.Client(b, s)
	for b.Loop() {
		start := time.Now()
		leader := startBenchElected(b, s, "a")
		waitBenchRole(b, leader.Writer, projections.RoleLeader)
		b.ReportMetric(time.Since(start).Seconds(), "leader-ready-s")
		start = time.Now()
		standby := startBenchElected(b, s, "b")
		waitBenchRole(b, standby.Writer, projections.RoleStandby)
		b.ReportMetric(time.Since(start).Seconds(), "standby-ready-s")

		cut := time.Now()
		leader.crash()
		waitBenchRole(b, standby.Writer, projections.RoleLeader)
		leading := time.Since(cut)
		r, err := c.Preflight(context.Background(), "cust-1", ledger.PreflightRequest{AgentID: "takeover", EstimatedUnits: testenv.Ptr(b, "1")})
		if err != nil || !r.Approved {
			b.Fatalf("first preflight after the takeover: %v %+v", err, r)
		}
		answered := time.Since(cut)
		b.ReportMetric(leading.Seconds(), "takeover-s")
		b.ReportMetric(answered.Seconds(), "first-answer-s")
		b.ReportMetric((answered - projections.LeaseTTLDefault).Seconds(), "first-answer-beyond-ttl-s")
		b.Logf("takeover: leading %s and answering %s after the leader was cut off (lease TTL %s)",
			leading.Round(time.Millisecond), answered.Round(time.Millisecond), projections.LeaseTTLDefault)
		standby.stop()
	}
}

// benchElected is a writer competing for the lease on its own two
// connections; crash cuts them, as a killed process would.
type benchElected struct {
	*projections.Writer
	nc, lc *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func startBenchElected(b *testing.B, s *testenv.Server, instance string) *benchElected {
	b.Helper()
	nc, lc := testenv.Connect(b, s), testenv.Connect(b, s)
	w := projections.New(projections.Config{Conn: nc, LogConn: lc, Default: snapDefault,
		Snapshots: projections.SnapshotConfig{EventsEvery: 1 << 62},
		Lease:     &projections.LeaseConfig{Instance: instance}})
	ctx, cancel := context.WithCancel(context.Background())
	e := &benchElected{Writer: w, nc: nc, lc: lc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		if err := w.Run(ctx); err != nil {
			b.Errorf("%s: %v", instance, err)
		}
	}()
	b.Cleanup(e.stop)
	return e
}

func (e *benchElected) stop() {
	e.cancel()
	<-e.done
}

func (e *benchElected) crash() {
	e.nc.Close()
	e.lc.Close()
	e.stop()
}

// waitBenchRole waits for w to reach role; a writer of a million
// customers may replay for minutes first.
func waitBenchRole(b *testing.B, w *projections.Writer, role string) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for w.Role() != role {
		if time.Now().After(deadline) {
			b.Fatalf("role %s, want %s", w.Role(), role)
		}
		time.Sleep(time.Millisecond)
	}
}
