package ops

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentbill/agentbill/ledger"
)

// The MCP tools' schemas, descriptions and summaries.

// The tools' input schemas, written out rather than inferred: amounts are
// JSON numbers or decimal strings (events.Units), which no Go type the
// inference knows describes. Field names are the NATS requests'.

const customerField = `"customer_id": {"type": "string", "minLength": 1, "maxLength": 128, "description": "The customer whose budget is used. Optional over HTTP with a key bound to one customer."}`

// scopeField is a run's scope: ledger.ScopeDimensionsMax dimensions, each
// named as ledger's dimension pattern says, with a value bounded like an
// agent ID.
const scopeField = `"scope": {"type": "object", "maxProperties": 4, "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,31}$"}, "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 128}, "description": "Optional: where in the customer's organisation the run belongs, e.g. {\"team\": \"research\", \"user\": \"alice\"}; every scope limit of a value named here must fit too. The dimension agent is reserved."}`

var preflightSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    ` + customerField + `,
    "agent_id": {"type": "string", "minLength": 1, "description": "The agent about to run."},
    "estimated_units": {"type": ["number", "string"], "description": "Units the run is expected to cost; reserved until record_usage or release (default 1). A JSON number or a decimal string."},
    "task_ref": {"type": "string", "description": "Optional task this run belongs to (for a per-task ceiling)."},
    "task_ceiling": {"type": ["number", "string"], "description": "Optional ceiling on the whole task's units (needs task_ref)."},
    "ceiling": {"type": ["number", "string"], "description": "Optional ceiling on this run's units."},
    "ttl": {"type": "string", "description": "How long the reservation holds, as a Go duration (default 15m)."},
    "idempotency_key": {"type": "string", "description": "Optional; a retry with the same key is answered with the first reply."},
    "metadata": {"type": "object", "description": "Optional metadata stored with the event."},
    ` + scopeField + `,
    "min_units": {"type": ["number", "string"], "description": "Optional: accept a partial approval. If estimated_units does not fit but at least min_units does, hold the most that fits every limit (partial: true in the reply). Greater than 0, at most estimated_units."},
    "usage_estimate": ` + usageEstimateField + `
  },
  "required": ["agent_id"],
  "additionalProperties": false
}`)

var recordSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    ` + customerField + `,
    "agent_id": {"type": "string", "minLength": 1, "description": "The agent that ran."},
    "units": {"type": ["number", "string"], "description": "Units actually used. A JSON number or a decimal string."},
    "reservation_id": {"type": "string", "description": "The reservation preflight returned (default: the agent's oldest)."},
    "success": {"type": "boolean", "description": "false if the run failed: the reservation is released, nothing is charged (default true)."},
    "task_ref": {"type": "string", "description": "Optional task this run belongs to."},
    "idempotency_key": {"type": "string", "description": "Optional; a retry with the same key is not charged twice."},
    "metadata": {"type": "object", "description": "Optional metadata stored with the event."},
    ` + scopeField + `,
    "usage": ` + usageField + `
  },
  "required": ["agent_id"],
  "additionalProperties": false
}`)

// usageEstimateField and usageField are priced usage (docs/PROTOCOL.md,
// "Priced usage"): token counts are integers.
const usageEstimateField = `{"type": "object", "description": "Instead of estimated_units: the model call to price from the customer's price list (its worst case: every prompt token at the input rate, all of max_output_tokens). estimated_units beside it is used only if the list does not know the model.",
      "properties": {"model": {"type": "string", "minLength": 1}, "provider": {"type": "string"}, "input_tokens": {"type": "integer", "minimum": 0},
        "max_output_tokens": {"type": "integer", "minimum": 0}, "service_tier": {"type": "string"}},
      "required": ["model", "input_tokens", "max_output_tokens"], "additionalProperties": false}`

const usageField = `{"type": "object", "description": "Instead of units: the usage the model reported, charged at the customer's price list. input_tokens counts every prompt token (cache reads and writes included), output_tokens every output token (reasoning included). Usage the list cannot price is charged units if given, else the reservation's hold, and counted as unpriced.",
      "properties": {"model": {"type": "string", "minLength": 1}, "provider": {"type": "string"},
        "input_tokens": {"type": "integer", "minimum": 0}, "output_tokens": {"type": "integer", "minimum": 0},
        "cache_read_tokens": {"type": "integer", "minimum": 0}, "cache_write_tokens": {"type": "integer", "minimum": 0},
        "cache_write_1h_tokens": {"type": "integer", "minimum": 0}, "reasoning_tokens": {"type": "integer", "minimum": 0},
        "service_tier": {"type": "string"}},
      "required": ["model"], "additionalProperties": false}`

var releaseSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    ` + customerField + `,
    "reservation_id": {"type": "string", "minLength": 1, "description": "The reservation to release."},
    "idempotency_key": {"type": "string", "description": "Optional idempotency key."}
  },
  "required": ["reservation_id"],
  "additionalProperties": false
}`)

var statusSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    ` + customerField + `
  },
  "additionalProperties": false
}`)

var grantSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    ` + customerField + `,
    "units": {"type": ["number", "string"], "description": "Credits to grant, greater than 0. A JSON number or a decimal string."},
    "expires_at": {"type": "string", "format": "date-time", "description": "Optional RFC 3339 time when unused credits are forfeited; in the future and after effective_at. Default: never."},
    "effective_at": {"type": "string", "format": "date-time", "description": "Optional RFC 3339 time from which the credits can be used (default now; a past time means now)."},
    "priority": {"type": "integer", "minimum": 0, "maximum": 1000000, "description": "Draw-down order among grants, lower first (default 100)."},
    "source": {"type": "string", "minLength": 1, "maxLength": 32, "description": "A label: purchase (the default), promo, allowance... (rollover is what the ledger writes for rolled-over allowance)."},
    "note": {"type": "string", "maxLength": 512, "description": "Optional note for the audit trail."},
    "idempotency_key": {"type": "string", "description": "Optional; a retry with the same key grants once."}
  },
  "required": ["units"],
  "additionalProperties": false
}`)

var refusalsSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    "customer_id": {"type": "string", "minLength": 1, "maxLength": 128, "description": "Only this customer's refusals. Omit for every customer (needs an auditor or admin key over HTTP)."},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "At most this many refusals, newest first (default 20)."}
  },
  "additionalProperties": false
}`)

const preflightDoc = `Ask AgentBill to reserve budget before an agent run. Returns approved: true with a reservation_id (pass it to record_usage when the run ends, or to release if it fails), or approved: false with the reason (budget_exhausted, agent_limit_exceeded, task_ceiling_exceeded, ceiling_exceeded, scope_limit_exceeded, concurrency_limit_exceeded, no_budget, or rate_limited: the customer's preflights came too fast, wait retry_after_ms and try again), a message, remaining_units and any upgrade_url. With min_units, a run whose estimate does not fit may be approved for less (partial: true, reserved_units says how much): plan the run to fit it. remaining_units is negative when the customer is in its overdraft (overdraft: true). A refusal is an answer, not an error: do not start the run.`

const recordDoc = `Record the units a run actually used, settling its reservation: the unused rest is released and any excess is reported as overage. With success: false the reservation is released and nothing is charged. Returns status (recorded, released, duplicate), charged_units, released_units, overage_units, remaining_units, exhausted, and funded_by (the credit grants that paid, if any).`

const grantDoc = `Grant credits to a customer (admin keys only): units the customer can use after its period allowance, kept across periods until used up or expired. Use it for credits a customer bought, a promotion or an allowance; a top-up, by contrast, raises this period only and resets at the boundary. Returns grant_id, units, priority, source, effective_at, expires_at (absent: never) and the customer's remaining_units after it.`

const releaseDoc = `Release a reservation without charging anything, for a run that failed or was abandoned. Returns status, released_units and remaining_units.`

const statusDoc = `A customer's budget position: limit, top_ups, used, reserved, remaining, the period and its end, open reservations, whether the budget is exhausted, per-agent usage, open credit grants (grants, grants_remaining), limited scopes and their usage (scopes), and any overdraft, rollover and concurrency caps.`

const refusalsDoc = `The most recent refused preflights, newest first, read from AgentBill's event log: when, which customer and agent, the reason and message, the units requested and what remained. The scan of the log is bounded; truncated: true says older refusals may exist.`

func preflightSummary(_ Request, reply any) string {
	r := reply.(*ledger.PreflightReply)
	if !r.Approved {
		var b strings.Builder
		fmt.Fprintf(&b, "Refused (%s): %s %s units remain. Do not start the run.", r.Reason, r.Message, r.RemainingUnits)
		if r.UpgradeURL != "" {
			fmt.Fprintf(&b, " More budget: %s", r.UpgradeURL)
		}
		return b.String()
	}
	if r.Unchecked {
		return "Approved unchecked: " + r.Message + ". There is no reservation: start the run; record_usage and release are not needed for it."
	}
	s := fmt.Sprintf("Approved: %s. reservation_id %s", r.Message, r.ReservationID)
	if r.Partial {
		s = fmt.Sprintf("Partly approved: %s. Only %s units are held: fit the run to them. reservation_id %s",
			r.Message, r.ReservedUnits, r.ReservationID)
	}
	if r.ExpiresAt != nil {
		s += fmt.Sprintf(" (expires %s)", r.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if r.EstimatePricing != nil {
		s += fmt.Sprintf(". The hold covers up to %d output tokens: set the model call's max output tokens to at most that", r.MaxOutputTokens)
	}
	return s + ". When the run ends call record_usage with it, or release if the run fails."
}

func recordSummary(_ Request, reply any) string {
	r := reply.(*ledger.RecordReply)
	s := fmt.Sprintf("%s: charged %s units, released %s, overage %s; %s units remain.",
		r.Status, r.ChargedUnits, r.ReleasedUnits, r.OverageUnits, r.RemainingUnits)
	if r.Exhausted {
		s += " The budget is exhausted."
	}
	for i, f := range r.FundedBy {
		if i == 0 {
			s += " Paid from credit grants:"
		}
		s += fmt.Sprintf(" %s units from %s", f.Units, f.GrantID)
		if i < len(r.FundedBy)-1 {
			s += ","
		}
	}
	switch {
	case r.Pricing != nil:
		s += " Priced: " + r.Pricing.Describe() + "."
	case r.Unpriced != "":
		s += " The usage could not be priced (" + r.Unpriced + "): charged the units given or the reservation's hold."
	}
	return s
}

func grantSummary(_ Request, reply any) string {
	r := reply.(*ledger.GrantReply)
	until := "never expires"
	if r.ExpiresAt != nil {
		until = "expires " + r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("Granted %s units (grant %s, source %s, priority %d, usable from %s, %s); the customer has %s units remaining.",
		r.Units, r.GrantID, r.Source, r.Priority, r.EffectiveAt.UTC().Format(time.RFC3339), until, r.RemainingUnits)
}

func releaseSummary(req Request, reply any) string {
	r := reply.(*ledger.ReleaseReply)
	return fmt.Sprintf("Reservation %s: %s, %s units released; %s units remain.",
		req.(*ledger.ReleaseRequest).ReservationID, r.Status, r.ReleasedUnits, r.RemainingUnits)
}

func statusSummary(_ Request, reply any) string {
	r := reply.(*ledger.StatusReply)
	s := fmt.Sprintf("Customer %s: %s units remain of a %s-unit limit (top-ups %s); used %s, reserved %s, %d open reservations; period %s",
		r.CustomerID, r.Remaining, r.Limit, r.TopUps, r.Used, r.Reserved, r.OpenReservations, r.Period)
	if r.PeriodEnd != nil {
		s += " until " + r.PeriodEnd.UTC().Format("2006-01-02T15:04:05Z")
	}
	s += "."
	if r.GrantsRemaining.Sign() > 0 {
		s += fmt.Sprintf(" Credit grants usable now: %s units (in the remaining).", r.GrantsRemaining)
	}
	if r.Overdraft != nil {
		s += fmt.Sprintf(" Overdraft allowed: %s units.", *r.Overdraft)
	}
	if r.Exhausted {
		s += " The budget is exhausted."
	}
	return s
}

func refusalsSummary(_ Request, reply any) string {
	r := reply.(*RefusalsReply)
	var b strings.Builder
	who := "all customers"
	if r.CustomerID != "" {
		who = "customer " + r.CustomerID
	}
	fmt.Fprintf(&b, "%d recent refusals for %s (newest first, %d commits scanned", len(r.Refusals), who, r.ScannedCommits)
	if r.Truncated {
		b.WriteString(", scan bounded: older ones may exist")
	}
	b.WriteString(")")
	for _, f := range r.Refusals {
		fmt.Fprintf(&b, "\n- %s customer %s agent %s asked %s units: %s: %s (%s remained)",
			f.At.UTC().Format(time.RFC3339), f.CustomerID, f.AgentID, f.RequestedUnits, f.Reason, f.Message, f.RemainingUnits)
	}
	return b.String()
}
