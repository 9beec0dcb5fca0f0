package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
)

// EstimatedUnitsDefault is a preflight's estimate when the body has none
// (docs/PROTOCOL.md, "HTTP mapping": estimated_units defaults to 1).
var EstimatedUnitsDefault = events.NewUnits(1, 0)

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
}

// BudgetView is the reply of GET and PUT /v1/budget and POST /v1/topup.
// LimitUnits includes this period's top-ups, so remaining = limit - used -
// reserved (never below 0); IsBlocked is true when nothing remains.
type BudgetView struct {
	CustomerID     string        `json:"customer_id"`
	LimitUnits     events.Units  `json:"limit_units"`
	TopUpUnits     events.Units  `json:"top_up_units"`
	UsedUnits      events.Units  `json:"used_units"`
	ReservedUnits  events.Units  `json:"reserved_units"`
	RemainingUnits events.Units  `json:"remaining_units"`
	IsBlocked      bool          `json:"is_blocked"`
	Period         ledger.Period `json:"period"`
	PeriodEnd      *time.Time    `json:"period_end"`
}

func budgetView(st *ledger.StatusReply) *BudgetView {
	return &BudgetView{
		CustomerID: st.CustomerID, LimitUnits: st.Limit.Add(st.TopUps), TopUpUnits: st.TopUps,
		UsedUnits: st.Used, ReservedUnits: st.Reserved, RemainingUnits: st.Remaining,
		IsBlocked: st.Exhausted, Period: st.Period, PeriodEnd: st.PeriodEnd,
	}
}

// POST /v1/preflight
func (s *Server) preflight(ctx context.Context, r *http.Request, k *keys.Key) (any, error) {
	var req ledger.PreflightRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	cid, err := customerOf(req.CustomerID, k, keys.ActionSpend)
	if err != nil {
		return nil, err
	}
	req.CustomerID = cid
	if req.EstimatedUnits == nil {
		est := EstimatedUnitsDefault
		req.EstimatedUnits = &est
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return s.client.Preflight(ctx, cid, req)
}

// POST /v1/events
func (s *Server) record(ctx context.Context, r *http.Request, k *keys.Key) (any, error) {
	var b RecordBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	cid, err := customerOf(b.CustomerID, k, keys.ActionSpend)
	if err != nil {
		return nil, err
	}
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
	units := b.Units
	if units == nil && b.Success != nil && !*b.Success {
		zero := events.Zero // a failed run releases; units do not matter
		units = &zero
	}
	req := ledger.RecordRequest{
		CustomerID: cid, AgentID: agent, Units: units, ReservationID: b.ReservationID,
		Success: b.Success, TaskRef: b.TaskRef, IdempotencyKey: b.IdempotencyKey, Metadata: b.Metadata,
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return s.client.Record(ctx, cid, req)
}

// POST /v1/release
func (s *Server) release(ctx context.Context, r *http.Request, k *keys.Key) (any, error) {
	var req ledger.ReleaseRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	cid, err := customerOf(req.CustomerID, k, keys.ActionSpend)
	if err != nil {
		return nil, err
	}
	req.CustomerID = cid
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return s.client.ReleaseWith(ctx, cid, req)
}

// POST /v1/extend
func (s *Server) extend(ctx context.Context, r *http.Request, k *keys.Key) (any, error) {
	var req ledger.ExtendRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	cid, err := customerOf(req.CustomerID, k, keys.ActionSpend)
	if err != nil {
		return nil, err
	}
	req.CustomerID = cid
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return s.client.ExtendWith(ctx, cid, req)
}

// GET /v1/budget?customer_id=C
func (s *Server) getBudget(ctx context.Context, r *http.Request, k *keys.Key) (any, error) {
	cid, err := customerOf(r.URL.Query().Get("customer_id"), k, keys.ActionRead)
	if err != nil {
		return nil, err
	}
	st, err := s.client.Status(ctx, cid)
	if err != nil {
		return nil, err
	}
	return budgetView(st), nil
}

// PUT /v1/budget
func (s *Server) putBudget(ctx context.Context, r *http.Request, k *keys.Key) (any, error) {
	var b BudgetBody
	if err := decodeBody(r, &b); err != nil {
		return nil, err
	}
	cid, err := customerOf(b.CustomerID, k, keys.ActionAdmin)
	if err != nil {
		return nil, err
	}
	req := ledger.BudgetRequest{
		CustomerID: cid, Limit: b.LimitUnits, Period: b.Period, Thresholds: b.Thresholds,
		UpgradeURL: b.UpgradeURL, AgentLimits: b.AgentLimits, IdempotencyKey: b.IdempotencyKey,
	}
	if b.LimitUnits == nil {
		return nil, invalid("limit_units is required")
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	st, err := s.client.SetBudget(ctx, cid, req)
	if err != nil {
		return nil, err
	}
	return budgetView(st), nil
}

// POST /v1/topup
func (s *Server) topUp(ctx context.Context, r *http.Request, k *keys.Key) (any, error) {
	var req ledger.TopUpRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	cid, err := customerOf(req.CustomerID, k, keys.ActionAdmin)
	if err != nil {
		return nil, err
	}
	req.CustomerID = cid
	if err := req.Validate(); err != nil {
		return nil, err
	}
	st, err := s.client.TopUp(ctx, cid, req)
	if err != nil {
		return nil, err
	}
	return budgetView(st), nil
}

// GET /v1/customers/{id}
func (s *Server) customer(ctx context.Context, r *http.Request, k *keys.Key) (any, error) {
	cid, err := pathCustomer(r, k, keys.ActionRead)
	if err != nil {
		return nil, err
	}
	return s.client.Status(ctx, cid)
}

// pathCustomer is the {id} of a path, which must be given.
func pathCustomer(r *http.Request, k *keys.Key, action keys.Action) (string, error) {
	id := r.PathValue("id")
	if id == "" {
		return "", invalid("the customer ID in the path is empty")
	}
	return customerOf(id, k, action)
}
