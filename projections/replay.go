package projections

import (
	"context"
	"fmt"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go/jetstream"
)

// ReplayFetchMax is how many messages the replay consumer asks for at once.
const ReplayFetchMax = 4096

// ReplayStop says where a replay ends: at a sequence (0: the stream's last
// at the start of the replay), or when fn returns false.
type ReplayStop struct {
	UntilSeq uint64
}

// Replay reads the stream from its first commit up to stop.UntilSeq (or the
// last sequence when the replay starts) and calls fn with each event in
// order, with the sequence of the commit holding it. It returns the last
// sequence read.
func Replay(ctx context.Context, js jetstream.JetStream, stop ReplayStop, fn func(seq uint64, e *events.Envelope) error) (uint64, error) {
	last, err := LastSequence(ctx, js)
	if err != nil {
		return 0, err
	}
	if stop.UntilSeq != 0 && stop.UntilSeq < last {
		last = stop.UntilSeq
	}
	if last == 0 {
		return 0, nil
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.LogSubjects},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("replay consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(ReplayFetchMax))
	if err != nil {
		return 0, fmt.Errorf("replay consumer: %w", err)
	}
	defer it.Stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-done:
		}
	}()
	var seq uint64
	for seq < last {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return seq, ctx.Err()
			}
			return seq, fmt.Errorf("replay at sequence %d: %w", seq, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return seq, fmt.Errorf("replay at sequence %d: %w", seq, err)
		}
		seq = md.Sequence.Stream
		if seq > last {
			break
		}
		c, err := events.DecodeCommit(msg.Data())
		if err != nil {
			return seq, fmt.Errorf("replay: commit at sequence %d: %w", seq, err)
		}
		for _, e := range c.Events {
			if err := fn(seq, e); err != nil {
				return seq, err
			}
		}
	}
	return last, nil
}

// Rebuild returns a fresh state with every event up to stop applied, and
// the sequence it covers.
func Rebuild(ctx context.Context, js jetstream.JetStream, stop ReplayStop, def *ledger.DefaultBudget) (*ledger.State, uint64, error) {
	s := ledger.NewState()
	s.Default = def
	seq, err := Replay(ctx, js, stop, func(_ uint64, e *events.Envelope) error {
		s.Apply(e)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return s, seq, nil
}
