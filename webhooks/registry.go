package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/kvbucket"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Registry names and bounds.
const (
	// Bucket is the key-value bucket of endpoints and their delivery
	// status (its stream is KV_AGENTBILL_WEBHOOKS). Keys: ep.<ID> the
	// endpoint (written by the CLI; the worker changes only its State),
	// st.<ID> its delivery status (written by the leader's worker only).
	Bucket = "AGENTBILL_WEBHOOKS"
	// BucketHistory is 1: a removed endpoint's secret does not linger in
	// older revisions.
	BucketHistory = 1
	// RecordBytesMax bounds one stored record.
	RecordBytesMax = 8 * 1024
	// CallTimeout bounds one registry operation when the caller's context
	// has no deadline.
	CallTimeout = 5 * time.Second
	// AckWait is how long the alert stream holds a message handed to a
	// worker before handing it out again: longer than an attempt, so only
	// a crashed leader's message waits this long for the next leader.
	AckWait = 3 * RequestTimeoutDefault
	// updateAttempts bounds compare-and-set retries of a state change.
	updateAttempts = 5
	keyEndpoint    = "ep."
	keyStatus      = "st."
)

// Options configures OpenRegistry.
type Options struct {
	// Replicas of the bucket if OpenRegistry creates it: 1, or 3.
	Replicas int
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Resolver checks URLs at Add; net.DefaultResolver if nil.
	Resolver Resolver
}

// Registry keeps endpoints in the AGENTBILL_WEBHOOKS bucket and their
// durable consumers on the alert stream. It is safe for concurrent use.
type Registry struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	now      func() time.Time
	resolver Resolver
}

// OpenRegistry opens the bucket, creating it if it does not exist.
func OpenRegistry(ctx context.Context, nc *nats.Conn, o Options) (*Registry, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := kvbucket.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket:       Bucket,
		Description:  "AgentBill webhook endpoints (with their signing secrets) and delivery status",
		History:      BucketHistory,
		MaxValueSize: RecordBytesMax,
		Storage:      jetstream.FileStorage,
		Replicas:     max(1, o.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: bucket %s: %w", Bucket, err)
	}
	r := &Registry{js: js, kv: kv, now: o.Now, resolver: o.Resolver}
	if r.now == nil {
		r.now = time.Now
	}
	if r.resolver == nil {
		r.resolver = net.DefaultResolver
	}
	return r, nil
}

// AddRequest is what `webhooks add` asks for.
type AddRequest struct {
	URL          string
	Types        []events.Type // empty: every alert type
	CustomerID   string        // empty: every customer
	AllowPrivate bool
}

// Add registers an endpoint: it creates the endpoint's durable consumer
// on the alert stream first (delivering what is published from then on),
// then stores the endpoint, so no event after Add returns is missed even
// if no leader runs. Errors: ErrInvalid, ErrPrivateAddress, ErrLimit,
// ErrNoAlertStream, NATS errors.
func (r *Registry) Add(ctx context.Context, req AddRequest) (*Endpoint, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	ep, err := r.newEndpoint(ctx, req)
	if err != nil {
		return nil, err
	}
	list, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(list) >= EndpointsMax {
		return nil, fmt.Errorf("%w: %d exist (EndpointsMax); remove one first", ErrLimit, len(list))
	}
	st, err := r.alertStream(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := st.CreateConsumer(ctx, consumerConfig(ep)); err != nil {
		return nil, fmt.Errorf("webhooks: consumer for %s: %w", ep.ID, err)
	}
	b, err := json.Marshal(ep)
	if err == nil {
		_, err = r.kv.Create(ctx, keyEndpoint+ep.ID, b)
	}
	if err != nil {
		_ = st.DeleteConsumer(context.WithoutCancel(ctx), ConsumerName(ep.ID))
		return nil, fmt.Errorf("webhooks: store %s: %w", ep.ID, err)
	}
	return ep, nil
}

func (r *Registry) newEndpoint(ctx context.Context, req AddRequest) (*Endpoint, error) {
	var errs []error
	if _, err := CheckURL(ctx, req.URL, req.AllowPrivate, r.resolver); err != nil {
		errs = append(errs, err)
	}
	if req.CustomerID != "" {
		if err := events.ValidateCustomerID(req.CustomerID); err != nil {
			errs = append(errs, fmt.Errorf("%w: %v", ErrInvalid, err))
		}
	}
	for _, t := range req.Types {
		if _, err := ParseTypes(string(t)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	return &Endpoint{ID: id, URL: req.URL, Types: req.Types, CustomerID: req.CustomerID, Secret: secret,
		AllowPrivate: req.AllowPrivate, CreatedAt: r.now().UTC(), State: StateActive}, nil
}

// consumerConfig is an endpoint's durable consumer: only its types and
// customer, new events only, one message outstanding at a time (the
// per-endpoint order: the next is handed out only once this one is
// acknowledged), never given up on (a parked endpoint keeps its events).
func consumerConfig(ep *Endpoint) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        ConsumerName(ep.ID),
		Description:    "webhook " + ep.ID, // not the URL: it may hold a secret
		FilterSubjects: ep.FilterSubjects(),
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        AckWait,
		MaxAckPending:  1,
		MaxDeliver:     -1,
	}
}

func (r *Registry) alertStream(ctx context.Context) (jetstream.Stream, error) {
	st, err := r.js.Stream(ctx, projections.WebhookStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %s does not exist yet; start `agentbill serve` once (its leader creates it)", ErrNoAlertStream, projections.WebhookStream)
	}
	if err != nil {
		return nil, fmt.Errorf("webhooks: stream %s: %w", projections.WebhookStream, err)
	}
	return st, nil
}

// Get returns one endpoint, secret included, and its revision. Errors:
// ErrInvalid, ErrNotFound, NATS errors.
func (r *Registry) Get(ctx context.Context, id string) (*Endpoint, uint64, error) {
	if err := CheckID(id); err != nil {
		return nil, 0, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	e, err := r.kv.Get(ctx, keyEndpoint+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("webhooks: get %s: %w", id, err)
	}
	ep, err := decodeEndpoint(e.Value())
	return ep, e.Revision(), err
}

// List returns every endpoint, secrets included (callers print Public),
// oldest first.
func (r *Registry) List(ctx context.Context) ([]*Endpoint, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	w, err := r.kv.Watch(ctx, keyEndpoint+"*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []*Endpoint
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("webhooks: list: %w", ctx.Err())
		case e := <-w.Updates():
			if e == nil {
				sort.Slice(out, func(i, j int) bool {
					if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
						return out[i].CreatedAt.Before(out[j].CreatedAt)
					}
					return out[i].ID < out[j].ID
				})
				return out, nil
			}
			ep, err := decodeEndpoint(e.Value())
			if err != nil {
				return nil, err
			}
			if len(out) < EndpointsMax*2 { // bound: Add keeps it at EndpointsMax
				out = append(out, ep)
			}
		}
	}
}

// Remove deletes an endpoint, its status and its consumer (with the
// events it had not delivered). Errors: ErrInvalid, ErrNotFound, NATS
// errors.
func (r *Registry) Remove(ctx context.Context, id string) error {
	if _, _, err := r.Get(ctx, id); err != nil {
		return err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	// The record first: the leader's worker stops when it sees it go.
	if err := r.kv.Delete(ctx, keyEndpoint+id); err != nil {
		return fmt.Errorf("webhooks: remove %s: %w", id, err)
	}
	if err := r.kv.Delete(ctx, keyStatus+id); err != nil {
		return fmt.Errorf("webhooks: remove %s status: %w", id, err)
	}
	st, err := r.alertStream(ctx)
	if errors.Is(err, ErrNoAlertStream) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := st.DeleteConsumer(ctx, ConsumerName(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("webhooks: remove %s consumer: %w", id, err)
	}
	return nil
}

// Resume makes a parked or disabled endpoint active again: the leader
// delivers what waits in its consumer, from the oldest, and failures
// before now no longer count toward the retry window.
func (r *Registry) Resume(ctx context.Context, id string) (*Endpoint, error) {
	return r.setState(ctx, id, StateActive, "", true)
}

// setState changes an endpoint's state (compare-and-set). Errors:
// ErrInvalid, ErrNotFound, NATS errors.
func (r *Registry) setState(ctx context.Context, id string, s State, reason string, resumed bool) (*Endpoint, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	for range updateAttempts {
		ep, rev, err := r.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		at := r.now().UTC()
		ep.State, ep.StateReason, ep.StateAt = s, truncateReason(reason), &at
		if resumed {
			ep.ResumedAt = &at
		}
		b, err := json.Marshal(ep)
		if err != nil {
			return nil, err
		}
		_, err = r.kv.Update(ctx, keyEndpoint+id, b, rev)
		if err == nil {
			return ep, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongRevision(err) {
			return nil, fmt.Errorf("webhooks: update %s: %w", id, err)
		}
	}
	return nil, fmt.Errorf("webhooks: update %s: changed concurrently %d times", id, updateAttempts)
}

func isWrongRevision(err error) bool {
	var jsErr jetstream.JetStreamError
	return errors.As(err, &jsErr) && jsErr.APIError() != nil &&
		jsErr.APIError().ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Pending returns how many events wait for an endpoint: not yet handed
// to its worker, plus the one being retried.
func (r *Registry) Pending(ctx context.Context, id string) (uint64, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	c, err := r.js.Consumer(ctx, projections.WebhookStream, ConsumerName(id))
	if err != nil {
		return 0, fmt.Errorf("webhooks: consumer %s: %w", ConsumerName(id), err)
	}
	info := c.CachedInfo()
	return info.NumPending + uint64(info.NumAckPending), nil
}

func decodeEndpoint(b []byte) (*Endpoint, error) {
	var ep Endpoint
	if err := json.Unmarshal(b, &ep); err != nil {
		return nil, fmt.Errorf("webhooks: corrupt endpoint record: %w", err)
	}
	if err := CheckID(ep.ID); err != nil {
		return nil, fmt.Errorf("webhooks: corrupt endpoint record: %w", err)
	}
	return &ep, nil
}

// truncateReason bounds a stored reason (it quotes a response).
func truncateReason(s string) string {
	const max = 512
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// bound gives ctx a deadline of CallTimeout unless it has one.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, CallTimeout)
}
