package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AlertTypes are the event types announced as alerts: the ones Watch and
// Subscribe deliver (the alert stream AGENTBILL_EVENTS holds only these).
var AlertTypes = events.AlertTypes

// Subscription bounds.
const (
	// SubscribeAckWait is how long the server waits for fn to return (the
	// ack) before it delivers the alert again.
	SubscribeAckWait = 30 * time.Second
	// SubscribeFetchWait bounds one pull for the next alert, so a
	// cancelled ctx is noticed.
	SubscribeFetchWait = time.Second
)

// ErrNotAlertType: Watch and Subscribe deliver alerts only.
var ErrNotAlertType = errors.New("not an alert type")

// Alert is one alert as delivered by Watch and Subscribe: the event and
// the log sequence of the commit that holds it.
type Alert struct {
	LogSeq uint64
	Event  *events.Envelope
}

// Watch calls fn for every new alert of the given types (every alert type
// if none; see AlertTypes) of one customer (every customer if customerID
// is ""), from now on, until ctx ends or fn returns an error. It reads the
// alert stream through an ordered consumer filtered by customer and type,
// so it sees only committed alerts, in order, and decodes nothing else.
// seq is the log sequence of the alert's commit. Use Subscribe to resume
// where a previous run stopped.
func (c *Client) Watch(ctx context.Context, customerID string, types []events.Type, fn func(seq uint64, e *events.Envelope) error) error {
	filters, err := alertFilters(customerID, types)
	if err != nil {
		return err
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, events.AlertStreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects:    filters,
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		InactiveThreshold: events.ConsumerInactiveMax,
	})
	if err != nil {
		return fmt.Errorf("agentbill: watch: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("agentbill: watch: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("agentbill: watch: %w", err)
		}
		a, err := decodeAlert(msg)
		if err != nil {
			return fmt.Errorf("agentbill: watch: %w", err)
		}
		if err := fn(a.LogSeq, a.Event); err != nil {
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

// SubscribeOptions selects what Subscribe delivers.
type SubscribeOptions struct {
	// CustomerID: one customer's alerts; every customer's if "".
	CustomerID string
	// Types: these alert types; every alert type if empty.
	Types []events.Type
}

// Subscribe calls fn for every alert the durable consumer name (on the
// alert stream) has not acknowledged, in order, until ctx ends or fn
// returns an error. An alert is acknowledged only after fn returns nil, so
// delivery is at least once: after a crash or a restart with the same
// name, it resumes at the first alert fn did not finish, and fn may see
// that one again (deduplicate by Alert.Event.ID). The consumer is created
// on first use, from the alerts published after that moment, and kept by
// the server between runs; a later call with the same name and other
// options updates its filter. Remove it with DeleteSubscription.
func (c *Client) Subscribe(ctx context.Context, name string, o SubscribeOptions, fn func(Alert) error) error {
	cons, err := c.alertConsumer(ctx, name, o)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchMaxWait(SubscribeFetchWait))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			continue // nothing within SubscribeFetchWait
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("agentbill: subscribe %s: %w", name, err)
		}
		a, err := decodeAlert(msg)
		if err != nil {
			_ = msg.Term() // never deliverable: do not block the ones after it
			return fmt.Errorf("agentbill: subscribe %s: %w", name, err)
		}
		if err := fn(a); err != nil {
			_ = msg.Nak()
			return err
		}
		if err := msg.DoubleAck(ctx); err != nil && ctx.Err() == nil {
			return fmt.Errorf("agentbill: subscribe %s: ack: %w", name, err)
		}
	}
	return nil
}

// DeleteSubscription removes the durable consumer name of Subscribe.
func (c *Client) DeleteSubscription(ctx context.Context, name string) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	return js.DeleteConsumer(ctx, events.AlertStreamName, name)
}

// alertConsumer creates or updates the durable pull consumer name.
func (c *Client) alertConsumer(ctx context.Context, name string, o SubscribeOptions) (jetstream.Consumer, error) {
	if err := events.ValidateCustomerID(name); err != nil || events.Token(name) != name {
		return nil, fmt.Errorf("agentbill: subscribe: name %q: use letters, digits, _ and - (1 to 64)", name)
	}
	filters, err := alertFilters(o.CustomerID, o.Types)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "agentbill subscription",
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        SubscribeAckWait,
		MaxAckPending:  1, // one at a time: in order, also across redeliveries
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, events.AlertStreamName, cfg)
	if err != nil {
		return nil, fmt.Errorf("agentbill: subscribe %s: %w", name, err)
	}
	return cons, nil
}

// alertFilters returns the alert stream's subject filters for a customer
// ("" for all) and alert types (all if none).
func alertFilters(customerID string, types []events.Type) ([]string, error) {
	if customerID != "" {
		if err := events.ValidateCustomerID(customerID); err != nil {
			return nil, fmt.Errorf("agentbill: %w", err)
		}
	}
	if len(types) == 0 {
		return []string{events.EventFilter(customerID, "")}, nil
	}
	filters := make([]string, 0, len(types))
	for _, t := range types {
		if !isAlertType(t) {
			return nil, fmt.Errorf("agentbill: %w: %q", ErrNotAlertType, t)
		}
		filters = append(filters, events.EventFilter(customerID, t))
	}
	return filters, nil
}

func isAlertType(t events.Type) bool {
	for _, a := range AlertTypes {
		if a == t {
			return true
		}
	}
	return false
}

// decodeAlert reads one alert stream message.
func decodeAlert(msg jetstream.Msg) (Alert, error) {
	e, err := events.Decode(msg.Data())
	if err != nil {
		return Alert{}, err
	}
	seq, _ := strconv.ParseUint(msg.Headers().Get(events.AlertLogSeqHeader), 10, 64)
	return Alert{LogSeq: seq, Event: e}, nil
}
