package bench

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

// The atomic batch baseline: what appending a group commit as a JetStream
// atomic batch (one message per event) costs, measured beside the ledger.
const (
	// atomicBatchMessagesMax is the server's default atomic batch limit.
	atomicBatchMessagesMax = 1000
	// atomicBatchTimeout bounds one batch append, commit ack included.
	atomicBatchTimeout = 5 * time.Second
)

// Atomic batch headers (nats-server >= 2.12).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

var errAppend = errors.New("append failed")

type batchAck struct {
	Error    *jetstream.APIError `json:"error,omitempty"`
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	BatchID  string              `json:"batch,omitempty"`
	Count    uint64              `json:"count,omitempty"`
}

// appendAtomicBatch appends msgs as one unit, fenced: the first message carries
// Nats-Expected-Last-Sequence = expect, so if anyone else appended since,
// nothing is stored. One message is a plain publish (same fencing, no batch
// staging); more are an atomic batch: all but the last published without a
// reply, the last carrying the commit and returning the ack. It returns the
// stream's new last sequence, which must be expect + len(msgs).
func appendAtomicBatch(nc *nats.Conn, msgs []*nats.Msg, expect uint64) (uint64, error) {
	if len(msgs) == 0 || len(msgs) > atomicBatchMessagesMax {
		return 0, fmt.Errorf("%w: batch of %d messages", errAppend, len(msgs))
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
				return 0, fmt.Errorf("%w: %v", errAppend, err)
			}
		}
	}
	resp, err := nc.RequestMsg(msgs[len(msgs)-1], atomicBatchTimeout)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errAppend, err)
	}
	var ack batchAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("%w: bad ack %q", errAppend, resp.Data)
	}
	if ack.Error != nil {
		return 0, fmt.Errorf("%w: %w", errAppend, ack.Error)
	}
	want := expect + uint64(len(msgs))
	if ack.Sequence != want || (batchID != "" && (ack.BatchID != batchID || ack.Count != uint64(len(msgs)))) {
		return 0, fmt.Errorf("%w: ack says sequence %d (batch %q of %d), expected %d", errAppend,
			ack.Sequence, ack.BatchID, ack.Count, want)
	}
	return ack.Sequence, nil
}
