package bench

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"testing"
	"time"
)

// soakLong runs the two-minute soak and holds it to its verdict
// (BENCHMARKS.md, "Soak"; docs/operating.md):
//
//	go test ./bench -run TestSoak -v -timeout 10m -args -soak.long
//
// Without it the default suite runs a short soak that shows every kind of
// traffic runs, snapshots are taken and holds expire, without a verdict.
var soakLong = flag.Bool("soak.long", false, "run the two-minute soak and require its verdict to pass")

// Soak test lengths.
const (
	soakLongDuration     = 2 * time.Minute
	soakLongSampleEvery  = 5 * time.Second
	soakShortDuration    = 8 * time.Second
	soakShortSampleEvery = 500 * time.Millisecond
	// soakShortSnapshotEvents: several snapshots in the short soak too.
	soakShortSnapshotEvents = 2000
)

func TestSoak(t *testing.T) {
	sc := SoakConfig{Duration: soakShortDuration, SampleEvery: soakShortSampleEvery, DataDir: t.TempDir(), SnapshotEventsEvery: soakShortSnapshotEvents}
	if *soakLong {
		sc = SoakConfig{Duration: soakLongDuration, SampleEvery: soakLongSampleEvery, DataDir: t.TempDir()}
	}
	rep, err := RunSoak(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	PrintSoak(&out, rep)
	t.Log("\n" + out.String())
	if len(rep.Errors) > 0 {
		t.Errorf("errors by code: %v, want none", rep.Errors)
	}
	for _, m := range soakMix {
		if rep.Iterations[m.kind] == 0 {
			t.Errorf("no %s iteration ran", m.kind)
		}
	}
	if got, want := len(rep.Samples), int(sc.Duration/sc.SampleEvery); got < want-1 {
		t.Errorf("%d samples, want %d", got, want)
	}
	last := rep.Samples[len(rep.Samples)-1]
	if last.Snapshots == 0 {
		t.Errorf("no snapshot stored after %d events, want one every %d", last.Events, cmp.Or(sc.SnapshotEventsEvery, SoakSnapshotEventsEvery))
	}
	// Holds left to expire that were not swept would pile up: one in
	// SoakExpire's share of every iteration.
	if expire := rep.Iterations[SoakExpire]; last.OpenHolds >= expire {
		t.Errorf("%d holds open after %d left to expire, want fewer (the sweep expires them)", last.OpenHolds, expire)
	}
	if *soakLong && !rep.Verdict.OK() {
		t.Errorf("verdict failed: %+v", rep.Verdict)
	}
}

// TestJudgeSoak holds the verdict's rule to a few series of samples.
func TestJudgeSoak(t *testing.T) {
	const mb = 1 << 20
	series := func(heap func(k int) uint64, goroutines func(k int) int, arrived func(k int) uint64) []SoakSample {
		out := make([]SoakSample, 20)
		for k := range out {
			out[k] = SoakSample{At: time.Duration(k+1) * time.Second, HeapBytes: heap(k), Goroutines: goroutines(k), Arrived: arrived(k)}
		}
		return out
	}
	flatG := func(int) int { return 100 }
	none := func(int) uint64 { return 0 }
	tests := []struct {
		name        string
		samples     []SoakSample
		heapOK, gOK bool
	}{
		{"flat", series(func(k int) uint64 { return 100*mb + uint64(k%3)*mb }, flatG, none), true, true},
		{"warm-up growth is not judged", series(func(k int) uint64 { return uint64(min(k, 4)) * 50 * mb }, flatG, none), true, true},
		{"a block's cache held at some samples", series(func(k int) uint64 { return 100*mb + uint64(k*7%3/2)*SoakHeapSlackBytes }, flatG, none), true, true},
		{"steady leak", series(func(k int) uint64 { return 100*mb + uint64(k)*4*mb }, flatG, none), false, true},
		{"growth explained by arrived customers", series(func(k int) uint64 { return 100*mb + uint64(k)*1000*SoakCustomerBytesAllowance }, flatG, func(k int) uint64 { return uint64(k) * 1000 }), true, true},
		{"growth beyond arrived customers", series(func(k int) uint64 { return 100*mb + uint64(k)*3000*SoakCustomerBytesAllowance }, flatG, func(k int) uint64 { return uint64(k) * 1000 }), false, true},
		{"goroutines creep", series(func(int) uint64 { return 100 * mb }, func(k int) int { return 100 + 2*k }, none), true, false},
		{"goroutines wobble", series(func(int) uint64 { return 100 * mb }, func(k int) int { return 100 + k%SoakGoroutineSpreadMax }, none), true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := JudgeSoak(tc.samples, 5*time.Second)
			if v.HeapOK != tc.heapOK || v.GoroutinesOK != tc.gOK {
				t.Errorf("heap ok %v, goroutines ok %v, want %v, %v (%+v)", v.HeapOK, v.GoroutinesOK, tc.heapOK, tc.gOK, v)
			}
		})
	}
	if v := JudgeSoak(nil, time.Second); v.OK() || v.Note == "" {
		t.Errorf("no samples: %+v, want not OK with a note", v)
	}
}
