package ledger

import (
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
