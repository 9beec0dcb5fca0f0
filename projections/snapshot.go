package projections

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go/jetstream"
)

// Snapshots of the writer's state (ledger.State.WriteSnapshot) live in a
// JetStream object store, each as objects named
// writer-<name>/<sequence, 20 digits>/<part, 4 digits>, so a restart loads
// the newest one that verifies and replays only the log after it.
const (
	// SnapshotBucket is the object store holding snapshots.
	SnapshotBucket = "AGENTBILL_SNAPSHOTS"
	// SnapshotVersionsKept is how many snapshots of each writer are kept:
	// if the newest does not verify, the one before it still saves most of
	// the replay.
	SnapshotVersionsKept = 2
	// SnapshotEventsEvery is how many events the writer applies between
	// snapshots (Config.Snapshots.EventsEvery by default).
	SnapshotEventsEvery = 1_000_000
	// SnapshotIntervalMax is the longest the writer goes without a snapshot
	// while events arrive (Config.Snapshots.IntervalMax by default).
	SnapshotIntervalMax = 10 * time.Minute
	// SnapshotRetryAfter is the wait after a snapshot that failed.
	SnapshotRetryAfter = time.Minute
	// SnapshotSaveTimeout bounds storing one snapshot, and
	// SnapshotLoadTimeout reading one back. Without an explicit deadline
	// the object store client gives a whole read 5 s, which a snapshot of
	// a million customers on a busy machine can exceed (measured: 130 MB
	// timed out and fell back to a full replay).
	SnapshotSaveTimeout = 5 * time.Minute
	SnapshotLoadTimeout = 5 * time.Minute
	// SnapshotListTimeout bounds listing the stored snapshots (a few
	// dozen small objects). The object store client's List waits for its
	// listing on its context alone, and the listing stops coming when the
	// NATS node delivering it is killed: the crash harness caught a new
	// leader waiting there, before it served, for over a minute. A listing
	// past this bound is NATS's fault (errSnapshotStalled).
	SnapshotListTimeout = 5 * time.Second
	// SnapshotStallsBeforeReplay is how many restores in a row may stall
	// on the snapshot store (errSnapshotStalled) before the writer
	// replays the whole log instead: the crash harness saw the store
	// unreadable for over a minute after a node kill, while the log's
	// stream served, and a writer that waited for it served nothing.
	SnapshotStallsBeforeReplay = 2
	// SnapshotPartBytes bounds one object of a snapshot. The object store
	// client publishes an object's chunks without waiting for their acks,
	// and the server refuses a stream's writes beyond 128 MiB queued (429
	// too many requests: measured with the snapshot of 1,000,000 customers
	// after 9,000,000 events, fsync on), so a snapshot is stored as parts,
	// one after another.
	SnapshotPartBytes = 32 << 20
	// SnapshotPartsMax bounds the parts of one snapshot (8 GiB).
	SnapshotPartsMax = 256
	// SnapshotStoreBytesPerSecond paces the writer's snapshot store: the
	// object store fsyncs every chunk on the disk the log's commits are
	// fsynced on, and a snapshot stored at full speed (about 95 MB/s
	// here) made their acks, and so every request's answer, wait behind
	// it (issue 19: p99.9 114 ms while a 314 MB snapshot was stored,
	// 14 ms before). The pace is of the bytes stored, compressed
	// (SnapshotEncoding): a snapshot of a million customers after 10M
	// events, 326 MB, is stored in about 4 s, once every
	// SnapshotEventsEvery events.
	SnapshotStoreBytesPerSecond = 32 << 20
	// SnapshotEncoding is how each part is stored: an S2 stream
	// (github.com/klauspost/compress/s2, CRC-checked blocks) of its slice
	// of the snapshot, named in every part's metadata ("encoding").
	// Snapshots of a million customers were 2.5 to 2.7 times smaller, so a
	// store fsyncs that many times fewer bytes beside the log's commits
	// (BENCHMARKS.md: the longest commit ack wait while one was stored
	// fell from 104-228 ms to 33-60 ms). Parts without the key (stored
	// before compression) hold their bytes as they are.
	SnapshotEncoding = "s2"
	// SnapshotCompressBlockBytes is the S2 block size: the store
	// compresses one block at a time, about a millisecond of one core,
	// and yields the processor between blocks.
	SnapshotCompressBlockBytes = 256 << 10
	// snapshotPrefix starts every snapshot's object name.
	snapshotPrefix = "writer-"
)

// ErrNoSnapshot: the writer has no stored snapshot that can be used.
var ErrNoSnapshot = errors.New("no usable snapshot")

// errSnapshotDiverged: the log after a snapshot does not apply to it.
var errSnapshotDiverged = errors.New("snapshot and log disagree")

// errSnapshotSignature: a stored snapshot not signed by a trusted key.
var errSnapshotSignature = errors.New("snapshot signature")

// SnapshotConfig tunes the writer's snapshots (Config.Snapshots).
type SnapshotConfig struct {
	// Off disables snapshots: none is taken, and a rebuild always replays
	// the whole log.
	Off bool
	// EventsEvery is SnapshotEventsEvery if 0.
	EventsEvery uint64
	// IntervalMax is SnapshotIntervalMax if 0.
	IntervalMax time.Duration
	// ReadStallMax is SnapshotReadStallMax if 0: how long a restore waits
	// for the next bytes of a part before it gives the read up.
	ReadStallMax time.Duration
}

func (c *SnapshotConfig) setDefaults() {
	if c.EventsEvery == 0 {
		c.EventsEvery = SnapshotEventsEvery
	}
	if c.IntervalMax <= 0 {
		c.IntervalMax = SnapshotIntervalMax
	}
	if c.ReadStallMax <= 0 {
		c.ReadStallMax = SnapshotReadStallMax
	}
}

// snapshotEventsKey is the stored snapshot metadata key of the events the
// state had applied (SaveSnapshot).
const snapshotEventsKey = "events"

// snapshotEncodingKey is the stored snapshot metadata key of the parts'
// encoding (SnapshotEncoding, or absent: as they are).
const snapshotEncodingKey = "encoding"

// snapshotEncoding is SnapshotEncoding; tests set it to "" to store
// snapshots as an older version did.
var snapshotEncoding = SnapshotEncoding

// SnapshotStats count the writer's snapshots (Stats.Snapshots).
type SnapshotStats struct {
	Saved      atomic.Uint64 // snapshots stored
	SavedSeq   atomic.Uint64 // the sequence the last stored one covers
	SavedBytes atomic.Uint64 // its size
	// StoredBytes is the size it took in the object store, compressed
	// (SnapshotEncoding).
	StoredBytes atomic.Uint64
	// EncodeNanos is how long the last one took to encode, on the
	// shadow's goroutine (shadow.go; the writer does not wait for it);
	// StoreNanos how long storing it took, in the background.
	EncodeNanos atomic.Uint64
	StoreNanos  atomic.Uint64
	Failed      atomic.Uint64 // snapshots not taken or not stored
	Rejected    atomic.Uint64 // stored snapshots refused when loading
	// SavedAt is when this process last stored one (Unix ns, 0: never).
	SavedAt atomic.Int64
	// LoadedSeq is the sequence of the snapshot the last rebuild started
	// from, 0 if it replayed the whole log; LoadNanos how long reading it
	// took; TailEvents the events replayed after it.
	LoadedSeq  atomic.Uint64
	LoadNanos  atomic.Uint64
	TailEvents atomic.Uint64
	// ShadowSeq is the last sequence the shadow has applied (shadow.go);
	// ShadowRestarts counts the times it started again from the log
	// because it fell behind or lost step (not counting its first start).
	ShadowSeq      atomic.Uint64
	ShadowRestarts atomic.Uint64
	// Bases counts the snapshots the writer encoded itself before serving,
	// because the newest stored one was more than ShadowReplayEventsMax
	// events behind (shadow.go). They are counted in Saved once stored.
	Bases atomic.Uint64
}

// Snapshot is a stored snapshot, loaded and verified.
type Snapshot struct {
	State *ledger.State
	Meta  ledger.SnapshotMeta
	Name  string
	Bytes uint64 // its size
	// StoredBytes is the size read from the object store (compressed).
	StoredBytes uint64
}

// SnapshotName names a writer's snapshot at seq; its parts are objects
// named SnapshotPartName.
func SnapshotName(writer string, seq uint64) string {
	return fmt.Sprintf("%s%s/%020d", snapshotPrefix, writer, seq)
}

// SnapshotPartName is the object name of one part of a snapshot.
func SnapshotPartName(writer string, seq uint64, part int) string {
	return fmt.Sprintf("%s/%04d", SnapshotName(writer, seq), part)
}

// snapshotPartBytes is SnapshotPartBytes; tests make it small.
var snapshotPartBytes = SnapshotPartBytes

// SnapshotStore creates or updates the snapshot object store.
func SnapshotStore(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.ObjectStore, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      SnapshotBucket,
		Description: "AgentBill writer snapshots: state at a log sequence, to replay only the tail",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", SnapshotBucket, err)
	}
	return obs, nil
}

// SaveSnapshot stores a snapshot body of size bytes (from
// ledger.State.WriteSnapshot with meta) in parts of at most
// SnapshotPartBytes of it, one after another, each compressed
// (SnapshotEncoding) and stored at most rate bytes a second on average,
// replacing any snapshot of the writer at the
// same sequence; if a part fails, the parts stored are deleted. Then it
// deletes the writer's snapshots beyond SnapshotVersionsKept. It returns
// the bytes stored.
//
// sig, the snapshot's signature (events.Signer.SignSnapshot), is stored in
// every part's metadata ("sig"); "" stores an unsigned snapshot, which a
// writer that verifies never uses. eventsApplied, the state's event count,
// is stored too ("events"), unsigned: a hint of how far the snapshot is
// behind (takeBase), never trusted for the state.
func SaveSnapshot(ctx context.Context, obs jetstream.ObjectStore, meta ledger.SnapshotMeta, sig string, eventsApplied uint64, body io.Reader, size int64, rate int) (storedBytes uint64, err error) {
	parts := max(1, int((size+int64(snapshotPartBytes)-1)/int64(snapshotPartBytes)))
	if parts > SnapshotPartsMax {
		return 0, fmt.Errorf("snapshot of %d bytes needs %d parts, more than %d", size, parts, SnapshotPartsMax)
	}
	stored, err := storedSnapshots(ctx, obs, meta.Writer)
	if err != nil {
		return 0, err
	}
	for _, old := range stored {
		if old.seq == meta.Seq {
			if err := deleteSnapshot(ctx, obs, old); err != nil {
				return 0, err
			}
		}
	}
	pace := paced(ctx, nil, rate)
	for i := range parts {
		partSize := (int64(i)+1)*size/int64(parts) - int64(i)*size/int64(parts)
		md := map[string]string{"writer": meta.Writer, "seq": strconv.FormatUint(meta.Seq, 10), "commit": meta.Commit,
			"part": strconv.Itoa(i), "parts": strconv.Itoa(parts), "sig": sig, snapshotEventsKey: strconv.FormatUint(eventsApplied, 10)}
		var part io.Reader = io.LimitReader(body, partSize)
		var z *compressor
		if snapshotEncoding != "" {
			md[snapshotEncodingKey] = snapshotEncoding
			z = compress(part)
			part = z
		}
		pace.r = part
		info, err := obs.Put(ctx, jetstream.ObjectMeta{
			Name:        SnapshotPartName(meta.Writer, meta.Seq, i),
			Description: fmt.Sprintf("state of writer %s at sequence %d, part %d of %d", meta.Writer, meta.Seq, i+1, parts),
			Metadata:    md,
		}, pace)
		if z != nil {
			z.close() // before the next part reads body
		}
		if err != nil {
			for j := range i {
				_ = obs.Delete(ctx, SnapshotPartName(meta.Writer, meta.Seq, j))
			}
			return 0, fmt.Errorf("store snapshot at sequence %d, part %d of %d: %w", meta.Seq, i+1, parts, err)
		}
		storedBytes += info.Size
	}
	if stored, err = storedSnapshots(ctx, obs, meta.Writer); err != nil {
		return 0, err
	}
	for _, old := range stored[min(len(stored), SnapshotVersionsKept):] {
		if err := deleteSnapshot(ctx, obs, old); err != nil {
			return 0, err
		}
	}
	return storedBytes, nil
}

// compressor reads src compressed (SnapshotEncoding), one block at a
// time as it is read, on a goroutine of its own.
type compressor struct {
	*io.PipeReader
	done chan struct{}
}

func compress(src io.Reader) *compressor {
	pr, pw := io.Pipe()
	z := &compressor{PipeReader: pr, done: make(chan struct{})}
	go func() {
		defer close(z.done)
		zw := s2.NewWriter(pw, s2.WriterConcurrency(1), s2.WriterBlockSize(SnapshotCompressBlockBytes))
		block := make([]byte, SnapshotCompressBlockBytes)
		for {
			n, err := io.ReadFull(src, block)
			if n > 0 {
				if _, werr := zw.Write(block[:n]); werr != nil {
					pw.CloseWithError(werr)
					return
				}
				runtime.Gosched()
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(zw.Close()) // nil: the reader sees io.EOF
	}()
	return z
}

// close stops the compression if it has not ended and waits for it.
func (z *compressor) close() {
	_ = z.PipeReader.CloseWithError(io.ErrClosedPipe)
	<-z.done
}

// pacedReader reads from r at most rate bytes a second on average since
// it was made, over every reader r is set to, sleeping between reads as
// needed, until ctx ends.
type pacedReader struct {
	ctx   context.Context
	r     io.Reader
	rate  float64
	start time.Time
	n     int64
}

func paced(ctx context.Context, r io.Reader, rate int) *pacedReader {
	return &pacedReader{ctx: ctx, r: r, rate: float64(rate), start: time.Now()}
}

func (p *pacedReader) Read(b []byte) (int, error) {
	due := p.start.Add(time.Duration(float64(p.n) / p.rate * float64(time.Second)))
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-p.ctx.Done():
			t.Stop()
			return 0, p.ctx.Err()
		case <-t.C:
		}
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

// storedSnapshot is one snapshot in the store: its parts as listed.
type storedSnapshot struct {
	name  string
	seq   uint64
	parts []*jetstream.ObjectInfo
}

// storedSnapshots lists a writer's snapshots, newest first.
func storedSnapshots(ctx context.Context, obs jetstream.ObjectStore, writer string) ([]*storedSnapshot, error) {
	lctx, cancel := context.WithTimeout(ctx, SnapshotListTimeout)
	defer cancel()
	infos, err := obs.List(lctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil && ctx.Err() == nil && lctx.Err() != nil {
		return nil, fmt.Errorf("list snapshots: %w: the listing took longer than %s", errSnapshotStalled, SnapshotListTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	prefix := snapshotPrefix + writer + "/"
	bySeq := map[uint64]*storedSnapshot{}
	for _, info := range infos {
		rest, ok := strings.CutPrefix(info.Name, prefix)
		seqText, _, _ := strings.Cut(rest, "/")
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if !ok || info.Deleted || err != nil {
			continue
		}
		if bySeq[seq] == nil {
			bySeq[seq] = &storedSnapshot{name: SnapshotName(writer, seq), seq: seq}
		}
		bySeq[seq].parts = append(bySeq[seq].parts, info)
	}
	out := make([]*storedSnapshot, 0, len(bySeq))
	for _, sn := range bySeq {
		slices.SortFunc(sn.parts, func(a, b *jetstream.ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, sn)
	}
	slices.SortFunc(out, func(a, b *storedSnapshot) int { return cmp.Compare(b.seq, a.seq) })
	return out, nil
}

func deleteSnapshot(ctx context.Context, obs jetstream.ObjectStore, sn *storedSnapshot) error {
	for _, p := range sn.parts {
		if err := obs.Delete(ctx, p.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("delete snapshot part %s: %w", p.Name, err)
		}
	}
	return nil
}

// complete checks that every part of the snapshot is stored, in an
// encoding this version reads.
func (sn *storedSnapshot) complete() error {
	for i, p := range sn.parts {
		want := fmt.Sprintf("%s/%04d", sn.name, i)
		if p.Name != want || p.Metadata["parts"] != strconv.Itoa(len(sn.parts)) {
			return fmt.Errorf("incomplete: part %s of %s stored as %s", want, p.Metadata["parts"], p.Name)
		}
		if enc := p.Metadata[snapshotEncodingKey]; enc != "" && enc != SnapshotEncoding {
			return fmt.Errorf("part %s is stored with encoding %q, which this version does not read", p.Name, enc)
		}
	}
	return nil
}

// LoadSnapshot returns the writer's newest stored snapshot that verifies:
// every part stored, its SHA-256, its signature by one of keys (if keys is
// not nil), its writer, a sequence the stream has, and the ID of the
// commit at that sequence (so a snapshot of another log is never used).
// Each snapshot refused on the way is passed to reject. It returns an
// error wrapping ErrNoSnapshot if none can be used, an *IntegrityError
// (KindBehind) if keys is set and a genuine snapshot covers more than the
// stream holds, or another error if the store cannot be read.
func LoadSnapshot(ctx context.Context, js jetstream.JetStream, writer string, keys events.Keyring, reject func(name string, err error)) (*Snapshot, error) {
	return snapshotLoad{writer: writer, keys: keys, reject: reject, stallMax: SnapshotReadStallMax}.newest(ctx, js)
}

// snapshotLoad is what a load of a writer's snapshot checks and how it
// reads (LoadSnapshot).
type snapshotLoad struct {
	writer string
	keys   events.Keyring               // nil: no signature checked
	reject func(name string, err error) // each snapshot refused on the way; may be nil
	// raiseGC: the collector runs as during a replay while a snapshot is
	// read (replay_gc.go): a million customers read from memory took 1.10
	// to 1.30 s at the runtime's default, 0.81 to 0.84 s with the
	// collector off (BenchmarkSnapshot/used/read). The writer's own
	// restore raises it; the shadow, beside a serving writer, leaves it
	// alone.
	raiseGC bool
	// stallMax: a part whose bytes stop coming this long fails with
	// errSnapshotStalled.
	stallMax time.Duration
}

// newest is LoadSnapshot for l.
func (l snapshotLoad) newest(ctx context.Context, js jetstream.JetStream) (*Snapshot, error) {
	writer := l.writer
	obs, err := js.ObjectStore(ctx, SnapshotBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: no snapshot store", ErrNoSnapshot)
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", SnapshotBucket, err)
	}
	stored, err := storedSnapshots(ctx, obs, writer)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", events.StreamName, err)
	}
	last, err := LastSequence(ctx, js)
	if err != nil {
		return nil, err
	}
	for _, sn := range stored {
		snap, err := l.one(ctx, obs, st, sn, last)
		if err == nil {
			return snap, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if asIntegrity(err) != nil || errors.Is(err, errSnapshotStalled) {
			return nil, err
		}
		if l.reject != nil {
			l.reject(sn.name, err)
		}
	}
	if len(stored) == 0 {
		return nil, fmt.Errorf("%w: none stored for writer %s", ErrNoSnapshot, writer)
	}
	return nil, fmt.Errorf("%w: %d stored for writer %s, all refused", ErrNoSnapshot, len(stored), writer)
}

// one reads and checks the stored snapshot sn, of a stream whose last
// sequence is last.
func (l snapshotLoad) one(ctx context.Context, obs jetstream.ObjectStore, st jetstream.Stream, sn *storedSnapshot, last uint64) (*Snapshot, error) {
	writer, keys := l.writer, l.keys
	if sn.seq > last && keys == nil {
		return nil, fmt.Errorf("it covers sequence %d, beyond the stream's last, %d", sn.seq, last)
	}
	if err := sn.complete(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, SnapshotLoadTimeout)
	defer cancel()
	pr := &partsReader{ctx: ctx, obs: obs, parts: sn.parts, stallMax: l.stallMax}
	defer pr.Close()
	if l.raiseGC {
		tune, done := raiseGCForReplay()
		defer done()
		pr.tune = tune
	}
	s, meta, err := ledger.ReadSnapshot(pr)
	if errors.Is(pr.failed, errSnapshotStalled) {
		return nil, pr.failed // whatever the decoder made of it
	}
	if err != nil {
		return nil, err
	}
	if meta.Writer != writer || meta.Seq != sn.seq {
		return nil, fmt.Errorf("it holds writer %q at sequence %d, not writer %q at %d", meta.Writer, meta.Seq, writer, sn.seq)
	}
	if keys != nil {
		if err := keys.VerifySnapshot(meta.Writer, meta.Seq, meta.Commit, meta.Digest, sn.parts[0].Metadata["sig"]); err != nil {
			return nil, fmt.Errorf("%w: %w", errSnapshotSignature, err)
		}
		if sn.seq > last {
			// Our own key says the log reached sn.seq: it was cut short,
			// or replaced by an older copy.
			return nil, integrityErr(KindBehind, 0, "stream %s ends at sequence %d, but snapshot %s (signed by this service) covers sequence %d",
				events.StreamName, last, sn.name, sn.seq)
		}
	}
	if commit, err := commitAt(ctx, st, sn.seq); err != nil {
		return nil, err
	} else if commit != meta.Commit {
		return nil, fmt.Errorf("the stream's commit at sequence %d is %q, the snapshot's %q: not this log", sn.seq, commit, meta.Commit)
	}
	return &Snapshot{State: s, Meta: meta, Name: sn.name, Bytes: pr.n, StoredBytes: pr.stored}, nil
}

// partsReader reads a snapshot's parts one after another, each fetched
// when the one before it ends and decompressed if it was stored so
// (complete checked the encodings). Every part's own digest is checked by
// the object store client at its end.
type partsReader struct {
	ctx      context.Context
	obs      jetstream.ObjectStore
	parts    []*jetstream.ObjectInfo
	stallMax time.Duration // of each part (guardedPart)
	cur      *guardedPart
	body     io.Reader  // cur, or z reading it
	z        *s2.Reader // reused from part to part
	failed   error      // the last error of a part's read, but its end
	n        uint64     // snapshot bytes read
	stored   uint64     // of the parts, before decompressing
	// tune, if set, is called every snapshotGCTuneBytes read.
	tune   func()
	tuneAt uint64
}

// snapshotGCTuneBytes is how often, in snapshot bytes read, a restore
// checks the live heap for the collector's policy (replay_gc.go).
const snapshotGCTuneBytes = 16 << 20

func (r *partsReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.parts) == 0 {
				return 0, io.EOF
			}
			res, err := r.obs.Get(r.ctx, r.parts[0].Name)
			if err != nil {
				return 0, fmt.Errorf("get %s: %w", r.parts[0].Name, err)
			}
			part := newGuardedPart(r.ctx, r.parts[0].Name, res, r.stallMax)
			r.cur, r.body = part, part
			if r.parts[0].Metadata[snapshotEncodingKey] == SnapshotEncoding {
				if r.z == nil {
					r.z = s2.NewReader(part)
				} else {
					r.z.Reset(part)
				}
				r.body = r.z
			}
			r.stored += r.parts[0].Size
			r.parts = r.parts[1:]
		}
		n, err := r.body.Read(p)
		r.n += uint64(n)
		if r.tune != nil && r.n >= r.tuneAt {
			r.tune()
			r.tuneAt = r.n + snapshotGCTuneBytes
		}
		if errors.Is(err, io.EOF) {
			_ = r.cur.Close()
			r.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		if err != nil {
			r.failed = err
		}
		return n, err
	}
}

func (r *partsReader) Close() {
	if r.cur != nil {
		_ = r.cur.Close()
	}
}

// headAt returns the chain hash of the writer's commit at seq: where the
// commits after it link. The commit at seq must be the writer's own.
func (w *Writer) headAt(ctx context.Context, seq uint64) (string, error) {
	st, err := w.js.Stream(ctx, events.StreamName)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", events.StreamName, err)
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return "", fmt.Errorf("commit at sequence %d: %w", seq, err)
	}
	if m.Subject != w.subject {
		return "", integrityErr(KindWriter, seq, "the snapshot's commit is on %s, not this writer's %s", m.Subject, w.subject)
	}
	hash := events.ChainHash(m.Header.Get(events.ChainHeader), m.Data)
	// The snapshot's signature names this commit's ID, not its bytes:
	// the commit the replay chains on from must be genuine too.
	if err := w.cfg.Keys.VerifyCommit(m.Subject, hash, m.Header.Get(events.SigHeader)); err != nil {
		return "", integrityErr(KindSignature, seq, "the snapshot's commit on %s: %v", m.Subject, err)
	}
	return hash, nil
}

// commitAt returns the ID (Nats-Msg-Id) of the commit at seq.
func commitAt(ctx context.Context, st jetstream.Stream, seq uint64) (string, error) {
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return "", fmt.Errorf("commit at sequence %d: %w", seq, err)
	}
	return m.Header.Get(jetstream.MsgIDHeader), nil
}

// snapshotter is the writer's snapshot schedule, shared by the loop, the
// shadow (shadow.go) and the upload. buf is the shadow's while no upload
// is in flight, the upload's otherwise.
type snapshotter struct {
	savedEvents atomic.Uint64  // events in the state the last snapshot covers
	savedAt     atomic.Int64   // when it was taken or loaded (Unix ns)
	retryAt     atomic.Int64   // no snapshot before (Unix ns), after a failure
	forced      atomic.Bool    // take one as soon as the shadow can
	uploading   atomic.Bool    // at most one upload in flight
	buf         snapshotBuffer // the last snapshot; reused once its upload ends
	uploads     sync.WaitGroup
	wake        chan struct{} // pokes the shadow (pokeShadow)
}

// SnapshotNow asks the writer to take a snapshot as soon as its shadow has
// applied every commit made durable so far, whatever the schedule says
// (for tests and operators).
func (w *Writer) SnapshotNow() {
	w.snap.forced.Store(true)
	w.pokeShadow()
}

// restore returns the state at the end of the log: the newest good
// snapshot with the log after it applied, or, if there is none, the whole
// log replayed. A snapshot problem is logged and never fatal. head is this
// writer's chain head as of seq (restoredHead).
func (w *Writer) restore(ctx context.Context) (s *ledger.State, seq uint64, head string, err error) {
	w.stats.Snapshots.LoadedSeq.Store(0)
	if !w.cfg.Snapshots.Off {
		s, seq, head, err := w.restoreSnapshot(ctx)
		if err == nil {
			w.snapStalls = 0
			return s, seq, head, nil
		}
		if ctx.Err() != nil {
			return nil, 0, "", ctx.Err()
		}
		if ie := asIntegrity(err); ie != nil {
			if err := w.breakOrReset(ie); err != nil {
				return nil, 0, "", err
			}
		}
		switch {
		case errors.Is(err, errSnapshotStalled):
			// NATS, not the snapshot: setup tries again, unless the store
			// stalls every time (its stream still recovering from a lost
			// node while the log's serves): then the log alone will do.
			if w.snapStalls++; w.snapStalls < SnapshotStallsBeforeReplay {
				return nil, 0, "", err
			}
			w.log.Warn("the snapshot store stalled again; replaying the whole log", "stalls", w.snapStalls, "err", err)
		case errors.Is(err, ErrNoSnapshot):
			w.log.Info("replaying the whole log", "reason", err)
		default:
			w.log.Error("snapshot not used; replaying the whole log", "err", err)
		}
	}
	stop := w.replayStop(0)
	stop.Verify = w.verifier(1, "", true)
	stop.KeepUncovered = w.cfg.AdoptUnsigned != ""
	s, seq, err = Rebuild(ctx, w.js, stop, w.cfg.Default)
	if err != nil {
		return nil, 0, "", err
	}
	w.snapStalls = 0 // the next restore tries the store again
	if stop.Verify != nil {
		w.uncovered, _ = stop.Verify.Uncovered()
	}
	w.stats.Snapshots.TailEvents.Store(s.EventsApplied())
	if !w.cfg.Snapshots.Off {
		w.restored(0)
	}
	if head, err = w.restoredHead(ctx, stop.Verify); err != nil {
		return nil, 0, "", err
	}
	return s, seq, head, nil
}

// restoredHead is the writer's chain head after a replay verified by v:
// the hash of its last commit the replay read, not of its last commit
// now, which a leader still writing may have moved on (a follower that
// started from there would find the next commit it reads breaking the
// chain). Without verification nothing checks the chain before the
// writer leads, and takeover reads the head again: the last commit's.
func (w *Writer) restoredHead(ctx context.Context, v *LogVerifier) (string, error) {
	if v != nil {
		return v.Head(w.subject), nil
	}
	return ChainHead(ctx, w.js, w.cfg.Name)
}

func (w *Writer) restoreSnapshot(ctx context.Context) (*ledger.State, uint64, string, error) {
	start := time.Now()
	snap, err := snapshotLoad{writer: w.cfg.Name, keys: w.cfg.Keys, reject: func(name string, err error) {
		w.stats.Snapshots.Rejected.Add(1)
		if errors.Is(err, errSnapshotSignature) {
			w.countIntegrity(KindSnapshot)
		}
		w.log.Error("snapshot refused, not used", "snapshot", name, "err", err)
	}, raiseGC: true, stallMax: w.cfg.Snapshots.ReadStallMax}.newest(ctx, w.js)
	if err != nil {
		return nil, 0, "", err
	}
	loaded := time.Since(start)
	s := snap.State
	s.Default = w.cfg.Default
	at := s.EventsApplied()
	stop := w.replayStop(snap.Meta.Seq + 1)
	if w.verifying() {
		head, err := w.headAt(ctx, snap.Meta.Seq)
		if err != nil {
			return nil, 0, "", err
		}
		stop.Verify = w.verifier(snap.Meta.Seq+1, head, true)
		stop.KeepUncovered = w.cfg.AdoptUnsigned != ""
	}
	// A broken invariant here means the snapshot and the log disagree:
	// drop the snapshot and replay the whole log rather than stop for good.
	stop.Recycle = true // Apply keeps no event's struct
	seq, err := Replay(ctx, w.js, stop, func(_ uint64, e *events.Envelope) error { return applySafely(s, e, nil) })
	if err != nil {
		if errors.Is(err, errSnapshotDiverged) {
			w.stats.Snapshots.Rejected.Add(1)
		}
		if ie := asIntegrity(err); ie != nil {
			return nil, 0, "", ie // the log itself is broken: no snapshot mends that
		}
		return nil, 0, "", fmt.Errorf("replay after snapshot %s: %w", snap.Name, err)
	}
	seq = max(seq, snap.Meta.Seq) // 0 if nothing follows the snapshot
	if stop.Verify != nil {
		w.uncovered, _ = stop.Verify.Uncovered()
	}
	w.stats.Snapshots.LoadedSeq.Store(snap.Meta.Seq)
	w.stats.Snapshots.LoadNanos.Store(uint64(loaded))
	w.stats.Snapshots.TailEvents.Store(s.EventsApplied() - at)
	w.restored(at)
	w.log.Info("snapshot loaded", "snapshot", snap.Name, "bytes", snap.Bytes, "stored_bytes", snap.StoredBytes, "took", loaded.Round(time.Millisecond),
		"tail_events", s.EventsApplied()-at)
	head, err := w.restoredHead(ctx, stop.Verify)
	if err != nil {
		return nil, 0, "", err
	}
	return s, seq, head, nil
}

// restored resets the schedule after a rebuild: the state at savedEvents
// is stored (0: none is).
func (w *Writer) restored(savedEvents uint64) {
	w.snap.savedEvents.Store(savedEvents)
	w.snap.savedAt.Store(time.Now().UnixNano())
	w.snap.retryAt.Store(0)
}

// snapshotBuffer holds an encoded snapshot in fixed-size chunks, kept for
// the next snapshot: growing never copies, and the memory is touched once
// (first touching fresh memory was measured at ~6 ms per MB in a VM: a
// doubling buffer cost seconds of the writer's pause).
type snapshotBuffer struct {
	chunks [][]byte // each snapshotChunkBytes long
	n      int
}

// snapshotChunkBytes is the chunk size of a snapshotBuffer.
const snapshotChunkBytes = 4 << 20

func (b *snapshotBuffer) reset() { b.n = 0 }

func (b *snapshotBuffer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i, off := b.n/snapshotChunkBytes, b.n%snapshotChunkBytes
		if i == len(b.chunks) {
			b.chunks = append(b.chunks, make([]byte, snapshotChunkBytes))
		}
		k := copy(b.chunks[i][off:], p)
		b.n += k
		p = p[k:]
	}
	return n, nil
}

// tail returns a copy of the last n bytes written (n <= b.n).
func (b *snapshotBuffer) tail(n int) []byte {
	out := make([]byte, n)
	for i := range n {
		at := b.n - n + i
		out[i] = b.chunks[at/snapshotChunkBytes][at%snapshotChunkBytes]
	}
	return out
}

// reader returns the bytes written, from the start.
func (b *snapshotBuffer) reader() io.Reader {
	rs := make([]io.Reader, 0, len(b.chunks))
	for i := 0; i*snapshotChunkBytes < b.n; i++ {
		rs = append(rs, bytes.NewReader(b.chunks[i][:min(snapshotChunkBytes, b.n-i*snapshotChunkBytes)]))
	}
	return io.MultiReader(rs...)
}

// upload stores a snapshot the shadow encoded. It uses the request
// connection, so that its megabytes never delay a commit on LogConn.
func (w *Writer) upload(ctx context.Context, meta ledger.SnapshotMeta, sig string, eventsApplied uint64, body *snapshotBuffer, encode time.Duration) {
	defer w.snap.uploads.Done()
	defer w.snap.uploading.Store(false)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, SnapshotSaveTimeout)
	defer cancel()
	js, err := jetstream.New(w.nc)
	var obs jetstream.ObjectStore
	if err == nil {
		obs, err = SnapshotStore(ctx, js, w.cfg.Replicas)
	}
	var stored uint64
	if err == nil {
		stored, err = SaveSnapshot(ctx, obs, meta, sig, eventsApplied, body.reader(), int64(body.n), SnapshotStoreBytesPerSecond)
	}
	if err != nil {
		w.stats.Snapshots.Failed.Add(1)
		w.snap.retryAt.Store(time.Now().Add(SnapshotRetryAfter).UnixNano())
		if ctx.Err() == nil {
			w.log.Error("snapshot not stored", "seq", meta.Seq, "err", err)
		}
		return
	}
	w.snap.savedEvents.Store(eventsApplied)
	w.snap.savedAt.Store(time.Now().UnixNano())
	w.stats.Snapshots.Saved.Add(1)
	w.stats.Snapshots.SavedSeq.Store(meta.Seq)
	w.stats.Snapshots.SavedAt.Store(time.Now().UnixNano())
	w.stats.Snapshots.SavedBytes.Store(uint64(body.n))
	w.stats.Snapshots.StoredBytes.Store(stored)
	w.stats.Snapshots.EncodeNanos.Store(uint64(encode))
	w.stats.Snapshots.StoreNanos.Store(uint64(time.Since(start)))
	w.log.Info("snapshot stored", "seq", meta.Seq, "events", eventsApplied, "bytes", body.n, "stored_bytes", stored,
		"encode", encode.Round(time.Millisecond), "store", time.Since(start).Round(time.Millisecond))
}
