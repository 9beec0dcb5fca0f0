package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
)

// The flood scenario: ordinary customers at a modest load, measured alone
// and then while one customer sends as fast as it can from many clients.
// It shows what the writer's fair admission (projections.
// QueuedPerCustomerMax) is for: the flood waits, the others are served.
// It runs only when named (--only flood).
const (
	// ScenarioFlood names it.
	ScenarioFlood = "flood"
	// floodOrdinary is how many ordinary customers there are, one client
	// each, each pausing floodThink between its cycles.
	floodOrdinary = 32
	floodThink    = 20 * time.Millisecond
	// floodClients is how many clients the flooding customer sends from,
	// closed loop with no pause; they retry unavailable as the Go client
	// does by default (backoff with jitter), so a throttled request waits.
	floodClients = 256
)

// flood runs the ordinary load for Duration alone, then for Duration with
// the flood, and reports the ordinary customers' figures during the flood
// (their figures alone and the flooder's in the note).
func (e *env) flood(ctx context.Context) (Result, error) {
	ordinary, err := e.openClients(floodOrdinary, "agentbill-bench-ordinary", client.WithAttempts(1))
	if err != nil {
		return Result{Scenario: ScenarioFlood}, err
	}
	flooders, err := e.openClients(floodClients, "agentbill-bench-flooder")
	if err != nil {
		return Result{Scenario: ScenarioFlood}, err
	}
	run := func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		err := e.cycleWith(ctx, ordinary[i], st, due, "ordinary-"+strconv.Itoa(i), nil)
		if unavailable(err) {
			st.unavailable++
		}
		select {
		case <-ctx.Done():
		case <-time.After(floodThink):
		}
		return err
	}
	alone, secs := e.driveN(ctx, floodOrdinary, e.cfg.Duration, 0, run)
	before := result(ScenarioFlood, floodOrdinary, alone, secs)

	var throttled0 uint64
	if e.writer != nil {
		throttled0 = e.writer.Stats().Throttled.Load()
	}
	fctx, stopFlood := context.WithCancel(ctx)
	var fst loopStats
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The flood starts before the ordinary warm-up and outlasts it.
		fst, _ = e.driveN(fctx, floodClients, e.cfg.Duration+min(e.cfg.Duration/10, WarmupMax), 0,
			func(ctx context.Context, i int, st *loopStats, due time.Time) error {
				err := e.cycleWith(ctx, flooders[i], st, due, "flooder", nil)
				if ctx.Err() != nil {
					return nil // the flood was stopped mid-call
				}
				if unavailable(err) {
					st.unavailable++
				}
				return err
			})
	}()
	during, secs := e.driveN(ctx, floodOrdinary, e.cfg.Duration, 0, run)
	stopFlood()
	<-done
	throttled := "not known (external server)"
	if e.writer != nil {
		throttled = strconv.FormatUint(e.writer.Stats().Throttled.Load()-throttled0, 10)
	}
	r := result(ScenarioFlood, floodOrdinary, during, secs)
	r.CPUusPerOp = 0 // the flooder's CPU is in the process's too: per ordinary op it would mislead
	ratio := 0.0
	if before.P99us > 0 {
		ratio = r.P99us / before.P99us
	}
	r.Note = fmt.Sprintf("%d ordinary customers (one client each, no retry, %s between cycles): alone p50 %.0fus p99 %.0fus, %d unavailable, %d other errors; "+
		"during the flood p50 %.0fus p99 %.0fus (%.2fx alone), %d unavailable, %d other errors. "+
		"The flooder (%d clients, no pause, retrying with backoff): %d cycles, %s requests answered unavailable by the writer (its excess over the per-customer queue), %d calls failed after their retries",
		floodOrdinary, floodThink, before.P50us, before.P99us, alone.unavailable, alone.errors-alone.unavailable,
		r.P50us, r.P99us, ratio, during.unavailable, during.errors-during.unavailable,
		floodClients, fst.cycles, throttled, fst.errors)
	return r, nil
}

// openClients opens n clients with opts, each on its own connection,
// closed with the environment.
func (e *env) openClients(n int, name string, opts ...client.Option) ([]*client.Client, error) {
	out := make([]*client.Client, 0, n)
	for range n {
		nc, err := nats.Connect(e.url, nats.Name(name))
		if err != nil {
			return nil, err
		}
		e.conns = append(e.conns, nc)
		out = append(out, client.New(nc, opts...))
	}
	return out, nil
}

func unavailable(err error) bool {
	return err != nil && ledger.ErrorCode(err) == ledger.CodeUnavailable
}
