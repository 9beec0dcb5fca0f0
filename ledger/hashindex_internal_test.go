package ledger

import (
	"math/rand/v2"
	"testing"
)

// The index must answer as a map does through any mix of puts, updates
// and deletes: random hashes, hashes that share their top bits (one table
// gets them all and splits on one side), hashes that differ only in their
// low bits (a test window's masked ones), enough of them to split tables
// and double the directory, and deletes that empty it again. After every
// round the tables' own invariants are checked (checkHashIndex).
func TestHashIndexEqualsMap(t *testing.T) {
	shapes := []struct {
		name string
		hash func(rng *rand.Rand) uint64
	}{
		{"random", func(rng *rand.Rand) uint64 { return rng.Uint64() }},
		{"shared top bits", func(rng *rand.Rand) uint64 { return 0xABC<<52 | rng.Uint64()>>12 }},
		{"low bits only", func(rng *rand.Rand) uint64 { return rng.Uint64() & 0xFFFF }},
		{"few", func(rng *rand.Rand) uint64 { return rng.Uint64() & 0x3F }},
		{"top bits only", func(rng *rand.Rand) uint64 { return rng.Uint64() &^ (1<<40 - 1) }},
	}
	rng := rand.New(rand.NewPCG(11, 19))
	for _, shape := range shapes {
		for _, presize := range []int{0, 5000} {
			x := newHashIndex(presize)
			if presize == 0 {
				x = hashIndex{} // the zero value, as a window starts
			}
			want := map[uint64]uint64{}
			var keys []uint64
			for round := range 6 {
				ops := 40_000
				deleteShare := 3 // of 10
				if round >= 4 {
					deleteShare = 8 // shrink
				}
				for range ops {
					switch op := rng.IntN(10); {
					case op < deleteShare && len(keys) > 0:
						i := rng.IntN(len(keys))
						h := keys[i]
						keys[i] = keys[len(keys)-1]
						keys = keys[:len(keys)-1]
						v, ok := want[h]
						if !ok {
							break
						}
						// Not its value: kept, its value returned.
						if got := x.delIf(h, v+1); got != v {
							t.Fatalf("%s: delIf(%x, another value) = %d, want %d", shape.name, h, got, v)
						}
						if got := x.delIf(h, v); got != v {
							t.Fatalf("%s: delIf(%x, %d) = %d", shape.name, h, v, got)
						}
						delete(want, h)
					case op < 8 || len(keys) == 0:
						h := shape.hash(rng)
						v := 1 + rng.Uint64N(1<<40)
						if _, ok := want[h]; !ok {
							keys = append(keys, h)
						}
						want[h] = v
						x.set(h, v)
					default: // delete a hash never set: nothing changes
						h := shape.hash(rng)
						if _, ok := want[h]; !ok {
							if got := x.delIf(h, 1); got != 0 {
								t.Fatalf("%s: delIf(%x) of a hash never set = %d", shape.name, h, got)
							}
						}
					}
				}
				checkHashIndex(t, shape.name, &x, want)
				for range 2000 {
					h := shape.hash(rng)
					if got := x.get(h); got != want[h] {
						t.Fatalf("%s: get(%x) = %d, want %d", shape.name, h, got, want[h])
					}
				}
			}
			if shape.name == "random" && x.depth == 0 {
				t.Fatalf("%s: %d hashes never split a table", shape.name, len(want))
			}
		}
	}
}

// checkHashIndex checks that x holds exactly want, that every table is at
// most three quarters full and holds only hashes of its prefix, and that
// the directory lists each table in one run of the right length.
func checkHashIndex(t *testing.T, what string, x *hashIndex, want map[uint64]uint64) {
	t.Helper()
	if x.len() != len(want) {
		t.Fatalf("%s: len %d, want %d", what, x.len(), len(want))
	}
	for h, v := range want {
		if got := x.get(h); got != v {
			t.Fatalf("%s: get(%x) = %d, want %d", what, h, got, v)
		}
	}
	seen := 0
	for h, v := range x.all {
		if want[h] != v {
			t.Fatalf("%s: all yields %x = %d, want %d", what, h, v, want[h])
		}
		seen++
	}
	if seen != len(want) {
		t.Fatalf("%s: all yields %d hashes, want %d", what, seen, len(want))
	}
	if x.dir == nil {
		return
	}
	if len(x.dir) != 1<<x.depth {
		t.Fatalf("%s: directory of %d for depth %d", what, len(x.dir), x.depth)
	}
	for i := 0; i < len(x.dir); {
		tb := x.dir[i]
		run := 1 << (x.depth - tb.depth)
		if i%run != 0 {
			t.Fatalf("%s: a table of depth %d starts at %d of the directory", what, tb.depth, i)
		}
		for j := i; j < i+run; j++ {
			if x.dir[j] != tb {
				t.Fatalf("%s: the directory's run of a table of depth %d breaks at %d", what, tb.depth, j)
			}
		}
		n := 0
		for _, s := range tb.slots {
			if s.v == 0 {
				continue
			}
			n++
			if int(mix(s.h)>>(64-x.depth))/run != i/run {
				t.Fatalf("%s: hash %x in the table at %d of the directory", what, s.h, i)
			}
		}
		if n != tb.n || n > holds(len(tb.slots)) {
			t.Fatalf("%s: a table of %d slots holds %d, counts %d", what, len(tb.slots), n, tb.n)
		}
		i += run
	}
}

// A put into a full table rehashes at most hashTableSlotsMax slots: with
// a million hashes, no table is larger (the directory splits them).
func TestHashIndexTablesStaySmall(t *testing.T) {
	var x hashIndex
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 1_000_000 {
		x.set(rng.Uint64(), uint64(i+1))
	}
	for _, tb := range x.dir {
		if len(tb.slots) > hashTableSlotsMax {
			t.Fatalf("a table of %d slots, more than %d", len(tb.slots), hashTableSlotsMax)
		}
	}
	if x.len() != 1_000_000 {
		t.Fatalf("len %d", x.len())
	}
}
