package client

import (
	"context"
	"fmt"

	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Watch calls fn for every new event of the given types (every type if
// none) of one customer (every customer if customerID is ""), as it is
// committed, until ctx ends or fn returns an error. It reads the log through
// a JetStream ordered consumer, so it sees only durable events, in log
// order. (For lower latency, a core subscription on
// events.EventFilter(customerID, type) receives alerts as they are
// announced after each commit.)
func (c *Client) Watch(ctx context.Context, customerID string, types []events.Type, fn func(seq uint64, e *events.Envelope) error) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	want := make(map[events.Type]bool, len(types))
	for _, t := range types {
		want[t] = true
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.LogSubjects},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("agentbill: watch: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("agentbill: watch: %w", err)
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("agentbill: watch: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		commit, err := events.DecodeCommit(msg.Data())
		if err != nil {
			return fmt.Errorf("agentbill: watch: commit %d: %w", md.Sequence.Stream, err)
		}
		for _, e := range commit.Events {
			if (len(want) > 0 && !want[e.Type]) || (customerID != "" && e.CustomerID != customerID) {
				continue
			}
			if err := fn(md.Sequence.Stream, e); err != nil {
				return err
			}
		}
	}
}

// WatchExhausted calls fn for every budget_exhausted event (of one customer,
// or all if customerID is "") as it is committed, until ctx ends.
func (c *Client) WatchExhausted(ctx context.Context, customerID string, fn func(e *events.Envelope)) error {
	return c.Watch(ctx, customerID, []events.Type{events.TypeBudgetExhausted}, func(_ uint64, e *events.Envelope) error {
		fn(e)
		return nil
	})
}
