package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer adds an API key to every request.
type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// mcpSession connects the Go SDK's client to the gateway's /mcp with key.
func (e *env) mcpSession(key string) *mcp.ClientSession {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tr := &mcp.StreamableClientTransport{Endpoint: e.http.URL + MCPPath,
		HTTPClient: &http.Client{Transport: bearer{key}, Timeout: testTimeout}, MaxRetries: -1, DisableStandaloneSSE: true}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	e.t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func mcpTools(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range lt.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

// mcpCall calls a tool; it returns the result's JSON (numbers exact), or
// the error text of a tool error, or the protocol error.
func mcpCall(t *testing.T, cs *mcp.ClientSession, name, args string) (out map[string]any, toolErr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: json.RawMessage(args)})
	if err != nil {
		return nil, "", err
	}
	text := res.Content[len(res.Content)-1].(*mcp.TextContent).Text
	if res.IsError {
		return nil, text, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("%s: result is not JSON: %v", name, err)
	}
	return out, "", nil
}

// TestMCPAdminToolsFollowTheKey: an admin key is offered grant_credits
// and grants with it; agent and auditor keys are not offered it and
// cannot call it; preflight takes scope and min_units over /mcp.
func TestMCPAdminToolsFollowTheKey(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "10")
	base := []string{"budget_status", "preflight", "recent_refusals", "record_usage", "release"}

	admin := e.mcpSession(e.admin)
	if got, want := mcpTools(t, admin), []string{"budget_status", "grant_credits", "preflight", "recent_refusals", "record_usage", "release"}; !slices.Equal(got, want) {
		t.Fatalf("admin key: tools %v, want %v", got, want)
	}
	out, toolErr, err := mcpCall(t, admin, "grant_credits", `{"customer_id":"c1","units":"20","priority":1}`)
	if err != nil || toolErr != "" || out["grant_id"] == nil || out["remaining_units"].(json.Number).String() != "30" {
		t.Fatalf("admin grant_credits: %v %q %v", out, toolErr, err)
	}

	for name, key := range map[string]string{"bound agent": e.agent, "unbound agent": e.anyAg, "auditor": e.audit} {
		cs := e.mcpSession(key)
		if got := mcpTools(t, cs); !slices.Equal(got, base) {
			t.Fatalf("%s key: tools %v, want %v", name, got, base)
		}
		before := e.lastSeq()
		out, toolErr, err := mcpCall(t, cs, "grant_credits", `{"customer_id":"c1","units":1}`)
		if err == nil && toolErr == "" {
			t.Fatalf("%s key granted credits: %v", name, out)
		}
		if e.lastSeq() != before {
			t.Fatalf("%s key's grant_credits changed the log", name)
		}
	}

	// 30 remain (10 + 20 granted): 50 does not fit, min_units 25 does.
	agent := e.mcpSession(e.agent)
	out, toolErr, err = mcpCall(t, agent, "preflight", `{"agent_id":"a","estimated_units":50,"min_units":25,"scope":{"team":"research"}}`)
	if err != nil || toolErr != "" || out["partial"] != true || out["reserved_units"].(json.Number).String() != "30" {
		t.Fatalf("partial preflight over /mcp: %v %q %v", out, toolErr, err)
	}
	_, toolErr, err = mcpCall(t, agent, "preflight", `{"agent_id":"a","scope":{"agent":"x"}}`)
	if err != nil || !strings.HasPrefix(toolErr, "invalid_argument: ") {
		t.Fatalf("reserved scope dimension: %q %v", toolErr, err)
	}
}
