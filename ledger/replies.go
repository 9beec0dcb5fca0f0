package ledger

import (
	"time"

	"github.com/agentbill/agentbill/events"
)

// Refusal reasons (docs/PROTOCOL.md, "Refusal reasons").
const (
	ReasonBudgetExhausted     = "budget_exhausted"
	ReasonAgentLimitExceeded  = "agent_limit_exceeded"
	ReasonTaskCeilingExceeded = "task_ceiling_exceeded"
	ReasonCeilingExceeded     = "ceiling_exceeded"
	ReasonNoBudget            = "no_budget"
	// ReasonScopeLimitExceeded: a scope limit of a value in the request's
	// scope does not fit; the reply's scope names it.
	ReasonScopeLimitExceeded = "scope_limit_exceeded"
	// ReasonConcurrencyLimitExceeded: the customer, or the agent, has its
	// maximum of open reservations.
	ReasonConcurrencyLimitExceeded = "concurrency_limit_exceeded"
	// ReasonRateLimited: the customer's preflights came faster than its
	// rate limit; the writer refused before deciding, and appended
	// nothing. The reply's retry_after_ms says when a token is back.
	ReasonRateLimited = "rate_limited"
)

// Record and release statuses.
const (
	StatusRecorded  = "recorded"
	StatusReleased  = "released"
	StatusDuplicate = "duplicate"
	StatusExpired   = "expired" // release of a reservation that had expired
)

// Reply is the answer to a command: one of the *Reply types below.
type Reply any

// PreflightReply answers a preflight. RemainingUnits is negative when the
// customer is in its overdraft.
type PreflightReply struct {
	Approved       bool          `json:"approved"`
	Reason         string        `json:"reason,omitempty"`
	Message        string        `json:"message"`
	ReservationID  string        `json:"reservation_id,omitempty"`
	ReservedUnits  events.Units  `json:"reserved_units"`
	RemainingUnits events.Signed `json:"remaining_units"`
	ExpiresAt      *time.Time    `json:"expires_at,omitempty"`
	UpgradeURL     string        `json:"upgrade_url,omitempty"`
	// Partial: the hold is less than the estimate (min_units allowed it).
	Partial bool `json:"partial,omitempty"`
	// Overdraft: the hold dipped into the customer's overdraft.
	Overdraft bool `json:"overdraft,omitempty"`
	// Scope names the scope limit that refused (scope_limit_exceeded).
	Scope *events.ScopeRef `json:"scope,omitempty"`
	// RetryAfterMs: for rate_limited, the milliseconds until the
	// customer's next token (rounded up, at least 1).
	RetryAfterMs int64 `json:"retry_after_ms,omitempty"`
	// Unchecked: the service never sets it. A client under the "allow"
	// fail policy sets it (with Approved and no ReservationID) when the
	// service was unavailable and the budget check was skipped.
	Unchecked bool `json:"unchecked,omitempty"`
	// MaxOutputTokens: with a priced usage_estimate, the output tokens
	// the hold covers (less than max_output_tokens if partial).
	MaxOutputTokens int64 `json:"max_output_tokens,omitempty"`
	// EstimatePricing is how the usage_estimate was priced.
	EstimatePricing *events.Pricing `json:"estimate_pricing,omitempty"`
}

// RecordReply answers a record.
type RecordReply struct {
	Status         string        `json:"status"`
	EventID        string        `json:"event_id,omitempty"`
	ReservationID  string        `json:"reservation_id,omitempty"`
	ChargedUnits   events.Units  `json:"charged_units"`
	ReleasedUnits  events.Units  `json:"released_units"`
	OverageUnits   events.Units  `json:"overage_units"`
	RemainingUnits events.Signed `json:"remaining_units"`
	Exhausted      bool          `json:"exhausted"`
	// FundedBy is what credit grants paid of the charge.
	FundedBy []events.GrantDraw `json:"funded_by,omitempty"`
	// Pricing is how reported usage was priced; Unpriced why it could
	// not be (the charge is then the units given, or the hold).
	Pricing  *events.Pricing `json:"pricing,omitempty"`
	Unpriced string          `json:"unpriced,omitempty"`
}

// ReleaseReply answers a release.
type ReleaseReply struct {
	Status         string        `json:"status"`
	ReleasedUnits  events.Units  `json:"released_units"`
	RemainingUnits events.Signed `json:"remaining_units"`
}

// ExtendReply answers an extend.
type ExtendReply struct {
	ReservationID string    `json:"reservation_id"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// GrantReply answers a grant.
type GrantReply struct {
	GrantID        string        `json:"grant_id"`
	Units          events.Units  `json:"units"`
	Priority       int           `json:"priority"`
	Source         string        `json:"source"`
	EffectiveAt    time.Time     `json:"effective_at"`
	ExpiresAt      *time.Time    `json:"expires_at,omitempty"`
	RemainingUnits events.Signed `json:"remaining_units"`
}

// GrantStatus is one open grant, as status lists them (in draw-down order).
type GrantStatus struct {
	GrantID     string       `json:"grant_id"`
	Units       events.Units `json:"units"`
	Remaining   events.Units `json:"remaining"`
	Priority    int          `json:"priority"`
	Source      string       `json:"source"`
	EffectiveAt time.Time    `json:"effective_at"`
	ExpiresAt   *time.Time   `json:"expires_at,omitempty"`
}

// ScopeStatus is one limited scope value's position in its period.
type ScopeStatus struct {
	Dimension   string        `json:"dimension"`
	Value       string        `json:"value"`
	Limit       events.Units  `json:"limit"`
	Period      Period        `json:"period"`
	PeriodStart time.Time     `json:"period_start"`
	Used        events.Units  `json:"used"`
	Reserved    events.Units  `json:"reserved"`
	Remaining   events.Signed `json:"remaining"`
}

// AgentStatus is one agent's position within its customer's period.
type AgentStatus struct {
	Used     events.Units  `json:"used"`
	Reserved events.Units  `json:"reserved"`
	Limit    *events.Units `json:"limit,omitempty"`
}

// StatusReply is a customer's position; also the answer to budget and topup.
type StatusReply struct {
	CustomerID       string                 `json:"customer_id"`
	Limit            events.Units           `json:"limit"`
	TopUps           events.Units           `json:"top_ups"`
	Used             events.Units           `json:"used"`
	Reserved         events.Units           `json:"reserved"`
	Remaining        events.Signed          `json:"remaining"`
	Period           Period                 `json:"period"`
	PeriodStart      time.Time              `json:"period_start"`
	PeriodEnd        *time.Time             `json:"period_end"`
	OpenReservations int                    `json:"open_reservations"`
	Exhausted        bool                   `json:"exhausted"`
	Thresholds       []events.Units         `json:"thresholds,omitempty"`
	UpgradeURL       string                 `json:"upgrade_url,omitempty"`
	Agents           map[string]AgentStatus `json:"agents"`
	// Grants are the open credit grants in draw-down order;
	// GrantsRemaining what those usable now have left (in Remaining);
	// GrantsUsed the part of Used they funded this period. So
	// remaining = limit + top_ups - (used - grants_used) + grants_remaining - reserved.
	Grants          []GrantStatus `json:"grants,omitempty"`
	GrantsRemaining events.Units  `json:"grants_remaining"`
	GrantsUsed      events.Units  `json:"grants_used"`
	// Scopes are the limited scope values, by dimension and value.
	Scopes          []ScopeStatus `json:"scopes,omitempty"`
	Overdraft       *events.Units `json:"overdraft,omitempty"`
	Rollover        string        `json:"rollover,omitempty"`
	MaxRuns         int           `json:"max_concurrent_runs,omitempty"`
	MaxRunsPerAgent int           `json:"max_concurrent_runs_per_agent,omitempty"`
	// PriceList is the list the customer's usage is priced with, when the
	// budget names one; UnpricedRecords counts its records whose usage
	// could not be priced (charged their hold or units instead).
	PriceList       string `json:"price_list,omitempty"`
	UnpricedRecords uint64 `json:"unpriced_records,omitempty"`
	// RateLimit is the budget's own preflight rate, if it has one.
	RateLimit *events.RateLimit `json:"rate_limit,omitempty"`
	// AsOfSeq is the log sequence this status reflects: every event up to
	// it, and none after. The writer fills it in.
	AsOfSeq uint64 `json:"as_of_seq,omitempty"`
}

// replyOf builds the reply a request got from the event that answered it.
func replyOf(s *State, e *events.Envelope) Reply {
	return replyFor(e.ID, e.Data, s.periodOf(e.CustomerID))
}

// replyFor builds the reply of an event, given the customer's period kind
// when it was applied. The live writer calls it for the first reply; a
// retry rebuilds it from the remembered event (live or after a replay), so
// a retried request gets the very reply the first one did. Budget and
// top-up replies are the customer's status (nil here).
func replyFor(eventID string, data events.Data, period Period) Reply {
	switch d := data.(type) {
	case *events.Reserved:
		exp := d.ExpiresAt
		return &PreflightReply{
			Approved: true, ReservationID: d.ReservationID, ReservedUnits: d.Units,
			RemainingUnits: remainingOf(d.Balance), ExpiresAt: &exp,
			Message: approvalMessage(period, d), Partial: !d.Requested.IsZero(), Overdraft: d.InOverdraft,
			MaxOutputTokens: d.MaxOutputTokens, EstimatePricing: d.Pricing,
		}
	case *events.Denied:
		return &PreflightReply{
			Reason: d.Reason, Message: d.Message, RemainingUnits: remainingOf(d.Balance), UpgradeURL: d.UpgradeURL,
			Scope: d.RefusedScope,
		}
	case *events.Recorded:
		return &RecordReply{
			Status: StatusRecorded, EventID: eventID, ReservationID: d.ReservationID, ChargedUnits: d.Units,
			ReleasedUnits: d.Released, OverageUnits: d.Overage, RemainingUnits: remainingOf(d.Balance),
			Exhausted: exhaustedOf(d.Balance), FundedBy: d.FundedBy, Pricing: d.Pricing, Unpriced: d.Unpriced,
		}
	case *events.Released:
		if d.Cause == events.CauseRunFailed {
			return &RecordReply{
				Status: StatusReleased, EventID: eventID, ReservationID: d.ReservationID, ReleasedUnits: d.Units,
				RemainingUnits: remainingOf(d.Balance), Exhausted: exhaustedOf(d.Balance),
			}
		}
		return &ReleaseReply{Status: StatusReleased, ReleasedUnits: d.Units, RemainingUnits: remainingOf(d.Balance)}
	case *events.Granted:
		r := &GrantReply{GrantID: d.GrantID, Units: d.Units, Priority: d.Priority, Source: d.Source,
			EffectiveAt: d.EffectiveAt, RemainingUnits: remainingOf(d.Balance)}
		if !d.ExpiresAt.IsZero() {
			exp := d.ExpiresAt
			r.ExpiresAt = &exp
		}
		return r
	case *events.Extended:
		return &ExtendReply{ReservationID: d.ReservationID, ExpiresAt: d.ExpiresAt}
	}
	return nil // budget_set, topped_up: answered with the status at the time
}

// remainingOf is a balance's remaining as replies show it: negative by
// what is overdrawn (recorded only for a customer with an overdraft).
func remainingOf(b events.Balance) events.Signed {
	return events.SignedOf(b.Remaining.Sub(b.Overdrawn))
}

// exhaustedOf reports whether nothing is left to approve after the event:
// the remaining, with any overdraft, is spent.
func exhaustedOf(b events.Balance) bool {
	return b.Remaining.Sub(b.Overdrawn).Add(b.Overdraft).Sign() <= 0
}

// shown is a remaining amount as replies show it: negative only for a
// customer with an overdraft.
func (c *Customer) shown(rem events.Units) events.Signed {
	if c.overdraft().Sign() > 0 {
		return events.SignedOf(rem)
	}
	return events.SignedOf(rem.NonNegative())
}

// approvalMessage is an approved preflight's message: "reserved 10 units
// for agent a; 990 units left in this month", or, approved in part,
// "reserved 10 of the 15 units requested for agent a (all that fits); ...".
// It is written by appending, not by fmt: it is built for every approval.
func approvalMessage(period Period, d *events.Reserved) string {
	b := make([]byte, 0, approvalMessageBytes+len(d.AgentID))
	b = append(b, "reserved "...)
	b = d.Units.AppendJSON(b)
	if !d.Requested.IsZero() {
		b = append(b, " of the "...)
		b = d.Requested.AppendJSON(b)
		b = append(b, " units requested for agent "...)
		b = append(b, d.AgentID...)
		b = append(b, " (all that fits); "...)
	} else {
		b = append(b, " units for agent "...)
		b = append(b, d.AgentID...)
		b = append(b, "; "...)
	}
	b = remainingOf(d.Balance).AppendJSON(b)
	b = append(b, " units left "...)
	b = append(b, period.phrase()...)
	if d.InOverdraft {
		b = append(b, ", in overdraft"...)
	}
	return string(b)
}

// approvalMessageBytes is room for approvalMessage's text besides the
// agent ID: its words and three amounts of a typical length.
const approvalMessageBytes = 96

// duplicateReply answers a retried request: the first reply, with status
// "duplicate" for record and release. Budget and top-up retries answer
// with the customer's status now (they appended nothing new).
func (s *State) duplicateReply(e idemEntry, cid string, now time.Time) Reply {
	switch r := replyFor(e.eventID, e.data, e.period).(type) {
	case *RecordReply:
		dup := *r
		dup.Status = StatusDuplicate
		return &dup
	case *ReleaseReply:
		dup := *r
		dup.Status = StatusDuplicate
		return &dup
	case nil:
		st, err := s.Status(cid, now)
		if err != nil {
			return nil
		}
		return st
	default:
		return r
	}
}
