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
	// snapshotGuardBufBytes is the most one guarded read asks of the
	// object store client: its chunks are 128 KiB.
	snapshotGuardBufBytes = 256 << 10
)

// errSnapshotStalled: a part's bytes stopped coming (SnapshotReadStallMax).
// The snapshot is not at fault, so no older one is tried in its place.
var errSnapshotStalled = errors.New("snapshot read stalled")

// guardedPart reads one part of a snapshot through a goroutine of its
// own, so that a read ends as soon as the restore's context does, or once
// nothing has arrived for stallMax. The object store client's Read waits
// for its context's deadline whatever happens to the context meanwhile
// (nats.go v1.55.0, objResult.Read), and its Close waits for that Read:
// the crash harness saw a restore ignore its process's SIGTERM for 15 s
// while a part's delivery had stopped.
type guardedPart struct {
	ctx      context.Context
	name     string
	stallMax time.Duration
	part     io.ReadCloser

	buf    []byte
	want   chan int        // to the pump: read up to this many bytes
	got    chan readResult // from the pump
	stall  *time.Timer
	err    error // once set, every read returns it
	closed bool
}

type readResult struct {
	n   int
	err error
}

func newGuardedPart(ctx context.Context, name string, part io.ReadCloser, stallMax time.Duration) *guardedPart {
	g := &guardedPart{ctx: ctx, name: name, stallMax: stallMax, part: part,
		buf: make([]byte, snapshotGuardBufBytes), want: make(chan int), got: make(chan readResult, 1)}
	go g.pump()
	return g
}

// pump reads for Read until Close, then closes the part: after a read
// that was given up, once that read returns.
func (g *guardedPart) pump() {
	for n := range g.want {
		k, err := g.part.Read(g.buf[:n])
		g.got <- readResult{k, err}
	}
	_ = g.part.Close()
}

func (g *guardedPart) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	g.want <- min(len(p), len(g.buf))
	if g.stall == nil {
		g.stall = time.NewTimer(g.stallMax)
	} else {
		g.stall.Reset(g.stallMax)
	}
	select {
	case r := <-g.got:
		g.stall.Stop()
		return copy(p, g.buf[:r.n]), r.err
	case <-g.ctx.Done():
		g.err = g.ctx.Err()
	case <-g.stall.C:
		g.err = fmt.Errorf("%w: nothing of %s arrived for %s", errSnapshotStalled, g.name, g.stallMax)
	}
	return 0, g.err
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
	close(g.want)
	return nil
}
