package ops

import (
	"encoding/json"
	"net/url"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// The HTTP gateway's REST forms (docs/PROTOCOL.md): bodies that name
// fields otherwise than the NATS requests, the budget view, and requests
// read from the URL.

// RecordBody is POST /v1/events: a usage event, which is a record. The
// agent is event_type (AgentBill's REST name); agent_id is accepted too.
type RecordBody struct {
	CustomerID     string          `json:"customer_id,omitempty"`
	EventType      string          `json:"event_type,omitempty"`
	AgentID        string          `json:"agent_id,omitempty"`
	Units          *events.Units   `json:"units"`
	ReservationID  string          `json:"reservation_id,omitempty"`
	Success        *bool           `json:"success,omitempty"`
	TaskRef        string          `json:"task_ref,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	// Scope is the run's scope when the record settles no open hold.
	Scope map[string]string `json:"scope,omitempty"`
	// Usage is model usage to price (ledger.RecordRequest.Usage).
	Usage *events.Usage `json:"usage,omitempty"`
}

// Customer implements Body.
func (b *RecordBody) Customer() string { return b.CustomerID }

// Request implements Body: the record, its agent event_type or agent_id.
func (b *RecordBody) Request() (Request, error) {
	agent := b.EventType
	if b.AgentID != "" {
		if agent != "" && agent != b.AgentID {
			return nil, invalid("event_type %q and agent_id %q disagree; send one", truncate(agent, 64), truncate(b.AgentID, 64))
		}
		agent = b.AgentID
	}
	if agent == "" {
		return nil, invalid("event_type (the agent ID) is required")
	}
	return &ledger.RecordRequest{
		CustomerID: b.CustomerID, AgentID: agent, Units: b.Units, ReservationID: b.ReservationID,
		Success: b.Success, TaskRef: b.TaskRef, IdempotencyKey: b.IdempotencyKey, Metadata: b.Metadata,
		Scope: b.Scope, Usage: b.Usage,
	}, nil
}

// BudgetBody is PUT /v1/budget.
type BudgetBody struct {
	CustomerID     string                  `json:"customer_id,omitempty"`
	LimitUnits     *events.Units           `json:"limit_units"`
	Period         string                  `json:"period"`
	Thresholds     []events.Units          `json:"thresholds,omitempty"`
	UpgradeURL     string                  `json:"upgrade_url,omitempty"`
	AgentLimits    map[string]events.Units `json:"agent_limits,omitempty"`
	IdempotencyKey string                  `json:"idempotency_key,omitempty"`
	// The budget's less common settings, under the NATS request's names
	// (ledger.BudgetRequest): the ledger checks them.
	Rollover        ledger.Rollover            `json:"rollover,omitempty"`
	Overdraft       *events.Units              `json:"overdraft,omitempty"`
	ScopeLimits     []ledger.ScopeLimitRequest `json:"scope_limits,omitempty"`
	MaxRuns         int                        `json:"max_concurrent_runs,omitempty"`
	MaxRunsPerAgent int                        `json:"max_concurrent_runs_per_agent,omitempty"`
	PriceList       string                     `json:"price_list,omitempty"`
	RateLimit       *events.RateLimit          `json:"rate_limit,omitempty"`
}

// Customer implements Body.
func (b *BudgetBody) Customer() string { return b.CustomerID }

// Request implements Body. The limit is checked here only because its
// REST name differs from the request's (limit_units, not limit).
func (b *BudgetBody) Request() (Request, error) {
	if b.LimitUnits == nil {
		return nil, invalid("limit_units is required")
	}
	return &ledger.BudgetRequest{
		CustomerID: b.CustomerID, Limit: b.LimitUnits, Period: b.Period, Thresholds: b.Thresholds,
		UpgradeURL: b.UpgradeURL, AgentLimits: b.AgentLimits, IdempotencyKey: b.IdempotencyKey,
		Rollover: b.Rollover, Overdraft: b.Overdraft, ScopeLimits: b.ScopeLimits,
		MaxRuns: b.MaxRuns, MaxRunsPerAgent: b.MaxRunsPerAgent, PriceList: b.PriceList, RateLimit: b.RateLimit,
	}, nil
}

// newBody returns an empty *B as a Body.
func newBody[B any, PB interface {
	*B
	Body
}]() Body {
	return PB(new(B))
}

// BudgetView is the reply of GET and PUT /v1/budget and POST /v1/topup.
// LimitUnits includes this period's top-ups. RemainingUnits is the
// status's remaining: what the period's allowance has left, plus what
// credit grants usable now have left (GrantsRemainingUnits), minus what
// is reserved; negative only in a customer's overdraft. IsBlocked is true
// when nothing remains, counting the overdraft (OverdraftUnits, present
// when the budget has one).
type BudgetView struct {
	CustomerID           string        `json:"customer_id"`
	LimitUnits           events.Units  `json:"limit_units"`
	TopUpUnits           events.Units  `json:"top_up_units"`
	UsedUnits            events.Units  `json:"used_units"`
	ReservedUnits        events.Units  `json:"reserved_units"`
	RemainingUnits       events.Signed `json:"remaining_units"`
	GrantsRemainingUnits events.Units  `json:"grants_remaining_units"`
	OverdraftUnits       *events.Units `json:"overdraft_units,omitempty"`
	IsBlocked            bool          `json:"is_blocked"`
	Period               ledger.Period `json:"period"`
	PeriodEnd            *time.Time    `json:"period_end"`
}

// budgetView is the View of the budget routes: a *ledger.StatusReply as a
// BudgetView.
func budgetView(reply any) any {
	st, ok := reply.(*ledger.StatusReply)
	if !ok {
		return reply
	}
	return &BudgetView{
		CustomerID: st.CustomerID, LimitUnits: st.Limit.Add(st.TopUps), TopUpUnits: st.TopUps,
		UsedUnits: st.Used, ReservedUnits: st.Reserved, RemainingUnits: st.Remaining,
		GrantsRemainingUnits: st.GrantsRemaining, OverdraftUnits: st.Overdraft,
		IsBlocked: st.Exhausted, Period: st.Period, PeriodEnd: st.PeriodEnd,
	}
}

// queryCustomer reads GET /v1/budget?customer_id=C.
func queryCustomer(_ func(string) string, q url.Values) (Request, error) {
	return &ledger.StatusRequest{CustomerID: q.Get("customer_id")}, nil
}

// pathCustomer reads GET /v1/customers/{id}, whose {id} must be given.
func pathCustomer(path func(string) string, _ url.Values) (Request, error) {
	id, err := pathID(path)
	if err != nil {
		return nil, err
	}
	return &ledger.StatusRequest{CustomerID: id}, nil
}

// pathID is the {id} of a path, which must be given.
func pathID(path func(string) string) (string, error) {
	id := path("id")
	if id == "" {
		return "", invalid("the customer ID in the path is empty")
	}
	return id, nil
}
