package ledger

import "math/bits"

// hashIndex is a window's index: from a key's 64-bit hash to 1 + the
// sequence number of the newest live entry with that hash (0: none).
//
// A window of a million keys is far larger than the processor's caches,
// so what an index costs is the lines of memory it reads for each find,
// put and forget. A Go map reads a group's control word and then its slot
// in another line; here a lookup reads one slot of (hash, value), and the
// next ones in the same line while it probes (open addressing, linear
// probing; a value of 0 is an empty slot, as no live entry has it).
//
// Growing must not stall the writer: the index is split into tables of at
// most hashTableSlotsMax slots, picked by the top bits of the mixed hash
// (extendible hashing). A full table splits in two by its next bit,
// rehashing its own entries only, and the directory of tables doubles
// (pointers only) when a split needs one more bit than it has. Nothing is ever merged: a window
// that shrinks keeps its tables, as a Go map keeps its memory.
type hashIndex struct {
	dir   []*hashTable // 1 << depth tables, by the top depth bits of the mixed hash
	depth uint
	n     int
}

type hashTable struct {
	slots []indexSlot // a power of two
	n     int
	depth uint // the top bits all its mixed hashes share; dir holds it 1 << (index.depth - depth) times
	shift uint // 64 - log2(len(slots)): a slot's home is the mixed hash's bits after those depth
}

type indexSlot struct{ h, v uint64 }

const (
	// hashTableSlotsMin is a new table's size.
	hashTableSlotsMin = 8
	// hashTableSlotsMax bounds a table's size: past three quarters of it a
	// table splits instead of doubling, so a put rehashes at most this
	// many slots' entries (64 KiB: microseconds, in the processor's cache).
	hashTableSlotsMax = 4096
	// hashIndexDepthMax bounds the directory (1 << 24 tables, far more
	// than a window's bounds need); a table past it doubles instead.
	hashIndexDepthMax = 24
)

// holds returns how many hashes a table of size slots holds before it
// grows or splits: three quarters, so that a lookup's run of full slots
// stays short.
func holds(size int) int { return size * 3 / 4 }

// mix spreads a hash's bits over the top ones (an odd multiplier: one
// mixed hash for each hash), where the directory and a table's home slots
// read them, so hashes that differ only in their low bits (a test
// window's masked ones) spread over tables and slots as random ones do.
func mix(h uint64) uint64 { return h * 0x9E3779B97F4A7C15 }

// home returns the slot where a lookup of h starts: the mixed hash's bits
// after the ones every hash of t shares.
func (t *hashTable) home(h uint64) uint64 { return (mix(h) << t.depth) >> t.shift }

// newHashIndex returns an index sized for n hashes, with tables that hold
// them without splitting or growing.
func newHashIndex(n int) hashIndex {
	var depth uint
	for depth < hashIndexDepthMax && n > (1<<depth)*hashTableSlotsMax/2 {
		depth++
	}
	size := hashTableSlotsMin
	for size < hashTableSlotsMax && holds(size) < n>>depth+1 {
		size *= 2
	}
	x := hashIndex{dir: make([]*hashTable, 1<<depth), depth: depth}
	for i := range x.dir {
		x.dir[i] = newHashTable(size, depth)
	}
	return x
}

func newHashTable(size int, depth uint) *hashTable {
	return &hashTable{slots: make([]indexSlot, size), depth: depth, shift: uint(64 - bits.TrailingZeros(uint(size)))}
}

func (x *hashIndex) len() int { return x.n }

// table returns the table that holds h (a shift by 64 is 0: depth 0 has
// one).
func (x *hashIndex) table(h uint64) *hashTable { return x.dir[mix(h)>>(64-x.depth)] }

// probe returns the slot of t that holds h, or the empty slot that ends
// h's run if none does (a lookup's only loop).
func (t *hashTable) probe(h uint64) uint64 {
	slots, mask := t.slots, uint64(len(t.slots)-1)
	for i := t.home(h); ; i = (i + 1) & mask {
		if s := &slots[i]; s.v == 0 || s.h == h {
			return i
		}
	}
}

// get returns the value of h, 0 if it has none.
func (x *hashIndex) get(h uint64) uint64 {
	if x.dir == nil {
		return 0
	}
	t := x.table(h)
	return t.slots[t.probe(h)].v // an empty slot's is 0
}

// set makes v (not 0) the value of h.
func (x *hashIndex) set(h, v uint64) {
	if x.dir == nil {
		*x = newHashIndex(0)
	}
	t := x.table(h)
	if !t.set(h, v) {
		return
	}
	x.n++
	if t.n > holds(len(t.slots)) {
		x.grow(t)
	}
}

// set reports whether h is new to t.
func (t *hashTable) set(h, v uint64) bool {
	s := &t.slots[t.probe(h)]
	added := s.v == 0
	s.h, s.v = h, v
	if added {
		t.n++
	}
	return added
}

// grow doubles t, or splits it in two once it is at hashTableSlotsMax.
func (x *hashIndex) grow(t *hashTable) {
	if len(t.slots) < hashTableSlotsMax || t.depth == hashIndexDepthMax {
		bigger := newHashTable(2*len(t.slots), t.depth)
		for _, s := range t.slots {
			if s.v != 0 {
				bigger.set(s.h, s.v)
			}
		}
		*t = *bigger
		return
	}
	if t.depth == x.depth {
		dir := make([]*hashTable, 2*len(x.dir))
		for i, d := range x.dir {
			dir[2*i], dir[2*i+1] = d, d
		}
		x.dir, x.depth = dir, x.depth+1
	}
	// The two halves, the hashes whose next bit is 0 and those with 1, each
	// of t's size: either may get every hash.
	lo, hi := newHashTable(len(t.slots), t.depth+1), newHashTable(len(t.slots), t.depth+1)
	bit := uint64(1) << (63 - t.depth)
	for _, s := range t.slots {
		switch {
		case s.v == 0:
		case mix(s.h)&bit == 0:
			lo.set(s.h, s.v)
		default:
			hi.set(s.h, s.v)
		}
	}
	// The directory's entries for t are a run of 1 << (x.depth - t.depth);
	// the first half of it now holds lo, the second hi.
	run := 1 << (x.depth - t.depth)
	first := int(t.prefix() >> (64 - x.depth))
	for i := range run {
		if i < run/2 {
			x.dir[first+i] = lo
		} else {
			x.dir[first+i] = hi
		}
	}
	// Either half may still be over its load (every hash on one side).
	for _, half := range []*hashTable{lo, hi} {
		if half.n > holds(len(half.slots)) {
			x.grow(half)
		}
	}
}

// prefix returns the top depth bits every mixed hash of t shares, the
// bits below them clear; t must not be empty.
func (t *hashTable) prefix() uint64 {
	for _, s := range t.slots {
		if s.v != 0 {
			return mix(s.h) &^ (^uint64(0) >> t.depth)
		}
	}
	panic("ledger: splitting an empty hash table")
}

// delIf removes h if its value is v (not 0), and returns the value h had (0:
// none), in one lookup: a window forgetting its oldest entry removes its
// hash only if that entry is the newest with it. The slots after it in
// its run move back over the gap (no tombstones: a lookup still ends at
// the first empty slot).
func (x *hashIndex) delIf(h, v uint64) uint64 {
	if x.dir == nil {
		return 0
	}
	t := x.table(h)
	i := t.probe(h)
	if had := t.slots[i].v; had != v {
		return had // none (0), or an entry newer than the one forgotten
	}
	mask := uint64(len(t.slots) - 1)
	t.n--
	x.n--
	for j := i; ; {
		j = (j + 1) & mask
		s := t.slots[j]
		if s.v == 0 {
			break
		}
		// s may fill the gap at i unless its home is cyclically in (i, j].
		if (j-t.home(s.h))&mask >= (j-i)&mask {
			t.slots[i] = s
			i = j
		}
	}
	t.slots[i] = indexSlot{}
	return v
}

// all yields every hash and its value, in no order.
func (x *hashIndex) all(yield func(h, v uint64) bool) {
	for i, t := range x.dir {
		if i > 0 && x.dir[i-1] == t {
			continue // a table the directory lists more than once
		}
		for _, s := range t.slots {
			if s.v != 0 && !yield(s.h, s.v) {
				return
			}
		}
	}
}
