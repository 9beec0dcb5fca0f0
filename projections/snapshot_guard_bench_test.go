package projections_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go/jetstream"
)

// guardBenchBytes is the object BenchmarkSnapshotPartRead reads: one
// part of the largest size a snapshot stores.
const guardBenchBytes = projections.SnapshotPartBytes

// BenchmarkSnapshotPartRead reads one snapshot part's worth of bytes
// from the object store of an embedded server, straight from the client
// ("direct", as restores did before the guard) and through the guard a
// restore reads it with ("guarded"), in the same run:
//
//	go test -run '^$' -bench SnapshotPartRead -count 5 ./projections
func BenchmarkSnapshotPartRead(b *testing.B) {
	s := testenv.StartServer(b, "")
	js := testenv.JetStream(b, testenv.Connect(b, s))
	ctx := context.Background()
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: projections.SnapshotBucket})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, guardBenchBytes)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: "guard-bench"}, bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"direct", "guarded"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(guardBenchBytes)
			buf := make([]byte, 64<<10) // about what the S2 reader asks for
			for b.Loop() {
				res, err := obs.Get(ctx, "guard-bench")
				if err != nil {
					b.Fatal(err)
				}
				var r io.ReadCloser = res
				if mode == "guarded" {
					r = projections.GuardPart(ctx, res)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
				if err != nil || n != guardBenchBytes {
					b.Fatalf("read %d bytes, %v", n, err)
				}
				_ = r.Close()
			}
		})
	}
}
