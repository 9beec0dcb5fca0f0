package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// TestEventType is the type of the synthetic event `webhooks test` sends:
// never an event of the ledger, so a receiver can tell it apart.
const TestEventType = "webhook_test"

// testEvent is the synthetic event: the envelope of every event (id,
// type, v, at, customer_id, data).
type testEvent struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	V          int       `json:"v"`
	At         time.Time `json:"at"`
	CustomerID string    `json:"customer_id"`
	Data       struct {
		EndpointID string `json:"endpoint_id"`
		Message    string `json:"message"`
	} `json:"data"`
}

// SendTest sends one synthetic event (TestEventType, ID test_ and random
// hex) to ep directly, through the same Sender as the worker (signature,
// address guard, timeout, no redirects), but not through the endpoint's
// consumer: it does not wait behind undelivered events, works while the
// endpoint is parked or disabled and while no leader runs, and changes
// no state. It returns the event's ID and the attempt.
func SendTest(ctx context.Context, s *Sender, ep *Endpoint) (string, Attempt, error) {
	key, err := DecodeSecret(ep.Secret)
	if err != nil {
		return "", Attempt{}, err
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", Attempt{}, fmt.Errorf("webhooks: random: %w", err)
	}
	ev := testEvent{ID: "test_" + hex.EncodeToString(b), Type: TestEventType, V: 1, At: s.now().UTC(), CustomerID: ep.CustomerID}
	ev.Data.EndpointID = ep.ID
	ev.Data.Message = "a test delivery from `agentbill webhooks test`"
	body, err := json.Marshal(ev)
	if err != nil {
		return "", Attempt{}, err
	}
	return ev.ID, s.Send(ctx, ep, key, ev.ID, body), nil
}
