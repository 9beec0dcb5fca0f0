package ledger

import "errors"

// Snapshots. A snapshot is the whole state in a compact binary form, so a
// restart can load it and replay only the log after it. The encoding is
// deterministic (map keys sorted, windows in FIFO order): two states that
// behave alike encode to the same bytes.
//
// Layout (integers are unsigned varints unless noted; a string is its
// length then its bytes; a time is a signed varint of Unix seconds then
// the nanoseconds; an amount is its canonical decimal text, exact):
//
//	magic "AGBSNAP\n", version
//	meta: seq, writer, commit; events applied
//	customers: count, then each customer, in hashedCustomer order: its
//	  budget, period numbers, agents and tasks; a flags byte (the
//	  exhausted and overdrafted alerts, and which optional parts
//	  follow); its open holds (each with its scope if a hold has one);
//	  then, if flagged, its policy, its credit grants and its scope
//	  usage (snapshot_encode.go, customer)
//	idempotency window, closed-reservation window (see writeWindow); a
//	  remembered request's event in a binary form (snapshot_event.go)
//	trailer: SHA-256 of every byte before it (32 raw bytes)
//
// The hash is a trailer rather than in the header so that both writing and
// reading stream: neither holds the encoding in memory. A snapshot is used
// only if the hash verifies and nothing follows it.
const (
	snapshotMagic = "AGBSNAP\n"
	// snapshotVersion 5: a policy, and a remembered budget_set with the
	// fields of grants, ends with the budget's rate limit (a presence
	// byte, then per_second and burst), then (a policy) its price list;
	// a customer's flags are followed by its unpriced-record count; the
	// price lists follow the windows. 4: a customer's exhausted byte became a flags byte
	// before its open holds, which also says which of its policy
	// (overdraft, rollover, run caps), credit grants, scope usage and
	// hold scopes follow; a remembered request's event keeps the fields
	// of grants, scopes and overdraft, and granted events answer
	// requests. 3: a remembered request is no longer written with its
	// hash and op (its event holds them); 2: a window entry is its key,
	// time and value (1 had tags and a list of orphans no window can
	// hold).
	snapshotVersion = 5
	// snapshotStringBytesMax bounds any string read from a snapshot: an ID,
	// a URL, or one remembered event (an event fits one commit, 768 KiB).
	snapshotStringBytesMax = 1 << 20
	// snapshotPresizeMax bounds the map capacity reserved from a count read
	// from a snapshot, before the data behind the count is seen.
	snapshotPresizeMax = 1 << 20
	// snapshotSlabCustomers is how many customers one allocation holds
	// when a snapshot is read.
	snapshotSlabCustomers = 1024
	// snapshotSlabsQueued bounds decoded slabs waiting to be indexed.
	snapshotSlabsQueued = 8
	// snapshotEncodersMax bounds the goroutines encoding customers, and
	// snapshotPartCustomersMin is the fewest customers worth one.
	snapshotEncodersMax      = 8
	snapshotPartCustomersMin = 10_000
	// snapshotYieldEvery is how many customers or remembered keys a
	// background encoding (WriteSnapshotInBackground) handles between two
	// yields of the processor: about a tenth of a millisecond of work.
	snapshotYieldEvery = 64
	// snapshotChunkBytes is the chunk size of in-memory parts.
	snapshotChunkBytes = 1 << 20
	// snapshotBufferBytes is the read and write buffer size.
	snapshotBufferBytes = 256 << 10
)

// ErrInvalidSnapshot wraps every reason a snapshot is refused.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// SnapshotMeta says where in the log a snapshot's state stands. The ledger
// stores it and returns it; the caller checks it against the log.
type SnapshotMeta struct {
	// Seq is the last log sequence whose events the state includes.
	Seq uint64
	// Writer names the writer that took the snapshot.
	Writer string
	// Commit is the ID of the commit at Seq, so that a snapshot of another
	// log with as many commits is recognised.
	Commit string
	// Digest is the SHA-256 the snapshot ends with (over everything before
	// it), set by ReadSnapshot; WriteSnapshot ignores it. A signature over
	// the snapshot signs this digest.
	Digest []byte
}
