package projections

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// guardTestStall is the stall bound the tests give a guarded part.
const guardTestStall = 100 * time.Millisecond

func TestGuardedPartReadsThrough(t *testing.T) {
	pr, pw := io.Pipe()
	g := newGuardedPart(context.Background(), "p", pr, guardTestStall)
	go func() {
		for _, s := range []string{"snap", "shot"} {
			time.Sleep(guardTestStall / 2) // slower than one read, within the bound
			_, _ = pw.Write([]byte(s))
		}
		pw.Close()
	}()
	b, err := io.ReadAll(g)
	if err != nil || string(b) != "snapshot" {
		t.Fatalf("read %q, %v; want \"snapshot\", nil", b, err)
	}
	g.Close()
	g.Close() // twice is harmless
	waitClosed(t, pr)
}

// Many chunks of every size, read in small pieces: the read-ahead hands
// every byte out once, in order.
func TestGuardedPartKeepsTheOrder(t *testing.T) {
	want := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	pr, pw := io.Pipe()
	g := newGuardedPart(context.Background(), "p", pr, time.Minute)
	defer g.Close()
	go func() {
		for b := want; len(b) > 0; {
			n := min(len(b), 1+rng.IntN(2*snapshotGuardBufBytes))
			_, _ = pw.Write(b[:n])
			b = b[n:]
		}
		pw.Close()
	}()
	var got bytes.Buffer
	if _, err := io.CopyBuffer(&got, struct{ io.Reader }{g}, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes, not the %d written in order", got.Len(), len(want))
	}
}

func TestGuardedPartGivesUpAStall(t *testing.T) {
	pr, pw := io.Pipe()
	g := newGuardedPart(context.Background(), "p", pr, guardTestStall)
	start := time.Now()
	_, err := g.Read(make([]byte, 8))
	if !errors.Is(err, errSnapshotStalled) {
		t.Fatalf("read of nothing: %v, want %v", err, errSnapshotStalled)
	}
	if d := time.Since(start); d < guardTestStall {
		t.Fatalf("gave up after %s, before the bound %s", d, guardTestStall)
	}
	if _, again := g.Read(make([]byte, 8)); !errors.Is(again, errSnapshotStalled) {
		t.Fatalf("second read: %v, want the first one's error", again)
	}
	done := make(chan struct{})
	go func() { g.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Close waited for the read it gave up")
	}
	// The read given up ends (here: its writer goes away); the part is
	// then closed.
	pw.Close()
	waitClosed(t, pr)
}

func TestGuardedPartEndsWithItsContext(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	g := newGuardedPart(ctx, "p", pr, time.Hour)
	defer g.Close()
	time.AfterFunc(guardTestStall, cancel)
	start := time.Now()
	_, err := g.Read(make([]byte, 8))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v, want %v", err, context.Canceled)
	}
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("the read took %s to see its context end", d)
	}
}

// waitClosed waits until the guard has closed the pipe's reader (once
// only its writer is closed, a read returns io.EOF).
func waitClosed(t *testing.T, pr *io.PipeReader) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := pr.Read(nil); errors.Is(err, io.ErrClosedPipe) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the part was never closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
