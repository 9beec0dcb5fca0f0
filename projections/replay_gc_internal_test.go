package projections

import (
	"runtime/debug"
	"testing"
)

// The percent a replay sets lets the heap grow by the headroom, never by
// less than the process's own percent allows, and leaves a collector
// that is off alone.
func TestReplayGCPercent(t *testing.T) {
	for _, tc := range []struct {
		own  int
		live uint64
		want int
	}{
		{100, 0, ReplayGCHeadroomBytes * 100 / (4 << 20)},
		{100, 128 << 20, 400},
		{100, ReplayGCHeadroomBytes, 100},
		{100, 4 * ReplayGCHeadroomBytes, 100},
		{800, 128 << 20, 800},
		{-1, 128 << 20, -1},
	} {
		if got := replayGCPercent(tc.own, tc.live); got != tc.want {
			t.Errorf("replayGCPercent(%d, %d) = %d, want %d", tc.own, tc.live, got, tc.want)
		}
	}
}

// The process's percent comes back when the last of overlapping replays
// ends, not before.
func TestReplayGCPercentRestored(t *testing.T) {
	own := debug.SetGCPercent(150)
	defer debug.SetGCPercent(own)
	_, done1 := raiseGCForReplay()
	_, done2 := raiseGCForReplay()
	done1()
	if p := debug.SetGCPercent(-1); p < 150 {
		t.Errorf("GC percent %d while a replay still runs, want at least 150", p)
	} else {
		debug.SetGCPercent(p)
	}
	done2()
	if p := debug.SetGCPercent(150); p != 150 {
		t.Errorf("GC percent %d after the replays, want 150", p)
	}
}
