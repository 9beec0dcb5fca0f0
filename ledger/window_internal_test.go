package ledger

import (
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

// The FIFO keeps keys in order across blocks as they are pushed and
// popped in waves, drops the blocks it has read, and holds no key it
// popped.
func TestKeyQueueAcrossBlocks(t *testing.T) {
	var q keyQueue
	t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	next, first := 0, 0 // the next key to push, the first one live
	push := func(n int) {
		for range n {
			q.push(windowKey{key: strconv.Itoa(next), at: t0.Add(time.Duration(next))})
			next++
		}
	}
	pop := func(n int) {
		for range n {
			if k := q.pop(); k.key != strconv.Itoa(first) {
				t.Fatalf("popped %q, want %d", k.key, first)
			}
			first++
		}
	}
	check := func() {
		t.Helper()
		if q.len() != next-first {
			t.Fatalf("len %d, want %d", q.len(), next-first)
		}
		want := first
		for k := range q.all {
			if k.key != strconv.Itoa(want) {
				t.Fatalf("all yields %q, want %d", k.key, want)
			}
			want++
		}
		if want != next {
			t.Fatalf("all yielded up to %d, want %d", want, next)
		}
		if blocks := (q.n + q.head + windowBlockKeys - 1) / windowBlockKeys; q.n > 0 && len(q.blocks) != blocks {
			t.Fatalf("%d blocks for %d keys from %d, want %d", len(q.blocks), q.n, q.head, blocks)
		}
		for _, b := range q.blocks[:min(1, len(q.blocks))] {
			for i := range q.head {
				if b[i].key != "" {
					t.Fatalf("a popped key is still held at %d", i)
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
	push(1)
	check()
}
