// Package events is AgentBill's event contract: the past-tense, versioned
// facts the ledger appends to the AGENTBILL stream, their JSON encoding, the
// subjects they live under, and the exact decimal Units every amount uses.
//
// It imports the standard library and apd only. See README.md.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the envelope version written in every event's "v".
const Version = 1

// Type is an event type; it is also the last token of the event's subject.
type Type string

// Every event type (docs/PROTOCOL.md, "Events").
const (
	TypeBudgetSet        Type = "budget_set"
	TypeToppedUp         Type = "topped_up"
	TypeReserved         Type = "reserved"
	TypeDenied           Type = "denied"
	TypeRecorded         Type = "recorded"
	TypeReleased         Type = "released"
	TypeExpired          Type = "expired"
	TypeExtended         Type = "extended"
	TypeThresholdCrossed Type = "threshold_crossed"
	TypeBudgetExhausted  Type = "budget_exhausted"
	TypeBudgetRestored   Type = "budget_restored"
	TypeGranted          Type = "granted"
	TypeGrantExpired     Type = "grant_expired"
	TypeOverdraftStarted Type = "overdraft_started"
	TypePricesSet        Type = "prices_set"
)

// Types lists every event type, in a stable order.
var Types = []Type{
	TypeBudgetSet, TypeToppedUp, TypeReserved, TypeDenied, TypeRecorded,
	TypeReleased, TypeExpired, TypeExtended, TypeThresholdCrossed, TypeBudgetExhausted,
	TypeBudgetRestored, TypeGranted, TypeGrantExpired, TypeOverdraftStarted,
	TypePricesSet,
}

// AlertTypes are the event types announced as alerts, one by one, on
// agentbill.events.<ctok>.<type> and in the alert stream: the ones
// subscribers, watchers and webhook endpoints receive.
var AlertTypes = []Type{
	TypeBudgetExhausted, TypeBudgetRestored, TypeThresholdCrossed, TypeDenied,
	TypeOverdraftStarted, TypeGrantExpired,
}

// IsAlert reports whether t is one of AlertTypes.
func IsAlert(t Type) bool {
	for _, a := range AlertTypes {
		if a == t {
			return true
		}
	}
	return false
}

// ErrInvalidEvent is wrapped by every decoding error.
var ErrInvalidEvent = errors.New("invalid event")

// Envelope is one event as stored: the JSON body of one stream message.
type Envelope struct {
	ID         string    `json:"id"` // UUID v7; also the Nats-Msg-Id header
	Type       Type      `json:"type"`
	V          int       `json:"v"`
	At         time.Time `json:"at"` // the writer's decision time, UTC
	CustomerID string    `json:"customer_id"`
	Data       Data      `json:"data"`
}

// Data is the type-specific body of an event.
type Data interface{ EventType() Type }

// Request identifies the request that caused an event, for idempotency: the
// key the client sent and a hash of the request's canonical form.
type Request struct {
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	RequestHash    string `json:"request_hash,omitempty"`
}

// Balance is a customer's position right after the event, so that an
// auditor can read any event alone. Limit includes the period's top-ups.
// Grants is what the customer's credit grants usable then have left, and
// GrantsUsed the part of this period's Used they funded, so
//
//	remaining = limit - (used - grants_used) + grants - reserved
//
// floored at zero. For a customer with an overdraft, Overdraft is how far
// below zero approvals may go and Overdrawn how far below zero the true
// remaining is (docs/PROTOCOL.md, "Overdraft"). The new fields are
// omitted when zero, so a customer without grants or overdraft writes the
// balance it always did.
type Balance struct {
	PeriodStart time.Time `json:"period_start"`
	Limit       Units     `json:"limit"`
	TopUps      Units     `json:"top_ups"`
	Used        Units     `json:"used"`
	Reserved    Units     `json:"reserved"`
	Remaining   Units     `json:"remaining"`
	Grants      Units     `json:"grants,omitzero"`
	GrantsUsed  Units     `json:"grants_used,omitzero"`
	Overdraft   Units     `json:"overdraft,omitzero"`
	Overdrawn   Units     `json:"overdrawn,omitzero"`
}

// ScopeRef names one value of one scope dimension, like team=research.
type ScopeRef struct {
	Dimension string `json:"dimension"`
	Value     string `json:"value"`
}

// ScopeLimit caps the usage of one scope value within a customer, per
// period (a budget's scope_limits).
type ScopeLimit struct {
	Dimension string `json:"dimension"`
	Value     string `json:"value"`
	Limit     Units  `json:"limit"`
	Period    string `json:"period"`
}

// GrantDraw is the part of a charge one credit grant funded.
type GrantDraw struct {
	GrantID string `json:"grant_id"`
	Units   Units  `json:"units"`
}

// BudgetSet: a customer's budget was set or changed (by an admin, or
// implicitly from the default budget on first use).
type BudgetSet struct {
	Limit       Units            `json:"limit"`
	Period      string           `json:"period"`
	Thresholds  []Units          `json:"thresholds,omitempty"`
	UpgradeURL  string           `json:"upgrade_url,omitempty"`
	AgentLimits map[string]Units `json:"agent_limits,omitempty"`
	Source      string           `json:"source"` // "admin" or "default"
	// Rollover is what of the period's unused allowance becomes a grant at
	// the next boundary: "all" or a decimal cap ("" = none).
	Rollover        string       `json:"rollover,omitempty"`
	Overdraft       *Units       `json:"overdraft,omitempty"`
	ScopeLimits     []ScopeLimit `json:"scope_limits,omitempty"` // sorted by dimension, value
	MaxRuns         int          `json:"max_concurrent_runs,omitempty"`
	MaxRunsPerAgent int          `json:"max_concurrent_runs_per_agent,omitempty"`
	// PriceList names the price list the customer's usage is priced with
	// ("" = the list named default).
	PriceList string `json:"price_list,omitempty"`
	// RateLimit is the customer's own preflight rate; nil: the server's.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	Request
	Balance Balance `json:"balance"`
}

// ToppedUp: units were added to the customer's current period.
type ToppedUp struct {
	Units Units  `json:"units"`
	Note  string `json:"note,omitempty"`
	Request
	Balance Balance `json:"balance"`
}

// Reserved: a preflight was approved and its units are held.
type Reserved struct {
	ReservationID string          `json:"reservation_id"`
	AgentID       string          `json:"agent_id"`
	Units         Units           `json:"units"`
	TaskRef       string          `json:"task_ref,omitempty"`
	TaskCeiling   *Units          `json:"task_ceiling,omitempty"`
	ExpiresAt     time.Time       `json:"expires_at"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	// Scope is the run's scope; CountedScopes the scope limits its hold
	// counts against. Requested is the estimate when the hold is a partial
	// approval of it (Units < Requested). InOverdraft: the hold took the
	// customer's remaining below zero, into its overdraft.
	Scope         ScopeMap   `json:"scope,omitempty"`
	CountedScopes []ScopeRef `json:"counted_scopes,omitempty"`
	Requested     Units      `json:"requested,omitzero"`
	InOverdraft   bool       `json:"in_overdraft,omitempty"`
	// Pricing is how a usage estimate was priced (its worst case), when
	// the preflight gave one; MaxOutputTokens the output tokens the hold
	// covers at that price (all of max_output_tokens unless partial).
	Pricing         *Pricing `json:"pricing,omitempty"`
	MaxOutputTokens int64    `json:"max_output_tokens,omitempty"`
	Request
	Balance Balance `json:"balance"`
}

// Denied: a preflight was refused; nothing is held.
type Denied struct {
	AgentID    string `json:"agent_id"`
	Requested  Units  `json:"requested"`
	Reason     string `json:"reason"`
	Message    string `json:"message"`
	TaskRef    string `json:"task_ref,omitempty"`
	UpgradeURL string `json:"upgrade_url,omitempty"`
	// Scope is the run's scope; RefusedScope the scope limit that refused
	// it (reason scope_limit_exceeded).
	Scope        ScopeMap  `json:"scope,omitempty"`
	RefusedScope *ScopeRef `json:"refused_scope,omitempty"`
	Request
	Balance Balance `json:"balance"`
}

// Recorded: actual usage was charged, settling a reservation if one is
// named (the unreserved rest released, any excess reported as overage).
type Recorded struct {
	AgentID       string          `json:"agent_id"`
	ReservationID string          `json:"reservation_id,omitempty"`
	HeldUnits     Units           `json:"held_units"` // what the reservation held
	Units         Units           `json:"units"`      // charged
	Released      Units           `json:"released"`
	Overage       Units           `json:"overage"`
	TaskRef       string          `json:"task_ref,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	// Scope is the run's scope (its reservation's, if it settles one);
	// CountedScopes the scope limits the charge counts against. FundedBy
	// is what credit grants paid, in draw-down order; the rest of Units
	// came from the period's allowance.
	Scope         ScopeMap    `json:"scope,omitempty"`
	CountedScopes []ScopeRef  `json:"counted_scopes,omitempty"`
	FundedBy      []GrantDraw `json:"funded_by,omitempty"`
	// Usage is the model usage the record reported, if it reported usage
	// instead of units; Pricing how it was priced, or Unpriced why it
	// could not be (Units is then its reservation's hold, or the units
	// the record also gave).
	Usage    *Usage   `json:"usage,omitempty"`
	Pricing  *Pricing `json:"pricing,omitempty"`
	Unpriced string   `json:"unpriced,omitempty"`
	Request
	Balance Balance `json:"balance"`
}

// Release causes.
const (
	CauseReleased  = "released"   // the worker released it
	CauseRunFailed = "run_failed" // record with success=false
)

// Released: a reservation's hold was given back without charge.
type Released struct {
	ReservationID string `json:"reservation_id"`
	AgentID       string `json:"agent_id"`
	Units         Units  `json:"units"`
	Cause         string `json:"cause"`
	Request
	Balance Balance `json:"balance"`
}

// Expired: a reservation passed its deadline unsettled; its hold is released.
type Expired struct {
	ReservationID string    `json:"reservation_id"`
	AgentID       string    `json:"agent_id"`
	Units         Units     `json:"units"`
	ExpiresAt     time.Time `json:"expires_at"`
	Balance       Balance   `json:"balance"`
}

// Extended: a reservation's deadline was pushed back.
type Extended struct {
	ReservationID string    `json:"reservation_id"`
	AgentID       string    `json:"agent_id"`
	ExpiresAt     time.Time `json:"expires_at"`
	Request
	Balance Balance `json:"balance"`
}

// ThresholdCrossed: used plus reserved reached a configured fraction of the
// limit for the first time this period.
type ThresholdCrossed struct {
	Fraction Units   `json:"fraction"`
	Balance  Balance `json:"balance"`
}

// Exhaustion triggers.
const (
	TriggerRemainingZero = "remaining_zero"
	TriggerRefused       = "refused"
)

// BudgetExhausted: the customer's remaining budget reached zero, or a
// preflight was refused for budget; once per period until re-armed.
type BudgetExhausted struct {
	Trigger    string  `json:"trigger"`
	AgentID    string  `json:"agent_id,omitempty"`
	UpgradeURL string  `json:"upgrade_url,omitempty"`
	Balance    Balance `json:"balance"`
}

// Restoration triggers: what gave an exhausted customer budget again.
const (
	TriggerToppedUp  = "topped_up"  // a top-up
	TriggerBudgetSet = "budget_set" // a raised limit
	TriggerNewPeriod = "new_period" // the period rolled over
	TriggerGranted   = "granted"    // a credit grant
)

// BudgetRestored: a customer whose budget was exhausted has something left
// again (after a top-up, a raised limit or a new period), so a product can
// unblock it without polling. It follows the event that restored it.
type BudgetRestored struct {
	Trigger string  `json:"trigger"`
	Balance Balance `json:"balance"`
}

// Grant sources with a meaning to the ledger; any other text up to
// GrantSourceBytesMax is a label.
const (
	SourcePurchase = "purchase" // the default
	SourceRollover = "rollover" // unused allowance carried into a new period
)

// Granted: credits were granted to a customer. They are drawn after the
// period's allowance, by Priority (lower first), then earliest expiry,
// then oldest, between EffectiveAt and ExpiresAt (zero: never), across
// periods until used up. The grant's ID is this event's ID.
type Granted struct {
	GrantID     string    `json:"grant_id"`
	Units       Units     `json:"units"`
	Priority    int       `json:"priority"`
	Source      string    `json:"source"`
	Note        string    `json:"note,omitempty"`
	EffectiveAt time.Time `json:"effective_at"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Request
	Balance Balance `json:"balance"`
}

// GrantExpired: a grant reached its expiry with Remaining units unused,
// which are forfeited.
type GrantExpired struct {
	GrantID   string    `json:"grant_id"`
	Units     Units     `json:"units"` // granted
	Remaining Units     `json:"remaining"`
	ExpiresAt time.Time `json:"expires_at"`
	Balance   Balance   `json:"balance"`
}

// OverdraftStarted: an approval took the customer's remaining below zero,
// into its overdraft; once per period.
type OverdraftStarted struct {
	AgentID   string  `json:"agent_id,omitempty"`
	Overdraft Units   `json:"overdraft"`
	Balance   Balance `json:"balance"`
}

// PricesSet: a price list was set. It concerns no customer (its
// envelope's customer_id is empty). Body is the list's JSON as validated
// (prices.Parse), Digest its SHA-256; every later charge of the list's
// customers is priced with it, until the next prices_set of the list.
type PricesSet struct {
	PriceList string          `json:"price_list"`
	Version   string          `json:"version"`
	Digest    string          `json:"digest"`
	Models    int             `json:"models"`
	Body      json.RawMessage `json:"body"`
}

// EventType implementations.
func (BudgetSet) EventType() Type        { return TypeBudgetSet }
func (ToppedUp) EventType() Type         { return TypeToppedUp }
func (Reserved) EventType() Type         { return TypeReserved }
func (Denied) EventType() Type           { return TypeDenied }
func (Recorded) EventType() Type         { return TypeRecorded }
func (Released) EventType() Type         { return TypeReleased }
func (Expired) EventType() Type          { return TypeExpired }
func (Extended) EventType() Type         { return TypeExtended }
func (ThresholdCrossed) EventType() Type { return TypeThresholdCrossed }
func (BudgetExhausted) EventType() Type  { return TypeBudgetExhausted }
func (BudgetRestored) EventType() Type   { return TypeBudgetRestored }
func (Granted) EventType() Type          { return TypeGranted }
func (GrantExpired) EventType() Type     { return TypeGrantExpired }
func (OverdraftStarted) EventType() Type { return TypeOverdraftStarted }
func (PricesSet) EventType() Type        { return TypePricesSet }

// BalanceOf returns the balance an event carries.
func BalanceOf(d Data) Balance {
	if b := BalanceRef(d); b != nil {
		return *b
	}
	return Balance{}
}

// BalanceRef returns a pointer to the balance inside an event's data, for
// the writer to fill in; nil for unknown data.
func BalanceRef(d Data) *Balance {
	switch e := d.(type) {
	case *BudgetSet:
		return &e.Balance
	case *ToppedUp:
		return &e.Balance
	case *Reserved:
		return &e.Balance
	case *Denied:
		return &e.Balance
	case *Recorded:
		return &e.Balance
	case *Released:
		return &e.Balance
	case *Expired:
		return &e.Balance
	case *Extended:
		return &e.Balance
	case *ThresholdCrossed:
		return &e.Balance
	case *BudgetExhausted:
		return &e.Balance
	case *BudgetRestored:
		return &e.Balance
	case *Granted:
		return &e.Balance
	case *GrantExpired:
		return &e.Balance
	case *OverdraftStarted:
		return &e.Balance
	}
	return nil
}

// Encode returns the JSON body of an event. HTML characters are not
// escaped: events are data, never embedded in a page as they are.
func Encode(e *Envelope) ([]byte, error) {
	if e.Data == nil || e.Data.EventType() != e.Type {
		return nil, fmt.Errorf("%w: data does not match type %q", ErrInvalidEvent, e.Type)
	}
	if b, ok := appendFast(make([]byte, 0, fastEncodeBufBytes), e); ok {
		return b, nil
	}
	return encodeJSON(e)
}

// encodeJSON is Encode through encoding/json: every event appendFast does
// not write, and the reference appendFast is tested against.
func encodeJSON(e *Envelope) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
