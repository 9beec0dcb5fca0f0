package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/webhooks"
)

// With Config.Webhooks, a share of the spread scenario's cycles go to a
// few customers with small budgets, so both spread runs (without and with
// a webhook endpoint) announce a steady stream of alerts: thresholds
// crossed, budgets exhausted, then a denied event per refused preflight.
const (
	// AlertShare is the share of spread cycles sent to alerting customers.
	AlertShare = 0.01
	// alertCustomers is how many there are; with a budget of
	// alertBudget units and 10 reserved per preflight, each is exhausted
	// within its first dozen cycles.
	alertCustomers = 10
	alertBudget    = "100"
)

// spreadCustomer picks the customer of one spread cycle.
func (e *env) spreadCustomer() string {
	if e.cfg.Webhooks && rand.Float64() < AlertShare {
		return "alert-" + strconv.Itoa(rand.IntN(alertCustomers))
	}
	return "cust-" + strconv.Itoa(rand.IntN(e.cfg.Customers))
}

// setupAlerting gives the alerting customers their budgets, once.
func (e *env) setupAlerting(ctx context.Context) error {
	if !e.cfg.Webhooks || e.alerting {
		return nil
	}
	for k := range alertCustomers {
		_, err := e.clients[0].SetBudget(ctx, "alert-"+strconv.Itoa(k), ledger.BudgetRequest{
			Limit: units(alertBudget), Period: "month", Thresholds: []events.Units{*units("0.5"), *units("0.8")}})
		if err != nil {
			return err
		}
	}
	e.alerting = true
	return nil
}

// spreadWebhook is the spread scenario again with one webhook endpoint
// registered and delivered to (a receiver on 127.0.0.1 in this process,
// answering 204), to compare with the spread run just before it.
func (e *env) spreadWebhook(rep *Report) func(context.Context) (Result, error) {
	return func(ctx context.Context) (Result, error) {
		r := Result{Scenario: ScenarioSpreadWebhook}
		if e.srv == nil {
			r.Note = "skipped: needs the embedded server (not --nats-url)"
			return r, nil
		}
		var accepted atomic.Uint64
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return r, err
		}
		hs := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.Copy(io.Discard, req.Body)
			accepted.Add(1)
			w.WriteHeader(http.StatusNoContent)
		})}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
		stop, ep, reg, err := e.startWebhook(ctx, "http://"+ln.Addr().String()+"/hook")
		if err != nil {
			return r, err
		}
		r, err = e.spread(ctx)
		r.Scenario = ScenarioSpreadWebhook
		pending, _ := reg.Pending(ctx, ep.ID)
		stop()
		_ = reg.Remove(context.WithoutCancel(ctx), ep.ID)
		r.Note = fmt.Sprintf("one webhook endpoint (every alert type, a receiver on 127.0.0.1 in this process): %d deliveries accepted, %d pending at the end", accepted.Load(), pending)
		return r, err
	}
}

// spreadAfter runs the spread scenario again, without the webhook, and
// puts the webhook run beside the mean of the spread runs before and
// after it (ScenarioSpreadAfter says why).
func (e *env) spreadAfter(rep *Report) func(context.Context) (Result, error) {
	return func(ctx context.Context) (Result, error) {
		r, err := e.spread(ctx)
		r.Scenario = ScenarioSpreadAfter
		before, hook := find(rep, ScenarioSpread), find(rep, ScenarioSpreadWebhook)
		if err == nil && before != nil && hook != nil && before.CyclesPerSec > 0 && r.CyclesPerSec > 0 {
			mean := (before.CyclesPerSec + r.CyclesPerSec) / 2
			r.Note = fmt.Sprintf("the spread run again, without the webhook: %s made %.1f%% of the mean cycles/s of the runs before and after it (%.0f; %.1f%% of the one before alone)",
				ScenarioSpreadWebhook, 100*hook.CyclesPerSec/mean, mean, 100*hook.CyclesPerSec/before.CyclesPerSec)
		}
		return r, err
	}
}

// startWebhook registers an endpoint for url and runs the deliveries on
// their own connection until stop.
func (e *env) startWebhook(ctx context.Context, url string) (func(), *webhooks.Endpoint, *webhooks.Registry, error) {
	nc, err := e.srv.Connect("agentbill-webhooks") // as serve connects
	if err != nil {
		return nil, nil, nil, err
	}
	reg, err := webhooks.OpenRegistry(ctx, nc, webhooks.Options{})
	if err == nil {
		var ep *webhooks.Endpoint
		ep, err = reg.Add(ctx, webhooks.AddRequest{URL: url, AllowPrivate: true})
		if err == nil {
			var svc *webhooks.Service
			svc, err = webhooks.New(webhooks.Config{Conn: nc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err == nil {
				dctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); svc.Deliver(dctx) }()
				return func() { cancel(); <-done; nc.Close() }, ep, reg, nil
			}
		}
	}
	nc.Close()
	return nil, nil, nil, err
}
