package crashtest

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go/jetstream"
)

// full runs every scenario at full length (docs/high-availability.md, "Crash tests"):
//
//	go test ./internal/testing/crashtest -v -timeout 30m -args -crash.full
//
// Without it each scenario runs a short variant in the normal suite.
var full = flag.Bool("crash.full", false, "run the crash scenarios at full length (20 writer kills, 5 failovers, ...)")

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// rounds returns the full or the short count.
func rounds(fullN, shortN int) int {
	if *full {
		return fullN
	}
	return shortN
}

// Scenario bounds.
const (
	// fastLeaseTTL is the lease of scenarios that restart the only
	// service: the restarted process waits for its dead self's lease.
	fastLeaseTTL = time.Second
	// failoverLeaseTTL is the default lease: failover figures are measured
	// with what users run.
	failoverLeaseTTL = 3 * time.Second
	// killAfterMin and killAfterMax bound the random moment of a kill
	// after load resumes.
	killAfterMin = 150 * time.Millisecond
	killAfterMax = 900 * time.Millisecond
	// failoverMax is the bound: leader killed to first approval by
	// the new leader.
	failoverMax = 5 * time.Second
	// approvalsBetweenFaults: each fault waits for this many approvals
	// after the previous one, so every kill lands on a serving ledger.
	approvalsBetweenFaults = 20
)

func randomDelay() time.Duration {
	return killAfterMin + rand.N(killAfterMax-killAfterMin)
}

// waitServing waits until the load sees approvals again.
func waitServing(t *testing.T, l *load, what string) {
	t.Helper()
	if !l.waitApprovals(approvalsBetweenFaults, stableTimeout) {
		t.Fatalf("no approvals within %s after %s", stableTimeout, what)
	}
}

// The service writer is killed with SIGKILL at random moments under load
// and restarted, on one nats-server with fsync always.
func TestKillTheWriter(t *testing.T) {
	c := startCluster(t, 1)
	svc := startService(t, c, "svc", 1, fastLeaseTTL)
	l := startLoad(t, c.urls())
	kills := rounds(20, 3)
	for i := range kills {
		waitServing(t, l, "restart")
		time.Sleep(randomDelay())
		svc.kill(t)
		svc.start(t)
		t.Logf("kill %d/%d", i+1, kills)
	}
	waitServing(t, l, "the last restart")
	l.finish()
	l.verify()
	// The restarts started from snapshots the shadow took under load.
	stored, _ := svc.loggedAfter("snapshot stored", time.Time{})
	loaded, _ := svc.loggedAfter("snapshot loaded", time.Time{})
	t.Logf("first snapshot stored: %q; first loaded by a restart: %q", stored, loaded)
	if *full && (stored == "" || loaded == "") {
		t.Error("no snapshot was stored, or none loaded by a restart: the kills never met the shadow's snapshots")
	}
}

// Two services share the ledger; the leader is killed under load and the
// standby takes over. Failover time is from the kill to the first approval
// a client receives afterwards (from the new leader: the old one is dead).
// Meanwhile preflights also go through each service's HTTP gateway, as an
// SDK's would: a live gateway must answer every one with 200, failover or
// not.
func TestKillTheLeaderStandbyTakesOver(t *testing.T) {
	c := startCluster(t, 1)
	var svcs []*service
	var bases []string
	for _, name := range []string{"svc-a", "svc-b"} {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		svcs = append(svcs, startService(t, c, name, 1, failoverLeaseTTL, "--http", addr))
		bases = append(bases, "http://"+addr)
	}
	l := startLoad(t, c.urls())
	hp := startHTTPProber(t, l, bases, createKey(t, c.urls(), "agent"))
	js := testenv.JetStream(t, connect(t, c.urls(), "lease-reader"))
	var took []time.Duration
	n := rounds(5, 1)
	for i := range n {
		waitServing(t, l, "failover")
		time.Sleep(randomDelay())
		holder := leaseHolder(context.Background(), js)
		leader := slices.IndexFunc(svcs, func(s *service) bool { return s.instance == holder })
		if leader < 0 {
			t.Fatalf("lease held by %q, not by a service", holder)
		}
		killed := time.Now()
		svcs[leader].kill(t)
		d, ok := l.firstApprovalAfter(killed, stableTimeout)
		if !ok {
			t.Fatalf("no approval within %s of killing %s\n%s", stableTimeout, holder, svcs[1-leader].tail())
		}
		took = append(took, d)
		t.Logf("failover %d/%d: %s killed, first approval %s later", i+1, n, holder, d.Round(time.Millisecond))
		if d > failoverMax {
			t.Errorf("failover took %s, want under %s", d, failoverMax)
		}
		svcs[leader].start(t) // back as the standby
	}
	slices.Sort(took)
	t.Logf("failover (lease TTL %s): median %s, max %s over %d runs", failoverLeaseTTL,
		took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), len(took))
	waitServing(t, l, "the last failover")
	hp.finish(t)
	l.finish()
	l.verify()
}

// The leader is paused (SIGSTOP) under load, long enough for the standby
// to take over, then resumed: it wakes up believing it leads, with
// decisions in flight. The takeover commit has moved the fence, so nothing
// it decided on its stale state can land; it must step down and follow.
// The checks after the load show the log stayed one serial history.
func TestPausedLeaderIsFencedOff(t *testing.T) {
	c := startCluster(t, 1)
	svcs := []*service{startService(t, c, "svc-a", 1, fastLeaseTTL), startService(t, c, "svc-b", 1, fastLeaseTTL)}
	l := startLoad(t, c.urls())
	js := testenv.JetStream(t, connect(t, c.urls(), "lease-reader"))
	for i := range rounds(3, 1) {
		waitServing(t, l, "the paused leader's step-down")
		time.Sleep(randomDelay())
		holder := leaseHolder(context.Background(), js)
		leader := slices.IndexFunc(svcs, func(s *service) bool { return s.instance == holder })
		if leader < 0 {
			t.Fatalf("lease held by %q, not by a service", holder)
		}
		old := svcs[leader]
		old.pause(t)
		paused := time.Now()
		if _, ok := l.firstApprovalAfter(paused, stableTimeout); !ok {
			old.resume(t)
			t.Fatalf("no approval within %s of pausing %s", stableTimeout, holder)
		}
		waitServing(t, l, "the takeover")
		old.resume(t)
		deadline := time.Now().Add(stableTimeout)
		line, ok := old.loggedAfter("stepping down", paused)
		for ; !ok; line, ok = old.loggedAfter("stepping down", paused) {
			if time.Now().After(deadline) {
				t.Fatalf("%s resumed but never stepped down:\n%s", holder, old.tail())
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("round %d: %s paused %s; on resuming: %s", i+1, holder, time.Since(paused).Round(time.Millisecond), line)
	}
	waitServing(t, l, "the last step-down")
	l.finish()
	l.verify()
}

// One of three NATS nodes (R3) is killed under load and restarted: in
// turn the node that leads the ledger stream and one that follows it. The
// gap is from the kill to the next approval a client receives.
func TestKillOneOfThreeNATSNodes(t *testing.T) {
	c := startCluster(t, 3)
	svcs := []*service{startService(t, c, "svc-a", 3, failoverLeaseTTL), startService(t, c, "svc-b", 3, failoverLeaseTTL)}
	l := startLoad(t, c.urls())
	js := testenv.JetStream(t, connect(t, c.urls(), "stream-info"))
	pick := func(i int) (*node, string) {
		ctx, cancel := context.WithTimeout(context.Background(), stableTimeout)
		defer cancel()
		ledger := streamCluster(ctx, t, js, events.StreamName)
		leader := ledger.Leader
		leases := leaderNow(js, "KV_"+projections.LeaseBucket) // for the log line only
		for _, nd := range c.nodes {
			if (nd.name == leader) == (i%2 == 0) {
				what := map[bool]string{true: "the stream leader", false: "a follower"}[nd.name == leader]
				if nd.name == leases {
					what += ", leading the lease bucket"
				}
				for _, r := range ledger.Replicas {
					if r.Name != nd.name && !r.Current {
						what += ", " + r.Name + " not yet current" // restarted, still catching up
					}
				}
				return nd, what
			}
		}
		t.Fatalf("stream leader %q is not a node", leader)
		return nil, ""
	}
	killNodes(t, c, l, rounds(4, 2), pick, func(nd *node, killed time.Time) {
		d, ok := l.firstApprovalAfter(killed, stableTimeout) // two of three carry on
		if !ok {
			var b strings.Builder
			for _, s := range svcs {
				fmt.Fprintf(&b, "\n%s:\n%s\nits goroutines:\n%s", s.instance, s.tail(), s.goroutines())
			}
			t.Fatalf("no approval within %s of losing %s%s", stableTimeout, nd.name, b.String())
		}
		t.Logf("%s down: first approval %s after the kill", nd.name, d.Round(time.Millisecond))
	})
	l.finish()
	l.verify()
}

// Two of three NATS nodes are killed under load, so the ledger stream
// and the lease bucket lose their quorum. Whatever each service is then
// waiting on (an append, the lease, a consumer being recreated, a
// snapshot's part), it must stop within stopTimeout of its SIGTERM (a
// failure shows its goroutines). The nodes and the services then start
// again, and nothing a client was told is lost.
func TestServicesStopWithoutQuorum(t *testing.T) {
	c := startCluster(t, 3)
	svcs := []*service{startService(t, c, "svc-a", 3, failoverLeaseTTL), startService(t, c, "svc-b", 3, failoverLeaseTTL)}
	l := startLoad(t, c.urls())
	waitServing(t, l, "the start")
	time.Sleep(randomDelay())
	lost := c.nodes[:2]
	for _, nd := range lost {
		nd.kill(t)
	}
	t.Logf("killed %s and %s; waiting %s", lost[0].name, lost[1].name, quorumLostFor)
	time.Sleep(quorumLostFor)
	for _, s := range svcs {
		start := time.Now()
		s.signal(t, syscall.SIGTERM)
		t.Logf("%s stopped %s after its SIGTERM", s.name, time.Since(start).Round(time.Millisecond))
	}
	for _, nd := range lost {
		nd.start(t)
	}
	c.waitJetStream(t)
	for _, s := range svcs {
		s.start(t)
	}
	waitServing(t, l, "the quorum's return")
	l.finish()
	l.verify()
}

// quorumLostFor is how long TestServicesStopWithoutQuorum leaves the
// cluster without a quorum before stopping the services: long enough for
// every consumer to miss two of its heartbeats (5 s apart) and start
// being recreated.
const quorumLostFor = 15 * time.Second

// clusterOf returns stream's cluster as its info says now, nil if that
// cannot be read or names no leader.
func clusterOf(ctx context.Context, js jetstream.JetStream, stream string) *jetstream.ClusterInfo {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		return nil
	}
	return info.Cluster
}

// leaderNow returns the node leading stream, or "" if that is not known
// within a second.
func leaderNow(js jetstream.JetStream, stream string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c := clusterOf(ctx, js, stream); c != nil {
		return c.Leader
	}
	return ""
}

// streamCluster returns stream's cluster once it has a leader.
func streamCluster(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string) *jetstream.ClusterInfo {
	t.Helper()
	for ctx.Err() == nil {
		if c := clusterOf(ctx, js, stream); c != nil {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no leader of %s: %v", stream, ctx.Err())
	return nil
}

// The only NATS node, with fsync always, is killed under load and
// restarted: nothing acknowledged is lost.
func TestKillTheSingleNATSNode(t *testing.T) {
	c := startCluster(t, 1)
	startService(t, c, "svc", 1, fastLeaseTTL)
	l := startLoad(t, c.urls())
	only := func(int) (*node, string) { return c.nodes[0], "the only node" }
	killNodes(t, c, l, rounds(3, 1), only, func(*node, time.Time) { time.Sleep(randomDelay()) })
	l.finish()
	l.verify()
}

// killNodes kills the node pick chooses, n times, at a random moment
// under load, calls down while it is dead, restarts it, and waits for
// approvals.
func killNodes(t *testing.T, c *cluster, l *load, n int, pick func(round int) (*node, string), down func(*node, time.Time)) {
	t.Helper()
	for i := range n {
		waitServing(t, l, "a node restart")
		time.Sleep(randomDelay())
		nd, what := pick(i)
		nd.kill(t)
		killed := time.Now()
		t.Logf("round %d/%d: killed %s, %s", i+1, n, nd.name, what)
		down(nd, killed)
		nd.start(t)
		c.waitJetStream(t)
	}
	waitServing(t, l, "the last node restart")
}
