package projections_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkRestart measures how long a writer takes from start to serving
// over a log of many customers: replaying the whole log, and loading a
// snapshot then replaying the tail after it. Sizes come from the
// environment (defaults in brackets):
//
//	AGENTBILL_BENCH_CUSTOMERS [1000000]  customers, each with a budget
//	AGENTBILL_BENCH_EVENTS    [4000000]  events in the log (3 per customer at least, + TAIL)
//	AGENTBILL_BENCH_TAIL      [1000000]  events after the first snapshot
//	AGENTBILL_BENCH_SPAN      [240h]     event time the log spans; the
//	                                     idempotency window keeps the last 24h
//
//	go test -run '^$' -bench Restart -benchtime 1x -timeout 30m ./projections
//
// Steps, each reported as a metric: (1) full replay of EVENTS-TAIL events;
// (2) snapshot of that state (encode time on the shadow, store time, size);
// (3) TAIL more events appended; restart from the snapshot + tail; (4)
// snapshot at the end, restart from it with no tail; (5) full replay of
// EVENTS events with snapshots off. With
// AGENTBILL_BENCH_RESTART_PROFILE=file, step (4)'s start is profiled
// (CPU) into file; with AGENTBILL_BENCH_TAIL_PROFILE=file, step (3)'s.
// Each writer starts once the process has given its free memory back to
// the kernel (debug.FreeOSMemory), so that its heap, like a new
// process's, faults in every page it uses.
func BenchmarkRestart(b *testing.B) {
	customers := benchEnv(b, "AGENTBILL_BENCH_CUSTOMERS", 1_000_000)
	total := benchEnv(b, "AGENTBILL_BENCH_EVENTS", 4_000_000)
	tail := benchEnv(b, "AGENTBILL_BENCH_TAIL", 1_000_000)
	span := benchSpan(b)
	if total < 3*customers+tail {
		b.Fatalf("events %d must be at least 3 per customer (%d) + tail %d", total, 3*customers, tail)
	}
	advice := adviseHeapEarly()
	s := testenv.StartServer(b, "")
	g := newLogGen(b, s, customers, total, span)
	start := time.Now()
	g.generate(total - tail)
	first := len(g.commits)
	g.generate(tail)
	b.Logf("generated %d events over %d customers in %d commits in %s", g.events, customers, len(g.commits),
		time.Since(start).Round(time.Second))
	for b.Loop() {
		b.ReportMetric(advice, "heap-advice-ms")
		start := time.Now()
		g.publish(0, first)
		b.Logf("published %d commits in %s", first, time.Since(start).Round(time.Second))

		w, ready := benchWriter(b, s, false)
		b.ReportMetric(ready.Seconds(), "full-replay-1-s")
		b.ReportMetric(float64(total-tail)/ready.Seconds(), "full-replay-events/s")
		snapMetrics(b, w, "1")
		w.Stop(b)

		g.publish(first, len(g.commits))
		stopProfile := profileIfAsked(b, "AGENTBILL_BENCH_TAIL_PROFILE")
		w, ready = benchWriter(b, s, false)
		stopProfile()
		if got := w.Stats().Snapshots.TailEvents.Load(); got != uint64(tail) || w.Stats().Snapshots.LoadedSeq.Load() == 0 {
			b.Fatalf("restart replayed %d events from sequence %d, want the %d after the snapshot",
				got, w.Stats().Snapshots.LoadedSeq.Load(), tail)
		}
		b.ReportMetric(ready.Seconds(), "ready-snapshot+tail-s")
		b.ReportMetric(time.Duration(w.Stats().Snapshots.LoadNanos.Load()).Seconds(), "snapshot-1-load-s")
		snapMetrics(b, w, "2")
		w.Stop(b)

		stopProfile = profileIfAsked(b, "AGENTBILL_BENCH_RESTART_PROFILE")
		w, ready = benchWriter(b, s, false)
		stopProfile()
		if got := w.Stats().Snapshots.TailEvents.Load(); got != 0 {
			b.Fatalf("restart replayed %d events after the snapshot, want 0", got)
		}
		b.ReportMetric(ready.Seconds(), "ready-snapshot-s")
		b.ReportMetric(time.Duration(w.Stats().Snapshots.LoadNanos.Load()).Seconds(), "snapshot-2-load-s")
		w.Stop(b)

		w, ready = benchWriter(b, s, true)
		b.ReportMetric(ready.Seconds(), "full-replay-2-s")
		b.ReportMetric(float64(g.events)/ready.Seconds(), "full-replay-2-events/s")
		w.Stop(b)
	}
}

// adviseHeapEarly takes the service's heap advice (ledger.AdviseHeap)
// before a benchmark generates its log, as the service takes it at its
// first restore or replay, before its heap has grown: the benchmark's
// restores and replays reuse the memory its generator used. Report what
// it returns as the metric heap-advice-ms, what the advice took, inside
// b.Loop (which clears the metrics reported before it).
func adviseHeapEarly() float64 {
	start := time.Now()
	ledger.AdviseHeap()
	return float64(time.Since(start).Microseconds()) / 1000
}

// BenchmarkReplayLarge replays a generated log (the sizes of
// BenchmarkRestart: AGENTBILL_BENCH_CUSTOMERS, AGENTBILL_BENCH_EVENTS,
// AGENTBILL_BENCH_SPAN) twice in one process, as projections.Rebuild does
// for a restart without a snapshot, and reports each replay's rate, the
// process's CPU and system time and its page faults: the first replay
// grows the heap into memory the process gave back to the kernel before
// it (debug.FreeOSMemory), as a restart's does; the second reuses what the
// collector freed, so the two apart show what the kernel's faults cost.
// It also reports the collector's cycles, the bytes the process allocated
// (the server's included) during each, the largest heap during each (its
// objects, live or not yet collected, sampled) and the live heap after it
// (collected: the state it built).
//
//	AGENTBILL_BENCH_EVENTS=10000000 go test -run '^$' -bench ReplayLarge -benchtime 1x -timeout 30m ./projections
//
// With AGENTBILL_BENCH_REPLAY_PROFILE=file, the first replay alone is
// profiled (CPU) into file: -cpuprofile would mostly show the log's
// generation and publishing. With AGENTBILL_BENCH_HEAP_PROFILE=file, the
// heap profile after the first replay (the state it built, by where it
// was allocated) goes into file.
func BenchmarkReplayLarge(b *testing.B) {
	customers := benchEnv(b, "AGENTBILL_BENCH_CUSTOMERS", 1_000_000)
	total := benchEnv(b, "AGENTBILL_BENCH_EVENTS", 4_000_000)
	advice := adviseHeapEarly()
	s := testenv.StartServer(b, "")
	g := newLogGen(b, s, customers, total, benchSpan(b))
	g.generate(total)
	g.publish(0, len(g.commits))
	js := testenv.JetStream(b, testenv.ConnectLog(b, s)) // as a rebuild reads, on the log connection
	for b.Loop() {
		b.ReportMetric(advice, "heap-advice-ms")
		for i, name := range []string{"first", "second"} {
			// Each replay's heap goal from the live heap, as a restart's; the
			// first into pages the process must fault in, as a restart's
			// (the log's generator touched more than a replay uses).
			if i == 0 {
				debug.FreeOSMemory()
			} else {
				runtime.GC()
			}
			stopProfile := func() {}
			if f := os.Getenv("AGENTBILL_BENCH_REPLAY_PROFILE"); f != "" && i == 0 {
				stopProfile = startCPUProfile(b, f)
			}
			start, cpu, sys, faults := time.Now(), processCPU(), systemCPU(), minorFaults()
			gcs, allocated := gcCounts()
			peakHeap := sampleMax("/memory/classes/heap/objects:bytes", heapSampleEvery)
			got, _, err := projections.Rebuild(context.Background(), js, projections.ReplayStop{}, nil)
			peak := peakHeap()
			stopProfile()
			if err != nil {
				b.Fatal(err)
			}
			if got.EventsApplied() != uint64(g.events) {
				b.Fatalf("replay %d applied %d events, want %d", i, got.EventsApplied(), g.events)
			}
			took := time.Since(start)
			b.ReportMetric(float64(g.events)/took.Seconds(), name+"-events/s")
			b.ReportMetric((processCPU() - cpu).Seconds(), name+"-cpu-s")
			b.ReportMetric((systemCPU() - sys).Seconds(), name+"-system-s")
			b.ReportMetric(float64(minorFaults()-faults), name+"-page-faults")
			gcsAfter, allocatedAfter := gcCounts()
			b.ReportMetric(float64(gcsAfter-gcs), name+"-gc-cycles")
			b.ReportMetric(float64(allocatedAfter-allocated)/float64(g.events), name+"-alloc-B/event")
			b.ReportMetric(float64(peak)/(1<<20), name+"-peak-heap-MiB")
			runtime.GC()
			b.ReportMetric(float64(projections.LiveHeapBytes())/(1<<20), name+"-state-heap-MiB")
			if f := os.Getenv("AGENTBILL_BENCH_HEAP_PROFILE"); f != "" && i == 0 {
				hf, err := os.Create(f)
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.Lookup("heap").WriteTo(hf, 0); err != nil {
					b.Fatal(err)
				}
				if err := hf.Close(); err != nil {
					b.Fatal(err)
				}
			}
			runtime.KeepAlive(got)
		}
	}
}

// heapSampleEvery is how often BenchmarkReplayLarge samples the heap's
// objects, live and not yet collected (a replay adds about 4 MiB to them
// in that time).
const heapSampleEvery = 10 * time.Millisecond

// sampleMax reads the runtime metric name (a uint64) every period until
// the returned stop is called, which returns the largest value read.
func sampleMax(name string, period time.Duration) (stop func() uint64) {
	quit, result := make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: name}}
		var most uint64
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			metrics.Read(s)
			most = max(most, s[0].Value.Uint64())
			select {
			case <-quit:
				result <- most
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(quit); return <-result }
}

// gcCounts returns the collector's cycles so far and the bytes the
// process has allocated on the heap.
func gcCounts() (cycles, allocated uint64) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// profileIfAsked is startCPUProfile into the file the environment
// variable env names; its stop does nothing where env names none.
func profileIfAsked(b *testing.B, env string) (stop func()) {
	if f := os.Getenv(env); f != "" {
		return startCPUProfile(b, f)
	}
	return func() {}
}

// startCPUProfile profiles the process's CPU into file until the returned
// stop is called.
func startCPUProfile(b *testing.B, file string) (stop func()) {
	b.Helper()
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSpan is AGENTBILL_BENCH_SPAN, the event time a generated log
// spans (240h by default).
func benchSpan(b *testing.B) time.Duration {
	b.Helper()
	v := os.Getenv("AGENTBILL_BENCH_SPAN")
	if v == "" {
		return 240 * time.Hour
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func benchEnv(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// benchWriter starts a writer with manual snapshots (or none) on a heap
// without the previous one, and returns it with its time to serve.
func benchWriter(b *testing.B, s *testenv.Server, off bool) (*benchRunning, time.Duration) {
	b.Helper()
	// As a new process's: the writer's heap in pages it must fault in, not
	// the ones the log's generator or an earlier writer touched.
	debug.FreeOSMemory()
	live := projections.LiveHeapBytes()
	start, faults, thp := time.Now(), minorFaults(), hugePageCounts()
	w := projections.New(projections.Config{Conn: testenv.Connect(b, s), LogConn: testenv.ConnectLog(b, s), Default: snapDefault,
		Snapshots: projections.SnapshotConfig{Off: off, EventsEvery: 1 << 62}})
	ctx, cancel := context.WithCancel(context.Background())
	r := &benchRunning{Writer: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	for !w.Ready() {
		select {
		case err := <-r.done:
			b.Fatalf("writer stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	ready, faults, thp := time.Since(start), minorFaults()-faults, hugePageCounts().minus(thp)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := &w.Stats().Snapshots
	b.Logf("writer ready in %s (snapshot at %d, %d events replayed after it), heap %d MiB (%d MiB live before it), %d page faults, huge pages: %s",
		ready.Round(time.Millisecond), st.LoadedSeq.Load(), st.TailEvents.Load(), ms.HeapAlloc>>20, live>>20, faults, thp)
	return r, ready
}

type benchRunning struct {
	*projections.Writer
	cancel context.CancelFunc
	done   chan error
}

// Stop stops the writer and waits until nothing holds it: when the next
// writer starts, no stopped writer's state may be live, as none is in a
// new process. A stopped writer stays reachable for a moment after Run
// returns (benchmarks/2026-12-08/README.md); the next writer's forced
// collection found one in two runs of three, and that writer then
// restored beside a second state, its collector's goal sized from both.
func (r *benchRunning) Stop(b *testing.B) {
	b.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		b.Fatal(err)
	}
	gone := make(chan struct{})
	runtime.AddCleanup(r.Writer, func(gone chan struct{}) { close(gone) }, gone)
	r.Writer = nil
	start := time.Now()
	for collections := 1; ; collections++ {
		runtime.GC() // the cleanup runs after the collection that finds the writer unreachable
		select {
		case <-gone:
			b.Logf("stopped writer collected after %d forced collections in %s", collections, time.Since(start).Round(time.Millisecond))
			return
		case <-time.After(benchWriterGonePoll):
		}
		if time.Since(start) > benchWriterGoneMax {
			b.Fatalf("a stopped writer still reachable %s after it stopped", benchWriterGoneMax)
		}
	}
}

// benchWriterGonePoll is how often benchRunning.Stop collects until the
// stopped writer is unreachable, and benchWriterGoneMax how long it waits
// at most: a writer held longer is held by something that outlives it.
const (
	benchWriterGonePoll = 10 * time.Millisecond
	benchWriterGoneMax  = 10 * time.Second
)

func snapMetrics(b *testing.B, w *benchRunning, n string) {
	b.Helper()
	st := &w.Stats().Snapshots
	saved := st.Saved.Load()
	w.SnapshotNow()
	deadline := time.Now().Add(5 * time.Minute)
	for st.Saved.Load() == saved {
		if time.Now().After(deadline) {
			b.Fatal("snapshot not stored within 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(float64(st.SavedBytes.Load())/(1<<20), "snapshot-"+n+"-MiB")
	b.ReportMetric(float64(st.StoredBytes.Load())/(1<<20), "snapshot-"+n+"-stored-MiB")
	b.ReportMetric(time.Duration(st.EncodeNanos.Load()).Seconds(), "snapshot-"+n+"-encode-s")
	b.ReportMetric(time.Duration(st.StoreNanos.Load()).Seconds(), "snapshot-"+n+"-store-s")
}

// logGen builds a log like the writer's: every customer first gets the
// default budget with a keyed preflight and record, then keyed preflights
// and records of random customers, in commits of logGenCommitEvents, with
// event time advancing evenly over the span. It writes the events
// directly, without deciding them (replay only applies them), and builds
// every commit before any is published, so that generating is quick and
// the writers measured share the heap with nothing but the commits.
type logGen struct {
	b         *testing.B
	js        jetstream.JetStream
	rng       *rand.Rand
	customers int
	created   int
	step      time.Duration // event time between two events
	now       time.Time
	events    int
	commits   [][]byte
	enc       events.CommitEncoder
	ids       int
}

const logGenCommitEvents = 500

func newLogGen(b *testing.B, s *testenv.Server, customers, total int, span time.Duration) *logGen {
	ctx := context.Background()
	js := testenv.JetStream(b, testenv.Connect(b, s))
	if _, err := projections.EnsureStream(ctx, js, 1); err != nil {
		b.Fatal(err)
	}
	return &logGen{b: b, js: js, rng: rand.New(rand.NewPCG(1, 2)), customers: customers,
		step: span / time.Duration(total), now: t0}
}

// generate builds n more events, in commits.
func (g *logGen) generate(n int) {
	limit, est, used := events.NewUnits(500, 0), events.NewUnits(10, 0), events.NewUnits(7, 0)
	end := g.events + n
	g.enc.Reset(g.commitID(), events.WriterDefault, g.now)
	for g.events < end {
		var cid string
		y, m, _ := g.now.Date()
		bal := events.Balance{PeriodStart: time.Date(y, m, 1, 0, 0, 0, 0, time.UTC), Limit: limit, Remaining: limit}
		if g.created < g.customers {
			cid = "customer-" + strconv.Itoa(g.created)
			g.created++
			g.add(cid, g.nextID(), &events.BudgetSet{Limit: limit, Period: "month", Source: "default", Balance: bal})
		} else {
			cid = "customer-" + strconv.Itoa(g.rng.IntN(g.customers))
		}
		key := strconv.Itoa(g.events)
		id := g.nextID()
		g.add(cid, id, &events.Reserved{ReservationID: id, AgentID: "research_agent", Units: est,
			ExpiresAt: g.now.Add(ledger.TTLDefault), Request: benchRequest("p" + key), Balance: bal})
		if g.events < end {
			g.add(cid, g.nextID(), &events.Recorded{AgentID: "research_agent", ReservationID: id, HeldUnits: est,
				Units: used, Released: est.Sub(used), Request: benchRequest("r" + key), Balance: bal})
		}
	}
	g.flush()
}

func benchRequest(key string) events.Request {
	h := sha256.Sum256([]byte(key))
	return events.Request{IdempotencyKey: key, RequestHash: hex.EncodeToString(h[:])}
}

func (g *logGen) nextID() string {
	g.ids++
	return fmt.Sprintf("01900000-0000-7000-8000-%012d", g.ids)
}

func (g *logGen) add(cid, id string, d events.Data) {
	body, err := events.Encode(&events.Envelope{ID: id, Type: d.EventType(), V: events.Version, At: g.now, CustomerID: cid, Data: d})
	if err != nil {
		g.b.Fatal(err)
	}
	g.enc.Add(body)
	g.events++
	g.now = g.now.Add(g.step)
	if g.enc.Len() >= logGenCommitEvents {
		g.flush()
	}
}

func (g *logGen) flush() {
	if g.enc.Len() > 0 {
		g.commits = append(g.commits, append([]byte(nil), g.enc.Bytes()...))
	}
	g.enc.Reset(g.commitID(), events.WriterDefault, g.now)
}

func (g *logGen) commitID() string { return fmt.Sprintf("commit-%d", len(g.commits)) }

// publish appends the commits from the first unpublished one up to to.
func (g *logGen) publish(from, to int) {
	for i := from; i < to; i++ {
		if _, err := g.js.Publish(context.Background(), events.LogSubject(events.WriterDefault), g.commits[i],
			jetstream.WithMsgID(fmt.Sprintf("commit-%d", i))); err != nil {
			g.b.Fatal(err)
		}
		g.commits[i] = nil
	}
}

// freshMemoryBytes is how much memory BenchmarkFreshMemory faults in.
const freshMemoryBytes = 1 << 30

// freshMemoryPage is the stride BenchmarkFreshMemory writes at: the
// kernel's base page, each write one fault.
const freshMemoryPage = 4096

// BenchmarkFreshMemory measures what this machine charges for memory a
// process has not touched, the cost a restart pays for every page of its
// heap beyond what BenchmarkRestart's and BenchmarkReplayLarge's other
// figures pay: a new []byte of freshMemoryBytes, after the process has
// given its free memory back to the kernel, written once a page.
//
//	go test -run '^$' -bench FreshMemory -benchtime 3x ./projections
func BenchmarkFreshMemory(b *testing.B) {
	var took, sys time.Duration
	var faults int64
	for b.Loop() {
		b.StopTimer()
		debug.FreeOSMemory()
		b.StartTimer()
		start, sys0, faults0 := time.Now(), systemCPU(), minorFaults()
		p := make([]byte, freshMemoryBytes)
		for i := 0; i < len(p); i += freshMemoryPage {
			p[i] = 1
		}
		took += time.Since(start)
		sys += systemCPU() - sys0
		faults += minorFaults() - faults0
		runtime.KeepAlive(p)
	}
	gib := float64(b.N) * freshMemoryBytes / (1 << 30)
	b.ReportMetric(took.Seconds()/gib, "s/GiB")
	b.ReportMetric(sys.Seconds()/gib, "system-s/GiB")
	b.ReportMetric(float64(faults)/gib, "page-faults/GiB")
}
