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
    "metadata": {"type": "object", "description": "Optional metadata stored with the event."}
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
    "metadata": {"type": "object", "description": "Optional metadata stored with the event."}
  },
  "required": ["agent_id"],
  "additionalProperties": false
}`)

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

var refusalsSchema = json.RawMessage(`{
  "type": "object",
  "properties": {
    "customer_id": {"type": "string", "minLength": 1, "maxLength": 128, "description": "Only this customer's refusals. Omit for every customer (needs an auditor or admin key over HTTP)."},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "At most this many refusals, newest first (default 20)."}
  },
  "additionalProperties": false
}`)

const preflightDoc = `Ask AgentBill to reserve budget before an agent run. Returns approved: true with a reservation_id (pass it to record_usage when the run ends, or to release if it fails), or approved: false with the reason (budget_exhausted, agent_limit_exceeded, task_ceiling_exceeded, ceiling_exceeded, no_budget), a message, remaining_units and any upgrade_url. A refusal is an answer, not an error: do not start the run.`

const recordDoc = `Record the units a run actually used, settling its reservation: the unused rest is released and any excess is reported as overage. With success: false the reservation is released and nothing is charged. Returns status (recorded, released, duplicate), charged_units, released_units, overage_units, remaining_units and exhausted.`

const releaseDoc = `Release a reservation without charging anything, for a run that failed or was abandoned. Returns status, released_units and remaining_units.`

const statusDoc = `A customer's budget position: limit, top_ups, used, reserved, remaining, the period and its end, open reservations, whether the budget is exhausted, and per-agent usage.`

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
	s := fmt.Sprintf("Approved: %s. reservation_id %s", r.Message, r.ReservationID)
	if r.ExpiresAt != nil {
		s += fmt.Sprintf(" (expires %s)", r.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
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
	return s
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
