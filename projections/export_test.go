package projections

import (
	"context"
	"io"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// SetSnapshotPartBytes sets the part size of stored snapshots, for tests
// of snapshots in many parts; it returns a func that restores it.
func SetSnapshotPartBytes(n int) (restore func()) {
	old := snapshotPartBytes
	snapshotPartBytes = n
	return func() { snapshotPartBytes = old }
}

// SetSnapshotEncoding sets how snapshots are stored ("": uncompressed, as
// before SnapshotEncoding); it returns a func that restores it.
func SetSnapshotEncoding(enc string) (restore func()) {
	old := snapshotEncoding
	snapshotEncoding = enc
	return func() { snapshotEncoding = old }
}

// SetShadowQueueBytes sets the bound on the commit bytes waiting for the
// snapshot shadow; it returns a func that restores it.
func SetShadowQueueBytes(n int) (restore func()) {
	old := shadowQueueBytesMax
	shadowQueueBytesMax = n
	return func() { shadowQueueBytesMax = old }
}

// SetShadowReplayEvents sets how far behind the newest stored snapshot
// may be before a writer snapshots its own state for the shadow; it
// returns a func that restores it.
func SetShadowReplayEvents(n uint64) (restore func()) {
	old := shadowReplayEventsMax
	shadowReplayEventsMax = n
	return func() { shadowReplayEventsMax = old }
}

// DecodeRequestStrict is DecodeRequest without the fast decoder: the
// reference the fast path is compared with.
func DecodeRequestStrict(subject string, body []byte) (ledger.Command, error) {
	rs, err := parseSubject(subject)
	if err != nil {
		return nil, err
	}
	return rs.decodeWith(body, false)
}

// DecodeRequestFastOnly reports whether the fast decoder takes body for
// op, and the command it decodes (unbound, unvalidated).
func DecodeRequestFastOnly(op events.Op, body []byte) (ledger.Command, bool) {
	return decodeFast(op, body)
}

// GuardPart reads part as a restore reads a snapshot's part
// (guardedPart): a goroutine of its own, a few reads ahead.
func GuardPart(ctx context.Context, part io.ReadCloser) io.ReadCloser {
	return newGuardedPart(ctx, "bench", part, SnapshotReadStallMax)
}

// RebuildsAgain returns how many Rebuilds have replayed again without
// skipping (Rebuild).
func RebuildsAgain() uint64 { return rebuildsAgain.Load() }

// SetReplayEndCommits sets how many commits a rebuild reads back from its
// last one (ReplayEndCommitsMax); it returns a func that restores it.
func SetReplayEndCommits(n int) (restore func()) {
	old := replayEndCommits
	replayEndCommits = n
	return func() { replayEndCommits = old }
}

// QueuedRequests returns how many requests wait in w's queue, received and
// not yet decided.
func QueuedRequests(w *Writer) int { return len(w.in) }

// OrderedConsumers is orderedConsumers (tail_internal_test.go).
var OrderedConsumers = orderedConsumers

// LiveHeapBytes is liveHeapBytes: the heap the last collection found live.
func LiveHeapBytes() uint64 { return liveHeapBytes() }

// SetStreamBehindWait sets how long a starting writer waits for a stream
// that reports fewer commits than it applied; it returns a func that
// restores it.
func SetStreamBehindWait(d time.Duration) (restore func()) {
	old := streamBehindWait
	streamBehindWait = d
	return func() { streamBehindWait = old }
}
