package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/ledger"
)

// The soak: the embedded service under a steady mix of every kind of
// traffic for a long time, sampling the process's live heap and goroutines,
// to show that nothing accumulates (BENCHMARKS.md, "Soak").
//
// A ledger legitimately remembers: every idempotency key and closed
// reservation ID for ledger.IdempotencyWindow (24 hours of event time), and
// every customer for good. So that a soak of minutes can tell a leak from
// remembering, the writer's clock runs SoakClockSpeed times faster than
// real time (the window then slides within SoakWindowReal), the traffic is
// paced to a fixed rate (so the window holds as many keys at the end as at
// the start), and the customers that arrive are allowed
// SoakCustomerBytesAllowance each.
const (
	// SoakDurationMax bounds one soak.
	SoakDurationMax = 24 * time.Hour
	// SoakDurationMin is the shortest soak. One shorter than twice
	// SoakWarmupMin ends too soon after its warm-up to be judged: it only
	// shows the traffic runs (the default test suite's short soak).
	SoakDurationMin = 5 * time.Second
	// SoakClockSpeed is how much faster than real time the writer's clock
	// runs: 24 hours of event time in 30 s.
	SoakClockSpeed = 2880
	// SoakWindowReal is the idempotency window in real time at that speed.
	SoakWindowReal = ledger.IdempotencyWindow / SoakClockSpeed
	// SoakWarmupMin is the shortest warm-up: twice the window, so the
	// keys remembered are in steady state (as many forgotten as added)
	// before the first measured sample. SoakWarmupShare of a longer soak
	// is warm-up.
	SoakWarmupMin   = 2 * SoakWindowReal
	SoakWarmupShare = 0.25
	// SoakSampleEveryDefault is how often the heap and goroutines are
	// sampled; SoakSampleEveryMin bounds it (each sample forces soakGCs
	// GCs).
	SoakSampleEveryDefault = 10 * time.Second
	SoakSampleEveryMin     = 100 * time.Millisecond
	// soakSamplesMin is the fewest samples a soak takes: the default
	// interval shrinks for a short soak.
	soakSamplesMin = 8
	// soakGCs is how many GCs a sample forces before reading the heap.
	// One is not enough: nats-server returns a message block's cache
	// buffer (up to 8 MiB) to a sync.Pool from a cleanup that runs after
	// the GC that collects the cache, and a pooled object survives one
	// more GC in the pool's victim cache.
	soakGCs = 3
	// SoakClientsDefault clients drive SoakRateDefault iterations a
	// second between them (an iteration is one to three requests, 1.7 on
	// average in the 30-minute soak): about a tenth of what the spread scenario reaches
	// on the 2-core machine, so a shared machine still keeps the pace.
	SoakClientsDefault = 32
	SoakRateDefault    = 500.0
	// SoakRateMax bounds the pace.
	SoakRateMax = 100_000.0
	// soakCustomers are the regular customers (an implicit budget from the
	// default on first use), soakEmptyCustomers have a limit of 0 (every
	// preflight refused).
	soakCustomers      = 1000
	soakEmptyCustomers = 100
	// SoakArrivalsMax is how many new customers arrive over a soak, evenly
	// in time: each is given a budget and runs a cycle.
	SoakArrivalsMax = 5000
	// SoakCustomerBytesAllowance is the heap each arrived customer may add
	// (an idle customer measures 424 bytes, BENCHMARKS.md "Memory per idle
	// customer"; a soak customer also has an agent and period usage).
	SoakCustomerBytesAllowance = 2048
	// SoakSnapshotEventsEvery makes the writer snapshot every so many
	// events: about every 11 s at SoakRateDefault.
	SoakSnapshotEventsEvery = 10_000
	// SoakNATSSyncInterval is the embedded nats-server's block
	// maintenance interval in the soak. The server keeps the cache of a
	// written message block (up to 8 MiB) in memory until a maintenance
	// pass finds it idle for 30 s; at its default interval of 2 minutes
	// that is a sawtooth of up to 2.5 minutes of writes (measured: the
	// heap climbing by 1.2 to 1.3 MiB/s to 214 MiB, then falling to 76,
	// every 2 minutes), which hides any slower growth. Every 10 s, about 30 to 40 s of
	// writes stay cached, nearly constant.
	SoakNATSSyncInterval = 10 * time.Second
	// SoakHeapGrowthMax is the verdict's bound on heap growth after the
	// warm-up, as a share of the first quarter's heap, beyond the arrived
	// customers' allowance (SoakVerdict).
	SoakHeapGrowthMax = 0.10
	// SoakHeapSlackBytes is the resolution of a heap sample: one message
	// block's cache (nats-server's default block, 8 MiB), held or not
	// when the sample is taken. The growth bound is SoakHeapGrowthMax of
	// the first quarter's heap plus this.
	SoakHeapSlackBytes = 8 << 20
	// soakJudgedMin is the fewest samples after the warm-up that are
	// judged: four quarters.
	soakJudgedMin = 4
	// SoakGoroutineSpreadMax bounds max - min goroutines after the
	// warm-up: a few come and go (measured: a spread of 3 over 30
	// minutes, 5 in two).
	SoakGoroutineSpreadMax = 16
	// soakHoldTTL is the event-time TTL of holds that are settled or
	// released (15 s real at SoakClockSpeed: far more than any pause), and
	// soakExpireTTL of holds left to expire (about 0.2 s real; the writer
	// sweeps every projections.SweepIntervalDefault).
	soakHoldTTL   = "12h"
	soakExpireTTL = "10m"
)

// Kinds of soak iteration, and their shares in percent (soakMix).
const (
	SoakCycle   = "cycle"   // preflight, record
	SoakRefused = "refused" // preflight refused: the customer has nothing left
	SoakRelease = "release" // preflight, release
	SoakExpire  = "expire"  // preflight with a short TTL, left to expire
	SoakTopUp   = "top_up"  // admin top-up
	SoakArrival = "arrival" // a new customer: budget, then a cycle
)

var soakMix = []struct {
	kind  string
	share int
}{
	{SoakCycle, 55}, {SoakRefused, 15}, {SoakRelease, 10}, {SoakExpire, 10}, {SoakTopUp, 5}, {SoakArrival, 5},
}

// ErrSoakConfig: a SoakConfig that does not validate.
var ErrSoakConfig = errors.New("soak config")

// SoakConfig is what one soak runs.
type SoakConfig struct {
	Duration    time.Duration
	SampleEvery time.Duration // SoakSampleEveryDefault if 0
	Clients     int           // SoakClientsDefault if 0
	Rate        float64       // iterations/s over all clients; SoakRateDefault if 0
	DataDir     string        // the embedded store; a temp dir if ""
	Progress    io.Writer     // one line per sample; nil for none
	// SnapshotEventsEvery is SoakSnapshotEventsEvery if 0.
	SnapshotEventsEvery uint64
}

func (c *SoakConfig) setDefaults() {
	if c.SampleEvery == 0 {
		c.SampleEvery = max(SoakSampleEveryMin, min(SoakSampleEveryDefault, c.Duration/soakSamplesMin))
	}
	if c.Clients == 0 {
		c.Clients = SoakClientsDefault
	}
	if c.Rate == 0 {
		c.Rate = SoakRateDefault
	}
	if c.SnapshotEventsEvery == 0 {
		c.SnapshotEventsEvery = SoakSnapshotEventsEvery
	}
}

// Validate reports every problem at once (after defaults).
func (c *SoakConfig) Validate() error {
	var errs []error
	if c.Duration < SoakDurationMin || c.Duration > SoakDurationMax {
		errs = append(errs, fmt.Errorf("soak %s: want %s..%s", c.Duration, SoakDurationMin, SoakDurationMax))
	}
	if c.SampleEvery < SoakSampleEveryMin || c.SampleEvery > c.Duration/soakSamplesMin {
		errs = append(errs, fmt.Errorf("sample every %s: want %s..%s (%d samples at least)", c.SampleEvery, SoakSampleEveryMin, c.Duration/soakSamplesMin, soakSamplesMin))
	}
	if c.Clients < 1 || c.Clients > ClientsMax {
		errs = append(errs, fmt.Errorf("clients %d: want 1..%d", c.Clients, ClientsMax))
	}
	if c.Rate <= 0 || c.Rate > SoakRateMax {
		errs = append(errs, fmt.Errorf("rate %g: want (0, %g]", c.Rate, SoakRateMax))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrSoakConfig, errors.Join(errs...))
	}
	return nil
}

// Warmup is the part of the soak before the first measured sample.
func (c *SoakConfig) Warmup() time.Duration {
	return max(SoakWarmupMin, time.Duration(float64(c.Duration)*SoakWarmupShare))
}

// SoakSample is the process at one moment. Heap is the live heap:
// runtime.MemStats.HeapAlloc right after soakGCs forced runtime.GC()s.
type SoakSample struct {
	At         time.Duration `json:"at"` // since the start
	HeapBytes  uint64        `json:"heap_bytes"`
	Goroutines int           `json:"goroutines"`
	OpsPerSec  float64       `json:"ops_per_sec"` // requests since the sample before
	Errors     uint64        `json:"errors"`      // since the start
	Arrived    uint64        `json:"arrived"`     // new customers since the start
	Customers  uint64        `json:"customers"`   // the writer's
	OpenHolds  uint64        `json:"open_holds"`  // the writer's open reservations
	Snapshots  uint64        `json:"snapshots"`   // stored since the start
	Events     uint64        `json:"events"`      // appended since the start
}

// SoakVerdict judges the samples after the warm-up. The heap of a
// stretch is the median of its samples: whether one more message block's
// cache is held at the moment of a sample swings it by up to
// SoakHeapSlackBytes either way (SoakNATSSyncInterval).
type SoakVerdict struct {
	// HeapFirst is the median heap of the first quarter of the measured
	// samples, HeapLast of the last quarter; Allowance is what the
	// customers arrived between their middles may add. Growth is
	// (HeapLast - HeapFirst - Allowance) / HeapFirst, SlopeGrowth the
	// least-squares slope of heap less allowance over every measured
	// sample, times the measured span, over HeapFirst. Both must be at
	// most SoakHeapGrowthMax, after SoakHeapSlackBytes.
	HeapFirst   uint64  `json:"heap_first_quarter_bytes"`
	HeapLast    uint64  `json:"heap_last_quarter_bytes"`
	Allowance   uint64  `json:"allowance_bytes"`
	Growth      float64 `json:"growth"`
	SlopeGrowth float64 `json:"slope_growth"`
	// GoroutinesMin and GoroutinesMax are over the measured samples;
	// their spread must be at most SoakGoroutineSpreadMax.
	GoroutinesMin int  `json:"goroutines_min"`
	GoroutinesMax int  `json:"goroutines_max"`
	HeapOK        bool `json:"heap_ok"`
	GoroutinesOK  bool `json:"goroutines_ok"`
	// Note says why nothing was judged, if so.
	Note string `json:"note,omitempty"`
}

// OK is the whole verdict.
func (v SoakVerdict) OK() bool { return v.HeapOK && v.GoroutinesOK }

// SoakReport is a whole soak.
type SoakReport struct {
	Started     time.Time         `json:"started"`
	GoMaxProc   int               `json:"gomaxprocs"`
	Duration    time.Duration     `json:"duration"`
	Warmup      time.Duration     `json:"warmup"`
	SampleEvery time.Duration     `json:"sample_every"`
	Clients     int               `json:"clients"`
	Rate        float64           `json:"rate"`
	ClockSpeed  int               `json:"clock_speed"`
	Samples     []SoakSample      `json:"samples"`
	Iterations  map[string]uint64 `json:"iterations"` // by kind
	Ops         uint64            `json:"ops"`        // requests
	// Approved, Refused and the latencies leave out the first second
	// (driveN's warm-up); the other counts are of the whole soak.
	Approved uint64            `json:"approved"`
	Refused  uint64            `json:"refused"`
	Errors   map[string]uint64 `json:"errors"` // by kind (soakErrorKind)
	P50us    float64           `json:"p50_us"` // of the first request of an iteration
	P99us    float64           `json:"p99_us"`
	Verdict  SoakVerdict       `json:"verdict"`
}

// soakCounts are the live counters the sampler reads.
type soakCounts struct {
	ops, arrived atomic.Uint64
	mu           sync.Mutex
	iterations   map[string]uint64
	errors       map[string]uint64
}

func (c *soakCounts) count(kind string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.iterations[kind]++
	if err != nil {
		c.errors[soakErrorKind(err)]++
	}
}

// errSoakAnswer: the service answered, but not as the iteration expects.
var errSoakAnswer = errors.New("unexpected answer")

// soakErrorKind is an error's kind in SoakReport.Errors: the service's
// error code, "unexpected_answer" (errSoakAnswer), or "other" (no answer
// from the service, as a timeout).
func soakErrorKind(err error) string {
	var le *ledger.Error
	switch {
	case errors.As(err, &le):
		return string(le.Code)
	case errors.Is(err, errSoakAnswer):
		return "unexpected_answer"
	}
	return "other"
}

func (c *soakCounts) errorTotal() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, v := range c.errors {
		n += v
	}
	return n
}

// RunSoak runs the soak against an embedded service and judges it.
func RunSoak(ctx context.Context, sc SoakConfig) (*SoakReport, error) {
	sc.setDefaults()
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	clock := func() time.Time { return t0.Add(time.Since(t0) * SoakClockSpeed) }
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e, err := start(ctx, Config{Clients: sc.Clients, DataDir: sc.DataDir, Now: clock, SnapshotEventsEvery: sc.SnapshotEventsEvery,
		NATSSyncInterval: SoakNATSSyncInterval})
	if err != nil {
		return nil, err
	}
	defer e.close()
	if err := e.setupSoak(ctx); err != nil {
		return nil, fmt.Errorf("soak: set up: %w", err)
	}
	rep := &SoakReport{Started: time.Now().UTC(), GoMaxProc: gomaxprocs(), Duration: sc.Duration, Warmup: sc.Warmup(),
		SampleEvery: sc.SampleEvery, Clients: sc.Clients, Rate: sc.Rate, ClockSpeed: SoakClockSpeed}
	counts := &soakCounts{iterations: map[string]uint64{}, errors: map[string]uint64{}}
	began := time.Now()
	samples := make(chan []SoakSample, 1)
	go func() { samples <- e.sampleSoak(ctx, sc, began, counts) }()
	st, _ := e.driveN(ctx, sc.Clients, sc.Duration, sc.Rate, func(ctx context.Context, i int, st *loopStats, due time.Time) error {
		return e.soakIteration(ctx, i, st, due, counts, sc, began)
	})
	cancel()
	rep.Samples = <-samples
	rep.Iterations, rep.Errors = counts.iterations, counts.errors
	rep.Ops, rep.Approved, rep.Refused = counts.ops.Load(), st.approved, st.refused
	rep.P50us, rep.P99us = float64(st.hist.Quantile(0.5))/1e3, float64(st.hist.Quantile(0.99))/1e3
	rep.Verdict = JudgeSoak(rep.Samples, rep.Warmup)
	return rep, nil
}

// setupSoak gives the empty customers their limit of 0.
func (e *env) setupSoak(ctx context.Context) error {
	for k := range soakEmptyCustomers {
		if _, err := e.clients[0].SetBudget(ctx, soakEmpty(k), ledger.BudgetRequest{Limit: units("0"), Period: "month"}); err != nil {
			return err
		}
	}
	return nil
}

func soakRegular(k int) string { return "soak-" + strconv.Itoa(k) }
func soakEmpty(k int) string   { return "soak-empty-" + strconv.Itoa(k) }
func soakNew(k uint64) string  { return "soak-new-" + strconv.FormatUint(k, 10) }

// soakKind picks an iteration's kind by soakMix.
func soakKind() string {
	n := rand.IntN(100)
	for _, m := range soakMix {
		if n < m.share {
			return m.kind
		}
		n -= m.share
	}
	return SoakCycle
}

// soakIteration runs one iteration of a random kind on client i. An
// arrival is due when fewer than SoakArrivalsMax × (elapsed / Duration)
// customers have arrived; otherwise it is a cycle.
func (e *env) soakIteration(ctx context.Context, i int, st *loopStats, due time.Time, counts *soakCounts, sc SoakConfig, began time.Time) error {
	c := e.clients[i]
	kind := soakKind()
	customer := soakRegular(rand.IntN(soakCustomers))
	if kind == SoakArrival {
		kind = SoakCycle
		arrivals := uint64(SoakArrivalsMax * min(1, time.Since(began).Seconds()/sc.Duration.Seconds()))
		if n := counts.arrived.Load(); n < arrivals && counts.arrived.CompareAndSwap(n, n+1) {
			kind, customer = SoakArrival, soakNew(n)
		}
	}
	ops0 := st.ops
	err := e.soakRun(ctx, c, st, due, kind, customer)
	counts.ops.Add(st.ops - ops0)
	counts.count(kind, err)
	return err
}

// soakRun sends one iteration's requests.
func (e *env) soakRun(ctx context.Context, c *client.Client, st *loopStats, due time.Time, kind, customer string) error {
	switch kind {
	case SoakTopUp:
		_, err := c.TopUp(ctx, customer, ledger.TopUpRequest{Units: units("100")})
		st.hist.Record(time.Since(due))
		st.ops++
		return err
	case SoakArrival:
		_, err := c.SetBudget(ctx, customer, ledger.BudgetRequest{Limit: units("1000000"), Period: "month"})
		st.ops++
		if err != nil {
			return err
		}
	case SoakRefused:
		customer = soakEmpty(rand.IntN(soakEmptyCustomers))
	}
	ttl := soakHoldTTL
	if kind == SoakExpire {
		ttl = soakExpireTTL
	}
	pf, err := preflight(ctx, c, st, due, customer, ledger.PreflightRequest{AgentID: "soak_agent", EstimatedUnits: units("10"), TTL: ttl})
	if err != nil {
		return err
	}
	if !pf.Approved {
		if kind != SoakRefused {
			return fmt.Errorf("%w: %s preflight refused: %s", errSoakAnswer, kind, pf.Reason)
		}
		return nil
	}
	switch kind {
	case SoakRefused:
		return fmt.Errorf("%w: a preflight of %s (a limit of 0) approved", errSoakAnswer, customer)
	case SoakRelease:
		_, err = c.Release(ctx, customer, pf.ReservationID)
	case SoakCycle, SoakArrival:
		_, err = c.Record(ctx, customer, ledger.RecordRequest{AgentID: "soak_agent", Units: units("7"), ReservationID: pf.ReservationID})
	default:
		return nil // SoakExpire: left to expire
	}
	st.ops++
	return err
}

// sampleSoak samples every SampleEvery until the soak ends.
func (e *env) sampleSoak(ctx context.Context, sc SoakConfig, began time.Time, counts *soakCounts) []SoakSample {
	ws := e.writer.Stats()
	snaps0, events0 := ws.Snapshots.Saved.Load(), ws.Events.Load()
	var out []SoakSample
	var lastOps uint64
	last := began
	tick := time.NewTicker(sc.SampleEvery)
	defer tick.Stop()
	for n := 1; time.Duration(n)*sc.SampleEvery <= sc.Duration; n++ {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
		for range soakGCs {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		now, ops := time.Now(), counts.ops.Load()
		s := SoakSample{
			At: now.Sub(began).Round(time.Millisecond), HeapBytes: ms.HeapAlloc, Goroutines: runtime.NumGoroutine(),
			OpsPerSec: float64(ops-lastOps) / now.Sub(last).Seconds(), Errors: counts.errorTotal(), Arrived: counts.arrived.Load(),
			Customers: ws.Customers.Load(), OpenHolds: ws.OpenReservations.Load(),
			Snapshots: ws.Snapshots.Saved.Load() - snaps0, Events: ws.Events.Load() - events0,
		}
		lastOps, last = ops, now
		out = append(out, s)
		if sc.Progress != nil {
			fmt.Fprintln(sc.Progress, formatSoakSample(s))
		}
	}
	return out
}

// JudgeSoak judges the samples taken after warmup (SoakVerdict).
func JudgeSoak(samples []SoakSample, warmup time.Duration) SoakVerdict {
	i := sort.Search(len(samples), func(i int) bool { return samples[i].At >= warmup })
	measured := samples[i:]
	var v SoakVerdict
	if len(measured) < soakJudgedMin {
		v.Note = fmt.Sprintf("not judged: %d samples after the %s warm-up, want %d at least", len(measured), warmup, soakJudgedMin)
		return v
	}
	q := max(1, len(measured)/4)
	first, last := measured[:q], measured[len(measured)-q:]
	arrived0 := median(first, func(s SoakSample) float64 { return float64(s.Arrived) })
	allowance := func(s SoakSample) float64 { return (float64(s.Arrived) - arrived0) * SoakCustomerBytesAllowance }
	heapFirst := median(first, func(s SoakSample) float64 { return float64(s.HeapBytes) })
	heapLast := median(last, func(s SoakSample) float64 { return float64(s.HeapBytes) })
	allowed := median(last, allowance)
	v.HeapFirst, v.HeapLast, v.Allowance = uint64(heapFirst), uint64(heapLast), uint64(max(0, allowed))
	v.Growth = (heapLast - heapFirst - allowed) / heapFirst
	xs, ys := make([]float64, len(measured)), make([]float64, len(measured))
	for k, s := range measured {
		xs[k], ys[k] = s.At.Seconds(), float64(s.HeapBytes)-allowance(s)
	}
	v.SlopeGrowth = slope(xs, ys) * (xs[len(xs)-1] - xs[0]) / heapFirst
	bound := SoakHeapGrowthMax + SoakHeapSlackBytes/heapFirst
	v.HeapOK = v.Growth <= bound && v.SlopeGrowth <= bound
	v.GoroutinesMin, v.GoroutinesMax = measured[0].Goroutines, measured[0].Goroutines
	for _, s := range measured {
		v.GoroutinesMin, v.GoroutinesMax = min(v.GoroutinesMin, s.Goroutines), max(v.GoroutinesMax, s.Goroutines)
	}
	v.GoroutinesOK = v.GoroutinesMax-v.GoroutinesMin <= SoakGoroutineSpreadMax
	return v
}

// median is the median of f over samples.
func median(samples []SoakSample, f func(SoakSample) float64) float64 {
	xs := make([]float64, len(samples))
	for k, s := range samples {
		xs[k] = f(s)
	}
	sort.Float64s(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for k := range xs {
		sx, sy, sxx, sxy = sx+xs[k], sy+ys[k], sxx+xs[k]*xs[k], sxy+xs[k]*ys[k]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

func formatSoakSample(s SoakSample) string {
	return fmt.Sprintf("%7.1fs  heap %8.2f MiB  goroutines %5d  %7.0f ops/s  customers %6d  open holds %5d  snapshots %4d  events %9d  arrived %5d  errors %d",
		s.At.Seconds(), float64(s.HeapBytes)/(1<<20), s.Goroutines, s.OpsPerSec, s.Customers, s.OpenHolds, s.Snapshots, s.Events, s.Arrived, s.Errors)
}

// PrintSoak writes the report as a table over time and the verdict.
func PrintSoak(w io.Writer, r *SoakReport) {
	fmt.Fprintf(w, "agentbill bench --soak %s: %d clients paced at %.0f iterations/s, GOMAXPROCS %d, writer clock %dx real time, warm-up %s, a sample every %s (heap: live, after %d forced GCs)\n\n",
		r.Duration, r.Clients, r.Rate, r.GoMaxProc, r.ClockSpeed, r.Warmup, r.SampleEvery, soakGCs)
	for _, s := range r.Samples {
		fmt.Fprintln(w, formatSoakSample(s))
	}
	fmt.Fprintf(w, "\niterations %v; %d requests (%d preflights approved, %d refused); first request p50 %.0fus p99 %.0fus; errors %v\n",
		r.Iterations, r.Ops, r.Approved, r.Refused, r.P50us, r.P99us, r.Errors)
	v := r.Verdict
	if v.Note != "" {
		fmt.Fprintf(w, "verdict: FAIL, %s\n", v.Note)
		return
	}
	fmt.Fprintf(w, "heap (median of a quarter of the samples after warm-up): first quarter %.2f MiB, last quarter %.2f MiB, allowance for customers arrived between them (%d B each) %.2f MiB: growth %+.1f%%, fitted slope over the span %+.1f%%; each at most %.0f%% + %d MiB (%.1f%% here): %s\n",
		mib(v.HeapFirst), mib(v.HeapLast), SoakCustomerBytesAllowance, mib(v.Allowance), 100*v.Growth, 100*v.SlopeGrowth,
		100*SoakHeapGrowthMax, SoakHeapSlackBytes>>20, 100*(SoakHeapGrowthMax+float64(SoakHeapSlackBytes)/float64(max(v.HeapFirst, 1))), pass(v.HeapOK))
	fmt.Fprintf(w, "goroutines after warm-up: %d..%d (spread at most %d): %s\n", v.GoroutinesMin, v.GoroutinesMax, SoakGoroutineSpreadMax, pass(v.GoroutinesOK))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}
