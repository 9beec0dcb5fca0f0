package ledger

import "unsafe"

// A restored state's memory is new to the process, and the kernel's first
// touch of each page of it can cost more than the decoding that fills the
// page: 2.95 s a GiB on the machine of BENCHMARKS.md (BenchmarkFreshMemory
// in projections), where a million customers' restore spent most of its
// time in page faults, taken on the decoding goroutine, the restore's
// critical path. So a restore's larger allocations (its slabs) are made
// a few ahead on a goroutine of their own, which writes each page once:
// the faults are taken on the other core while the decoding goes on.

// prefaultAhead is how many slabs a prefaulter keeps made ahead of use.
const prefaultAhead = 4

// prefaultChunkBytes is about the size of the allocations a prefaulter
// carves its slabs from, each advised to the kernel as wanting huge pages
// (adviseHuge): a fault then maps 2 MiB, not 4 KiB, and touching a GiB
// of new memory took 0.29 to 1.79 s, not 2.75 to 3.23 s (the machine of
// BENCHMARKS.md, benchmarks/2026-12-07c/thp-fault.txt). A chunk's memory lives while
// any of its slabs does; slabs are freed in the order they were made
// (a window's blocks and bytes) or never (customers), so a chunk is
// freed soon after its last slab is.
const prefaultChunkBytes = 16 << 20

// pageBytes is the size of the pages prefaulting writes once each (the
// smallest the kernel maps; a larger page is written more than once).
const pageBytes = 4 << 10

// prefaulter makes slabs of a restore's on its own goroutine.
type prefaulter[T any] struct {
	size  int // Ts in each slab
	ready chan []T
	stop  chan struct{}
}

// prefault starts making slabs of size Ts (each of length size), total Ts
// in all (the last slab shorter), or with total < 0 until close.
func prefault[T any](size, total int) *prefaulter[T] {
	p := &prefaulter[T]{size: size, ready: make(chan []T, prefaultAhead), stop: make(chan struct{})}
	// Slabs per chunk: chunks of about prefaultChunkBytes, whole slabs.
	perChunk := max(1, prefaultChunkBytes/max(1, size*int(unsafe.Sizeof(*new(T)))))
	go func() {
		defer close(p.ready)
		var chunk []T
		for made := 0; total < 0 || made < total; {
			n := size
			if total >= 0 {
				n = min(size, total-made)
			}
			if len(chunk) < n {
				c := perChunk * size
				if total >= 0 {
					c = min(c, total-made)
				}
				chunk = make([]T, c)
				adviseHuge(chunk)
				touch(chunk)
			}
			s := chunk[:n:n]
			chunk = chunk[n:]
			select {
			case p.ready <- s:
				made += n
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

// next returns the next slab, made here if the maker has made them all
// (a caller that needs more than it said).
func (p *prefaulter[T]) next() []T {
	if s, ok := <-p.ready; ok {
		return s
	}
	return make([]T, p.size)
}

// close stops the making; the slabs made and not taken are dropped.
func (p *prefaulter[T]) close() { close(p.stop) }

// touch writes a zero byte to each page of s's memory, which is zero: the
// value is unchanged, and the kernel maps every page now.
func touch[T any](s []T) {
	if len(s) == 0 {
		return
	}
	n := len(s) * int(unsafe.Sizeof(s[0]))
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), n)
	for i := 0; i < n; i += pageBytes {
		b[i] = 0
	}
	b[n-1] = 0
}

// keySlabBytes is the size of the slabs a restore keeps keys in
// (keySlabs), and keySlabStringMax the longest string kept there.
const (
	keySlabBytes     = 256 << 10
	keySlabStringMax = keySlabBytes / 64
)

// keySlabs holds the strings a restore reads that live as long as what
// they key (customer IDs, the windows' keys): copied one after another
// into slabs, not a small allocation each, the slabs after the first
// prefaulted. A slab lives while any of its strings does; the windows
// forget their keys in the order they were read, so their slabs are
// freed whole.
type keySlabs struct {
	made *prefaulter[byte] // from the second slab on
	cur  []byte
}

// keep returns b as a string, which shares no memory with b.
func (k *keySlabs) keep(b []byte) string {
	if len(b) == 0 || len(b) > keySlabStringMax {
		return string(b)
	}
	if len(b) > cap(k.cur)-len(k.cur) {
		switch {
		case k.cur == nil:
			k.cur = make([]byte, 0, keySlabBytes)
		case k.made == nil:
			k.made = prefault[byte](keySlabBytes, -1)
			fallthrough
		default:
			k.cur = k.made.next()[:0]
		}
	}
	start := len(k.cur)
	k.cur = append(k.cur, b...)
	return unsafe.String(&k.cur[start], len(b)) // the slab's bytes there are never written again
}

// close stops the making of slabs ahead.
func (k *keySlabs) close() {
	if k.made != nil {
		k.made.close()
	}
}
