package projections

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"

	"github.com/agentbill/agentbill/ledger"
)

// The collector during a replay. A replay allocates the decoded commits,
// garbage at once, while the state it builds is the live heap; at the
// runtime's default (GOGC=100) the collector marks that whole state again
// every time the heap doubles, which in BenchmarkRebuild's profile was a
// fifth to a third of replay's CPU. While any replay runs, the heap may
// instead grow by up to ReplayGCHeadroomBytes past the live heap before a
// collection, but never by less than the default allows: the GC percent
// is raised to max(the process's own, 100 × headroom / live heap), checked
// every replayGCTuneEvents events, and put back when the last replay ends.
// The peak heap during a replay is therefore at most
// live + max(live, ReplayGCHeadroomBytes); a memory limit (GOMEMLIMIT)
// still holds, since the runtime honours it whatever the percent. The
// writer's restore reads its snapshot under the same policy (checked
// every snapshotGCTuneBytes read), counted as a replay. The first replay
// or restore in the process also asks the kernel for huge pages in the
// heap memory it grows into (ledger.AdviseHeap).

// ReplayGCHeadroomBytes bounds the heap growth between two collections
// that a replay allows beyond the default (see above).
const ReplayGCHeadroomBytes = 512 << 20

// replayGCTuneEvents is how often, in events applied, a replay checks the
// live heap (a read of runtime/metrics, a few microseconds).
const replayGCTuneEvents = 50_000

// replayGC is the process-wide GC percent that replays share.
var replayGC struct {
	sync.Mutex
	running int // replays running
	saved   int // the percent before the first of them
}

// raiseGCForReplay starts a replay's GC policy; call the returned tune
// every replayGCTuneEvents events and done when the replay ends.
func raiseGCForReplay() (tune, done func()) {
	ledger.AdviseHeap() // once in the process: the heap it builds in huge pages
	replayGC.Lock()
	if replayGC.running == 0 {
		replayGC.saved = debug.SetGCPercent(100) // read it; set below
		debug.SetGCPercent(replayGC.saved)
	}
	replayGC.running++
	replayGC.Unlock()
	tune = func() {
		replayGC.Lock()
		defer replayGC.Unlock()
		if p := replayGCPercent(replayGC.saved, liveHeapBytes()); p != replayGC.saved {
			debug.SetGCPercent(p)
		}
	}
	done = func() {
		replayGC.Lock()
		defer replayGC.Unlock()
		if replayGC.running--; replayGC.running == 0 {
			debug.SetGCPercent(replayGC.saved)
		}
	}
	tune()
	return tune, done
}

// replayGCPercent is the GC percent that lets a heap of live bytes grow by
// ReplayGCHeadroomBytes, or the process's own percent if that allows more
// (or the collector is off: own < 0).
func replayGCPercent(own int, live uint64) int {
	if own < 0 {
		return own
	}
	live = max(live, 4<<20) // the runtime's smallest heap target
	return max(own, int(uint64(ReplayGCHeadroomBytes)*100/live))
}

// liveHeapBytes is the heap the last collection found live.
func liveHeapBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
