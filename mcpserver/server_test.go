package mcpserver_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// testTimeout bounds every call of these tests.
const testTimeout = 20 * time.Second

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// session connects an MCP client, in memory, to a server on a real NATS
// server and writer (no default budget), as `agentbill mcp` does over
// stdio, and returns it with a Go client on the same NATS.
func session(t *testing.T, adminTools bool) (*mcp.ClientSession, *client.Client) {
	t.Helper()
	srv := testenv.StartServer(t, "")
	testenv.StartWriter(t, srv, testenv.NewClock(t0), nil)
	return connect(t, mcpserver.Config{Conn: testenv.Connect(t, srv), AdminTools: adminTools}), testenv.Client(t, srv)
}

// connect starts a server with cfg and connects an MCP client to it in
// memory.
func connect(t *testing.T, cfg mcpserver.Config) *mcp.ClientSession {
	t.Helper()
	s, err := mcpserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := s.MCP().Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
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

// call calls a tool and returns its JSON result (numbers as json.Number)
// and its text; isError results fail the test unless wantErr.
func call(t *testing.T, cs *mcp.ClientSession, name, args string, wantErr bool) (map[string]any, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: json.RawMessage(args)})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var texts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			texts = append(texts, tc.Text)
		}
	}
	text := strings.Join(texts, "\n")
	if res.IsError != wantErr {
		t.Fatalf("%s %s: isError %v, want %v: %s", name, args, res.IsError, wantErr, text)
	}
	if wantErr {
		return nil, text
	}
	dec := json.NewDecoder(strings.NewReader(texts[len(texts)-1]))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("%s: result is not JSON: %v", name, err)
	}
	return out, text
}

// TestStdioOffersAdminToolsOnlyWhenAsked: without AdminTools a client
// without a key is not offered grant_credits, and cannot call it.
func TestStdioOffersAdminToolsOnlyWhenAsked(t *testing.T) {
	base := []string{"budget_status", "preflight", "recent_refusals", "record_usage", "release"}
	cs, _ := session(t, false)
	if got := toolNames(t, cs); !slices.Equal(got, base) {
		t.Fatalf("tools %v, want %v", got, base)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "grant_credits", Arguments: json.RawMessage(`{"customer_id":"c1","units":1}`)}); err == nil {
		t.Fatal("grant_credits was callable on a server that does not offer it")
	}
	admin, _ := session(t, true)
	want := []string{"budget_status", "grant_credits", "preflight", "recent_refusals", "record_usage", "release"}
	if got := toolNames(t, admin); !slices.Equal(got, want) {
		t.Fatalf("with AdminTools: tools %v, want %v", got, want)
	}
}

// TestGrantAndPartialPreflight: grant_credits grants (with its summary),
// a preflight with scope and min_units is approved partly, and record
// says which grant paid.
func TestGrantAndPartialPreflight(t *testing.T) {
	cs, c := session(t, true)
	// MCP has no budget tool: an admin sets it with the Go client.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := c.SetBudget(ctx, "c1", ledger.BudgetRequest{
		Limit: testenv.Ptr(t, "10"), Period: "month",
		ScopeLimits: []ledger.ScopeLimitRequest{{Dimension: "team", Value: "research", Limit: testenv.Ptr(t, "15")}},
	}); err != nil {
		t.Fatal(err)
	}

	exp := t0.Add(48 * time.Hour).Format(time.RFC3339)
	g, text := call(t, cs, "grant_credits", `{"customer_id":"c1","units":"40","expires_at":"`+exp+`","source":"promo"}`, false)
	if g["source"] != "promo" || g["expires_at"] != exp || g["remaining_units"].(json.Number).String() != "50" {
		t.Fatalf("grant_credits: %v", g)
	}
	if !strings.Contains(text, "Granted 40 units") || !strings.Contains(text, "expires "+exp) {
		t.Fatalf("grant summary: %q", text)
	}
	_, text = call(t, cs, "grant_credits", `{"customer_id":"c1","units":-1}`, true)
	if !strings.HasPrefix(text, "invalid_argument: ") || !strings.Contains(text, "units") {
		t.Fatalf("negative grant: %q", text)
	}
	_, text = call(t, cs, "grant_credits", `{"customer_id":"c1","units":1,"expires_at":"soon"}`, true)
	if !strings.Contains(text, "RFC 3339") {
		t.Fatalf("bad expires_at: %q", text)
	}

	pf, text := call(t, cs, "preflight", `{"customer_id":"c1","agent_id":"a","estimated_units":30,"min_units":"5","scope":{"team":"research"}}`, false)
	if pf["approved"] != true || pf["partial"] != true || pf["reserved_units"].(json.Number).String() != "15" {
		t.Fatalf("partial preflight: %v", pf)
	}
	if !strings.Contains(text, "Partly approved") || !strings.Contains(text, "Only 15 units") {
		t.Fatalf("partial summary: %q", text)
	}
	ref, _ := call(t, cs, "preflight", `{"customer_id":"c1","agent_id":"b","estimated_units":1,"scope":{"team":"research"}}`, false)
	if ref["approved"] != false || ref["reason"] != "scope_limit_exceeded" {
		t.Fatalf("scope refusal: %v", ref)
	}
	rec, text := call(t, cs, "record_usage", `{"customer_id":"c1","agent_id":"z","units":12,"scope":{"team":"other"}}`, false)
	funded, _ := rec["funded_by"].([]any)
	if len(funded) != 1 || funded[0].(map[string]any)["units"].(json.Number).String() != "2" || !strings.Contains(text, "Paid from credit grants: 2 units from "+g["grant_id"].(string)) {
		t.Fatalf("record paid from a grant: %v %q", rec, text)
	}
}

// TestPricedUsageTools: preflight takes a usage_estimate and says how many
// output tokens the hold covers; record_usage takes usage and is charged
// its price, with the breakdown in its summary; usage the list cannot
// price is charged the hold and said so.
func TestPricedUsageTools(t *testing.T) {
	cs, c := session(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := c.SetPrices(ctx, []byte(`{"list":"default","version":"v1","models":[{"id":"m","rates":{"input":"3","output":"15"}}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetBudget(ctx, "c1", ledger.BudgetRequest{Limit: testenv.Ptr(t, "0.0066"), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	// 0.0066 held: the prompt (1,200 x 3/M = 0.0036) leaves 0.003, 200 output tokens.
	pf, text := call(t, cs, "preflight", `{"customer_id":"c1","agent_id":"a","usage_estimate":{"model":"m","input_tokens":1200,"max_output_tokens":400},"min_units":"0.001"}`, false)
	if pf["approved"] != true || pf["max_output_tokens"].(json.Number).String() != "200" || !strings.Contains(text, "up to 200 output tokens") {
		t.Fatalf("priced preflight: %v %q", pf, text)
	}
	rec, text := call(t, cs, "record_usage", `{"customer_id":"c1","agent_id":"a","reservation_id":"`+pf["reservation_id"].(string)+`","usage":{"model":"m","input_tokens":1200,"output_tokens":100}}`, false)
	if rec["charged_units"].(json.Number).String() != "0.0051" || !strings.Contains(text, "Priced: 1,200 input x 3/M + 100 output x 15/M = 0.0051") {
		t.Fatalf("priced record: %v %q", rec, text)
	}
	pf, _ = call(t, cs, "preflight", `{"customer_id":"c1","agent_id":"a","estimated_units":"0.001"}`, false)
	rec, text = call(t, cs, "record_usage", `{"customer_id":"c1","agent_id":"a","usage":{"model":"unknown","input_tokens":1,"output_tokens":1}}`, false)
	if rec["charged_units"].(json.Number).String() != "0.001" || !strings.Contains(text, "could not be priced") {
		t.Fatalf("unpriced record: %v %q", rec, text)
	}
	_, text = call(t, cs, "preflight", `{"customer_id":"c1","agent_id":"a","usage_estimate":{"model":"unknown","input_tokens":1,"max_output_tokens":1}}`, true)
	if !strings.Contains(text, `"unknown"`) || !strings.Contains(text, `"default"`) {
		t.Fatalf("unknown model: %q", text)
	}
}
