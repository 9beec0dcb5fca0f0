package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Decoding reads a commit in one pass of encoding/json: every event's data
// decodes into wireData, the union of all event types' fields (their JSON
// names never conflict), and is then converted to its typed struct. This
// is several times faster than validating and re-decoding each event and
// its data as raw messages, which replay depends on.

type wireCommit struct {
	V      int            `json:"v"`
	ID     string         `json:"id"`
	Writer string         `json:"writer"`
	At     time.Time      `json:"at"`
	Events []wireEnvelope `json:"events"`
}

type wireEnvelope struct {
	ID         string    `json:"id"`
	Type       Type      `json:"type"`
	V          int       `json:"v"`
	At         time.Time `json:"at"`
	CustomerID string    `json:"customer_id"`
	Data       *wireData `json:"data"`
}

type wireData struct {
	Limit         Units            `json:"limit"`
	Period        string           `json:"period"`
	Thresholds    []Units          `json:"thresholds"`
	UpgradeURL    string           `json:"upgrade_url"`
	AgentLimits   map[string]Units `json:"agent_limits"`
	Source        string           `json:"source"`
	Units         Units            `json:"units"`
	Note          string           `json:"note"`
	ReservationID string           `json:"reservation_id"`
	AgentID       string           `json:"agent_id"`
	TaskRef       string           `json:"task_ref"`
	TaskCeiling   *Units           `json:"task_ceiling"`
	ExpiresAt     time.Time        `json:"expires_at"`
	Metadata      json.RawMessage  `json:"metadata"`
	Requested     Units            `json:"requested"`
	Reason        string           `json:"reason"`
	Message       string           `json:"message"`
	HeldUnits     Units            `json:"held_units"`
	Released      Units            `json:"released"`
	Overage       Units            `json:"overage"`
	Cause         string           `json:"cause"`
	Fraction      Units            `json:"fraction"`
	Trigger       string           `json:"trigger"`
	// Since 2026-12: grants, scopes, overdraft, concurrency caps.
	Rollover        string            `json:"rollover"`
	Overdraft       *Units            `json:"overdraft"`
	ScopeLimits     []ScopeLimit      `json:"scope_limits"`
	MaxRuns         int               `json:"max_concurrent_runs"`
	MaxRunsPerAgent int               `json:"max_concurrent_runs_per_agent"`
	Scope           map[string]string `json:"scope"`
	CountedScopes   []ScopeRef        `json:"counted_scopes"`
	InOverdraft     bool              `json:"in_overdraft"`
	RefusedScope    *ScopeRef         `json:"refused_scope"`
	FundedBy        []GrantDraw       `json:"funded_by"`
	GrantID         string            `json:"grant_id"`
	Priority        int               `json:"priority"`
	EffectiveAt     time.Time         `json:"effective_at"`
	Remaining       Units             `json:"remaining"`
	// Since 2026-12: priced usage and price lists.
	PriceList string          `json:"price_list"`
	Usage     *Usage          `json:"usage"`
	Pricing   *Pricing        `json:"pricing"`
	Unpriced  string          `json:"unpriced"`
	Version   string          `json:"version"`
	Digest    string          `json:"digest"`
	Models    int             `json:"models"`
	Body      json.RawMessage `json:"body"`
	// MaxOutputTokens: a priced estimate's output allowance.
	MaxOutputTokens int64      `json:"max_output_tokens"`
	RateLimit       *RateLimit `json:"rate_limit"`
	Request
	Balance Balance `json:"balance"`
}

// Decode parses one event. Unknown versions and types are errors.
func Decode(b []byte) (*Envelope, error) {
	if e, err := fastDecode(b); err == nil {
		return e, nil
	}
	return decodeSlow(b) // errNotHandled: encoding/json decides
}

// decodeSlow is Decode with encoding/json alone: the definition of the
// format that fastDecode must agree with.
func decodeSlow(b []byte) (*Envelope, error) {
	var w wireEnvelope
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return w.envelope()
}

// DecodeCommit parses one stream message.
func DecodeCommit(b []byte) (*Commit, error) { return DecodeCommitInto(b, nil) }

// DecodeCommitInto is DecodeCommit with the events' structs taken from a
// (see Arena), or each allocated alone if a is nil.
func DecodeCommitInto(b []byte, a *Arena) (*Commit, error) {
	if c, err := fastDecodeCommit(b, a); err == nil {
		return c, nil
	}
	return decodeCommitSlow(b) // errNotHandled: encoding/json decides
}

// decodeCommitSlow is DecodeCommit with encoding/json alone: the definition
// of the format that fastDecodeCommit must agree with.
func decodeCommitSlow(b []byte) (*Commit, error) {
	var w wireCommit
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: commit: %v", ErrInvalidEvent, err)
	}
	if w.V != Version {
		return nil, fmt.Errorf("%w: commit version %d, want %d", ErrInvalidEvent, w.V, Version)
	}
	c := &Commit{V: w.V, ID: w.ID, Writer: w.Writer, At: w.At, Events: make([]*Envelope, len(w.Events))}
	for i := range w.Events {
		e, err := w.Events[i].envelope()
		if err != nil {
			return nil, fmt.Errorf("commit %s event %d: %w", w.ID, i, err)
		}
		c.Events[i] = e
	}
	return c, nil
}

func (w *wireEnvelope) envelope() (*Envelope, error) {
	if w.V != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrInvalidEvent, w.V, Version)
	}
	if w.Data == nil {
		return nil, fmt.Errorf("%w: %s event has no data", ErrInvalidEvent, w.Type)
	}
	d := w.Data.typed(w.Type, solo)
	if d == nil {
		return nil, fmt.Errorf("%w: unknown type %q", ErrInvalidEvent, w.Type)
	}
	return &Envelope{ID: w.ID, Type: w.Type, V: w.V, At: w.At, CustomerID: w.CustomerID, Data: d}, nil
}

// typed converts the union to the event type's own struct, taken from a.
func (w *wireData) typed(t Type, a *Arena) Data {
	switch t {
	case TypeBudgetSet:
		return &BudgetSet{Limit: w.Limit, Period: w.Period, Thresholds: w.Thresholds, UpgradeURL: w.UpgradeURL,
			AgentLimits: w.AgentLimits, Source: w.Source, Rollover: w.Rollover, Overdraft: w.Overdraft,
			ScopeLimits: w.ScopeLimits, MaxRuns: w.MaxRuns, MaxRunsPerAgent: w.MaxRunsPerAgent,
			PriceList: w.PriceList, RateLimit: w.RateLimit, Request: w.Request, Balance: w.Balance}
	case TypeToppedUp:
		return &ToppedUp{Units: w.Units, Note: w.Note, Request: w.Request, Balance: w.Balance}
	case TypeReserved:
		r := take(a, &a.reserved)
		*r = Reserved{ReservationID: w.ReservationID, AgentID: w.AgentID, Units: w.Units, TaskRef: w.TaskRef,
			TaskCeiling: w.TaskCeiling, ExpiresAt: w.ExpiresAt, Metadata: w.Metadata, Scope: w.Scope,
			CountedScopes: w.CountedScopes, Requested: w.Requested, InOverdraft: w.InOverdraft,
			Pricing: w.Pricing, MaxOutputTokens: w.MaxOutputTokens, Request: w.Request, Balance: w.Balance}
		return r
	case TypeDenied:
		r := take(a, &a.denied)
		*r = Denied{AgentID: w.AgentID, Requested: w.Requested, Reason: w.Reason, Message: w.Message,
			TaskRef: w.TaskRef, UpgradeURL: w.UpgradeURL, Scope: w.Scope, RefusedScope: w.RefusedScope,
			Request: w.Request, Balance: w.Balance}
		return r
	case TypeRecorded:
		r := take(a, &a.recorded)
		*r = Recorded{AgentID: w.AgentID, ReservationID: w.ReservationID, HeldUnits: w.HeldUnits, Units: w.Units,
			Released: w.Released, Overage: w.Overage, TaskRef: w.TaskRef, Metadata: w.Metadata, Scope: w.Scope,
			CountedScopes: w.CountedScopes, FundedBy: w.FundedBy, Usage: w.Usage, Pricing: w.Pricing,
			Unpriced: w.Unpriced, Request: w.Request, Balance: w.Balance}
		return r
	case TypeReleased:
		r := take(a, &a.released)
		*r = Released{ReservationID: w.ReservationID, AgentID: w.AgentID, Units: w.Units, Cause: w.Cause,
			Request: w.Request, Balance: w.Balance}
		return r
	case TypeExpired:
		r := take(a, &a.expired)
		*r = Expired{ReservationID: w.ReservationID, AgentID: w.AgentID, Units: w.Units, ExpiresAt: w.ExpiresAt, Balance: w.Balance}
		return r
	case TypeExtended:
		return &Extended{ReservationID: w.ReservationID, AgentID: w.AgentID, ExpiresAt: w.ExpiresAt, Request: w.Request, Balance: w.Balance}
	case TypeThresholdCrossed:
		return &ThresholdCrossed{Fraction: w.Fraction, Balance: w.Balance}
	case TypeBudgetExhausted:
		return &BudgetExhausted{Trigger: w.Trigger, AgentID: w.AgentID, UpgradeURL: w.UpgradeURL, Balance: w.Balance}
	case TypeBudgetRestored:
		return &BudgetRestored{Trigger: w.Trigger, Balance: w.Balance}
	case TypeGranted:
		return &Granted{GrantID: w.GrantID, Units: w.Units, Priority: w.Priority, Source: w.Source, Note: w.Note,
			EffectiveAt: w.EffectiveAt, ExpiresAt: w.ExpiresAt, Request: w.Request, Balance: w.Balance}
	case TypeGrantExpired:
		return &GrantExpired{GrantID: w.GrantID, Units: w.Units, Remaining: w.Remaining, ExpiresAt: w.ExpiresAt, Balance: w.Balance}
	case TypeOverdraftStarted:
		return &OverdraftStarted{AgentID: w.AgentID, Overdraft: derefUnits(w.Overdraft), Balance: w.Balance}
	case TypePricesSet:
		return &PricesSet{PriceList: w.PriceList, Version: w.Version, Digest: w.Digest, Models: w.Models, Body: w.Body}
	}
	return nil
}

func derefUnits(u *Units) Units {
	if u == nil {
		return Zero
	}
	return *u
}

// An Arena holds the structs of decoded events, so that a replay can
// reuse them: a commit's events are decoded together and, once applied,
// dropped together, and their allocation was a quarter to a third of
// what a replay allocated (BENCHMARKS.md, "Replay"), so of what made the
// collector run. DecodeCommitInto takes the structs of the common event
// types (the envelope, reserved, denied, recorded, released, expired)
// from an Arena's arrays; Reset makes them all free again, zeroed.
// Everything the structs point to (strings, slices, maps, amounts) is
// allocated as before and never reused, so a consumer may keep any
// field's value; it must not keep the pointer to an envelope or to its
// data past Reset (Detach copies data out).
type Arena struct {
	solo      bool // see solo
	envelopes chunk[Envelope]
	reserved  chunk[Reserved]
	denied    chunk[Denied]
	recorded  chunk[Recorded]
	released  chunk[Released]
	expired   chunk[Expired]
}

// arenaChunkMin and arenaChunkMax bound the structs of one array of an
// Arena: its arrays for a type grow from the first to the second, so a
// commit with few events of a type holds little memory it does not use,
// and one with many takes an allocation for every arenaChunkMax.
const (
	arenaChunkMin = 4
	arenaChunkMax = 32
)

// Reset zeroes every struct a has handed out and makes it free for the
// next commit. Nothing may use them after.
func (a *Arena) Reset() {
	a.envelopes.reset()
	a.reserved.reset()
	a.denied.reset()
	a.recorded.reset()
	a.released.reset()
	a.expired.reset()
}

// Detach returns d, or, if d is a struct an Arena hands out, a copy of it
// that no Reset touches.
func Detach(d Data) Data {
	switch v := d.(type) {
	case *Reserved:
		return clone(v)
	case *Denied:
		return clone(v)
	case *Recorded:
		return clone(v)
	case *Released:
		return clone(v)
	case *Expired:
		return clone(v)
	}
	return d
}

func clone[T any](v *T) *T {
	c := *v
	return &c
}

// solo is the Arena of decoders that have none: each struct is
// allocated alone, and its arrays stay empty (so it is safe to share).
var solo = &Arena{solo: true}

// take returns a zeroed T from c, one of a's arrays.
func take[T any](a *Arena, c *chunk[T]) *T {
	if a.solo {
		return new(T)
	}
	return c.take()
}

// chunk hands out Ts from its arrays in order; reset zeroes those handed
// out and starts again from the first array.
type chunk[T any] struct {
	arrays [][]T
	i, j   int // the next T: arrays[i][j]
}

func (c *chunk[T]) take() *T {
	if c.i < len(c.arrays) && c.j == len(c.arrays[c.i]) {
		c.i, c.j = c.i+1, 0
	}
	if c.i == len(c.arrays) {
		n := arenaChunkMin
		if c.i > 0 {
			n = min(2*len(c.arrays[c.i-1]), arenaChunkMax)
		}
		c.arrays = append(c.arrays, make([]T, n))
	}
	t := &c.arrays[c.i][c.j]
	c.j++
	return t
}

// reset keeps only the arrays the last commit took from, so an arena
// holds what one commit used, rounded up to its arrays, rather than the
// most of each type any commit needed: a replay's arenas then hold about
// what as many decoded commits did before they were reused.
func (c *chunk[T]) reset() {
	used := min(c.i+1, len(c.arrays))
	for k := range used {
		n := len(c.arrays[k])
		if k == c.i {
			n = c.j
		}
		clear(c.arrays[k][:n])
	}
	clear(c.arrays[used:])
	c.arrays, c.i, c.j = c.arrays[:used], 0, 0
}
