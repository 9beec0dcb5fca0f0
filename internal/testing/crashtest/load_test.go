package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/anishathalye/porcupine"
	"github.com/nats-io/nats.go"
)

// Load bounds: every run is bounded in count and in time.
const (
	loadWorkers      = 8
	loadCustomers    = 24
	loadLimit        = 60 // units per customer and month
	loadOpsPerWorker = 20_000
	loadUnitsMax     = 5
	// loadRetryShare of approved preflights are sent again with the same
	// idempotency key, as a client that lost the reply would.
	loadRetryShare = 0.3
	// loadReleaseShare of approved holds are released, the rest recorded.
	loadReleaseShare = 0.2
	// loadMinUnitsShare of preflights accept a partial hold (min_units 1).
	loadMinUnitsShare = 0.3
	// Every topUpEvery an admin adds topUpUnits to one customer, as a
	// credit grant and as a top-up in turn.
	topUpEvery = 150 * time.Millisecond
	topUpUnits = 25
	// grantPriorities: grants get one of these priorities at random, so
	// they are drawn in an order other than the one they were made in.
	grantPriorities = 3
	// callTimeout bounds one client call with all its retries; an attempt
	// is bounded by attemptTimeout.
	callTimeout    = 30 * time.Second
	attemptTimeout = 2 * time.Second
	// stableTimeout bounds waiting for the service to answer after faults.
	stableTimeout = 60 * time.Second
)

// load drives bounded concurrent traffic with the Go client and remembers
// everything the clients were told.
type load struct {
	t         *testing.T
	urls      string
	customers []string
	admin     *client.Client

	rules map[string]rules // customer ID -> its budget, as the model sees it

	mu                           sync.Mutex
	approved                     map[string]string // reservation ID -> customer, as clients saw approved
	keys                         map[string]bool   // idempotency key -> a reply was seen (false: outcome unknown)
	approvals                    []approval        // in the order they reached their clients
	ok, refused, failed, retried int
	partial, overdraft           int                   // approvals that were partial, that dipped into an overdraft
	reasons                      map[string]int        // refusals by reason
	hist                         []porcupine.Operation // every call and what it was told, for the linearizability check
	start                        time.Time

	stop chan struct{}
	wg   sync.WaitGroup
}

func connect(t *testing.T, urls, name string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newClient(t *testing.T, urls, name string) *client.Client {
	return client.New(connect(t, urls, name), client.WithTimeout(attemptTimeout))
}

// rulesFor is the budget of the load's i-th customer: a plain one; one
// with an overdraft, two limited teams and a cap of 3 open runs; or one
// with a limited team and a cap of 2 open runs.
func rulesFor(i int) rules {
	r := rules{limit: loadLimit}
	switch i % 3 {
	case 1:
		r.overdraft, r.maxRuns = 10, 3
		r.teams[0], r.teams[1] = 20, 15
	case 2:
		r.maxRuns = 2
		r.teams[0] = 25
	}
	return r
}

// request is the budget request of r.
func (r rules) request() ledger.BudgetRequest {
	limit := events.NewUnits(r.limit, 0)
	req := ledger.BudgetRequest{Limit: &limit, Period: string(ledger.PeriodMonth), MaxRuns: r.maxRuns}
	if r.overdraft > 0 {
		od := events.NewUnits(r.overdraft, 0)
		req.Overdraft = &od
	}
	for i, l := range r.teams {
		if l > 0 {
			u := events.NewUnits(l, 0)
			req.ScopeLimits = append(req.ScopeLimits, ledger.ScopeLimitRequest{Dimension: "team", Value: scopeTeams[i],
				Limit: &u, Period: string(ledger.PeriodMonth)})
		}
	}
	return req
}

// startLoad sets every customer's budget and starts the workers.
func startLoad(t *testing.T, urls string) *load {
	t.Helper()
	l := &load{t: t, urls: urls, admin: newClient(t, urls, "admin"), approved: map[string]string{},
		keys: map[string]bool{}, rules: map[string]rules{}, reasons: map[string]int{},
		stop: make(chan struct{}), start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), stableTimeout)
	defer cancel()
	for i := range loadCustomers {
		cid := fmt.Sprintf("cust-%02d", i)
		if i%5 == 4 {
			cid = fmt.Sprintf("odd.id *> %d", i) // encoded subject token
		}
		l.customers = append(l.customers, cid)
		l.rules[cid] = rulesFor(i)
		// The first one also waits for the service (a cluster creating its
		// R3 stream takes a while); the client retries unavailable.
		for {
			_, err := l.admin.SetBudget(ctx, cid, l.rules[cid].request())
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("set budget %s: %v", cid, err)
			}
		}
	}
	for w := range loadWorkers {
		c := newClient(t, urls, fmt.Sprintf("worker-%d", w))
		l.wg.Add(1)
		go l.worker(c, w)
	}
	l.wg.Add(1)
	go l.topUps()
	return l
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *load) note(key string, replied bool) {
	l.mu.Lock()
	l.keys[key] = l.keys[key] || replied
	l.mu.Unlock()
}

func (l *load) worker(c *client.Client, w int) {
	defer l.wg.Done()
	agent := fmt.Sprintf("agent-%d", w)
	rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	for range loadOpsPerWorker {
		if l.stopped() {
			return
		}
		cid := l.customers[rng.IntN(len(l.customers))]
		n := 1 + rng.IntN(loadUnitsMax)
		units := events.NewUnits(int64(n), 0)
		req := ledger.PreflightRequest{AgentID: agent, EstimatedUnits: &units, IdempotencyKey: client.NewIdempotencyKey()}
		pin := opIn{kind: opPreflight, cid: cid, units: int64(n), scope: rng.IntN(len(scopeTeams)+1) - 1}
		if pin.scope >= 0 {
			req.Scope = map[string]string{"team": scopeTeams[pin.scope], "user": agent}
		}
		if rng.Float64() < loadMinUnitsShare {
			one := events.NewUnits(1, 0)
			req.MinUnits, pin.min = &one, 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		call := time.Now()
		r, err := c.Preflight(ctx, cid, req)
		l.note(req.IdempotencyKey, err == nil)
		out := opOut{unknown: err != nil}
		if err == nil {
			out.approved, out.resID, out.remaining = r.Approved, r.ReservationID, wholeUnits(r.RemainingUnits.Units)
			out.reserved, out.partial, out.overdraft, out.reason = wholeUnits(r.ReservedUnits), r.Partial, r.Overdraft, r.Reason
			if r.Scope != nil {
				out.refused = r.Scope.Value
			}
		}
		l.history(w, call, pin, out)
		if err != nil {
			cancel()
			l.count(&l.failed)
			continue
		}
		if !r.Approved {
			cancel()
			l.mu.Lock()
			l.refused++
			l.reasons[r.Reason]++
			l.mu.Unlock()
			continue
		}
		held := int(out.reserved)
		l.mu.Lock()
		l.ok++
		if r.Partial {
			l.partial++
		}
		if r.Overdraft {
			l.overdraft++
		}
		l.approved[r.ReservationID] = cid
		l.approvals = append(l.approvals, approval{call: call, at: time.Now()})
		l.mu.Unlock()
		if rng.Float64() < loadRetryShare {
			again, err := c.Preflight(ctx, cid, req)
			if err == nil && again.ReservationID != r.ReservationID {
				l.t.Errorf("retry of %s got reservation %s, first %s", req.IdempotencyKey, again.ReservationID, r.ReservationID)
			}
			l.count(&l.retried)
		}
		key := client.NewIdempotencyKey()
		in := opIn{kind: opRelease, cid: cid, resID: r.ReservationID, scope: -1}
		out = opOut{}
		call = time.Now()
		if rng.Float64() < loadReleaseShare {
			var rr *ledger.ReleaseReply
			if rr, err = c.ReleaseWith(ctx, cid, ledger.ReleaseRequest{ReservationID: r.ReservationID, IdempotencyKey: key}); err == nil {
				out.remaining = wholeUnits(rr.RemainingUnits.Units)
			}
		} else {
			in.kind, in.units = opRecord, int64(1+rng.IntN(held)) // never over the hold
			used := events.NewUnits(in.units, 0)
			var rr *ledger.RecordReply
			if rr, err = c.Record(ctx, cid, ledger.RecordRequest{AgentID: agent, Units: &used, ReservationID: r.ReservationID, IdempotencyKey: key}); err == nil {
				out.remaining = wholeUnits(rr.RemainingUnits.Units)
			}
		}
		out.unknown = err != nil
		l.history(w, call, in, out)
		l.note(key, err == nil)
		cancel()
	}
}

// topUps adds units to each customer in turn now and then (admin): a
// credit grant (of one of grantPriorities, expiring in a year) to each,
// then a top-up to each, and so on.
func (l *load) topUps() {
	defer l.wg.Done()
	tick := time.NewTicker(topUpEvery)
	defer tick.Stop()
	units := events.NewUnits(topUpUnits, 0)
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		key := client.NewIdempotencyKey()
		cid := l.customers[i%len(l.customers)]
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		call := time.Now()
		in := opIn{kind: opTopUp, cid: cid, units: topUpUnits, scope: -1}
		var out opOut
		if i/len(l.customers)%2 == 1 {
			st, err := l.admin.TopUp(ctx, cid, ledger.TopUpRequest{Units: &units, IdempotencyKey: key})
			if out.unknown = err != nil; err == nil {
				out.remaining = wholeUnits(st.Remaining.Units)
			}
		} else {
			in.kind = opGrant
			prio, exp := ledger.GrantPriorityDefault+i%grantPriorities, call.Add(365*24*time.Hour).UTC()
			g, err := l.admin.Grant(ctx, cid, ledger.GrantRequest{Units: &units, Priority: &prio, ExpiresAt: &exp,
				Source: events.SourcePurchase, IdempotencyKey: key})
			if out.unknown = err != nil; err == nil {
				out.remaining = wholeUnits(g.RemainingUnits.Units)
			}
		}
		cancel()
		l.history(loadWorkers, call, in, out)
		l.note(key, !out.unknown)
	}
}

// history records one operation for the linearizability check.
func (l *load) history(client int, call time.Time, in opIn, out opOut) {
	ret := time.Since(l.start).Nanoseconds()
	l.mu.Lock()
	l.hist = append(l.hist, porcupine.Operation{ClientId: client, Input: in, Output: out,
		Call: call.Sub(l.start).Nanoseconds(), Return: ret})
	l.mu.Unlock()
}

func (l *load) count(n *int) {
	l.mu.Lock()
	*n++
	l.mu.Unlock()
}

// finish stops the workers and waits for them.
func (l *load) finish() {
	close(l.stop)
	l.wg.Wait()
	l.t.Logf("load: %d approved (%d partial, %d into an overdraft, %d retried), %d refused %v, %d failed after all retries, %d keys",
		l.ok, l.partial, l.overdraft, l.retried, l.refused, l.reasons, l.failed, len(l.keys))
}

// approval is one preflight a client saw approved: when it called, and
// when the reply came.
type approval struct{ call, at time.Time }

// firstApprovalAfter waits for the first approval of a call made after t0
// and returns how long after t0 it came. A call made before t0 may have
// been answered just before (a reply still on the wire when its writer
// was killed), so it does not count.
func (l *load) firstApprovalAfter(t0 time.Time, within time.Duration) (time.Duration, bool) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		i := sort.Search(len(l.approvals), func(i int) bool { return l.approvals[i].at.After(t0) })
		var at time.Time
		for ; i < len(l.approvals); i++ {
			if l.approvals[i].call.After(t0) {
				at = l.approvals[i].at
				break
			}
		}
		l.mu.Unlock()
		if !at.IsZero() {
			return at.Sub(t0), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, false
}

// waitApprovals waits until n more approvals than now have been seen.
func (l *load) waitApprovals(n int, within time.Duration) bool {
	l.mu.Lock()
	target := l.ok + n
	l.mu.Unlock()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		done := l.ok >= target
		l.mu.Unlock()
		if done {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// verify checks the log against what the clients were told, and the live
// state against the log replayed:
//   - every approval a client saw is a reserved event, exactly once;
//   - every idempotency key had exactly one effect (at most one if its
//     client never heard back);
//   - no customer's holds and usage ever exceeded its limit plus top-ups,
//     grants and overdraft, nor a team's its scope limit;
//   - the state replayed from the log equals the live state.
func (l *load) verify() {
	t := l.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stableTimeout)
	defer cancel()
	live := map[string]*ledger.StatusReply{}
	for _, cid := range l.customers {
		st, err := l.admin.Status(ctx, cid)
		if err != nil {
			t.Fatalf("live status of %s: %v", cid, err)
		}
		live[cid] = st
	}
	js := testenv.JetStream(t, connect(t, l.urls, "verify"))
	reserved := map[string]int{}
	effects := map[string]int{}
	s := ledger.NewState()
	overspent, draws := 0, 0
	var evs int
	_, err := projections.Replay(ctx, js, projections.ReplayStop{}, func(_ uint64, e *events.Envelope) error {
		evs++
		s.Apply(e)
		switch d := e.Data.(type) {
		case *events.Reserved:
			reserved[d.ReservationID]++
		case *events.Recorded:
			draws += len(d.FundedBy)
		}
		if k := idempotencyKey(e); k != "" {
			effects[k]++
		}
		c := s.Customer(e.CustomerID)
		if c == nil {
			return nil
		}
		floor := events.NewUnits(-l.rules[e.CustomerID].overdraft, 0)
		if rem := c.RemainingAt(e.At); rem.Cmp(floor) < 0 {
			if overspent++; overspent <= 5 {
				t.Errorf("event %s (%s) leaves %s at %s remaining, below its overdraft", e.ID, e.Type, e.CustomerID, rem)
			}
		}
		for ref, u := range c.Scopes {
			if spent := u.Used.Add(u.Reserved); spent.Cmp(u.Limit) > 0 {
				if overspent++; overspent <= 5 {
					t.Errorf("event %s (%s) leaves %s's %s %s at %s of its limit %s", e.ID, e.Type, e.CustomerID,
						ref.Dimension, ref.Value, spent, u.Limit)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	missing := 0
	for id, cid := range l.approved {
		if n := reserved[id]; n != 1 {
			if missing++; missing <= 5 {
				t.Errorf("approved reservation %s of %s is in the log %d times, want exactly once", id, cid, n)
			}
		}
	}
	wrong := 0
	for k, replied := range l.keys {
		n := effects[k]
		if n > 1 || replied && n != 1 {
			if wrong++; wrong <= 5 {
				t.Errorf("idempotency key %s (reply seen %v) has %d effects in the log", k, replied, n)
			}
		}
	}
	now := time.Now()
	for _, cid := range l.customers {
		want, err := s.Status(cid, now)
		if err != nil {
			t.Errorf("replayed status of %s: %v", cid, err)
			continue
		}
		got := live[cid]
		want.AsOfSeq, got.AsOfSeq = 0, 0
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want)
		if string(a) != string(b) {
			t.Errorf("%s: live state differs from the log replayed:\nlive   %s\nreplay %s", cid, a, b)
		}
	}
	t.Logf("verified: %d events, %d approvals seen, %d keys, %d grant draws; %d missing or duplicated, %d keys with a wrong count, %d overspends",
		evs, len(l.approved), len(l.keys), draws, missing, wrong, overspent)
	l.checkLinearizable()
}

// checkLinearizable checks every customer's history against the
// sequential budget (linear_test.go). An operation whose outcome its
// client never learned may take effect at any time after its call.
func (l *load) checkLinearizable() {
	t := l.t
	t.Helper()
	end := time.Since(l.start).Nanoseconds() + 1
	hist := slices.Clone(l.hist)
	unknown := 0
	for i := range hist {
		if hist[i].Output.(opOut).unknown {
			hist[i].Return = end
			unknown++
		}
	}
	timeout := linearTimeoutShort
	if *full {
		timeout = linearTimeoutFull
	}
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(budgetModel(l.rules), hist, timeout)
	switch res {
	case porcupine.Ok:
		t.Logf("linearizable: %d operations (%d with unknown outcome) over %d customers, checked in %s",
			len(hist), unknown, len(l.customers), time.Since(start).Round(time.Millisecond))
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("agentbill-linearizability-%d.html", time.Now().UnixNano()))
		if err := porcupine.VisualizePath(budgetModel(l.rules), info, path); err != nil {
			path = err.Error()
		}
		t.Errorf("the history of %d operations is not linearizable; porcupine's visualization: %s", len(hist), path)
	default:
		t.Logf("linearizability: no verdict within %s for %d operations (not a failure; the other checks stand)", timeout, len(hist))
	}
}

// idempotencyKey returns the key of the request an event answered.
func idempotencyKey(e *events.Envelope) string {
	b, err := json.Marshal(e.Data)
	if err != nil {
		return ""
	}
	var r events.Request
	_ = json.Unmarshal(b, &r)
	return r.IdempotencyKey
}
