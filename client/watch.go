package client

import (
	"context"
	"fmt"

	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Watch calls fn for every new event of the given types (all customers if
// customerID is ""), as it is committed to the stream, until ctx ends or fn
// returns an error. It reads through a JetStream ordered consumer, so it
// sees only durable events, in log order.
func (c *Client) Watch(ctx context.Context, customerID string, types []events.Type, fn func(seq uint64, e *events.Envelope) error) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	filters := make([]string, 0, len(types))
	for _, t := range types {
		filters = append(filters, events.EventFilter(customerID, t))
	}
	if len(filters) == 0 {
		filters = append(filters, events.EventFilter(customerID, ""))
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
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
		e, err := events.Decode(msg.Data())
		if err != nil {
			return fmt.Errorf("agentbill: watch: event %d: %w", md.Sequence.Stream, err)
		}
		if err := fn(md.Sequence.Stream, e); err != nil {
			return err
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
