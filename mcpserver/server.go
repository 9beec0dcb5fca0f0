// Package mcpserver is the Model Context Protocol adapter of AgentBill
// (`agentbill mcp` over stdio, and /mcp on the HTTP gateway): a tool for
// every operation of the table (internal/ops) that declares one, today
// preflight, record_usage, release, budget_status, recent_refusals and,
// for admin clients only, grant_credits, whose arguments use the NATS requests' field names and whose results
// carry the replies' fields. Like the HTTP gateway it decides nothing about
// money: it decodes the arguments exactly (amounts as events.Units, never
// float64), sends the same NATS request any agent would through
// client.Client (the ledger validates it), and reads refusals back from
// the log.
//
// A refusal is a normal tool result (approved: false, with the reason and
// what remains); bad arguments, permission problems and an unavailable
// service are tool errors (isError) whose text says what went wrong.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/internal/ops"
	"github.com/agentbill/agentbill/keys"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
)

// Bounds on the server's calls to the writer.
const (
	// AttemptTimeout and Attempts bound one tool's NATS calls
	// (ops.AttemptTimeout, ops.Attempts); ToolTimeout bounds one tool call
	// in all, so a failover to the standby (about 3 s) costs a tool call
	// latency, not an error.
	AttemptTimeout = ops.AttemptTimeout
	Attempts       = ops.Attempts
	ToolTimeout    = 15 * time.Second
)

// Name and Version identify the server to MCP clients.
const (
	Name    = "agentbill"
	Version = "0.1.0"
)

// KeyExtra is the auth.TokenInfo.Extra entry holding the *keys.Key of an
// HTTP request. The HTTP gateway authenticates the API key and puts it
// there; the tools authorize every call against it (see README.md).
const KeyExtra = "agentbill_key"

// Config configures a Server.
type Config struct {
	Conn *nats.Conn // the connection to NATS
	// RequireKey makes every tool call need an API key (KeyExtra), as on
	// the HTTP gateway. Without it (stdio) a call needs none: the process's
	// NATS credentials are the boundary, as for the CLI.
	RequireKey bool
	// AdminTools offers the admin tools (grant_credits) to a client
	// without a key (stdio, `agentbill mcp --admin-tools`); the NATS
	// credentials still decide whether a call succeeds. Over HTTP the key
	// decides instead (ForKey): only a key that may act as admin is
	// offered them.
	AdminTools bool
	// OnUnavailable is the preflight tool's fail policy when the writer
	// cannot be reached after the retries (client.WithOnUnavailable):
	// client.Deny (the default, "") is a tool error; client.Allow is an
	// unchecked approval (unchecked: true, no reservation_id).
	OnUnavailable client.FailPolicy
	// ClientOptions add to the writer's client's (ops.NewBackend); tests
	// shorten its retries with them.
	ClientOptions []client.Option
	Logger        *slog.Logger // slog.Default() if nil
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Conn == nil {
		errs = append(errs, errors.New("mcpserver: Conn is required"))
	}
	if p := c.OnUnavailable; p != "" && p != client.Deny && p != client.Allow {
		errs = append(errs, fmt.Errorf("mcpserver: OnUnavailable must be %q or %q, got %q", client.Deny, client.Allow, p))
	}
	return errors.Join(errs...)
}

// Server holds what the tools need. It is safe for concurrent use.
//
// It is two MCP servers over one backend: one with every tool, for
// clients that may administer budgets, and one without the admin tools,
// for every other client, so an agent's model is never offered a tool
// that grants credits (and could not call one if it guessed the name).
type Server struct {
	backend    ops.Backend // the writer's client and the log's scans
	requireKey bool
	adminTools bool // a client without a key gets admin
	log        *slog.Logger
	admin      *mcp.Server // every tool
	agent      *mcp.Server // every tool but the admin ones
}

// New returns a Server with its tools registered.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{requireKey: cfg.RequireKey, adminTools: cfg.AdminTools, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	policy := cfg.OnUnavailable
	if policy == "" {
		policy = client.Deny
	}
	opts := append([]client.Option{client.WithOnUnavailable(policy), client.WithLogger(s.log)}, cfg.ClientOptions...)
	backend, err := ops.NewBackend(cfg.Conn, opts...)
	if err != nil {
		return nil, err
	}
	s.backend = backend
	impl := &mcp.Implementation{Name: Name, Title: "AgentBill budgets", Version: Version}
	s.admin = mcp.NewServer(impl, &mcp.ServerOptions{Instructions: instructions + adminInstructions})
	s.agent = mcp.NewServer(impl, &mcp.ServerOptions{Instructions: instructions})
	s.addTools()
	return s, nil
}

// MCP returns the *mcp.Server of a client without a key (stdio): with the
// admin tools only if Config.AdminTools.
func (s *Server) MCP() *mcp.Server {
	if s.adminTools {
		return s.admin
	}
	return s.agent
}

// ForKey returns the *mcp.Server for a client with the API key k, to
// serve over HTTP with mcp.NewStreamableHTTPHandler: with the admin tools
// only if k may act as admin (nil: as MCP).
func (s *Server) ForKey(k *keys.Key) *mcp.Server {
	if k == nil {
		return s.MCP()
	}
	if k.AuthorizeAction(keys.ActionAdmin) == nil {
		return s.admin
	}
	return s.agent
}

// RunStdio serves one client over stdin and stdout until it disconnects
// or ctx ends.
func (s *Server) RunStdio(ctx context.Context) error {
	return s.MCP().Run(ctx, &mcp.StdioTransport{})
}

const instructions = `AgentBill keeps a budget, in units, for each customer of an AI agent.
Before a costly step call preflight with the estimated units: if approved, do the
work and then call record_usage with the units actually used and the reservation_id;
if the work fails or is abandoned, call release. If preflight is refused
(approved: false), do not do the work: tell the user the reason, what remains,
and the upgrade_url if there is one. budget_status shows the customer's position;
recent_refusals lists the latest refusals from the ledger's log.`

// adminInstructions are added for clients offered the admin tools.
const adminInstructions = `
grant_credits grants a customer credits (admin): units kept across periods until
used up or expired, drawn after the period's allowance.`

// keyOf returns the API key of a call made over HTTP, or nil.
func keyOf(req *mcp.CallToolRequest) *keys.Key {
	if req == nil || req.Extra == nil || req.Extra.TokenInfo == nil {
		return nil
	}
	k, _ := req.Extra.TokenInfo.Extra[KeyExtra].(*keys.Key)
	return k
}
