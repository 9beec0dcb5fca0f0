package projections

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Group commit bounds.
const (
	// BatchMessagesMax is the most events appended in one atomic batch: the
	// server's default limit for an atomic batch.
	BatchMessagesMax = 1000
	// AppendTimeout bounds one batch append, commit ack included.
	AppendTimeout = 5 * time.Second
)

// Atomic batch headers (nats-server >= 2.12).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// ErrAppend wraps every failed append: the writer must not reply to any
// request of the batch and must rebuild from the log.
var ErrAppend = errors.New("append failed")

type pubAck struct {
	Error    *jetstream.APIError `json:"error,omitempty"`
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	BatchID  string              `json:"batch,omitempty"`
	Count    uint64              `json:"count,omitempty"`
}

// appendBatch appends msgs as one unit, fenced: the first message carries
// Nats-Expected-Last-Sequence = expect, so if anyone else appended since,
// nothing is stored. One message is a plain publish (same fencing, no batch
// staging); more are an atomic batch: all but the last published without a
// reply, the last carrying the commit and returning the ack. It returns the
// stream's new last sequence, which must be expect + len(msgs).
func appendBatch(nc *nats.Conn, msgs []*nats.Msg, expect uint64) (uint64, error) {
	if len(msgs) == 0 || len(msgs) > BatchMessagesMax {
		return 0, fmt.Errorf("%w: batch of %d messages", ErrAppend, len(msgs))
	}
	msgs[0].Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(expect, 10))
	var batchID string
	if len(msgs) > 1 {
		batchID = nuid.Next()
		for i, m := range msgs {
			m.Header.Set(hdrBatchID, batchID)
			m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		}
		msgs[len(msgs)-1].Header.Set(hdrBatchCommit, "1")
		for _, m := range msgs[:len(msgs)-1] {
			if err := nc.PublishMsg(m); err != nil {
				return 0, fmt.Errorf("%w: %v", ErrAppend, err)
			}
		}
	}
	resp, err := nc.RequestMsg(msgs[len(msgs)-1], AppendTimeout)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrAppend, err)
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("%w: bad ack %q", ErrAppend, resp.Data)
	}
	if ack.Error != nil {
		return 0, fmt.Errorf("%w: %w", ErrAppend, ack.Error)
	}
	want := expect + uint64(len(msgs))
	if ack.Sequence != want || (batchID != "" && (ack.BatchID != batchID || ack.Count != uint64(len(msgs)))) {
		return 0, fmt.Errorf("%w: ack says sequence %d (batch %q of %d), expected %d", ErrAppend,
			ack.Sequence, ack.BatchID, ack.Count, want)
	}
	return ack.Sequence, nil
}
