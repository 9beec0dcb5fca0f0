// Package projections owns the live ledger: the single writer that decides
// requests against in-memory state and appends each group commit's events
// to JetStream as one message (a commit), its leader election and standby,
// the read-side Follower, snapshots, and the replay that rebuilds that
// state from the stream. See README.md for its invariants.
package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamDuplicateWindow is the stream's Nats-Msg-Id window (commit IDs).
// Fencing with the expected last sequence already rules out double appends
// by the writer; the window only catches a retried publish, so it is kept
// short to bound the server's memory at high rates.
const StreamDuplicateWindow = 30 * time.Second

// StreamConfig returns the AGENTBILL stream's configuration.
func StreamConfig(replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        events.StreamName,
		Description: "AgentBill ledger: every budget decision, append-only",
		Subjects:    []string{events.LogSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    replicas,
		Duplicates:  StreamDuplicateWindow,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	}
}

// EnsureStream creates the stream, or updates it to StreamConfig.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, StreamConfig(replicas))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", events.StreamName, err)
	}
	return st, nil
}

// LastSequence returns the stream's last sequence (0 if empty).
func LastSequence(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", events.StreamName, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", events.StreamName, err)
	}
	return info.State.LastSeq, nil
}

// ErrStreamGap reports a stream whose sequence skipped while replaying.
var ErrStreamGap = errors.New("stream sequence gap")
