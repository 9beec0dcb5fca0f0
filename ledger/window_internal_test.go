package ledger

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// A key put twice (a hold that expired, then was recorded late) must still
// be forgotten: once its first put is older than the window.
func TestWindowForgetsAKeyPutTwice(t *testing.T) {
	w := newWindow[int](10)
	t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	w.put("hold", 1, t0)
	w.put("hold", 2, t0.Add(time.Hour))
	if v, ok := w.get("hold"); !ok || v != 2 {
		t.Fatalf("get = %v %v, want 2", v, ok)
	}
	w.put("other", 3, t0.Add(IdempotencyWindow+30*time.Minute))
	if _, ok := w.get("hold"); ok {
		t.Fatalf("a key put twice was never forgotten (window holds %d keys)", w.len())
	}
	if w.len() != 1 {
		t.Fatalf("window holds %d keys, want 1", w.len())
	}
}

// The FIFO keeps entries in order across blocks as they are pushed and
// popped in waves, numbers them without a gap, drops the blocks it has
// read, and holds no entry it popped.
func TestEntryQueueAcrossBlocks(t *testing.T) {
	var q entryQueue[int]
	next, first := 0, 0 // the next entry to push, the first one live
	push := func(n int) {
		for range n {
			if seq := q.push(windowEntry[int]{key: strconv.Itoa(next), v: next}); seq != uint64(next) {
				t.Fatalf("pushed %d as seq %d", next, seq)
			}
			next++
		}
	}
	pop := func(n int) {
		for range n {
			if q.firstSeq() != uint64(first) || q.first().key != strconv.Itoa(first) {
				t.Fatalf("first is %q at seq %d, want %d", q.first().key, q.firstSeq(), first)
			}
			q.pop()
			first++
		}
	}
	check := func() {
		t.Helper()
		if q.len() != next-first {
			t.Fatalf("len %d, want %d", q.len(), next-first)
		}
		want := first
		for e := range q.all {
			if e.v != want || q.at(uint64(want)) != e {
				t.Fatalf("all yields %d, want %d at its seq", e.v, want)
			}
			want++
		}
		if want != next {
			t.Fatalf("all yielded up to %d, want %d", want, next)
		}
		if blocks := (q.n + q.head + windowBlockKeys - 1) / windowBlockKeys; q.n > 0 && len(q.blocks) != blocks {
			t.Fatalf("%d blocks for %d entries from %d, want %d", len(q.blocks), q.n, q.head, blocks)
		}
		for _, b := range q.blocks[:min(1, len(q.blocks))] {
			for i := range q.head {
				if b[i].key != "" {
					t.Fatalf("a popped entry is still held at %d", i)
				}
			}
		}
	}
	for _, step := range []struct{ push, pop int }{
		{1, 1}, {windowBlockKeys, 0}, {0, windowBlockKeys - 1}, {3, 2}, {2*windowBlockKeys + 5, windowBlockKeys},
		{0, windowBlockKeys + 7}, {windowBlockKeys, 0}, {0, 0},
	} {
		push(step.push)
		check()
		pop(step.pop)
		check()
	}
	pop(q.len())
	check()
	if len(q.blocks) != 0 {
		t.Fatalf("an empty queue holds %d blocks", len(q.blocks))
	}
	push(windowBlockKeys + 1) // numbering goes on after the queue emptied
	check()
}

// A window whose keys share hashes (all of them among four, here) finds,
// replaces and forgets exactly what a plain map with a FIFO would, and
// its snapshot restores to the same window.
func TestWindowWithCollidingHashes(t *testing.T) {
	for _, mask := range []uint64{0, 3, ^uint64(0)} {
		windowHashMask = mask
		t.Cleanup(func() { windowHashMask = ^uint64(0) })
		const max = 300
		w := newWindow[int](max)
		ref := map[string]int{}
		type put struct {
			key string
			at  time.Time
		}
		var fifo []put // ref's keys, first put first
		rng := rand.New(rand.NewPCG(7, mask))
		t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
		at := t0
		byTime, byMax := 0, 0
		refPut := func(key string, v int, at time.Time) {
			for len(fifo) > 0 && fifo[0].at.Before(at.Add(-IdempotencyWindow)) {
				delete(ref, fifo[0].key)
				fifo = fifo[1:]
				byTime++
			}
			if _, ok := ref[key]; !ok {
				fifo = append(fifo, put{key, at})
			}
			ref[key] = v
			for len(fifo) > max {
				delete(ref, fifo[0].key)
				fifo = fifo[1:]
				byMax++
			}
		}
		for i := range 20_000 {
			key := "k" + strconv.Itoa(rng.IntN(2_000))
			step := IdempotencyWindow / 400 // fast: max binds
			if i/2_000%2 == 1 {
				step = IdempotencyWindow / 50 // slow: time forgets
			}
			at = at.Add(time.Duration(rng.IntN(int(step))))
			refPut(key, i, at)
			w.put(key, i, at)
			if w.len() != len(ref) {
				t.Fatalf("mask %x, put %d: window holds %d keys, want %d", mask, i, w.len(), len(ref))
			}
			probe := "k" + strconv.Itoa(rng.IntN(2_000))
			got, ok := w.get(probe)
			if want, wok := ref[probe]; ok != wok || got != want {
				t.Fatalf("mask %x, put %d: get(%q) = %d %v, want %d %v", mask, i, probe, got, ok, want, wok)
			}
		}
		if byTime < 1000 || byMax < 1000 {
			t.Fatalf("mask %x: %d keys forgotten by time and %d by max; the test wants both", mask, byTime, byMax)
		}
		checkWindowChains(t, &w)

		e := &snapWriter{}
		if err := writeWindow(e, &w, func(e *snapWriter, _ string, v int) error { e.uvarint(uint64(v)); return nil }); err != nil {
			t.Fatal(err)
		}
		d := &snapReader{r: bufio.NewReader(bytes.NewReader(e.b))}
		r, err := readWindow(d, max, func(d *snapReader, _ string) (int, error) { return int(d.uvarint()), d.err })
		if err != nil {
			t.Fatalf("mask %x: restoring: %v", mask, err)
		}
		checkWindowHolds(t, &r, ref, fmt.Sprintf("mask %x, restored", mask))
		for i := range 1_000 { // and it goes on forgetting in order
			at = at.Add(time.Duration(rng.IntN(int(IdempotencyWindow / 400))))
			refPut("new"+strconv.Itoa(i), -i, at)
			r.put("new"+strconv.Itoa(i), -i, at)
		}
		checkWindowHolds(t, &r, ref, fmt.Sprintf("mask %x, restored and put to", mask))
	}
}

// checkWindowHolds checks that w holds the keys and values of ref, and
// nothing else, on chains that keep the invariant.
func checkWindowHolds(t *testing.T, w *window[int], ref map[string]int, what string) {
	t.Helper()
	checkWindowChains(t, w)
	if w.len() != len(ref) {
		t.Fatalf("%s: %d keys, want %d", what, w.len(), len(ref))
	}
	for k, want := range ref {
		if got, ok := w.get(k); !ok || got != want {
			t.Fatalf("%s: get(%q) = %d %v, want %d", what, k, got, ok, want)
		}
	}
}

// checkWindowChains checks the window's invariant: every live entry is on
// the chain of its hash once, chains run newest first, and they hold
// nothing else.
func checkWindowChains(t *testing.T, w *window[int]) {
	t.Helper()
	seen := 0
	for h, p := range w.index.all {
		for last := uint64(1 << 63); p != 0; {
			seq := p - 1
			if seq < w.order.firstSeq() || seq >= w.order.next || seq >= last {
				t.Fatalf("chain of %x holds seq %d (live %d to %d, after %d)", h, seq, w.order.firstSeq(), w.order.next, last)
			}
			if e := w.order.at(seq); e.hash != h {
				t.Fatalf("chain of %x holds an entry of hash %x", h, e.hash)
			}
			seen++
			last, p = seq, w.order.at(seq).prev
		}
	}
	if seen != w.len() {
		t.Fatalf("chains hold %d entries, the FIFO %d", seen, w.len())
	}
}

// BenchmarkWindowChurn is a remembered-request window at a steady
// million keys (a busy day): each put forgets the oldest key, as most
// puts of a replay do.
func BenchmarkWindowChurn(b *testing.B) {
	const keys = 1_000_000
	w := newWindow[idemEntry](IdempotencyKeysMax)
	t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	step := IdempotencyWindow / keys
	names := make([]string, keys+b.N) // made before, as a decoder would
	for i := range names {
		names[i] = "customer-" + strconv.Itoa(i%100_000) + "/p" + strconv.Itoa(i)
	}
	for i := range keys {
		w.put(names[i], idemEntry{eventID: names[i]}, t0.Add(time.Duration(i)*step))
	}
	b.ResetTimer()
	for i := range b.N {
		w.put(names[keys+i], idemEntry{eventID: names[i]}, t0.Add(time.Duration(keys+i)*step))
	}
	if w.len() > keys+1 { // and the key put exactly a window before the last
		b.Fatalf("window holds %d keys, want at most %d", w.len(), keys+1)
	}
}

// A window that skips a replay's puts (windowSkip) must, whenever it says
// it is exact, hold what a window given every put holds: the same keys, in
// the same order, with the same times and values. Random logs of puts
// with keys put again within and past the window, windows small enough to
// reach their bound, logs whose last day has no put, and, in a quarter of
// them, puts out of time order; each log is put into both windows.
func TestWindowSkipEqualsEveryPut(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 6))
	t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	var exact, unsure, skippedExact, disorderedExact int
	for round := range 3000 {
		max := 4 + rng.IntN(60)
		if rng.IntN(4) == 0 {
			max = 1 << 20 // never reached
		}
		keys := 2 + rng.IntN(200)
		n := 1 + rng.IntN(400)
		step := time.Duration(1+rng.IntN(240)) * time.Minute // 0.5 to 120 puts a window... and more
		type put struct {
			key string
			at  time.Time
			v   int
		}
		puts := make([]put, n)
		at, disorder, disordered := t0, rng.IntN(4) == 0, false
		for i := range puts {
			at = at.Add(time.Duration(rng.Int64N(int64(2 * step))))
			if disorder && rng.IntN(30) == 0 {
				at = at.Add(-time.Duration(rng.Int64N(int64(2 * IdempotencyWindow)))) // out of order
				disordered = true
			}
			if rng.IntN(200) == 0 {
				at = at.Add(IdempotencyWindow) // a quiet day
			}
			puts[i] = put{key: "k" + strconv.Itoa(rng.IntN(keys)), at: at, v: i}
		}
		last := puts[n-1].at
		if rng.IntN(5) == 0 {
			last = last.Add(time.Duration(rng.Int64N(int64(3 * IdempotencyWindow)))) // the log ends later, in events no window puts
		}
		every, skipping := newWindow[int](max), newWindow[int](max)
		skipping.skipReplayUntil(last.Add(-ReplaySkipUntilAgo))
		var skipped int
		for _, p := range puts {
			if skipping.skips(p.at) {
				skipped++
			}
			every.put(p.key, p.v, p.at)
			skipping.put(p.key, p.v, p.at)
		}
		if !skipping.replaySkipExact() {
			unsure++
			continue
		}
		exact++
		if skipped > 0 {
			skippedExact++
			if disordered {
				disorderedExact++
			}
		}
		what := fmt.Sprintf("round %d (max %d, %d keys, %d puts, %d skipped)", round, max, keys, n, skipped)
		if skipping.len() != every.len() {
			t.Fatalf("%s: skipping window holds %d keys, every put %d", what, skipping.len(), every.len())
		}
		var want []windowEntry[int]
		for e := range every.order.all {
			want = append(want, *e)
		}
		i := 0
		for e := range skipping.order.all {
			if e.key != want[i].key || !e.at.Equal(want[i].at) || e.v != want[i].v {
				t.Fatalf("%s: entry %d is %s at %s = %d, want %s at %s = %d", what, i,
					e.key, e.at, e.v, want[i].key, want[i].at, want[i].v)
			}
			i++
		}
		for k := range keys {
			key := "k" + strconv.Itoa(k)
			a, aok := skipping.get(key)
			b, bok := every.get(key)
			if a != b || aok != bok {
				t.Fatalf("%s: get(%s) = %d %v, want %d %v", what, key, a, aok, b, bok)
			}
		}
		// After the replay the window puts as usual.
		later := last.Add(time.Minute)
		skipping.put("after", -1, later)
		every.put("after", -1, later)
		if skipping.len() != every.len() || skipping.skip != nil {
			t.Fatalf("%s: a put after the replay left %d keys against %d (still skipping: %v)",
				what, skipping.len(), every.len(), skipping.skip != nil)
		}
	}
	t.Logf("%d rounds exact (%d of them with puts skipped, %d of those out of order), %d unsure",
		exact, skippedExact, disorderedExact, unsure)
	if skippedExact < 300 || disorderedExact < 50 || unsure < 100 {
		t.Fatalf("the rounds did not exercise every outcome: %d exact with puts skipped (%d out of order), %d unsure",
			skippedExact, disorderedExact, unsure)
	}
}

// A skipped key put after a younger skipped one stays in a window given
// every put until the younger one goes (the window forgets from its
// oldest put, in order): a kept put of it then finds it. Skipping keeps
// it by the latest put time so far, not its own, so it is tracked, and
// that kept put makes the skipping unsure.
func TestWindowSkipOutOfOrder(t *testing.T) {
	t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	until := t0.Add(3 * IdempotencyWindow)
	puts := []struct {
		key string
		at  time.Time
	}{
		{"young", until.Add(-time.Hour)},                     // tracked
		{"old", until.Add(-IdempotencyWindow - time.Minute)}, // untracked, out of order
		{"kept", until.Add(time.Minute)},                     // "young" still live: "old" stays behind it
		{"old", until.Add(2 * time.Minute)},                  // found in the window given every put, and kept in place
		{"last", until.Add(23*time.Hour + time.Minute)},      // forgets "young", then "old" behind it
	}
	every, skipping := newWindow[int](100), newWindow[int](100)
	skipping.skipReplayUntil(until)
	for i, p := range puts {
		every.put(p.key, i, p.at)
		skipping.put(p.key, i, p.at)
	}
	if _, ok := every.get("old"); ok || every.len() != 2 {
		t.Fatalf("the window given every put holds %d keys (old: %v), want 2 (kept, last)", every.len(), ok)
	}
	if skipping.replaySkipExact() {
		t.Fatalf("skipping out of order says it is exact, holding %d keys against %d", skipping.len(), every.len())
	}
}
