// Package bench measures AgentBill side by side with what NATS itself can
// do on the same machine, in the same run: bare request/reply and bare
// JetStream appends are the baselines every ledger figure is divided by.
package bench

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/embedded"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
)

// Bounds and defaults.
const (
	ClientsDefault   = 64
	CustomersDefault = 10_000
	DurationDefault  = 5 * time.Second
	// WarmupMax bounds the unmeasured warm-up before each scenario.
	WarmupMax = time.Second
	// ClientsMax bounds concurrent clients (each has its own connection).
	ClientsMax = 1024
	// CustomersMax bounds the spread scenario's customers.
	CustomersMax = 10_000_000
	// DurationMax bounds one scenario.
	DurationMax = 10 * time.Minute
	// RefusedShare is the share of preflights in the refused scenario that
	// go to customers with nothing left.
	RefusedShare = 0.9
	// refusedCustomers is how many empty customers the refused scenario uses.
	refusedCustomers = 1000
)

// Scenario names.
const (
	ScenarioRequestReply = "nats_request_reply"
	ScenarioJSSingle     = "js_append_single"
	ScenarioJSBatch100   = "js_append_batch_100"
	ScenarioJSBatch1000  = "js_append_batch_1000"
	ScenarioSpread       = "preflight_record_spread"
	ScenarioHot          = "preflight_record_hot"
	ScenarioRefused      = "preflight_mostly_refused"
	ScenarioHalfLoad     = "preflight_at_half_load"
	ScenarioReplay       = "replay"
	ScenarioSignature    = "commit_signature"
	// ScenarioSpreadWebhook is the spread scenario with one webhook
	// endpoint delivering (Config.Webhooks).
	ScenarioSpreadWebhook = "preflight_record_spread_webhook"
	// ScenarioSpreadAfter is the spread scenario once more, right after
	// the webhook run (Config.Webhooks): the same run slows as its log
	// grows (measured: the run two after 10 to 15% below the first), so
	// the webhook run is compared with the mean of the runs before and
	// after it.
	ScenarioSpreadAfter = "preflight_record_spread_after"
	// ScenarioSpreadScoped is the spread scenario over customers with
	// scope limits, credit grants, an overdraft and a run cap, in slices
	// alternating with the plain spread load (scoped.go).
	ScenarioSpreadScoped = "preflight_record_spread_scoped"
)

// Config is what one bench run measures.
type Config struct {
	NATSURL   string        // external NATS with a running `agentbill serve`; "" embeds both
	Replicas  int           // replicas of the bare-append stream: the ledger's (3 on an R3 cluster); 1 if 0
	Clients   int           // concurrent clients
	Customers int           // customers in the spread scenario
	Duration  time.Duration // measured time per scenario
	Rate      float64       // cycles/s over all clients (open loop); 0 = closed loop as fast as possible
	DataDir   string        // embedded store; a temp dir if ""
	Only      []string      // run only these scenarios (the request/reply baseline always runs)
	Progress  io.Writer     // one line per scenario; nil for none
	// Webhooks makes the embedded writer publish alerts, sends AlertShare
	// of the spread cycles to customers that raise them, and adds
	// ScenarioSpreadWebhook right after the spread run: the same load with
	// one webhook endpoint delivering.
	Webhooks bool
	// FloodRate is the flood scenario's flooder's own rate limit in
	// preflights a second (its burst twice that); 0 leaves it serve's
	// default.
	FloodRate int
	// Now is the embedded writer's clock (time.Now if nil), and
	// SnapshotEventsEvery its events between snapshots
	// (projections.SnapshotEventsEvery if 0): the soak runs the clock fast
	// and snapshots often (soak.go). NATSSyncInterval is the embedded
	// server's (embedded.Options.SyncInterval).
	Now                 func() time.Time
	SnapshotEventsEvery uint64
	NATSSyncInterval    time.Duration
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Clients < 1 || c.Clients > ClientsMax {
		errs = append(errs, fmt.Errorf("clients %d: want 1..%d", c.Clients, ClientsMax))
	}
	if c.Customers < 1 || c.Customers > CustomersMax {
		errs = append(errs, fmt.Errorf("customers %d: want 1..%d", c.Customers, CustomersMax))
	}
	if c.Duration <= 0 || c.Duration > DurationMax {
		errs = append(errs, fmt.Errorf("duration %s: want (0, %s]", c.Duration, DurationMax))
	}
	if c.Replicas != 0 && c.Replicas != 1 && c.Replicas != 3 {
		errs = append(errs, fmt.Errorf("replicas %d: want 1, or 3 on a cluster", c.Replicas))
	}
	if c.FloodRate < 0 || c.FloodRate > ledger.RatePerSecondMax {
		errs = append(errs, fmt.Errorf("flood rate limit %d: want 0..%d", c.FloodRate, ledger.RatePerSecondMax))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate %g: want >= 0", c.Rate))
	}
	return errors.Join(errs...)
}

// Result is one scenario's figures.
type Result struct {
	Scenario     string  `json:"scenario"`
	Clients      int     `json:"clients"`
	Seconds      float64 `json:"seconds"`
	Ops          uint64  `json:"ops"`    // requests (or appended messages)
	Cycles       uint64  `json:"cycles"` // preflight+record pairs, where that applies
	OpsPerSec    float64 `json:"ops_per_sec"`
	CyclesPerSec float64 `json:"cycles_per_sec,omitempty"`
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	P999us       float64 `json:"p999_us"`
	Ratio        float64 `json:"ratio_to_request_reply"` // OpsPerSec / bare request/reply ops/s
	// CPUusPerOp is the CPU time the whole process (embedded server,
	// writer and clients; not an external server's) used per op while
	// measuring, and CPURatio that over the bare request/reply's. Both are
	// 0 where not measured.
	CPUusPerOp float64 `json:"cpu_us_per_op,omitempty"`
	CPURatio   float64 `json:"cpu_ratio_to_request_reply,omitempty"`
	Approved   uint64  `json:"approved,omitempty"`
	Refused    uint64  `json:"refused,omitempty"`
	Errors     uint64  `json:"errors"`
	Note       string  `json:"note,omitempty"`
}

// Report is a whole run.
type Report struct {
	Started   time.Time `json:"started"`
	GoMaxProc int       `json:"gomaxprocs"`
	Clients   int       `json:"clients"`
	Customers int       `json:"customers"`
	Fsync     string    `json:"fsync"`
	Results   []Result  `json:"results"`
}

// env is what the scenarios run against.
type env struct {
	cfg     Config
	url     string
	srv     *embedded.Server
	stop    func()
	writer  *projections.Writer
	writeNC *nats.Conn
	logNC   *nats.Conn
	conns   []*nats.Conn
	clients []*client.Client
	signer  *events.Signer // the embedded writer's, as serve's: it signs every commit
	// commitRate is the commits/s the writer appended in each ledger
	// scenario (warm-up included).
	commitRate map[string]float64
	alerting   bool // the alerting customers have their budgets (Config.Webhooks)
	// scopedSetup is how long the scoped customers' budgets and grants
	// took to set (scoped.go).
	scopedSetup time.Duration
	// observer splits the ledger scenarios' latency (observe.go); nil
	// against an external server.
	observer *writerObserver
}

// Run measures every scenario and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e, err := start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer e.close()
	rep := &Report{Started: time.Now().UTC(), GoMaxProc: gomaxprocs(), Clients: cfg.Clients, Customers: cfg.Customers, Fsync: "always"}
	if cfg.NATSURL != "" {
		rep.Fsync = "the external server's setting"
	}
	add := func(r Result, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", r.Scenario, err)
		}
		if base := baseline(rep); base > 0 {
			r.Ratio = r.OpsPerSec / base
		}
		if b := find(rep, ScenarioRequestReply); b != nil && b.CPUusPerOp > 0 && r.CPUusPerOp > 0 {
			r.CPURatio = r.CPUusPerOp / b.CPUusPerOp
		}
		rep.Results = append(rep.Results, r)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%-26s %10.0f ops/s  p50 %7.0fus  p99 %7.0fus  p99.9 %7.0fus  cpu %6.1fus/op  errors %d\n",
				r.Scenario, r.OpsPerSec, r.P50us, r.P99us, r.P999us, r.CPUusPerOp, r.Errors)
		}
		return nil
	}
	steps := []struct {
		name string
		run  func(context.Context) (Result, error)
	}{
		{ScenarioRequestReply, e.requestReply},
		{ScenarioJSSingle, e.jsSingle},
		{ScenarioJSBatch100, e.jsBatch(100)},
		{ScenarioJSBatch1000, e.jsBatch(1000)},
		{ScenarioSpread, e.ledgerRun(ScenarioSpread, e.spread)},
		{ScenarioSpreadWebhook, e.ledgerRun(ScenarioSpreadWebhook, e.spreadWebhook(rep))},
		{ScenarioSpreadAfter, e.ledgerRun(ScenarioSpreadAfter, e.spreadAfter(rep))},
		{ScenarioSpreadScoped, e.after(ScenarioSpreadScoped, e.setupScoped, e.ledgerRun(ScenarioSpreadScoped, e.spreadScoped))},
		{ScenarioHot, e.ledgerRun(ScenarioHot, e.hot)},
		{ScenarioRefused, e.ledgerRun(ScenarioRefused, e.refused)},
		{ScenarioHalfLoad, e.ledgerRun(ScenarioHalfLoad, func(ctx context.Context) (Result, error) {
			spread := find(rep, ScenarioSpread)
			if spread == nil || cfg.Rate > 0 {
				return Result{Scenario: ScenarioHalfLoad, Note: "skipped: needs a closed-loop spread run first"}, nil
			}
			r, err := e.halfLoad(ctx, spread.CyclesPerSec/2)
			if single := find(rep, ScenarioJSSingle); err == nil && single != nil && single.P99us > 0 {
				// The disk's own tail is the floor (issue 19: at most 2x).
				r.Note += fmt.Sprintf("; p99 %.2fx the bare single append's (%.0fus) in this run", r.P99us/single.P99us, single.P99us)
			}
			return r, err
		})},
		{ScenarioReplay, e.replay},
		{ScenarioSignature, e.signature(rep)},
		{ScenarioFlood, e.ledgerRun(ScenarioFlood, e.flood)},
		{ScenarioSnapshotStall, e.ledgerRun(ScenarioSnapshotStall, e.snapshotStall)},
	}
	for _, step := range steps {
		if !cfg.selected(step.name) {
			continue
		}
		if err := add(step.run(ctx)); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func (c *Config) selected(name string) bool {
	if name == ScenarioSpreadWebhook || name == ScenarioSpreadAfter {
		return c.Webhooks && c.selected(ScenarioSpread)
	}
	if name == ScenarioFlood || name == ScenarioSnapshotStall {
		// Only when named: the flood opens 288 more connections, the
		// snapshot stall loads every customer first.
		return slices.Contains(c.Only, name)
	}
	if len(c.Only) == 0 || name == ScenarioRequestReply {
		return true
	}
	for _, o := range c.Only {
		if o == name {
			return true
		}
	}
	return false
}

// after runs setup before run; run does not start if setup fails.
func (e *env) after(name string, setup func(context.Context) error, run func(context.Context) (Result, error)) func(context.Context) (Result, error) {
	return func(ctx context.Context) (Result, error) {
		if err := setup(ctx); err != nil {
			return Result{Scenario: name}, fmt.Errorf("set up: %w", err)
		}
		return run(ctx)
	}
}

// ledgerRun wraps a ledger scenario to report how the writer grouped it:
// commits appended and events per commit.
func (e *env) ledgerRun(name string, run func(context.Context) (Result, error)) func(context.Context) (Result, error) {
	return func(ctx context.Context) (Result, error) {
		if e.writer == nil {
			return run(ctx)
		}
		st := e.writer.Stats()
		b0, ev0, rq0, ap0 := st.Batches.Load(), st.Events.Load(), st.Requests.Load(), st.AppendNanos.Load()
		e.observer.start()
		r, err := run(ctx)
		split := e.observer.stop()
		b, ev, rq, ap := st.Batches.Load()-b0, st.Events.Load()-ev0, st.Requests.Load()-rq0, st.AppendNanos.Load()-ap0
		if b > 0 {
			e.commitRate[name] = float64(b) / (r.Seconds + min(e.cfg.Duration/10, WarmupMax).Seconds())
			r.Note += fmt.Sprintf("; writer: %d commits, %.1f events and %.1f requests per commit, %.2f ms per append (warm-up included)",
				b, float64(ev)/float64(b), float64(rq)/float64(b), float64(ap)/float64(b)/1e6)
			r.Note += "; " + split + " (warm-up included)"
		}
		return r, err
	}
}

func baseline(rep *Report) float64 {
	if r := find(rep, ScenarioRequestReply); r != nil {
		return r.OpsPerSec
	}
	return 0
}

func find(rep *Report, name string) *Result {
	for i := range rep.Results {
		if rep.Results[i].Scenario == name {
			return &rep.Results[i]
		}
	}
	return nil
}

// start embeds a server and a writer (unless cfg.NATSURL), and connects
// the clients over TCP, as real agent workers would.
func start(ctx context.Context, cfg Config) (*env, error) {
	e := &env{cfg: cfg, url: cfg.NATSURL, stop: func() {}, commitRate: map[string]float64{}}
	if e.url == "" {
		dir := cfg.DataDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "agentbill-bench")
			if err != nil {
				return nil, err
			}
			dir = tmp
			e.stop = func() { os.RemoveAll(tmp) }
		}
		// NoAuth: the baselines publish on the bench's own subjects and
		// stream, which no role of the default mode may use; this server
		// lives for the run only.
		srv, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:-1", StoreDir: dir, NoAuth: true, SyncInterval: cfg.NATSSyncInterval})
		if err != nil {
			return nil, err
		}
		e.srv, e.url = srv, srv.ClientURL()
		// As serve connects (embedded.Server.Connect, ConnectInProcess).
		if e.writeNC, err = srv.Connect("agentbill-writer"); err != nil {
			return nil, err
		}
		if e.logNC, err = srv.ConnectInProcess("agentbill-writer-log"); err != nil {
			return nil, err
		}
		_, key, err := ed25519.GenerateKey(crand.Reader)
		if err != nil {
			return nil, err
		}
		e.signer = events.NewSigner(key)
		var alerts *projections.AlertConfig
		if cfg.Webhooks {
			alerts = &projections.AlertConfig{}
		}
		e.observer = &writerObserver{}
		e.writer = projections.New(projections.Config{
			Observer: e.observer,
			Alerts:   alerts,
			Conn:     e.writeNC,
			LogConn:  e.logNC,
			Default:  &ledger.DefaultBudget{Limit: events.NewUnits(1, events.UnitsMaxExponent), Period: ledger.PeriodMonth},
			// serve's default rate limit; the hot customer's budget lifts it.
			RateLimit: projections.RateLimitDefault(),
			Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			Signer:    e.signer,
			Keys:      events.NewKeyring(e.signer.Public()),
			Now:       cfg.Now,
			Snapshots: projections.SnapshotConfig{EventsEvery: cfg.SnapshotEventsEvery},
		})
		go func() { _ = e.writer.Run(ctx) }()
		deadline := time.Now().Add(30 * time.Second)
		for !e.writer.Ready() {
			if time.Now().After(deadline) {
				return nil, errors.New("writer not ready")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for range cfg.Clients {
		nc, err := nats.Connect(e.url, nats.Name("agentbill-bench"))
		if err != nil {
			e.close()
			return nil, err
		}
		e.conns = append(e.conns, nc)
		e.clients = append(e.clients, client.New(nc, client.WithAttempts(1)))
	}
	return e, nil
}

func (e *env) close() {
	for _, nc := range e.conns {
		nc.Close()
	}
	for _, nc := range []*nats.Conn{e.writeNC, e.logNC} {
		if nc != nil {
			nc.Close()
		}
	}
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	e.stop()
}

// loopStats are one client's counts.
type loopStats struct {
	hist   Histogram
	second Histogram // the second op of a cycle (record), if any
	// sent is the first op's latency from the moment it was sent, not
	// from when it was due: open loop, hist minus this is the wait behind
	// the same client's late calls.
	sent              Histogram
	ops, cycles       uint64
	approved, refused uint64
	errors            uint64
	unavailable       uint64        // of errors, those answered unavailable (flood)
	rateLimited       uint64        // of refusals, those rate_limited (flood)
	cpu               time.Duration // the process's, over the measured time
}

func (t *loopStats) merge(s *loopStats) {
	t.hist.Merge(&s.hist)
	t.second.Merge(&s.second)
	t.sent.Merge(&s.sent)
	t.ops += s.ops
	t.cycles += s.cycles
	t.approved += s.approved
	t.refused += s.refused
	t.errors += s.errors
	t.unavailable += s.unavailable
	t.rateLimited += s.rateLimited
	t.cpu += s.cpu
}

// drive runs fn on every client for warm-up plus cfg.Duration (closed loop,
// or open loop at rate cycles/s over all clients) and merges the counts.
// fn gets the time its call was due: latency measured from there includes
// any time the call waited behind a slow one (no coordinated omission).
func (e *env) drive(ctx context.Context, rate float64, fn func(ctx context.Context, i int, st *loopStats, due time.Time) error) (loopStats, float64) {
	return e.driveFor(ctx, e.cfg.Duration, rate, fn)
}

// driveFor is drive for a measured time other than cfg.Duration.
func (e *env) driveFor(ctx context.Context, measure time.Duration, rate float64, fn func(ctx context.Context, i int, st *loopStats, due time.Time) error) (loopStats, float64) {
	return e.driveN(ctx, len(e.clients), measure, rate, fn)
}

// driveN is driveFor with n loops (fn's i runs from 0 to n-1), for a
// scenario with clients of its own.
func (e *env) driveN(ctx context.Context, n int, measure time.Duration, rate float64, fn func(ctx context.Context, i int, st *loopStats, due time.Time) error) (loopStats, float64) {
	warm := min(measure/10, WarmupMax)
	var measuring atomic.Bool
	stats := make([]*loopStats, n)
	var wg sync.WaitGroup
	start := time.Now()
	measureFrom := start.Add(warm)
	end := measureFrom.Add(measure)
	cpu := make(chan time.Duration, 1)
	go func() {
		time.Sleep(time.Until(measureFrom))
		c0 := processCPU()
		time.Sleep(time.Until(end))
		cpu <- processCPU() - c0
	}()
	for i := range n {
		stats[i] = &loopStats{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var interval time.Duration
			if rate > 0 {
				interval = time.Duration(float64(n) / rate * float64(time.Second))
			}
			next := start.Add(time.Duration(rand.Int64N(int64(max(interval, 1)))))
			scratch := &loopStats{}
			for {
				now := time.Now()
				if now.After(end) || ctx.Err() != nil {
					return
				}
				st := scratch
				if now.After(measureFrom) {
					measuring.Store(true)
					st = stats[i]
				}
				due := now
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					due = next
					next = next.Add(interval)
				}
				if err := fn(ctx, i, st, due); err != nil {
					st.errors++
				}
			}
		}()
	}
	wg.Wait()
	var total loopStats
	for _, s := range stats {
		total.merge(s)
	}
	total.cpu = <-cpu
	return total, measure.Seconds()
}

func result(name string, clients int, st loopStats, secs float64) Result {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	r := Result{
		Scenario: name, Clients: clients, Seconds: secs, Ops: st.ops, Cycles: st.cycles,
		OpsPerSec: float64(st.ops) / secs, P50us: us(st.hist.Quantile(0.5)), P99us: us(st.hist.Quantile(0.99)),
		P999us: us(st.hist.Quantile(0.999)), Approved: st.approved, Refused: st.refused, Errors: st.errors,
	}
	if st.cycles > 0 {
		r.CyclesPerSec = float64(st.cycles) / secs
	}
	if st.cpu > 0 && st.ops > 0 {
		r.CPUusPerOp = us(st.cpu) / float64(st.ops)
	}
	return r
}
