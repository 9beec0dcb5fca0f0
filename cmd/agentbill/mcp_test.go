package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpTools are the tools docs/PROTOCOL.md names ("MCP tools"), in the order
// ListTools sorts them.
var mcpTools = []string{"budget_status", "preflight", "recent_refusals", "record_usage", "release"}

// adminMCPTools are mcpTools with the admin tools, offered to admin keys
// and to `agentbill mcp --admin-tools`.
var adminMCPTools = []string{"budget_status", "grant_credits", "preflight", "recent_refusals", "record_usage", "release"}

// connectStdio starts the real `agentbill mcp` binary (with extra flags)
// and connects the Go SDK's client to it over stdio.
func connectStdio(t *testing.T, s *service, extra ...string) (*mcp.ClientSession, *testenv.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"mcp", "--nats-url", s.url, "--data", s.data}, extra...)...)
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	return connectMCP(t, &mcp.CommandTransport{Command: cmd}), stderr
}

// bearer adds an API key to every request.
type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// connectHTTP connects the Go SDK's client to the gateway's /mcp with key.
func connectHTTP(t *testing.T, base, key string) *mcp.ClientSession {
	t.Helper()
	return connectMCP(t, &mcp.StreamableClientTransport{
		Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearer{key}, Timeout: ProcessTimeout},
		MaxRetries: -1, DisableStandaloneSSE: true,
	})
}

func connectMCP(t *testing.T, tr mcp.Transport) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "agentbill-test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// toolResult is a tool call's outcome: the summary text, and the JSON
// result decoded with exact numbers (the SDK's StructuredContent is an
// `any` decoded through float64, so the test reads the JSON text).
type toolResult struct {
	isError bool
	text    string         // every text content, joined
	out     map[string]any // the last text content as JSON, numbers as json.Number
}

func callTool(t *testing.T, cs *mcp.ClientSession, name, args string) toolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: json.RawMessage(args)})
	if err != nil {
		t.Fatalf("%s %s: protocol error %v", name, args, err)
	}
	var r toolResult
	r.isError = res.IsError
	var texts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			texts = append(texts, tc.Text)
		}
	}
	r.text = strings.Join(texts, "\n")
	if len(texts) > 0 && !r.isError {
		dec := json.NewDecoder(strings.NewReader(texts[len(texts)-1]))
		dec.UseNumber()
		if err := dec.Decode(&r.out); err != nil {
			t.Fatalf("%s: result is not JSON: %v\n%s", name, err, r.text)
		}
	}
	return r
}

func mustTool(t *testing.T, cs *mcp.ClientSession, name, args string) toolResult {
	t.Helper()
	r := callTool(t, cs, name, args)
	if r.isError {
		t.Fatalf("%s %s: tool error: %s", name, args, r.text)
	}
	return r
}

// toolError calls a tool that must fail with code, its message containing want.
func toolError(t *testing.T, cs *mcp.ClientSession, name, args, code, want string) {
	t.Helper()
	r := callTool(t, cs, name, args)
	if !r.isError || !strings.HasPrefix(r.text, code+": ") || !strings.Contains(r.text, want) {
		t.Fatalf("%s %s: got isError=%v %q, want a %s tool error mentioning %q", name, args, r.isError, r.text, code, want)
	}
}

func field(t *testing.T, r toolResult, name string) string {
	t.Helper()
	v, ok := r.out[name]
	if !ok {
		t.Fatalf("no %q in %v", name, r.out)
	}
	return fmt.Sprint(v)
}

func checkToolList(t *testing.T, cs *mcp.ClientSession) {
	t.Helper()
	checkTools(t, cs, mcpTools)
}

// checkTools fails unless cs is offered exactly want (sorted), each with
// a description and an input schema.
func checkTools(t *testing.T, cs *mcp.ClientSession, want []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range lt.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || tool.InputSchema == nil {
			t.Errorf("tool %s: no description or input schema", tool.Name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}
}

// exerciseTools calls every tool on a customer whose budget is 10^14
// units: approval with an amount float64 cannot hold, record, refusal,
// release, status, refusals, and bad arguments.
func exerciseTools(t *testing.T, cs *mcp.ClientSession, cid string) {
	t.Helper()
	checkToolList(t, cs)
	c := fmt.Sprintf(`"customer_id": %q`, cid)

	pf := mustTool(t, cs, "preflight", `{`+c+`, "agent_id": "a", "estimated_units": 12345678901234.123456789, "task_ref": "t1"}`)
	if field(t, pf, "approved") != "true" || field(t, pf, "reserved_units") != "12345678901234.123456789" {
		t.Fatalf("preflight: %v", pf.out)
	}
	if !strings.Contains(pf.text, "Approved") || !strings.Contains(pf.text, field(t, pf, "reservation_id")) {
		t.Fatalf("preflight summary: %q", pf.text)
	}
	rec := mustTool(t, cs, "record_usage", fmt.Sprintf(`{%s, "agent_id": "a", "units": "10.5", "reservation_id": %q}`,
		c, field(t, pf, "reservation_id")))
	if got := field(t, rec, "status") + " " + field(t, rec, "charged_units") + " " + field(t, rec, "remaining_units"); got != "recorded 10.5 99999999999989.5" {
		t.Fatalf("record_usage: got %q (%v)", got, rec.out)
	}

	// A refusal is a normal result that says why and what remains.
	ref := mustTool(t, cs, "preflight", `{`+c+`, "agent_id": "b", "estimated_units": "100000000000000"}`)
	if field(t, ref, "approved") != "false" || field(t, ref, "reason") != "budget_exhausted" ||
		field(t, ref, "remaining_units") != "99999999999989.5" || field(t, ref, "upgrade_url") != "https://example.com/upgrade" {
		t.Fatalf("refusal: %v", ref.out)
	}
	if !strings.Contains(ref.text, "Refused (budget_exhausted)") || !strings.Contains(ref.text, "99999999999989.5 units remain") {
		t.Fatalf("refusal summary: %q", ref.text)
	}

	pf2 := mustTool(t, cs, "preflight", `{`+c+`, "agent_id": "a", "estimated_units": 5}`)
	rel := mustTool(t, cs, "release", fmt.Sprintf(`{%s, "reservation_id": %q}`, c, field(t, pf2, "reservation_id")))
	if field(t, rel, "status") != "released" || field(t, rel, "released_units") != "5" {
		t.Fatalf("release: %v", rel.out)
	}

	st := mustTool(t, cs, "budget_status", `{`+c+`}`)
	if field(t, st, "used") != "10.5" || field(t, st, "reserved") != "0" || field(t, st, "remaining") != "99999999999989.5" {
		t.Fatalf("budget_status: %v", st.out)
	}

	rr := mustTool(t, cs, "recent_refusals", `{`+c+`}`)
	list, _ := rr.out["refusals"].([]any)
	if len(list) != 1 {
		t.Fatalf("recent_refusals: %v", rr.out)
	}
	first, _ := list[0].(map[string]any)
	if first["agent_id"] != "b" || first["reason"] != "budget_exhausted" || fmt.Sprint(first["requested_units"]) != "100000000000000" {
		t.Fatalf("recent_refusals[0]: %v", first)
	}

	// Bad arguments are tool errors that say what is wrong.
	toolError(t, cs, "preflight", `{`+c+`, "agent_id": "a", "estimated_units": "lots"}`, "invalid_argument", "estimated_units")
	toolError(t, cs, "preflight", `{`+c+`, "agent_id": "a", "estimated_units": -1}`, "invalid_argument", "estimated_units")
	toolError(t, cs, "preflight", `{`+c+`, "estimated_units": 1}`, "invalid_argument", "agent_id")
	toolError(t, cs, "preflight", `{`+c+`, "agent_id": "a", "units_estimate": 1}`, "invalid_argument", "units_estimate")
	toolError(t, cs, "record_usage", `{`+c+`, "agent_id": "a", "units": 1, "reservation_id": "no-such"}`, "not_found", "no-such")
	toolError(t, cs, "release", `{`+c+`}`, "invalid_argument", "reservation_id")
	toolError(t, cs, "recent_refusals", `{`+c+`, "limit": 0}`, "invalid_argument", "limit")
}

func TestMCPOverStdio(t *testing.T) {
	s := serve(t, t.TempDir(), testenv.FreePort(t))
	s.must(t, 0, "budget", "set", "--customer", "mcp_c1", "--limit", "100000000000000", "--period", "month",
		"--upgrade-url", "https://example.com/upgrade")
	cs, stderr := connectStdio(t, s)
	exerciseTools(t, cs, "mcp_c1")
	toolError(t, cs, "budget_status", `{}`, "invalid_argument", "customer_id is required")

	// Over stdio every customer's refusals may be read.
	s.must(t, 0, "budget", "set", "--customer", "mcp_c2", "--limit", "1", "--period", "month")
	s.must(t, 3, "preflight", "--customer", "mcp_c2", "--agent", "z", "--units", "2")
	all := mustTool(t, cs, "recent_refusals", `{"limit": 5}`)
	list, _ := all.out["refusals"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["customer_id"] != "mcp_c2" {
		t.Fatalf("recent_refusals of all, newest first: %v\n%s", all.out, stderr)
	}

	// Without --admin-tools no grant_credits; with it, as the local admin, a grant.
	toolErrorOrAbsent(t, cs, "grant_credits", `{"customer_id": "mcp_c1", "units": 1}`)
	admin, _ := connectStdio(t, s, "--admin-tools")
	checkTools(t, admin, adminMCPTools)
	g := mustTool(t, admin, "grant_credits", `{"customer_id": "mcp_c1", "units": "2.5", "source": "promo"}`)
	if field(t, g, "source") != "promo" || field(t, g, "units") != "2.5" || !strings.Contains(g.text, "Granted 2.5 units") {
		t.Fatalf("grant_credits over stdio: %v %q", g.out, g.text)
	}
}

// toolErrorOrAbsent fails if the tool call succeeds: it must be an
// unknown tool (a protocol error) or a tool error.
func toolErrorOrAbsent(t *testing.T, cs *mcp.ClientSession, name, args string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: json.RawMessage(args)})
	if err == nil && !res.IsError {
		t.Fatalf("%s %s succeeded, want it absent or refused", name, args)
	}
}

// createKey creates an API key and returns the secret.
func createKey(t *testing.T, s *service, args ...string) string {
	t.Helper()
	var k struct{ Key string }
	out := s.must(t, 0, append([]string{"keys", "create", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.Key == "" {
		t.Fatalf("keys create: %s (%v)", out, err)
	}
	return k.Key
}

func TestMCPOverHTTPWithKey(t *testing.T) {
	httpPort := testenv.FreePort(t)
	s := serve(t, t.TempDir(), testenv.FreePort(t), "--http", fmt.Sprintf("127.0.0.1:%d", httpPort))
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	waitHTTP(t, s, base)
	s.must(t, 0, "budget", "set", "--customer", "mcp_h1", "--limit", "100000000000000", "--period", "month",
		"--upgrade-url", "https://example.com/upgrade")
	s.must(t, 0, "budget", "set", "--customer", "mcp_h2", "--limit", "1", "--period", "month")
	s.must(t, 3, "preflight", "--customer", "mcp_h2", "--agent", "z", "--units", "2")

	// No key, or a bad one: the gateway answers 401 before MCP.
	initReq := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`
	for _, key := range []string{"", "agb_not_a_key"} {
		if st := httpStatus(t, "POST", base+"/mcp", key, initReq); st != 401 {
			t.Fatalf("/mcp with key %q: %d, want 401", key, st)
		}
	}

	// An agent key bound to mcp_h1 can use every tool on it, and only it.
	bound := connectHTTP(t, base, createKey(t, s, "--role", "agent", "--customer", "mcp_h1"))
	exerciseTools(t, bound, "mcp_h1")
	st := mustTool(t, bound, "budget_status", `{}`) // customer_id defaults to the key's
	if field(t, st, "customer_id") != "mcp_h1" {
		t.Fatalf("budget_status with a bound key: %v", st.out)
	}
	toolError(t, bound, "preflight", `{"customer_id": "mcp_h2", "agent_id": "a", "estimated_units": 1}`, "permission_denied", "mcp_h1")
	toolError(t, bound, "recent_refusals", `{"customer_id": "mcp_h2"}`, "permission_denied", "mcp_h2")
	own := mustTool(t, bound, "recent_refusals", `{}`)
	if own.out["customer_id"] != "mcp_h1" {
		t.Fatalf("recent_refusals with a bound key reads its customer: %v", own.out)
	}

	// An unbound agent key reads one customer's refusals, not everyone's.
	agent := connectHTTP(t, base, createKey(t, s, "--role", "agent"))
	mustTool(t, agent, "recent_refusals", `{"customer_id": "mcp_h2"}`)
	toolError(t, agent, "recent_refusals", `{}`, "permission_denied", "read the event log")

	// Only an admin key is offered grant_credits.
	toolErrorOrAbsent(t, bound, "grant_credits", `{"units": 1}`)
	checkTools(t, connectHTTP(t, base, createKey(t, s, "--role", "admin")), adminMCPTools)

	// An auditor reads everything and spends nothing.
	auditor := connectHTTP(t, base, createKey(t, s, "--role", "auditor"))
	toolError(t, auditor, "preflight", `{"customer_id": "mcp_h1", "agent_id": "a", "estimated_units": 1}`, "permission_denied", "auditor")
	all := mustTool(t, auditor, "recent_refusals", `{}`)
	list, _ := all.out["refusals"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["customer_id"] != "mcp_h1" || list[1].(map[string]any)["customer_id"] != "mcp_h2" {
		t.Fatalf("auditor's recent_refusals, newest first: %v", all.out)
	}
}

// TestMCPWithRepoNATSConfUsers runs `agentbill mcp` with the repo
// nats.conf's users: agent serves the spending tools, admin reads the log.
func TestMCPWithRepoNATSConfUsers(t *testing.T) {
	s := serveSecured(t)
	s.must(t, 0, "admin", "budget", "set", "--customer", "user_123", "--limit", "100", "--period", "month")
	s.must(t, 3, "agent", "preflight", "--customer", "user_123", "--agent", "z", "--units", "1000")
	connect := func(user string) *mcp.ClientSession {
		cmd := exec.Command(binary, "mcp", "--nats-url", s.url)
		cmd.Env = append(os.Environ(), s.credsEnv(user)...)
		return connectMCP(t, &mcp.CommandTransport{Command: cmd})
	}

	agent := connect("agent")
	pf := mustTool(t, agent, "preflight", `{"customer_id": "user_123", "agent_id": "a", "estimated_units": 10}`)
	if field(t, pf, "approved") != "true" {
		t.Fatalf("preflight as agent: %v", pf.out)
	}
	mustTool(t, agent, "release", fmt.Sprintf(`{"customer_id": "user_123", "reservation_id": %q}`, field(t, pf, "reservation_id")))
	if st := mustTool(t, agent, "budget_status", `{"customer_id": "user_123"}`); field(t, st, "remaining") != "100" {
		t.Fatalf("budget_status as agent: %v", st.out)
	}

	// The agent user may not read the stream: a clear error, not a hang.
	start := time.Now()
	toolError(t, agent, "recent_refusals", `{"customer_id": "user_123"}`, "unavailable", "may not read the stream")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("recent_refusals as agent took %s", d)
	}

	rr := mustTool(t, connect("admin"), "recent_refusals", `{"customer_id": "user_123"}`)
	if list, _ := rr.out["refusals"].([]any); len(list) != 1 || list[0].(map[string]any)["agent_id"] != "z" {
		t.Fatalf("recent_refusals as admin: %v", rr.out)
	}
}

// TestMCPRejectsABadFailPolicy: --on-unavailable takes deny or allow only,
// checked before connecting to anything.
func TestMCPRejectsABadFailPolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), ProcessTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "mcp", "--on-unavailable", "maybe").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit %v, want the usage exit code 2:\n%s", err, out)
	}
	if !strings.Contains(string(out), `--on-unavailable must be deny or allow, got "maybe"`) {
		t.Errorf("output %q does not name the problem", out)
	}
}
