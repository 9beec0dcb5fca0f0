package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/agentbill/agentbill/internal/ops"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The tools' results that are not a ledger reply, and their bounds; they
// are declared with the operation (internal/ops).
type (
	// Refusal is one denied event, flattened.
	Refusal = ops.Refusal
	// RefusalsReply is the result of recent_refusals.
	RefusalsReply = ops.RefusalsReply
)

// Bounds on recent_refusals' limit argument.
const (
	RefusalsLimitDefault = ops.RefusalsLimitDefault
	RefusalsLimitMax     = ops.RefusalsLimitMax
)

// addTools registers a tool for every operation of the table that has
// one: on the admin server all of them, on the agent server all but those
// of admin operations.
func (s *Server) addTools() {
	for _, op := range ops.Table() {
		if op.Tool == nil {
			continue
		}
		tool, handler := s.tool(op)
		s.admin.AddTool(tool, handler)
		if op.Action != keys.ActionAdmin {
			s.agent.AddTool(tool, handler)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// tool is op's tool for the low-level API: the SDK's typed handlers
// round-trip arguments through map[string]any, which would read amounts
// as float64. Here the raw arguments are decoded once, exactly. The
// handler authorizes every call against the key whatever server offered
// the tool (ops.Op.Call).
func (s *Server) tool(op *ops.Op) (*mcp.Tool, mcp.ToolHandler) {
	t := op.Tool
	tool := &mcp.Tool{Name: t.Name, Title: t.Title, Description: t.Description, InputSchema: t.Schema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: t.ReadOnly, IdempotentHint: t.Idempotent, OpenWorldHint: ptr(false)}}
	return tool, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		k := keyOf(req)
		if s.requireKey && k == nil {
			return s.errorResult(t.Name, ledger.Errorf(ledger.CodeUnauthenticated, "an API key is required")), nil
		}
		ctx, cancel := context.WithTimeout(ctx, ToolTimeout)
		defer cancel()
		args := op.New()
		if err := decodeArgs(req.Params.Arguments, args); err != nil {
			return s.errorResult(t.Name, err), nil
		}
		reply, err := op.Call(ctx, s.backend, k, "", args)
		if err != nil {
			return s.errorResult(t.Name, err), nil
		}
		b, err := json.Marshal(reply)
		if err != nil {
			return s.errorResult(t.Name, err), nil
		}
		return &mcp.CallToolResult{
			Content:           []mcp.Content{&mcp.TextContent{Text: t.Summary(args, reply)}, &mcp.TextContent{Text: string(b)}},
			StructuredContent: json.RawMessage(b),
		}, nil
	}
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
