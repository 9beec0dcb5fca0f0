package ledger

import (
	"errors"
	"io"
)

// snapshotAheadBuffers is how many buffers of snapshotBufferBytes a
// restore's reading keeps filled ahead of its decoding.
const snapshotAheadBuffers = 4

// readAhead reads its source on a goroutine of its own, a few buffers
// ahead of its reader. A restore's source does work of its own for every
// byte (a stored snapshot's fetching and decompression, the trailer's
// SHA-256 over the whole): a third of a second at 10M events that the
// decoding, the restore's critical path, would otherwise wait for.
type readAhead struct {
	full chan []byte // filled, in order; closed after the source's end
	free chan []byte // emptied
	stop chan struct{}
	done chan struct{}
	cur  []byte // the unread rest of buf
	buf  []byte
	err  error // the source's error other than its end, set before full is closed
}

// newReadAhead starts reading r; close must be called, and until it
// returns r is the goroutine's.
func newReadAhead(r io.Reader) *readAhead {
	a := &readAhead{full: make(chan []byte, snapshotAheadBuffers), free: make(chan []byte, snapshotAheadBuffers),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range snapshotAheadBuffers {
		a.free <- make([]byte, snapshotBufferBytes)
	}
	go func() {
		defer close(a.done)
		defer close(a.full)
		for {
			var b []byte
			select {
			case b = <-a.free:
			case <-a.stop:
				return
			}
			n, err := io.ReadFull(r, b)
			if n > 0 {
				select {
				case a.full <- b[:n]:
				case <-a.stop:
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					a.err = err
				}
				return
			}
		}
	}()
	return a
}

func (a *readAhead) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)] // never blocks: free holds every buffer there is
			a.buf = nil
		}
		b, ok := <-a.full
		if !ok {
			if a.err != nil {
				return 0, a.err
			}
			return 0, io.EOF
		}
		a.cur, a.buf = b, b
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// close stops the reading and waits for its goroutine to end: a read it
// is in ends first (a stored snapshot's parts are each guarded against
// stalling).
func (a *readAhead) close() {
	close(a.stop)
	<-a.done
}
