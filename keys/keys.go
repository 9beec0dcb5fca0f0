// Package keys owns AgentBill's API keys: their format, the hash that is
// the only thing stored, the roles, and what each role may do. Store keeps
// them in a JetStream key-value bucket. The HTTP gateway authenticates
// every request with Store.Authenticate; the adapters (HTTP and MCP)
// authorize it with Key.Authorize, through internal/ops; no other package
// decides who may do what.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentbill/agentbill/events"
)

// Key format and bounds.
const (
	// SecretPrefix starts every API key.
	SecretPrefix = "agb_"
	// SecretRandomBytes is the key's entropy: 256 bits from crypto/rand.
	SecretRandomBytes = 32
	// SecretLen is the length of a key: the prefix and the unpadded
	// base64url of the random bytes.
	SecretLen = len(SecretPrefix) + (SecretRandomBytes*8+5)/6
	// IDLen is the length of a key ID: the first 16 hex digits (64 bits)
	// of the key's SHA-256. IDs are not secret.
	IDLen = 16
	// DisplayPrefixLen is how much of a key `keys list` shows (the
	// "agb_" and 4 random characters, 24 of the 256 bits), so an operator
	// can tell keys apart without the secret ever being stored.
	DisplayPrefixLen = len(SecretPrefix) + 4
	// NameBytesMax bounds a key's free-text name.
	NameBytesMax = 128
)

// Role is what a key is for.
type Role string

// Roles.
const (
	// RoleAgent spends: preflight, record, release, extend, and reads its
	// customer's budget and status.
	RoleAgent Role = "agent"
	// RoleAdmin may do everything, including setting budgets and top-ups.
	RoleAdmin Role = "admin"
	// RoleAuditor reads: budgets, status and the event log. It changes
	// nothing.
	RoleAuditor Role = "auditor"
)

// Action is a class of operation a key may be granted.
type Action string

// Actions.
const (
	ActionSpend Action = "spend" // preflight, record, release, extend
	ActionRead  Action = "read"  // budget and status of a customer
	ActionAudit Action = "audit" // a customer's events from the log
	ActionAdmin Action = "admin" // set a budget, top up, grant credits
)

// grants is the whole authorization policy: what each role may do.
var grants = map[Role]map[Action]bool{
	RoleAgent:   {ActionSpend: true, ActionRead: true},
	RoleAuditor: {ActionRead: true, ActionAudit: true},
	RoleAdmin:   {ActionSpend: true, ActionRead: true, ActionAudit: true, ActionAdmin: true},
}

// Errors. Every error the package returns wraps one of them (or is a
// transport error from NATS).
var (
	// ErrUnauthenticated: the key is missing, malformed, unknown or revoked.
	ErrUnauthenticated = errors.New("API key rejected")
	// ErrPermissionDenied: the key is valid but may not do this.
	ErrPermissionDenied = errors.New("not allowed")
	// ErrInvalid: a bad role, customer, name or ID was given.
	ErrInvalid = errors.New("invalid key parameter")
	// ErrNotFound: no key has that ID.
	ErrNotFound = errors.New("key not found")
	// ErrUnavailable: the bucket could not be read; the caller must refuse
	// the request (deny by default) and may retry.
	ErrUnavailable = errors.New("key store unavailable")
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if _, ok := grants[r]; !ok {
		return "", fmt.Errorf("%w: role %q: use agent, admin or auditor", ErrInvalid, truncate(s))
	}
	return r, nil
}

// Key is what the store keeps about one API key: never the key itself.
type Key struct {
	ID         string     `json:"id"`
	Hash       string     `json:"hash"`   // hex SHA-256 of the key
	Prefix     string     `json:"prefix"` // the first DisplayPrefixLen characters
	Role       Role       `json:"role"`
	CustomerID string     `json:"customer_id,omitempty"` // "" : any customer
	Name       string     `json:"name,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	Revoked    bool       `json:"revoked"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Authorize reports whether the key may perform action on customerID:
// nil, or an error wrapping ErrPermissionDenied that says why.
func (k *Key) Authorize(action Action, customerID string) error {
	if err := k.AuthorizeAction(action); err != nil {
		return err
	}
	if k.CustomerID != "" && customerID != k.CustomerID {
		return fmt.Errorf("%w: key %s is bound to customer %q and cannot act on customer %q",
			ErrPermissionDenied, k.ID, truncate(k.CustomerID), truncate(customerID))
	}
	return nil
}

// AuthorizeAction checks the role alone, before the customer is known.
func (k *Key) AuthorizeAction(action Action) error {
	if !grants[k.Role][action] {
		return fmt.Errorf("%w: a key with role %s cannot %s", ErrPermissionDenied, k.Role, actionPhrase[action])
	}
	return nil
}

var actionPhrase = map[Action]string{
	ActionSpend: "preflight, record or release",
	ActionRead:  "read budgets",
	ActionAudit: "read the event log",
	ActionAdmin: "set budgets, top up or grant credits",
}

// newSecret returns a fresh key from crypto/rand.
func newSecret() (string, error) {
	b := make([]byte, SecretRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("keys: random: %w", err)
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// hashSecret returns the hex SHA-256 of a key and the ID derived from it.
// A key carries 256 random bits, so a fast hash is enough: no password
// stretching is needed to make guessing from the hash infeasible.
func hashSecret(secret string) (hash, id string) {
	sum := sha256.Sum256([]byte(secret))
	hash = hex.EncodeToString(sum[:])
	return hash, hash[:IDLen]
}

// checkSecretShape rejects anything that cannot be a key before any lookup.
func checkSecretShape(secret string) error {
	if len(secret) != SecretLen || !strings.HasPrefix(secret, SecretPrefix) {
		return fmt.Errorf("%w: not an AgentBill API key (want %s and %d characters)",
			ErrUnauthenticated, SecretPrefix, SecretLen-len(SecretPrefix))
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(secret[len(SecretPrefix):]); err != nil {
		return fmt.Errorf("%w: not an AgentBill API key", ErrUnauthenticated)
	}
	return nil
}

// matches compares a stored hash with a key's, in constant time.
func (k *Key) matches(hash string) bool {
	return subtle.ConstantTimeCompare([]byte(k.Hash), []byte(hash)) == 1
}

// CheckID validates a key ID as given on the command line.
func CheckID(id string) error {
	if len(id) != IDLen {
		return fmt.Errorf("%w: key ID %q is not %d hex digits", ErrInvalid, truncate(id), IDLen)
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return fmt.Errorf("%w: key ID %q is not %d lowercase hex digits", ErrInvalid, truncate(id), IDLen)
	}
	return nil
}

func checkCreate(role Role, customerID, name string) error {
	var errs []error
	if _, err := ParseRole(string(role)); err != nil {
		errs = append(errs, err)
	}
	if customerID != "" {
		if err := events.ValidateCustomerID(customerID); err != nil {
			errs = append(errs, fmt.Errorf("%w: %v", ErrInvalid, err))
		}
	}
	if name != "" {
		if err := events.ValidateID("name", name, NameBytesMax); err != nil {
			errs = append(errs, fmt.Errorf("%w: %v", ErrInvalid, err))
		}
	}
	return errors.Join(errs...)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
