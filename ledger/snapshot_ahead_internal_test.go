package ledger

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
	"time"
)

// Read ahead, a source's bytes arrive whole and in order, whatever sizes
// the source and the reader read in.
func TestReadAheadPassesBytes(t *testing.T) {
	src := make([]byte, snapshotAheadBuffers*snapshotBufferBytes*3+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	a := newReadAhead(iotest.HalfReader(bytes.NewReader(src)))
	defer a.close()
	var got []byte
	p := make([]byte, 1000)
	for {
		n, err := a.Read(p[:1+r.IntN(len(p))])
		got = append(got, p[:n]...)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("read %d bytes ahead, not the %d of the source", len(got), len(src))
	}
}

// A source's error reaches the reader after the bytes before it.
func TestReadAheadSourceError(t *testing.T) {
	failed := errors.New("part stalled")
	a := newReadAhead(io.MultiReader(bytes.NewReader(make([]byte, 3*snapshotBufferBytes+5)), iotest.ErrReader(failed)))
	defer a.close()
	got, err := io.ReadAll(a)
	if !errors.Is(err, failed) || len(got) != 3*snapshotBufferBytes+5 {
		t.Fatalf("read %d bytes, then %v; want %d, then %v", len(got), err, 3*snapshotBufferBytes+5, failed)
	}
}

// close ends the reading of a source that has more, read or not.
func TestReadAheadCloseEarly(t *testing.T) {
	for _, read := range []int{0, 1, snapshotBufferBytes + 1} {
		a := newReadAhead(endless{})
		if _, err := io.ReadFull(a, make([]byte, read)); err != nil {
			t.Fatal(err)
		}
		closed := make(chan struct{})
		go func() { a.close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("close after %d bytes read did not end the reading", read)
		}
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }
