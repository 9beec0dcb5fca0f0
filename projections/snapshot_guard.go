package projections

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Reading a snapshot's part is bounded twice over by guardedPart.
const (
	// SnapshotReadStallMax is the longest a restore waits for the next
	// bytes of a part before it gives the read up as stalled and tries
	// again from the start (Writer.setup's retries). The object store
	// delivers a part's chunks through an ordered consumer that stops if
	// the NATS node feeding it is killed; its client then waits for the
	// load's whole deadline (SnapshotLoadTimeout). The client recovers a
	// consumer that missed its heartbeats (5 s apart) within about ten
	// seconds; twice that is left to it.
	SnapshotReadStallMax = 20 * time.Second
	// snapshotGuardBufBytes is the most one read of the object store
	// client is given: its chunks are 128 KiB.
	snapshotGuardBufBytes = 256 << 10
	// snapshotGuardBufs is how many of those reads a guarded part makes
	// ahead of the decoder, so the chunks' delivery overlaps decoding.
	snapshotGuardBufs = 4
)

// errSnapshotStalled: a part's bytes stopped coming (Snapshots.ReadStallMax),
// or the listing of the stored snapshots did (SnapshotListTimeout). The
// snapshot is not at fault, so no older one is tried in its place: the
// restore starts over, and replays the whole log only once the store has
// stalled SnapshotStallsBeforeReplay times in a row.
var errSnapshotStalled = errors.New("snapshot read stalled")

// guardedPart reads one part of a snapshot through a goroutine of its
// own, a few reads ahead, so that a read ends as soon as the restore's
// context does, or once nothing has arrived for stallMax. The object
// store client's Read waits for its context's deadline whatever happens
// to the context meanwhile (nats.go v1.55.0, objResult.Read), and its
// Close waits for that Read: the crash harness saw a restore ignore its
// process's SIGTERM for 15 s while a part's delivery had stopped.
type guardedPart struct {
	ctx      context.Context
	name     string
	stallMax time.Duration
	part     io.ReadCloser

	free   chan []byte // empty buffers, to the pump
	full   chan chunk  // read ones, from the pump
	done   chan struct{}
	cur    chunk // being read from
	stall  *time.Timer
	err    error // once set, every read returns it
	closed bool
}

// chunk is one read of the part: its bytes, and the error it ended with.
type chunk struct {
	buf, rest []byte // rest: what Read has not handed out yet
	err       error
}

func newGuardedPart(ctx context.Context, name string, part io.ReadCloser, stallMax time.Duration) *guardedPart {
	g := &guardedPart{ctx: ctx, name: name, stallMax: stallMax, part: part,
		free: make(chan []byte, snapshotGuardBufs), full: make(chan chunk, snapshotGuardBufs), done: make(chan struct{})}
	for range snapshotGuardBufs {
		g.free <- make([]byte, snapshotGuardBufBytes)
	}
	go g.pump()
	return g
}

// pump reads ahead into free buffers until the part ends or Close, then
// closes the part: after a read that was given up, once that read returns.
func (g *guardedPart) pump() {
	defer g.part.Close()
	for {
		var b []byte
		select {
		case b = <-g.free:
		case <-g.done:
			return
		}
		n, err := g.part.Read(b)
		select {
		case g.full <- chunk{buf: b, rest: b[:n], err: err}:
		case <-g.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (g *guardedPart) Read(p []byte) (int, error) {
	for len(g.cur.rest) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		if g.cur.err != nil {
			g.err = g.cur.err
			return 0, g.err
		}
		if g.cur.buf != nil {
			g.free <- g.cur.buf // never blocks: there are as many places as buffers
			g.cur = chunk{}
		}
		if len(p) == 0 {
			return 0, nil
		}
		if g.stall == nil {
			g.stall = time.NewTimer(g.stallMax)
		} else {
			g.stall.Reset(g.stallMax)
		}
		select {
		case g.cur = <-g.full:
			g.stall.Stop()
		case <-g.ctx.Done():
			g.err = g.ctx.Err()
		case <-g.stall.C:
			g.err = fmt.Errorf("%w: nothing of %s arrived for %s", errSnapshotStalled, g.name, g.stallMax)
		}
	}
	n := copy(p, g.cur.rest)
	g.cur.rest = g.cur.rest[n:]
	return n, nil
}

// Close never waits: a read given up still holds the part, and the pump
// closes it when that read returns.
func (g *guardedPart) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	if g.stall != nil {
		g.stall.Stop()
	}
	close(g.done)
	return nil
}
