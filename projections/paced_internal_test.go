package projections

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// A paced reader never runs ahead of its rate (it may fall behind), and
// stops when its context ends.
func TestPacedReaderKeepsItsRate(t *testing.T) {
	const total, rate = 1 << 20, 4 << 20 // 1 MiB at 4 MiB/s: at least about 0.23 s
	start := time.Now()
	n, err := io.CopyBuffer(io.Discard, paced(context.Background(), bytes.NewReader(make([]byte, total)), rate), make([]byte, 64<<10))
	if err != nil || n != total {
		t.Fatalf("copied %d bytes, %v", n, err)
	}
	// The last read is due once all but its 64 KiB were read.
	if least := time.Duration(float64(total-64<<10) / rate * float64(time.Second)); time.Since(start) < least {
		t.Errorf("read %d bytes in %s, faster than %d bytes/s allows (%s)", total, time.Since(start), rate, least)
	}

	ctx, cancel := context.WithCancel(context.Background())
	r := paced(ctx, bytes.NewReader(make([]byte, total)), 1)
	if _, err := r.Read(make([]byte, 16)); err != nil { // the first read is due at once
		t.Fatal(err)
	}
	cancel()
	if _, err := r.Read(make([]byte, 16)); !errors.Is(err, context.Canceled) {
		t.Errorf("read after the context ended: %v, want context.Canceled", err)
	}
}
