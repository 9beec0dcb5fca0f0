package httpapi

import (
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
)

// Each API key has its own bucket: past its burst a request is answered
// 429 rate_limited at once, with Retry-After in whole seconds rounded up,
// on every authenticated path (the REST API and /mcp) and before the
// request is authorized or read; another key is not affected.
func TestKeyRateLimitAnswers429(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "100")
	// One token a 1,000 s: none comes back while the test runs.
	slow := events.RateLimit{PerSecond: testenv.Units(t, "0.001"), Burst: 2}
	gw, err := New(Config{Conn: testenv.Connect(t, e.srv), Keys: e.store, KeyRateLimit: slow})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)
	e.http = hs

	body := map[string]any{"agent_id": "a", "estimated_units": 1}
	expect(t, e.do("POST", "/v1/preflight", e.agent, body), 200, "")
	expect(t, e.do("GET", "/v1/budget", e.agent, nil), 200, "")
	r := e.do("POST", "/v1/preflight", e.agent, body)
	expect(t, r, 429, "rate_limited")
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 999 || secs > 1000 {
		t.Errorf("Retry-After %q, want about 1000 (seconds, rounded up)", r.header.Get("Retry-After"))
	}
	// Before authorization and before the body is read.
	expect(t, e.do("PUT", "/v1/budget", e.agent, "not json"), 429, "rate_limited")
	expect(t, e.doCT("POST", "/mcp", e.agent, "application/json", `{}`), 429, "rate_limited")
	// Another key has its own bucket; no key at all is still 401.
	expect(t, e.do("POST", "/v1/preflight", e.anyAg, map[string]any{"customer_id": "c1", "agent_id": "a"}), 200, "")
	expect(t, e.do("POST", "/v1/preflight", "", body), 401, "unauthenticated")
}
