package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/retry"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
)

// The flood scenario: ordinary customers at a modest load, measured alone
// and then while one customer sends as fast as it can from many clients.
// It shows what the writer's rate limits (projections/ratelimit.go: the
// flooder has serve's default) and fair admission (projections.
// QueuedPerCustomerMax) are for: the flood waits, the others are served.
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
	// does by default (backoff with jitter), so a throttled request waits,
	// and a preflight refused rate_limited waits its retry_after_ms, or
	// the client's backoff for as many refusals in a row if that is
	// longer, as a well-behaved client does.
	floodClients = 256
	// FloodRateDefault is the flooder's own rate limit (Config.FloodRate):
	// a customer on a plan of 100 preflights a second, a tenth of serve's
	// default (projections.RatePerSecondDefault).
	FloodRateDefault = 100
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
	limit, err := e.limitFlooder(ctx)
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

	var throttled0, limited0 uint64
	if e.writer != nil {
		throttled0, limited0 = e.writer.Stats().Throttled.Load(), e.writer.Stats().RateLimited.Load()
	}
	streak := make([]int, floodClients) // each flooder's rate_limited refusals in a row
	fctx, stopFlood := context.WithCancel(ctx)
	var fst loopStats
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The flood starts before the ordinary warm-up and outlasts it.
		fst, _ = e.driveN(fctx, floodClients, e.cfg.Duration+min(e.cfg.Duration/10, WarmupMax), 0,
			func(ctx context.Context, i int, st *loopStats, due time.Time) error {
				pf, err := e.cycleReply(ctx, flooders[i], st, due, "flooder", nil)
				if ctx.Err() != nil {
					return nil // the flood was stopped mid-call
				}
				if unavailable(err) {
					st.unavailable++
				}
				if pf == nil || pf.Reason != ledger.ReasonRateLimited {
					streak[i] = 0
					return err
				}
				st.rateLimited++
				streak[i]++
				wait := max(time.Duration(pf.RetryAfterMs)*time.Millisecond,
					retry.Delay(client.BackoffMin, client.BackoffMax, streak[i], rand.Float64()))
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
				return nil
			})
	}()
	during, secs := e.driveN(ctx, floodOrdinary, e.cfg.Duration, 0, run)
	stopFlood()
	<-done
	throttled := "not known (external server)"
	if e.writer != nil {
		throttled = strconv.FormatUint(e.writer.Stats().Throttled.Load()-throttled0, 10)
		limit += fmt.Sprintf("; the writer refused %d preflights rate_limited", e.writer.Stats().RateLimited.Load()-limited0)
	}
	r := result(ScenarioFlood, floodOrdinary, during, secs)
	r.CPUusPerOp = 0 // the flooder's CPU is in the process's too: per ordinary op it would mislead
	ratio := 0.0
	if before.P99us > 0 {
		ratio = r.P99us / before.P99us
	}
	r.Note = fmt.Sprintf("%d ordinary customers (one client each, no retry, %s between cycles): alone p50 %.0fus p99 %.0fus, %d unavailable, %d other errors; "+
		"during the flood p50 %.0fus p99 %.0fus (%.2fx alone), %d unavailable, %d other errors. "+
		"The flooder (%d clients, no pause, retrying with backoff; rate limit %s): %d cycles, %d preflights refused rate_limited, %s requests answered unavailable by the writer (its excess over the per-customer queue), %d calls failed after their retries",
		floodOrdinary, floodThink, before.P50us, before.P99us, alone.unavailable, alone.errors-alone.unavailable,
		r.P50us, r.P99us, ratio, during.unavailable, during.errors-during.unavailable,
		floodClients, limit, fst.cycles, fst.rateLimited, throttled, fst.errors)
	return r, nil
}

// limitFlooder gives the flooder its own rate limit (Config.FloodRate),
// or leaves it the server's default, and says which.
func (e *env) limitFlooder(ctx context.Context) (string, error) {
	if e.cfg.FloodRate == 0 {
		if e.writer == nil {
			return "the external server's default", nil
		}
		return fmt.Sprintf("%s a second, burst %d (serve's default)", projections.RateLimitDefault().PerSecond, projections.RateBurstDefault), nil
	}
	rl := events.NewRateLimit(int64(e.cfg.FloodRate), 2*e.cfg.FloodRate)
	if _, err := e.clients[0].SetBudget(ctx, "flooder", ledger.BudgetRequest{Limit: units("1e15"), Period: "month", RateLimit: &rl}); err != nil {
		return "", fmt.Errorf("set the flooder's budget: %w", err)
	}
	return fmt.Sprintf("its budget's, %s a second, burst %d", rl.PerSecond, rl.Burst), nil
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
