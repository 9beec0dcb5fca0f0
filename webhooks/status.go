package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Status is an endpoint's delivery status, kept by the leader's worker in
// st.<ID> (written on every change between failing and succeeding, and
// otherwise at most every StatusFlushInterval) so that `webhooks list`
// shows it and the next leader resumes the retry window where this one
// left it.
type Status struct {
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	LastErrorAt   *time.Time `json:"last_error_at,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	// FailingSince is the first failure of the event being retried (nil
	// while deliveries succeed): the retry window runs from it.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	// Attempts counts the failed attempts in a row of that event.
	Attempts int `json:"attempts,omitempty"`
}

// Status returns an endpoint's delivery status (zero if it has none yet).
func (r *Registry) Status(ctx context.Context, id string) (*Status, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	e, err := r.kv.Get(ctx, keyStatus+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &Status{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webhooks: status %s: %w", id, err)
	}
	var st Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, fmt.Errorf("webhooks: corrupt status of %s: %w", id, err)
	}
	return &st, nil
}

// putStatus stores an endpoint's delivery status.
func (r *Registry) putStatus(ctx context.Context, id string, st *Status) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, keyStatus+id, b); err != nil {
		return fmt.Errorf("webhooks: status %s: %w", id, err)
	}
	return nil
}
