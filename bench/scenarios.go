package bench

import (
	"context"
	"fmt"
	"github.com/agentbill/agentbill/client"
	"math/rand/v2"
	"runtime"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	noopSubject     = "agentbill_bench.noop"
	benchStream     = "AGENTBILL_BENCH"
	benchSubjects   = "agentbill_bench.js.>"
	benchPayloadLen = 256 // about the size of one ledger event
	requestTimeout  = 10 * time.Second
)

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }

// requestReply: every client sends requests to a responder that answers at
// once. This is the ceiling for any request/reply service on this machine.
func (e *env) requestReply(ctx context.Context) (Result, error) {
	responder, err := nats.Connect(e.url)
	if err != nil {
		return Result{Scenario: ScenarioRequestReply}, err
	}
	defer responder.Close()
	reply := []byte(`{"approved":true}`)
	sub, err := responder.Subscribe(noopSubject, func(m *nats.Msg) { _ = m.Respond(reply) })
	if err != nil {
		return Result{Scenario: ScenarioRequestReply}, err
	}
	defer sub.Unsubscribe()
	_ = responder.Flush()
	body := []byte(`{"agent_id":"research_agent","estimated_units":1,"idempotency_key":"0192b1f4-0000-7000-8000-000000000000"}`)
	st, secs := e.drive(ctx, 0, func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		_, err := e.conns[i].Request(noopSubject, body, requestTimeout)
		st.hist.Record(time.Since(due))
		st.ops++
		return err
	})
	return result(ScenarioRequestReply, len(e.clients), st, secs), nil
}

// benchStreamFor creates a throwaway stream with the ledger's storage
// settings (file, the server's fsync setting, Config.Replicas) for bare
// appends.
func (e *env) benchStreamFor(ctx context.Context) (func(), error) {
	js, err := jetstream.New(e.conns[0])
	if err != nil {
		return nil, err
	}
	_ = js.DeleteStream(ctx, benchStream)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: benchStream, Subjects: []string{benchSubjects}, Storage: jetstream.FileStorage,
		AllowAtomicPublish: true, Duplicates: projections.StreamDuplicateWindow, Replicas: max(e.cfg.Replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	return func() { _ = js.DeleteStream(context.WithoutCancel(ctx), benchStream) }, nil
}

// jsSingle: every client appends one message at a time and waits for the
// ack: the cost of one fsynced append per decision.
func (e *env) jsSingle(ctx context.Context) (Result, error) {
	cleanup, err := e.benchStreamFor(ctx)
	if err != nil {
		return Result{Scenario: ScenarioJSSingle}, err
	}
	defer cleanup()
	streams := make([]jetstream.JetStream, len(e.conns))
	for i, nc := range e.conns {
		if streams[i], err = jetstream.New(nc); err != nil {
			return Result{Scenario: ScenarioJSSingle}, err
		}
	}
	payload := make([]byte, benchPayloadLen)
	st, secs := e.drive(ctx, 0, func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		_, err := streams[i].Publish(ctx, "agentbill_bench.js.single", payload)
		st.hist.Record(time.Since(due))
		st.ops++
		return err
	})
	return result(ScenarioJSSingle, len(e.clients), st, secs), nil
}

// jsBatch: one publisher appends atomic batches of n messages back to
// back, fenced like the writer: the storage ceiling of group commit.
func (e *env) jsBatch(n int) func(context.Context) (Result, error) {
	name := ScenarioJSBatch100
	if n == 1000 {
		name = ScenarioJSBatch1000
	}
	return func(ctx context.Context) (Result, error) {
		cleanup, err := e.benchStreamFor(ctx)
		if err != nil {
			return Result{Scenario: name}, err
		}
		defer cleanup()
		nc := e.conns[0]
		payload := make([]byte, benchPayloadLen)
		var st loopStats
		var seq uint64
		warmEnd := time.Now().Add(min(e.cfg.Duration/10, WarmupMax))
		var start time.Time
		var end time.Time
		var cpu0 time.Duration
		for {
			now := time.Now()
			if start.IsZero() && now.After(warmEnd) {
				start, end = now, now.Add(e.cfg.Duration)
				st = loopStats{}
				cpu0 = processCPU()
			}
			if !end.IsZero() && now.After(end) || ctx.Err() != nil {
				break
			}
			msgs := make([]*nats.Msg, n)
			for i := range msgs {
				msgs[i] = nats.NewMsg("agentbill_bench.js.batch")
				msgs[i].Data = payload
			}
			t0 := time.Now()
			last, err := appendAtomicBatch(nc, msgs, seq)
			if err != nil {
				return Result{Scenario: name}, err
			}
			st.hist.Record(time.Since(t0))
			seq = last
			st.ops += uint64(n)
		}
		st.cpu = processCPU() - cpu0
		r := result(name, 1, st, time.Since(start).Seconds())
		r.Note = fmt.Sprintf("latency is per batch of %d", n)
		return r, nil
	}
}

func units(s string) *events.Units {
	u := events.MustParseUnits(s)
	return &u
}

// cycle is one agent run: preflight, then record what was used.
func (e *env) cycle(ctx context.Context, i int, st *loopStats, due time.Time, customer string) error {
	return e.scopedCycle(ctx, i, st, due, customer, nil)
}

// scopedCycle is cycle in a scope (nil: none); the record settles the hold
// within it (its reservation's).
func (e *env) scopedCycle(ctx context.Context, i int, st *loopStats, due time.Time, customer string, scope map[string]string) error {
	return e.cycleWith(ctx, e.clients[i], st, due, customer, scope)
}

// cycleWith is scopedCycle on a client of the caller's.
func (e *env) cycleWith(ctx context.Context, c *client.Client, st *loopStats, due time.Time, customer string, scope map[string]string) error {
	_, err := e.cycleReply(ctx, c, st, due, customer, scope)
	return err
}

// cycleReply is cycleWith, returning the preflight's reply too.
func (e *env) cycleReply(ctx context.Context, c *client.Client, st *loopStats, due time.Time, customer string, scope map[string]string) (*ledger.PreflightReply, error) {
	pf, err := preflight(ctx, c, st, due, customer, ledger.PreflightRequest{AgentID: "research_agent", EstimatedUnits: units("10"), Scope: scope})
	if err != nil || !pf.Approved {
		return pf, err
	}
	t1 := time.Now()
	_, err = c.Record(ctx, customer, ledger.RecordRequest{AgentID: "research_agent", Units: units("7"), ReservationID: pf.ReservationID})
	st.second.Record(time.Since(t1))
	st.ops++
	if err == nil {
		st.cycles++
	}
	return pf, err
}

// preflight sends req and counts it in st: its latency from due, an op,
// and whether it was approved or refused.
func preflight(ctx context.Context, c *client.Client, st *loopStats, due time.Time, customer string, req ledger.PreflightRequest) (*ledger.PreflightReply, error) {
	sent := time.Now()
	pf, err := c.Preflight(ctx, customer, req)
	st.hist.Record(time.Since(due))
	st.sent.Record(time.Since(sent))
	st.ops++
	switch {
	case err != nil:
	case pf.Approved:
		st.approved++
	default:
		st.refused++
	}
	return pf, err
}

func cycleResult(name string, clients int, st loopStats, secs float64) Result {
	r := result(name, clients, st, secs)
	r.Note = fmt.Sprintf("latency is the preflight's (from its send: p50 %.0fus p99 %.0fus); record p50 %.0fus p99 %.0fus",
		float64(st.sent.Quantile(0.5))/1e3, float64(st.sent.Quantile(0.99))/1e3,
		float64(st.second.Quantile(0.5))/1e3, float64(st.second.Quantile(0.99))/1e3)
	return r
}

// spread: preflight+record cycles over many customers.
// With Config.Webhooks, AlertShare of them go to customers that raise
// alerts (webhook.go).
func (e *env) spread(ctx context.Context) (Result, error) {
	if err := e.setupAlerting(ctx); err != nil {
		return Result{Scenario: ScenarioSpread}, err
	}
	st, secs := e.drive(ctx, e.cfg.Rate, func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		return e.cycle(ctx, i, st, due, e.spreadCustomer())
	})
	r := cycleResult(ScenarioSpread, len(e.clients), st, secs)
	if e.cfg.Webhooks {
		r.Note += fmt.Sprintf("; alerts on, %.0f%% of cycles to %d customers that raise them", 100*AlertShare, alertCustomers)
	}
	return r, nil
}

// hot: every client on one customer, the row-lock killer.
func (e *env) hot(ctx context.Context) (Result, error) {
	// Its own rate_limit of 0 lifts serve's default: this scenario
	// measures one customer at the writer's whole capacity.
	if _, err := e.clients[0].SetBudget(ctx, "hot-customer", ledger.BudgetRequest{Limit: units("1e15"), Period: "month",
		RateLimit: &events.RateLimit{}}); err != nil {
		return Result{Scenario: ScenarioHot}, err
	}
	st, secs := e.drive(ctx, e.cfg.Rate, func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		return e.cycle(ctx, i, st, due, "hot-customer")
	})
	return cycleResult(ScenarioHot, len(e.clients), st, secs), nil
}

// refused: 90% of preflights go to customers with nothing left; each
// refusal is still a durable denied event.
func (e *env) refused(ctx context.Context) (Result, error) {
	for k := range refusedCustomers {
		if _, err := e.clients[0].SetBudget(ctx, "empty-"+strconv.Itoa(k), ledger.BudgetRequest{Limit: units("0"), Period: "month"}); err != nil {
			return Result{Scenario: ScenarioRefused}, err
		}
	}
	n := e.cfg.Customers
	st, secs := e.drive(ctx, e.cfg.Rate, func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		if rand.Float64() < RefusedShare {
			return e.cycle(ctx, i, st, due, "empty-"+strconv.Itoa(rand.IntN(refusedCustomers)))
		}
		return e.cycle(ctx, i, st, due, "cust-"+strconv.Itoa(rand.IntN(n)))
	})
	return cycleResult(ScenarioRefused, len(e.clients), st, secs), nil
}

// halfLoadLoopsPerClient is how many independent open-loop schedules
// share each client's connection in the half-load scenario. At half the
// closed-loop peak, one schedule per client keeps each client busy half
// the time (the peak keeps every client busy all the time), so a call
// due while its client is still in an earlier, slow cycle waits for it,
// and that wait, counted from the due time, was most of the p99: on
// 2026-12-03, p99 from the due time 142 ms against 51 ms from the send
// (BENCHMARKS.md, "CPU per request and the half-load tail"). Four
// schedules per client make that wait rare (each is busy about 1/8 of the
// time) without changing the rate, the connections or the measurement
// from the due time.
const halfLoadLoopsPerClient = 4

// halfLoad: the spread scenario open-loop at half its measured peak: the
// latency an agent sees on a busy but not saturated ledger. Its cycles
// come due on halfLoadLoopsPerClient independent schedules per client.
func (e *env) halfLoad(ctx context.Context, rate float64) (Result, error) {
	n := e.cfg.Customers
	loops := len(e.clients) * halfLoadLoopsPerClient
	st, secs := e.driveN(ctx, loops, e.cfg.Duration, rate, func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		return e.cycleWith(ctx, e.clients[i%len(e.clients)], st, due, "cust-"+strconv.Itoa(rand.IntN(n)), nil)
	})
	r := cycleResult(ScenarioHalfLoad, len(e.clients), st, secs)
	r.Note = fmt.Sprintf("open loop at %.0f cycles/s on %d schedules (%d per connection); ", rate, loops, halfLoadLoopsPerClient) + r.Note
	return r, nil
}

// replay: rebuild the state from everything this run appended.
func (e *env) replay(ctx context.Context) (Result, error) {
	js, err := jetstream.New(e.conns[0])
	if err != nil {
		return Result{Scenario: ScenarioReplay}, err
	}
	stop := projections.ReplayStop{}
	verified := "not verified (no signing key: an external service)"
	if e.signer != nil {
		// As the writer replays: every commit's chain link and signature.
		stop.Verify = projections.NewLogVerifier(events.NewKeyring(e.signer.Public()), events.LogSubject(events.WriterDefault), true, 1, "")
		stop.Verify.Lazy = true
		verified = "verified as the writer does (every chain link, the last signature)"
	}
	t0 := time.Now()
	s, seq, err := projections.Rebuild(ctx, js, stop, nil)
	if err != nil {
		return Result{Scenario: ScenarioReplay}, err
	}
	secs := time.Since(t0).Seconds()
	n := s.EventsApplied()
	if stop.Verify != nil {
		t1 := time.Now()
		if _, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{UntilSeq: seq}, nil); err != nil {
			return Result{Scenario: ScenarioReplay}, err
		}
		verified += fmt.Sprintf(" (the same replay unverified: %.0f events/s)", float64(n)/time.Since(t1).Seconds())
	}
	return Result{
		Scenario: ScenarioReplay, Clients: 1, Seconds: secs, Ops: n, OpsPerSec: float64(n) / secs,
		Note: fmt.Sprintf("ops are events: %d events in %d commits, %d customers rebuilt; %s", n, seq, s.Customers(), verified),
	}, nil
}

// signature measures what authenticating commits costs: signing one
// commit's chain hash (the writer, once per commit) and verifying it (a
// replay or standby, once per commit), on one core, and puts the signing
// cost beside the commit rate the spread run reached.
func (e *env) signature(rep *Report) func(context.Context) (Result, error) {
	return func(ctx context.Context) (Result, error) {
		sg := e.signer
		if sg == nil {
			return Result{Scenario: ScenarioSignature, Note: "skipped: measured only with the embedded writer"}, nil
		}
		keys := events.NewKeyring(sg.Public())
		subject := events.LogSubject(events.WriterDefault)
		hash := events.ChainHash("", make([]byte, benchPayloadLen))
		var h Histogram
		var n uint64
		t0 := time.Now()
		for time.Since(t0) < e.cfg.Duration && ctx.Err() == nil {
			s := time.Now()
			sig := sg.SignCommit(subject, hash)
			h.Record(time.Since(s))
			if err := keys.VerifyCommit(subject, hash, sig); err != nil {
				return Result{Scenario: ScenarioSignature}, err
			}
			n++
		}
		secs := time.Since(t0).Seconds()
		signUs := float64(h.Quantile(0.5)) / 1e3
		note := fmt.Sprintf("ops are commits signed and verified on one core: sign p50 %.1f us, sign+verify %.1f us per commit",
			signUs, secs/float64(n)*1e6)
		if rate := e.commitRate[ScenarioSpread]; rate > 0 {
			note += fmt.Sprintf("; the spread run appended about %.0f commits/s, so signing took about %.1f%% of one core there",
				rate, rate*signUs/1e4)
		}
		return Result{Scenario: ScenarioSignature, Clients: 1, Seconds: secs, Ops: n, OpsPerSec: float64(n) / secs,
			P50us: signUs, P99us: float64(h.Quantile(0.99)) / 1e3, P999us: float64(h.Quantile(0.999)) / 1e3, Note: note}, nil
	}
}
