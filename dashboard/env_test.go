package dashboard_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/dashboard"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/httpapi"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go/jetstream"
)

// testTimeout bounds every setup step and wait of these tests.
const testTimeout = 20 * time.Second

// t0 is the writer's clock: mid-month, so the chart has a period around it.
var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// env is a real server: embedded NATS with JetStream, a writer, the key
// store, a log follower, the dashboard and the gateway on a loopback HTTP
// server.
type env struct {
	t        *testing.T
	url      string
	agents   *client.Client
	store    *keys.Store
	follower *projections.Follower
	js       jetstream.JetStream
	clock    *testenv.Clock
	dash     *dashboard.Dashboard
	auditor  string // an auditor key bound to no customer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := testenv.StartServer(t, "")
	clock := testenv.NewClock(t0)
	w := testenv.StartWriter(t, srv, clock, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	gc := testenv.Connect(t, srv)
	store, err := keys.Open(ctx, gc, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := testenv.StartFollower(t, srv)
	d, err := dashboard.New(dashboard.Config{Conn: gc, JS: testenv.JetStream(t, gc), Keys: store, Ledger: f, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := httpapi.New(httpapi.Config{Conn: gc, Keys: store, Role: w.Role, Dashboard: d})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw)
	hs.Config.RegisterOnShutdown(d.Close)
	t.Cleanup(func() {
		d.Close()
		hs.Close()
	})
	e := &env{t: t, url: hs.URL, agents: testenv.Client(t, srv), store: store, follower: f, js: testenv.JetStream(t, gc), clock: clock, dash: d}
	e.auditor = e.key(keys.RoleAuditor, "")
	return e
}

func (e *env) key(role keys.Role, customer string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	secret, _, err := e.store.Create(ctx, role, customer, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// budget gives a customer a monthly limit with an 80% threshold.
func (e *env) budget(cid, limit string) {
	e.t.Helper()
	e.budgetWithThreshold(cid, limit, "0.8")
}

// budgetWithThreshold gives a customer a monthly limit with one threshold,
// a fraction of the limit.
func (e *env) budgetWithThreshold(cid, limit, threshold string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := e.agents.SetBudget(ctx, cid, ledger.BudgetRequest{
		Limit: testenv.Ptr(e.t, limit), Period: "month", Thresholds: []events.Units{testenv.Units(e.t, threshold)},
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// holdTTL is every test hold's lifetime: longer than the script, so no
// hold expires while it runs.
const holdTTL = "24h"

// preflight asks for units; it returns the reply.
func (e *env) preflight(cid, agent, units string) *ledger.PreflightReply {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r, err := e.agents.Preflight(ctx, cid, ledger.PreflightRequest{AgentID: agent, EstimatedUnits: testenv.Ptr(e.t, units), TTL: holdTTL})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// record charges units against the agent's oldest reservation.
func (e *env) record(cid, agent, units string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := e.agents.Record(ctx, cid, ledger.RecordRequest{AgentID: agent, Units: testenv.Ptr(e.t, units)}); err != nil {
		e.t.Fatal(err)
	}
}

// scriptStep is how far the clock moves between the script's steps, so
// the usage chart spreads over the period (all within March).
const scriptStep = 7 * time.Hour

// script sets up three customers:
//
//	acme:    limit 100, used 55, reserved 30, remaining 15 (warn)
//	globex:  limit 200, used 10,              remaining 190 (ok)
//	initech: limit 50,  used 46,              remaining 4 (critical)
//
// acme's threshold is 80%; initech's is 91.25%, finer than a tenth of a
// percent, so the page must show it exactly.
func (e *env) script() {
	e.t.Helper()
	for _, step := range []func(){
		func() { e.budget("acme", "100") },
		func() { e.budget("globex", "200") },
		func() { e.budgetWithThreshold("initech", "50", "0.9125") },
		func() { e.preflight("acme", "research", "60") },
		func() { e.record("acme", "research", "55") },
		func() { e.preflight("globex", "coder", "10") },
		func() { e.record("globex", "coder", "10") },
		func() { e.preflight("initech", "writer", "46") },
		func() { e.record("initech", "writer", "46") },
		func() { e.preflight("acme", "research", "30") },
	} {
		e.clock.Advance(scriptStep)
		step()
	}
}

// newScriptedEnv is an env with the script's customers, read by the
// follower.
func newScriptedEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.script()
	e.waitFollower()
	return e
}

// waitFollower waits until the follower has applied the whole log.
func (e *env) waitFollower() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	last, err := projections.LastSequence(ctx, e.js)
	if err != nil {
		e.t.Fatal(err)
	}
	for !e.follower.Ready() || e.follower.Seq() < last {
		select {
		case <-ctx.Done():
			e.t.Fatalf("follower at %d (ready %v), want %d", e.follower.Seq(), e.follower.Ready(), last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
