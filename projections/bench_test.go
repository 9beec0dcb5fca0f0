package projections_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// replayLogEvents is the size of the log BenchmarkRebuild replays.
const replayLogEvents = 200_000

// BenchmarkRebuild measures a full replay (fetch, decode, apply) of a log
// of preflight/record events over 10,000 customers, in commits of about 100
// events, as the writer would have written it.
func BenchmarkRebuild(b *testing.B) {
	s := testenv.StartServer(b, "")
	nc := testenv.Connect(b, s)
	js := testenv.JetStream(b, nc)
	ctx := context.Background()
	if _, err := projections.EnsureStream(ctx, js, 1); err != nil {
		b.Fatal(err)
	}
	st := ledger.NewState()
	n := 0
	st.NewID = func() string { n++; return fmt.Sprintf("01900000-0000-7000-8000-%012d", n) }
	st.Default = &ledger.DefaultBudget{Limit: events.NewUnits(1, 12), Period: ledger.PeriodMonth}
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	est, used := events.NewUnits(10, 0), events.NewUnits(7, 0)
	var enc events.CommitEncoder
	total, commits := 0, 0
	flush := func() {
		if _, err := js.Publish(ctx, events.LogSubject(events.WriterDefault), enc.Bytes()); err != nil {
			b.Fatal(err)
		}
		commits++
		enc.Reset(strconv.Itoa(commits), events.WriterDefault, now)
	}
	enc.Reset("0", events.WriterDefault, now)
	for i := 0; total < replayLogEvents; i++ {
		cid := "cust-" + strconv.Itoa(i%10_000)
		key := strconv.Itoa(i)
		r, evs, err := st.Decide(&ledger.PreflightRequest{CustomerID: cid, AgentID: "research_agent", EstimatedUnits: &est, IdempotencyKey: "p" + key}, now)
		if err != nil {
			b.Fatal(err)
		}
		_, evs2, err := st.Decide(&ledger.RecordRequest{CustomerID: cid, AgentID: "research_agent", Units: &used,
			ReservationID: r.(*ledger.PreflightReply).ReservationID, IdempotencyKey: "r" + key}, now)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range append(evs, evs2...) {
			body, err := events.Encode(e)
			if err != nil {
				b.Fatal(err)
			}
			enc.Add(body)
			total++
		}
		if enc.Len() >= 100 {
			flush()
		}
	}
	if enc.Len() > 0 {
		flush()
	}
	b.ResetTimer()
	cpu := processCPU()
	var first, firstSys time.Duration
	var faults int64
	for b.Loop() {
		start, startFaults, startSys := time.Now(), minorFaults(), systemCPU()
		got, _, err := projections.Rebuild(ctx, js, projections.ReplayStop{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if got.EventsApplied() != uint64(total) {
			b.Fatalf("replayed %d events, want %d", got.EventsApplied(), total)
		}
		if first == 0 {
			first, faults, firstSys = time.Since(start), minorFaults()-startFaults, systemCPU()-startSys
		}
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// The first replay is reported apart: it grows the heap into memory the
	// process has not touched before, and the kernel's page faults for it
	// are part of its time, as they are of a restart's; later replays reuse
	// memory the collector freed. (The log's generation above ran first, so
	// even the first is not as cold as a new process.)
	b.ReportMetric(float64(total)/first.Seconds(), "first-events/s")
	b.ReportMetric(float64(faults), "first-page-faults")
	b.ReportMetric(firstSys.Seconds(), "first-system-s")
	// CPU per event (the process's: the embedded server's fetch, decoding,
	// applying, the collector) is what a shared machine's load does not
	// change much; two cores give at most 2s / this of throughput.
	b.ReportMetric(float64(processCPU()-cpu)/float64(total)/float64(b.N), "cpu-ns/event")
}

// usage is this process's resource usage so far (zero if it cannot be
// read).
func usage() syscall.Rusage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru
}

// minorFaults is the page faults this process has taken that needed no
// disk: on this benchmark, the kernel mapping fresh heap memory.
func minorFaults() int64 { return usage().Minflt }

// hugePages is the kernel's counts, machine-wide, of faults that mapped a
// huge page, of faults that wanted one and fell back to small pages, and
// of stalls in direct compaction, which a fault in memory advised huge
// (the kernel's defrag setting "madvise") may wait for when free memory
// is fragmented. ok is false where /proc/vmstat cannot be read.
type hugePages struct {
	ok                      bool
	alloc, fallback, stalls int64
}

// hugePageCounts reads hugePages from /proc/vmstat.
func hugePageCounts() hugePages {
	b, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		return hugePages{}
	}
	h := hugePages{ok: true}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch name {
		case "thp_fault_alloc":
			h.alloc = n
		case "thp_fault_fallback":
			h.fallback = n
		case "compact_stall":
			h.stalls = n
		}
	}
	return h
}

// minus is the counts since before.
func (h hugePages) minus(before hugePages) hugePages {
	return hugePages{ok: h.ok && before.ok, alloc: h.alloc - before.alloc, fallback: h.fallback - before.fallback,
		stalls: h.stalls - before.stalls}
}

func (h hugePages) String() string {
	if !h.ok {
		return "unknown"
	}
	return fmt.Sprintf("%d mapped, %d fell back, %d compaction stalls", h.alloc, h.fallback, h.stalls)
}

// systemCPU is the CPU time the kernel has spent for this process.
func systemCPU() time.Duration {
	ru := usage()
	return time.Duration(ru.Stime.Nano())
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	ru := usage()
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecodeRequestClient decodes the bodies the Go client sends in
// the bench (decode_fast_test.go), which the fast decoder takes.
func BenchmarkDecodeRequestClient(b *testing.B) {
	for _, c := range []struct {
		name string
		op   events.Op
		body []byte
	}{
		{"preflight", events.OpPreflight, clientPreflightBench},
		{"record", events.OpRecord, clientRecordBench},
	} {
		subj := events.RequestSubject(c.op, "user_123")
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if _, err := projections.DecodeRequest(subj, c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The Go client's bench bodies (ledger.MarshalRequest), as in
// decode_fast_test.go; repeated here so the benchmark also runs on a tree
// without that file, for before/after figures.
var (
	clientPreflightBench = []byte(`{"agent_id":"research_agent","estimated_units":10,"idempotency_key":"0190f2c4-8e2a-7c3b-9d1e-2f4a5b6c7d8e"}`)
	clientRecordBench    = []byte(`{"agent_id":"research_agent","units":7,"reservation_id":"01JD7K3V9Q4W8X2Y5Z6A7B8C9D","idempotency_key":"0190f2c4-8e2a-7c3b-9d1e-2f4a5b6c7d8f"}`)
)
