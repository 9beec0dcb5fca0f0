package ledger

import (
	"fmt"
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

// PreflightReply answers a preflight.
type PreflightReply struct {
	Approved       bool         `json:"approved"`
	Reason         string       `json:"reason,omitempty"`
	Message        string       `json:"message"`
	ReservationID  string       `json:"reservation_id,omitempty"`
	ReservedUnits  events.Units `json:"reserved_units"`
	RemainingUnits events.Units `json:"remaining_units"`
	ExpiresAt      *time.Time   `json:"expires_at,omitempty"`
	UpgradeURL     string       `json:"upgrade_url,omitempty"`
}

// RecordReply answers a record.
type RecordReply struct {
	Status         string       `json:"status"`
	EventID        string       `json:"event_id,omitempty"`
	ReservationID  string       `json:"reservation_id,omitempty"`
	ChargedUnits   events.Units `json:"charged_units"`
	ReleasedUnits  events.Units `json:"released_units"`
	OverageUnits   events.Units `json:"overage_units"`
	RemainingUnits events.Units `json:"remaining_units"`
	Exhausted      bool         `json:"exhausted"`
}

// ReleaseReply answers a release.
type ReleaseReply struct {
	Status         string       `json:"status"`
	ReleasedUnits  events.Units `json:"released_units"`
	RemainingUnits events.Units `json:"remaining_units"`
}

// ExtendReply answers an extend.
type ExtendReply struct {
	ReservationID string    `json:"reservation_id"`
	ExpiresAt     time.Time `json:"expires_at"`
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
	Remaining        events.Units           `json:"remaining"`
	Period           Period                 `json:"period"`
	PeriodStart      time.Time              `json:"period_start"`
	PeriodEnd        *time.Time             `json:"period_end"`
	OpenReservations int                    `json:"open_reservations"`
	Exhausted        bool                   `json:"exhausted"`
	Thresholds       []events.Units         `json:"thresholds,omitempty"`
	UpgradeURL       string                 `json:"upgrade_url,omitempty"`
	Agents           map[string]AgentStatus `json:"agents"`
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
			RemainingUnits: d.Balance.Remaining, ExpiresAt: &exp,
			Message: approvalMessage(period, d),
		}
	case *events.Denied:
		return &PreflightReply{
			Reason: d.Reason, Message: d.Message, RemainingUnits: d.Balance.Remaining, UpgradeURL: d.UpgradeURL,
		}
	case *events.Recorded:
		return &RecordReply{
			Status: StatusRecorded, EventID: eventID, ReservationID: d.ReservationID, ChargedUnits: d.Units,
			ReleasedUnits: d.Released, OverageUnits: d.Overage, RemainingUnits: d.Balance.Remaining,
			Exhausted: d.Balance.Remaining.Sign() <= 0,
		}
	case *events.Released:
		if d.Cause == events.CauseRunFailed {
			return &RecordReply{
				Status: StatusReleased, EventID: eventID, ReservationID: d.ReservationID, ReleasedUnits: d.Units,
				RemainingUnits: d.Balance.Remaining, Exhausted: d.Balance.Remaining.Sign() <= 0,
			}
		}
		return &ReleaseReply{Status: StatusReleased, ReleasedUnits: d.Units, RemainingUnits: d.Balance.Remaining}
	case *events.Extended:
		return &ExtendReply{ReservationID: d.ReservationID, ExpiresAt: d.ExpiresAt}
	}
	return nil // budget_set, topped_up: answered with the status at the time
}

func approvalMessage(period Period, d *events.Reserved) string {
	return fmt.Sprintf("reserved %s units for agent %s; %s units left %s",
		d.Units, d.AgentID, d.Balance.Remaining, period.phrase())
}

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
