package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Group commit bounds.
const (
	// CommitEventsMax bounds the events of one group commit.
	CommitEventsMax = 1000
	// CommitBytesMax bounds one commit message; it stays under the server's
	// default max_payload (1 MiB).
	CommitBytesMax = 768 * 1024
	// AppendTimeout bounds the wait for one commit's ack.
	AppendTimeout = 5 * time.Second
)

// ErrAppend wraps every failed append: the writer must not reply to any
// request of the commit and must rebuild from the log.
var ErrAppend = errors.New("append failed")

type pubAck struct {
	Error     *jetstream.APIError `json:"error,omitempty"`
	Stream    string              `json:"stream"`
	Sequence  uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate,omitempty"`
}

// fence is what a commit is appended on: the stream's last sequence (one
// writer owns the stream), or the last sequence of the writer's own subject
// (a partition: other partitions append between its commits).
type fence struct {
	seq     uint64
	subject bool
}

func (w *Writer) fence(seq uint64) fence { return fence{seq: seq, subject: w.partitioned()} }

// header returns the header and value that carry the fence.
func (f fence) header() (string, string) {
	if f.subject {
		return jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(f.seq, 10)
	}
	return jetstream.ExpectedLastSeqHeader, strconv.FormatUint(f.seq, 10)
}

// next reports whether a commit fenced by f stored at seq is the one the
// fence allows: exactly the next sequence (a partition's: any later one).
func (f fence) next(seq uint64) bool { return seq == f.seq+1 || f.subject && seq > f.seq }

// commitMsg is one commit message of this writer, fenced: it carries
// Nats-Expected-Last-Sequence = expect (or, for a partition,
// Nats-Expected-Last-Subject-Sequence), so if anyone else appended since,
// nothing is stored. It also carries the chain hash of the writer's
// previous commit (events.ChainHeader) and, with Config.Signer, the
// signature over its own chain hash (events.SigHeader). It returns the
// message and that chain hash, where the writer's next commit links. The
// body is not copied: it must stay unchanged until the message is sent.
func (w *Writer) commitMsg(id string, body []byte, expect fence) (*nats.Msg, string) {
	hash := events.ChainHash(w.chainHead, body)
	m := nats.NewMsg(w.subject)
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Header.Set(events.ChainHeader, w.chainHead)
	if w.cfg.Signer != nil {
		m.Header.Set(events.SigHeader, w.cfg.Signer.SignCommit(w.subject, hash))
	}
	m.Header.Set(expect.header())
	return m, hash
}

// checkAck reads a commit's ack: it must report the sequence the fence
// allows (fence.next).
func checkAck(data []byte, f fence) (uint64, error) {
	var ack pubAck
	if err := json.Unmarshal(data, &ack); err != nil {
		return 0, fmt.Errorf("%w: bad ack %q", ErrAppend, data)
	}
	if ack.Error != nil {
		return 0, fmt.Errorf("%w: %w", ErrAppend, ack.Error)
	}
	if ack.Duplicate || !f.next(ack.Sequence) {
		return 0, fmt.Errorf("%w: ack says sequence %d (duplicate %v), expected %d", ErrAppend, ack.Sequence, ack.Duplicate, f.seq+1)
	}
	return ack.Sequence, nil
}

// ChainHead returns the chain hash of the last commit on a writer's
// subject ("" if it has none yet): where the writer's next commit links.
func ChainHead(ctx context.Context, js jetstream.JetStream, writer string) (string, error) {
	m, err := lastMsgOn(ctx, js, events.LogSubject(writer))
	if m == nil || err != nil {
		return "", err
	}
	return events.ChainHash(m.Header.Get(events.ChainHeader), m.Data), nil
}
