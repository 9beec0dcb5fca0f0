package projections_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// BenchmarkTakeover measures a standby's takeover at the size
// BenchmarkRestart uses (AGENTBILL_BENCH_CUSTOMERS, AGENTBILL_BENCH_EVENTS,
// AGENTBILL_BENCH_SPAN; 1,000,000 customers and 4M events by default):
//
//	AGENTBILL_BENCH_EVENTS=10000000 go test -run '^$' -bench Takeover -benchtime 1x -timeout 30m -v ./projections
//
// With AGENTBILL_BENCH_NO_SNAPSHOT set, no snapshot is stored first: the
// leader replays the whole log, snapshots its state before it serves
// (ShadowReplayEventsMax), and must keep its lease until the cut.
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
	noSnapshot := os.Getenv("AGENTBILL_BENCH_NO_SNAPSHOT") != ""
	if !noSnapshot {
		w, _ := benchWriter(b, s, false)
		snapMetrics(b, w, "first")
		w.Stop(b)
	}
	c := testenv.Client(b, s)
	for b.Loop() {
		start := time.Now()
		leader := startElected(b, s, "a", benchLease)
		waitRole(b, leader.Writer, projections.RoleLeader, benchRoleTimeout)
		b.ReportMetric(time.Since(start).Seconds(), "leader-ready-s")
		if noSnapshot {
			// The leader snapshots its state before serving (its shadow
			// would otherwise replay the log beside it). The standby
			// starts once that is stored: a standby replaying the whole
			// log too would not fit this process's memory.
			st := &leader.Stats().Snapshots
			for deadline := time.Now().Add(benchRoleTimeout); st.Saved.Load() == 0; {
				if time.Now().After(deadline) {
					b.Fatalf("the leader's snapshot was not stored within %s (bases %d, failed %d)", benchRoleTimeout, st.Bases.Load(), st.Failed.Load())
				}
				time.Sleep(10 * time.Millisecond)
			}
			b.ReportMetric(float64(st.Bases.Load()), "leader-bases")
			b.ReportMetric(time.Duration(st.EncodeNanos.Load()).Seconds(), "leader-base-encode-s")
		}
		start = time.Now()
		standby := startElected(b, s, "b", benchLease)
		waitRole(b, standby.Writer, projections.RoleStandby, benchRoleTimeout)
		b.ReportMetric(time.Since(start).Seconds(), "standby-ready-s")

		if leader.Role() != projections.RoleLeader {
			b.Fatalf("the leader stepped down before the cut (role %s)", leader.Role())
		}
		cut := time.Now()
		leader.crash()
		waitRole(b, standby.Writer, projections.RoleLeader, benchRoleTimeout)
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
		standby.cancel()
		<-standby.done
	}
}

// benchRoleTimeout bounds waiting for a role: a writer of a million
// customers may replay for minutes first.
const benchRoleTimeout = 10 * time.Minute

// benchLease makes startElected's writer one as serve runs it: the
// default lease TTL, the benchmark's default budget, snapshots on demand.
func benchLease(cfg *projections.Config) {
	cfg.Lease.TTL = 0
	cfg.Default = snapDefault
	cfg.Snapshots = projections.SnapshotConfig{EventsEvery: 1 << 62}
}
