package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/agentbill/agentbill/webhooks"
	"github.com/nats-io/nats.go"
)

// fastSchedule keeps the tests short: retries within 50..400 ms.
var fastSchedule = webhooks.Schedule{Min: 50 * time.Millisecond, Max: 400 * time.Millisecond, MaxAge: time.Minute}

// waitFor bounds every wait of these tests.
const waitFor = 10 * time.Second

// env is a server, a writer publishing alerts, a client and a registry.
type env struct {
	srv *testenv.Server
	nc  *nats.Conn
	c   *client.Client
	reg *webhooks.Registry
	cid string
	n   int // denied events produced
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil, func(c *projections.Config) { c.Alerts = &projections.AlertConfig{} })
	nc := testenv.Connect(t, s)
	reg, err := webhooks.OpenRegistry(context.Background(), nc, webhooks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: s, nc: nc, c: testenv.Client(t, s), reg: reg, cid: "cust_1"}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := e.c.SetBudget(ctx, e.cid, ledger.BudgetRequest{Limit: testenv.Ptr(t, "10"), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// deny makes n refused preflights: n denied alerts, in order.
func (e *env) deny(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for range n {
		pf, err := e.c.Preflight(ctx, e.cid, ledger.PreflightRequest{AgentID: "a1", EstimatedUnits: testenv.Ptr(t, "100")})
		if err != nil || pf.Approved {
			t.Fatalf("preflight: %+v, %v; want refused", pf, err)
		}
	}
	e.n += n
}

// deliver runs a delivery service until the test ends.
func (e *env) deliver(t *testing.T, sched webhooks.Schedule, lead func() bool) *webhooks.Service {
	t.Helper()
	svc, err := webhooks.New(webhooks.Config{Conn: testenv.Connect(t, e.srv), Schedule: sched,
		RequestTimeout: 500 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if lead == nil {
			svc.Deliver(ctx)
		} else {
			svc.Run(ctx, lead)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return svc
}

// add registers an endpoint for url that allows private addresses.
func (e *env) add(t *testing.T, url string) *webhooks.Endpoint {
	t.Helper()
	ep, err := e.reg.Add(context.Background(), webhooks.AddRequest{URL: url, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// receiver is an HTTP receiver on 127.0.0.1 that answers with plan (by
// request number; 200 past its end), verifies every request it accepts,
// and records the accepted events' IDs in order.
type receiver struct {
	t      *testing.T
	secret string
	plan   []int
	mu     sync.Mutex
	reqs   int
	ids    []string // accepted, in order
	bad    []string // failed verification
	ln     net.Listener
	hs     *http.Server
	addr   string
}

func newReceiver(t *testing.T, plan ...int) *receiver {
	t.Helper()
	r := &receiver{t: t, plan: plan}
	r.listen(t, "127.0.0.1:0")
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

func (r *receiver) listen(t *testing.T, addr string) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(waitFor); ; time.Sleep(20 * time.Millisecond) {
		if r.ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	r.addr = r.ln.Addr().String()
	r.hs = &http.Server{Handler: r, ReadHeaderTimeout: time.Second}
	go func() { _ = r.hs.Serve(r.ln) }()
}

// stop closes the listener and every connection: the receiver is down.
func (r *receiver) stop() { _ = r.hs.Close() }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.reqs
	r.reqs++
	if n < len(r.plan) && r.plan[n] != 200 {
		w.WriteHeader(r.plan[n])
		return
	}
	if r.secret != "" {
		if err := webhooks.Verify(body, req.Header, r.secret, time.Now()); err != nil {
			r.bad = append(r.bad, err.Error())
			w.WriteHeader(400)
			return
		}
	}
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get(webhooks.HeaderID) {
		r.bad = append(r.bad, "body "+string(body)+" does not match webhook-id "+req.Header.Get(webhooks.HeaderID))
	}
	r.ids = append(r.ids, req.Header.Get(webhooks.HeaderID))
}

// accepted returns the accepted IDs and the request count.
func (r *receiver) accepted() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...), r.reqs
}

// waitAccepted waits until n events were accepted.
func (r *receiver) waitAccepted(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ids, reqs := r.accepted()
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events accepted after %s (%d requests)", len(ids), n, waitFor, reqs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alertIDs returns the IDs of the customer's alerts (the first refusal
// also exhausts the budget), in log order.
func (e *env) alertIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, ev := range testenv.StreamEvents(t, e.nc) {
		if slices.Contains(webhooks.AlertTypes, ev.Type) && ev.CustomerID == e.cid {
			ids = append(ids, ev.ID)
		}
	}
	return ids
}

// checkExactlyOnce: got is want, in order, each once, and nothing failed
// verification.
func (r *receiver) checkExactlyOnce(t *testing.T, got, want []string) {
	t.Helper()
	time.Sleep(3 * fastSchedule.Max) // a duplicate would come within this
	got, _ = r.accepted()
	if len(got) != len(want) {
		t.Fatalf("accepted %d events, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: got %s, want %s (order or duplicate)", i, got[i], want[i])
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Fatalf("requests failed verification: %v", r.bad)
	}
}
