package webhooks

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentbill/agentbill/events"
)

// Endpoint bounds and formats.
const (
	// EndpointsMax bounds the endpoints of one ledger: each has a durable
	// consumer on the alert stream and, on the leader, a delivery
	// goroutine.
	EndpointsMax = 100
	// URLBytesMax bounds an endpoint's URL.
	URLBytesMax = 2048
	// IDPrefix starts every endpoint ID; IDRandomBytes follow as hex.
	IDPrefix      = "ep_"
	IDRandomBytes = 10
	// SecretRandomBytes is a signing secret's entropy (Standard Webhooks
	// asks for 24 to 64 bytes).
	SecretRandomBytes = 32
	// ConsumerPrefix starts the durable consumer name of every endpoint
	// on the alert stream: ConsumerPrefix + the endpoint's ID.
	ConsumerPrefix = "webhook_"
)

// State is whether the leader delivers to an endpoint.
type State string

// States.
const (
	// StateActive: the leader delivers.
	StateActive State = "active"
	// StateParked: deliveries failed for longer than the retry window; the
	// undelivered events wait in the consumer until `webhooks resume`.
	StateParked State = "parked"
	// StateDisabled: the receiver answered 410 Gone; nothing is delivered
	// until `webhooks resume`.
	StateDisabled State = "disabled"
)

// AlertTypes are the event types an endpoint may subscribe to: those the
// writer publishes to the alert stream.
var AlertTypes = events.AlertTypes

// Endpoint is one registered receiver. Only the registry (the CLI) creates
// and removes endpoints; the delivery worker changes only State.
type Endpoint struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Types the endpoint receives; empty: every alert type.
	Types []events.Type `json:"types,omitempty"`
	// CustomerID limits the endpoint to one customer; empty: every one.
	CustomerID string `json:"customer_id,omitempty"`
	// Secret signs every delivery (whsec_ and base64). It is shown once,
	// by add; Public clears it.
	Secret string `json:"secret,omitempty"`
	// AllowPrivate lets deliveries dial loopback, link-local and private
	// addresses (tests, on-premise receivers).
	AllowPrivate bool      `json:"allow_private,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	State        State     `json:"state"`
	// StateReason says why the endpoint is parked or disabled.
	StateReason string     `json:"state_reason,omitempty"`
	StateAt     *time.Time `json:"state_at,omitempty"`
	// ResumedAt is the last `webhooks resume`: failures before it do not
	// count toward the retry window.
	ResumedAt *time.Time `json:"resumed_at,omitempty"`
}

// Public returns a copy without the secret, to print.
func (e *Endpoint) Public() *Endpoint {
	c := *e
	c.Secret = ""
	return &c
}

// Disabled reports whether the endpoint receives nothing (parked or
// disabled).
func (e *Endpoint) Disabled() bool { return e.State != StateActive }

// ConsumerName is the durable consumer of an endpoint on the alert stream.
func ConsumerName(id string) string { return ConsumerPrefix + id }

// FilterSubjects are the alert-stream subjects an endpoint receives: one
// per type, for its customer or every customer.
func (e *Endpoint) FilterSubjects() []string {
	if len(e.Types) == 0 {
		return []string{events.EventFilter(e.CustomerID, "")}
	}
	out := make([]string, len(e.Types))
	for i, t := range e.Types {
		out[i] = events.EventFilter(e.CustomerID, t)
	}
	return out
}

// Wants reports whether the endpoint receives events of type t for
// customerID (what its consumer's filter selects).
func (e *Endpoint) Wants(t events.Type, customerID string) bool {
	if e.CustomerID != "" && e.CustomerID != customerID {
		return false
	}
	return len(e.Types) == 0 || slices.Contains(e.Types, t)
}

// ParseTypes reads a comma-separated list of alert types; "" is every one.
func ParseTypes(s string) ([]events.Type, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []events.Type
	for _, f := range strings.Split(s, ",") {
		t := events.Type(strings.TrimSpace(f))
		if !slices.Contains(AlertTypes, t) {
			return nil, fmt.Errorf("%w: type %q: use %s", ErrInvalid, truncate(string(t)), typeNames())
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func typeNames() string {
	names := make([]string, len(AlertTypes))
	for i, t := range AlertTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// CheckID checks an endpoint ID's shape (it names a KV key and a consumer).
func CheckID(id string) error {
	rest, ok := strings.CutPrefix(id, IDPrefix)
	if !ok || len(rest) != 2*IDRandomBytes {
		return fmt.Errorf("%w: endpoint ID %q: want %s and %d hex digits", ErrInvalid, truncate(id), IDPrefix, 2*IDRandomBytes)
	}
	if _, err := hex.DecodeString(rest); err != nil || strings.ToLower(rest) != rest {
		return fmt.Errorf("%w: endpoint ID %q: want %s and %d lowercase hex digits", ErrInvalid, truncate(id), IDPrefix, 2*IDRandomBytes)
	}
	return nil
}

// newID returns a fresh endpoint ID from crypto/rand.
func newID() (string, error) {
	b := make([]byte, IDRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhooks: random: %w", err)
	}
	return IDPrefix + hex.EncodeToString(b), nil
}

// NewSecret returns a fresh signing secret: whsec_ and the standard
// base64 of SecretRandomBytes from crypto/rand.
func NewSecret() (string, error) {
	b := make([]byte, SecretRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhooks: random: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// truncate shortens user input quoted in an error.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
