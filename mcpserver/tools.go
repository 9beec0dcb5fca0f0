package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// toolFunc runs one tool: it returns the reply (the structured result)
// and a one-paragraph summary for the model to read.
type toolFunc func(ctx context.Context, k *keys.Key, args json.RawMessage) (reply any, summary string, err error)

func (s *Server) addTools() {
	s.add(&mcp.Tool{Name: "preflight", Title: "Reserve budget before a run", Description: preflightDoc,
		InputSchema: preflightSchema, Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(false)}}, s.preflight)
	s.add(&mcp.Tool{Name: "record_usage", Title: "Record the units a run used", Description: recordDoc,
		InputSchema: recordSchema, Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(false)}}, s.recordUsage)
	s.add(&mcp.Tool{Name: "release", Title: "Release a reservation", Description: releaseDoc,
		InputSchema: releaseSchema, Annotations: &mcp.ToolAnnotations{IdempotentHint: true, OpenWorldHint: ptr(false)}}, s.release)
	s.add(&mcp.Tool{Name: "budget_status", Title: "A customer's budget position", Description: statusDoc,
		InputSchema: statusSchema, Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}}, s.budgetStatus)
	s.add(&mcp.Tool{Name: "recent_refusals", Title: "Recent refusals from the log", Description: refusalsDoc,
		InputSchema: refusalsSchema, Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}}, s.recentRefusals)
}

func ptr[T any](v T) *T { return &v }

// add registers a tool with the low-level API: the SDK's typed handlers
// round-trip arguments through map[string]any, which would read amounts
// as float64. Here the raw arguments are decoded once, exactly.
func (s *Server) add(t *mcp.Tool, f toolFunc) {
	s.mcp.AddTool(t, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		k := keyOf(req)
		if s.requireKey && k == nil {
			return s.errorResult(t.Name, ledger.Errorf(ledger.CodeUnauthenticated, "an API key is required")), nil
		}
		ctx, cancel := context.WithTimeout(ctx, ToolTimeout)
		defer cancel()
		reply, summary, err := f(ctx, k, req.Params.Arguments)
		if err != nil {
			return s.errorResult(t.Name, err), nil
		}
		b, err := json.Marshal(reply)
		if err != nil {
			return s.errorResult(t.Name, err), nil
		}
		return &mcp.CallToolResult{
			Content:           []mcp.Content{&mcp.TextContent{Text: summary}, &mcp.TextContent{Text: string(b)}},
			StructuredContent: json.RawMessage(b),
		}, nil
	})
}

// errorResult is a tool error: isError, "code: message" as text, and the
// same {"error": {code, message}} as every other transport as structure.
func (s *Server) errorResult(tool string, err error) *mcp.CallToolResult {
	e := toError(err)
	if e.Code == ledger.CodeInternal || e.Code == ledger.CodeUnavailable {
		s.log.Warn("mcp tool failed", "tool", tool, "code", e.Code, "err", err)
	}
	b, _ := json.Marshal(ledger.ErrorReply{Error: e})
	return &mcp.CallToolResult{
		IsError:           true,
		Content:           []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s: %s", e.Code, e.Message)}},
		StructuredContent: json.RawMessage(b),
	}
}

func (s *Server) preflight(ctx context.Context, k *keys.Key, args json.RawMessage) (any, string, error) {
	var req ledger.PreflightRequest
	if err := decodeArgs(args, &req); err != nil {
		return nil, "", err
	}
	cid, err := customerOf(req.CustomerID, k, keys.ActionSpend)
	if err != nil {
		return nil, "", err
	}
	req.CustomerID = cid
	if err := req.Validate(); err != nil {
		return nil, "", err
	}
	r, err := s.client.Preflight(ctx, cid, req)
	if err != nil {
		return nil, "", err
	}
	return r, preflightSummary(r), nil
}

func (s *Server) recordUsage(ctx context.Context, k *keys.Key, args json.RawMessage) (any, string, error) {
	var req ledger.RecordRequest
	if err := decodeArgs(args, &req); err != nil {
		return nil, "", err
	}
	cid, err := customerOf(req.CustomerID, k, keys.ActionSpend)
	if err != nil {
		return nil, "", err
	}
	req.CustomerID = cid
	if req.Units == nil && req.Success != nil && !*req.Success {
		zero := events.Zero // a failed run releases; units do not matter
		req.Units = &zero
	}
	if err := req.Validate(); err != nil {
		return nil, "", err
	}
	r, err := s.client.Record(ctx, cid, req)
	if err != nil {
		return nil, "", err
	}
	return r, recordSummary(r), nil
}

func (s *Server) release(ctx context.Context, k *keys.Key, args json.RawMessage) (any, string, error) {
	var req ledger.ReleaseRequest
	if err := decodeArgs(args, &req); err != nil {
		return nil, "", err
	}
	cid, err := customerOf(req.CustomerID, k, keys.ActionSpend)
	if err != nil {
		return nil, "", err
	}
	req.CustomerID = cid
	if err := req.Validate(); err != nil {
		return nil, "", err
	}
	r, err := s.client.ReleaseWith(ctx, cid, req)
	if err != nil {
		return nil, "", err
	}
	return r, fmt.Sprintf("Reservation %s: %s, %s units released; %s units remain.",
		req.ReservationID, r.Status, r.ReleasedUnits, r.RemainingUnits), nil
}

func (s *Server) budgetStatus(ctx context.Context, k *keys.Key, args json.RawMessage) (any, string, error) {
	var req ledger.StatusRequest
	if err := decodeArgs(args, &req); err != nil {
		return nil, "", err
	}
	cid, err := customerOf(req.CustomerID, k, keys.ActionRead)
	if err != nil {
		return nil, "", err
	}
	r, err := s.client.Status(ctx, cid)
	if err != nil {
		return nil, "", err
	}
	return r, statusSummary(r), nil
}

func preflightSummary(r *ledger.PreflightReply) string {
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

func recordSummary(r *ledger.RecordReply) string {
	s := fmt.Sprintf("%s: charged %s units, released %s, overage %s; %s units remain.",
		r.Status, r.ChargedUnits, r.ReleasedUnits, r.OverageUnits, r.RemainingUnits)
	if r.Exhausted {
		s += " The budget is exhausted."
	}
	return s
}

func statusSummary(r *ledger.StatusReply) string {
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
