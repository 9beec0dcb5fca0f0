package mcpserver_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// policySession connects an MCP client to a server with the fail policy
// p, two quick attempts, and its log in the returned buffer, on a NATS
// server with a writer only if withWriter.
func policySession(t *testing.T, p client.FailPolicy, withWriter bool) (*mcp.ClientSession, *client.Client, *testenv.SyncBuffer) {
	t.Helper()
	srv := testenv.StartServer(t, "")
	if withWriter {
		testenv.StartWriter(t, srv, testenv.NewClock(t0), nil)
	}
	logs := &testenv.SyncBuffer{}
	cs := connect(t, mcpserver.Config{Conn: testenv.Connect(t, srv), OnUnavailable: p,
		ClientOptions: []client.Option{client.WithAttempts(2)}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return cs, testenv.Client(t, srv), logs
}

const preflightArgs = `{"customer_id":"c1","agent_id":"a","estimated_units":10}`

func TestPreflightToolDenyIsUnavailable(t *testing.T) {
	cs, _, _ := policySession(t, "", false) // deny is the default
	_, text := call(t, cs, "preflight", preflightArgs, true)
	if !strings.HasPrefix(text, string(ledger.CodeUnavailable)+":") {
		t.Errorf("got %q, want an unavailable tool error", text)
	}
}

func TestPreflightToolAllowIsUncheckedAndWarnsOnce(t *testing.T) {
	cs, _, logs := policySession(t, client.Allow, false)
	for range 2 {
		out, text := call(t, cs, "preflight", preflightArgs, false)
		if out["approved"] != true || out["unchecked"] != true || out["reservation_id"] != nil {
			t.Fatalf("got %v, want an unchecked approval", out)
		}
		if !strings.Contains(text, "Approved unchecked") {
			t.Errorf("summary %q does not say the check was skipped", text)
		}
	}
	if got, want := strings.Count(logs.String(), "budget check skipped"), 1; got != want {
		t.Errorf("%d warnings, want %d:\n%s", got, want, logs)
	}
}

func TestPreflightToolAllowKeepsRefusals(t *testing.T) {
	cs, c, _ := policySession(t, client.Allow, true)
	if _, err := c.SetBudget(context.Background(), "c1", ledger.BudgetRequest{Limit: testenv.Ptr(t, "5"), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	out, _ := call(t, cs, "preflight", preflightArgs, false)
	if out["approved"] != false || out["unchecked"] != nil {
		t.Errorf("got %v, want a refusal", out)
	}
	call(t, cs, "preflight", `{"customer_id":"c1","agent_id":"a","estimated_units":-1}`, true)
}

func TestBadOnUnavailableIsRejected(t *testing.T) {
	srv := testenv.StartServer(t, "")
	_, err := mcpserver.New(mcpserver.Config{Conn: testenv.Connect(t, srv), OnUnavailable: "maybe"})
	if err == nil || !strings.Contains(err.Error(), "maybe") {
		t.Errorf("got %v, want an error naming the bad value", err)
	}
}
