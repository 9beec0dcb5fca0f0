package ledger

import (
	"slices"
	"testing"
	"time"
)

// A prefaulter hands out slabs of the size asked, the last one shorter,
// all zero; past its total it makes slabs itself, and close ends its
// goroutine even while it waits to hand one over.
func TestPrefaultSlabs(t *testing.T) {
	p := prefault[Customer](10, 25)
	var lens []int
	for range 4 {
		s := p.next()
		for i := range s {
			if s[i].ID != "" || s[i].Fired != 0 || s[i].Open != nil {
				t.Fatalf("slab %d customer %d is not zero: %+v", len(lens), i, s[i])
			}
		}
		if cap(s) != len(s) {
			t.Fatalf("slab %d has capacity %d past its length %d, into the next", len(lens), cap(s), len(s))
		}
		lens = append(lens, len(s))
	}
	p.close()
	if want := []int{10, 10, 5, 10}; !slices.Equal(lens, want) {
		t.Fatalf("slab lengths %v, want %v", lens, want)
	}

	b := prefault[byte](pageBytes+1, -1) // no total: until closed
	if s := b.next(); len(s) != pageBytes+1 {
		t.Fatalf("slab of %d bytes, want %d", len(s), pageBytes+1)
	}
	b.close()
	ended := make(chan struct{})
	go func() {
		for range b.ready { // the slabs made ahead, then closed by the ended maker
		}
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the maker goroutine did not end")
	}
}

// touch leaves every byte of a slab as it was, whatever its length.
func TestTouchLeavesSlabZero(t *testing.T) {
	for _, n := range []int{0, 1, pageBytes - 1, pageBytes, 3*pageBytes + 7} {
		s := make([]byte, n)
		touch(s)
		for i, b := range s {
			if b != 0 {
				t.Fatalf("length %d: byte %d is %d", n, i, b)
			}
		}
	}
}

// Kept keys equal what was read, share no memory with the buffer read
// from, and fill slab after slab; a long one is a string of its own.
func TestKeySlabsKeep(t *testing.T) {
	k := new(keySlabs)
	defer k.close()
	buf := make([]byte, keySlabStringMax+1)
	var kept []string
	for i := range 3 * keySlabBytes / 40 { // about three slabs of 40-byte keys
		b := buf[:40]
		for j := range b {
			b[j] = byte('a' + (i+j)%26)
		}
		kept = append(kept, k.keep(b))
	}
	long := k.keep(buf[:keySlabStringMax+1])
	clear(buf) // what was read is overwritten, as the read buffer is
	for i, s := range kept {
		for j := range len(s) {
			if s[j] != byte('a'+(i+j)%26) {
				t.Fatalf("key %d is %q", i, s)
			}
		}
	}
	if k.made == nil {
		t.Fatal("three slabs of keys were kept without slabs made ahead")
	}
	if len(long) != keySlabStringMax+1 || k.keep(nil) != "" {
		t.Fatalf("a long key of %d bytes; an empty one %q", len(long), k.keep(nil))
	}
}
