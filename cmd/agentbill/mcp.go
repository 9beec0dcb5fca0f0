package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/mcpserver"
	"github.com/nats-io/nats.go"
)

// runMCP is `agentbill mcp`: the MCP server over stdio (stdout carries
// the protocol; logs go to stderr), connected to AgentBill over NATS with
// the usual connection flags until the client disconnects or the process
// is told to stop. With nats.conf's users: `agent` serves preflight,
// record_usage, release and budget_status; recent_refusals also reads the
// stream, which `admin` may and `agent` may not. --admin-tools adds
// grant_credits, for an operator's assistant running as `admin`; without
// it an agent's model is not offered a tool that grants credits.
func runMCP(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs, true)
	adminTools := fs.Bool("admin-tools", false, "also offer the admin tools (grant_credits); the NATS credentials must allow admin requests")
	onUnavailable := fs.String("on-unavailable", string(client.Deny),
		"when AgentBill cannot be reached after the retries, preflight answers: deny (a tool error, the run must not start) or allow (approved unchecked, no reservation; warned once a minute)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if p := client.FailPolicy(*onUnavailable); p != client.Deny && p != client.Allow {
		fmt.Fprintf(stderr, "agentbill mcp: --on-unavailable must be deny or allow, got %q\n", *onUnavailable)
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agentbill mcp: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	// A long-lived server: keep reconnecting while AgentBill restarts;
	// calls made meanwhile answer "unavailable" after their timeout.
	s, err := nf.connect(ctx, nats.Name("agentbill-mcp"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer s.close()
	srv, err := mcpserver.New(mcpserver.Config{Conn: s.nc, AdminTools: *adminTools,
		OnUnavailable: client.FailPolicy(*onUnavailable), Logger: log})
	if err != nil {
		return err
	}
	log.Info("mcp server on stdio", "nats_url", nf.url, "admin_tools", *adminTools)
	// The server runs on ctx, not s.ctx: one tool call the user may not
	// make (agent's recent_refusals) is that call's error, answered at
	// once by the client package, and must not end the server.
	if err := srv.RunStdio(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
