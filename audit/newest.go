package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds on a Scanner. The log holds every customer's events in shared
// commits, so finding the newest events of a kind means reading commits
// back from the end of the stream; these bound that scan for the
// gateway's events endpoint and the MCP server's recent_refusals alike.
const (
	// ScanCommitsMax bounds the commits read back for one scan.
	ScanCommitsMax = 1000
	// ScanBytesMax bounds the bytes of the commits read for one scan (a
	// commit is at most 768 KiB).
	ScanBytesMax = 32 * 1024 * 1024
	// ScansMax bounds the scans of one Scanner in progress at once; past
	// it the answer is unavailable (retry).
	ScansMax = 4
	// StreamInfoTimeout bounds the first read of the stream. It answers in
	// milliseconds when allowed; a NATS user that may not read the stream
	// gets no answer at all (the server reports the violation
	// asynchronously), so without this bound the scan would hang until
	// its caller's deadline.
	StreamInfoTimeout = 2 * time.Second
)

// Scanner finds the newest events of the log that a filter keeps, at most
// ScansMax scans at once. It is safe for concurrent use.
type Scanner struct {
	js    jetstream.JetStream
	slots chan struct{} // ScansMax
}

// NewScanner returns a Scanner reading the log through js.
func NewScanner(js jetstream.JetStream) *Scanner {
	return &Scanner{js: js, slots: make(chan struct{}, ScansMax)}
}

// Match is one event a scan kept, with the stream sequence of its commit.
type Match struct {
	Seq   uint64
	Event *events.Envelope
}

// Scan is what Newest found.
type Scan struct {
	Matches []Match // newest first
	// ScannedCommits is how many commits were read, ending at LastSeq,
	// the stream's last sequence when the scan began.
	ScannedCommits int
	LastSeq        uint64
	// Truncated is true when the scan stopped at a bound before both the
	// start of the log and the limit: older matches may exist.
	Truncated bool
}

// Acquire takes one of the ScansMax scan slots, or returns an unavailable
// error at once when all are taken. Call release when done. Newest takes
// its own; Acquire is for holding a slot outside a scan.
func (s *Scanner) Acquire() (release func(), err error) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	default:
		return nil, ledger.Errorf(ledger.CodeUnavailable, "too many event log reads in progress; retry")
	}
}

// Newest reads commits back from the end of the log, within the bounds
// above, collecting up to limit events that keep accepts, newest first.
// It returns an unavailable error when every slot is taken or the stream
// does not answer within StreamInfoTimeout, and an empty scan when no
// stream exists (nothing was ever committed).
func (s *Scanner) Newest(ctx context.Context, limit int, keep func(*events.Envelope) bool) (*Scan, error) {
	release, err := s.Acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	scan := &Scan{}
	st, err := s.openLog(ctx)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return scan, nil // nothing was ever committed
	}
	state := st.CachedInfo().State
	scan.LastSeq = state.LastSeq
	bytes := 0
	for seq := state.LastSeq; seq >= max(state.FirstSeq, 1) && len(scan.Matches) < limit; seq-- {
		if scan.ScannedCommits == ScanCommitsMax || bytes >= ScanBytesMax {
			scan.Truncated = true
			break
		}
		msg, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// The stream holds only events.LogSubjects (projections/stream.go):
		// every message is a commit.
		scan.ScannedCommits++
		bytes += len(msg.Data)
		if err := scan.add(msg.Data, seq, limit, keep); err != nil {
			return nil, fmt.Errorf("commit at sequence %d: %w", seq, err)
		}
	}
	return scan, nil
}

// openLog returns the log stream, or nil if none exists, within
// StreamInfoTimeout.
func (s *Scanner) openLog(ctx context.Context) (jetstream.Stream, error) {
	ictx, cancel := context.WithTimeout(ctx, StreamInfoTimeout)
	defer cancel()
	st, err := s.js.Stream(ictx, events.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return nil, ledger.Errorf(ledger.CodeUnavailable,
			"no answer reading the log stream %s within %s: AgentBill may be down, or this NATS user may not read the stream (nats.conf: admin may, agent may not)",
			events.StreamName, StreamInfoTimeout)
	}
	return st, err
}

// add appends one commit's kept events, newest first, up to limit in all.
func (scan *Scan) add(data []byte, seq uint64, limit int, keep func(*events.Envelope) bool) error {
	c, err := events.DecodeCommit(data)
	if err != nil {
		return err
	}
	for i := len(c.Events) - 1; i >= 0 && len(scan.Matches) < limit; i-- {
		if e := c.Events[i]; keep(e) {
			scan.Matches = append(scan.Matches, Match{Seq: seq, Event: e})
		}
	}
	return nil
}
