package ledger

import (
	"hash/maphash"
	"time"
)

// window remembers keys for IdempotencyWindow of event time, and at most
// max of them, forgetting the oldest first. Insertion order is event order,
// so the live writer and a replay forget the same keys.
//
// The entries live in order, a FIFO numbered by a sequence that only
// grows; index finds them by a 64-bit hash of the key. Forgetting the
// oldest entry, which a busy window does once for every put, then touches
// the FIFO's head and one slot of index, not the key's bytes: a window of
// a million keys is far larger than the processor's caches, and hashing
// and comparing a cold key again cost two misses of memory each time
// (a map keyed by the string did that; `BenchmarkWindowChurn`). index
// (hashIndex) reads one slot of memory for a hash where a Go map read
// two, and its slots hold no pointers, so the collector does not scan
// them.
//
// Two keys may share a hash. index then holds the newest of them, and
// each entry links to the next older live entry with its hash (prev);
// the oldest live entry is always last in its chain.
//
// Invariant: every live entry is on exactly one chain, the one of its
// hash, and every chain holds only live entries, newest first.
type window[V any] struct {
	index    hashIndex // hash -> 1 + seq of the newest live entry with it
	order    entryQueue[V]
	seed     maphash.Seed
	max      int
	hashMask uint64 // windowHashMask when made

	skip       *windowSkip // a replay's skipping of puts its end forgets; nil if none
	skipUnsure bool        // a skipping that ended may have changed the window
	skipped    int         // puts skipped, for ReplaySkipped
}

type windowEntry[V any] struct {
	key  string
	at   time.Time // of its first put
	hash uint64
	prev uint64 // 1 + seq of the next older live entry with this hash; 0: none
	v    V
}

func newWindow[V any](max int) window[V] {
	return window[V]{seed: maphash.MakeSeed(), max: max, hashMask: windowHashMask}
}

// windowHashMask is the hashMask of new windows: all ones, but for tests
// that make keys collide.
var windowHashMask = ^uint64(0)

func (w *window[V]) hash(key string) uint64 { return maphash.String(w.seed, key) & w.hashMask }

// find returns the live entry with key, or nil.
func (w *window[V]) find(key string, h uint64) *windowEntry[V] {
	return w.chained(key, w.index.get(h))
}

// chained returns the live entry with key on the chain from p (an index
// value), or nil.
func (w *window[V]) chained(key string, p uint64) *windowEntry[V] {
	for p != 0 {
		e := w.order.at(p - 1)
		if e.key == key {
			return e
		}
		p = e.prev
	}
	return nil
}

func (w *window[V]) get(key string) (V, bool) {
	if e := w.find(key, w.hash(key)); e != nil {
		return e.v, true
	}
	var zero V
	return zero, false
}

func (w *window[V]) put(key string, v V, at time.Time) {
	if w.skip != nil {
		if w.skips(at) {
			w.skipReplay(key, at)
			return
		}
		w.keepReplay(key, at)
	}
	// Hashed first, so that reading a cold key's bytes can overlap
	// forgetting's misses.
	h := w.hash(key)
	w.forget(at)
	head := w.index.get(h)
	if e := w.chained(key, head); e != nil {
		// A key put again (a hold that expired, then was recorded late)
		// keeps its place and time in the FIFO, so it is forgotten when
		// its first put leaves the window.
		e.v = v
		return
	}
	seq := w.order.push(windowEntry[V]{key: key, at: at, hash: h, prev: head, v: v})
	w.index.set(h, seq+1)
	for w.order.len() > w.max {
		w.pop()
	}
}

// forget drops entries older than IdempotencyWindow before now.
func (w *window[V]) forget(now time.Time) {
	cut := now.Add(-IdempotencyWindow)
	for w.order.len() > 0 && w.order.first().at.Before(cut) {
		w.pop()
	}
}

// pop forgets the oldest entry. Being the oldest, it is the last of its
// hash's chain: either the chain's only entry, or the one its next newer
// entry links to.
func (w *window[V]) pop() {
	seq := w.order.firstSeq()
	h := w.order.first().hash
	if p := w.index.delIf(h, seq+1); p != seq+1 {
		e := w.order.at(p - 1)
		for e.prev != seq+1 {
			e = w.order.at(e.prev - 1)
		}
		e.prev = 0
	}
	w.order.pop()
}

func (w *window[V]) len() int { return w.order.len() }

// windowBlockKeys is how many entries a block of a window's FIFO holds.
// The FIFO grows and shrinks a block at a time, so a window that grows to
// a million keys (a replay, a busy day) never copies the entries it holds,
// as a doubling slice would, and one that empties frees its blocks.
const windowBlockKeys = 4096

// entryQueue is a window's FIFO in blocks of windowBlockKeys: entries are
// pushed to the last block and popped from the first, at head. Each entry
// has a sequence number, one more than the entry pushed before it.
type entryQueue[V any] struct {
	blocks [][]windowEntry[V]
	head   int    // the first live entry's index in blocks[0]
	n      int    // live entries
	base   uint64 // seq of blocks[0][0]
	next   uint64 // seq of the next push
	// made, while a snapshot is read into the queue, makes its blocks
	// ahead (prefault.go); nil otherwise.
	made *prefaulter[windowEntry[V]]
}

func (q *entryQueue[V]) len() int { return q.n }

// first returns the oldest live entry; the queue must not be empty.
func (q *entryQueue[V]) first() *windowEntry[V] { return &q.blocks[0][q.head] }

func (q *entryQueue[V]) firstSeq() uint64 { return q.base + uint64(q.head) }

// at returns the live entry numbered seq.
func (q *entryQueue[V]) at(seq uint64) *windowEntry[V] {
	off := seq - q.base
	return &q.blocks[off/windowBlockKeys][off%windowBlockKeys]
}

// push appends e and returns its sequence number.
func (q *entryQueue[V]) push(e windowEntry[V]) uint64 {
	if len(q.blocks) == 0 {
		q.base, q.head = q.next, 0
	}
	if len(q.blocks) == 0 || len(q.blocks[len(q.blocks)-1]) == windowBlockKeys {
		var b []windowEntry[V]
		if q.made != nil {
			b = q.made.next()[:0]
		} else {
			b = make([]windowEntry[V], 0, windowBlockKeys)
		}
		q.blocks = append(q.blocks, b)
	}
	last := &q.blocks[len(q.blocks)-1]
	*last = append(*last, e)
	q.n++
	q.next++
	return q.next - 1
}

// pop removes the first entry; the queue must not be empty.
func (q *entryQueue[V]) pop() {
	b := q.blocks[0]
	b[q.head] = windowEntry[V]{} // its key and value are no longer held here
	q.head++
	q.n--
	if q.head == len(b) && (len(b) == windowBlockKeys || q.n == 0) {
		// A block wholly read: drop it (the last one only when empty,
		// and then a push starts a new one).
		q.blocks[0] = nil
		q.blocks = q.blocks[1:]
		q.base += uint64(len(b))
		q.head = 0
	}
}

// all yields the live entries, first to last.
func (q *entryQueue[V]) all(yield func(*windowEntry[V]) bool) {
	for i, b := range q.blocks {
		if i == 0 {
			b = b[q.head:]
		}
		for j := range b {
			if !yield(&b[j]) {
				return
			}
		}
	}
}
