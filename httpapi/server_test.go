package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbill/agentbill/audit"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// testTimeout bounds every HTTP call and setup step of these tests.
const testTimeout = 20 * time.Second

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

type env struct {
	t      *testing.T
	gw     *Server
	srv    *testenv.Server
	writer *testenv.Writer
	store  *keys.Store
	http   *httptest.Server
	admin  string // admin, any customer
	agent  string // agent bound to customer c1
	anyAg  string // agent, any customer
	audit  string // auditor, any customer
}

// newEnv starts NATS, a writer (with the given default budget, nil for
// none), the key store and the gateway on a test HTTP server.
func newEnv(t *testing.T, def *ledger.DefaultBudget) *env {
	t.Helper()
	srv := testenv.StartServer(t, "")
	clock := testenv.NewClock(t0)
	w := testenv.StartWriter(t, srv, clock, def)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	store, err := keys.Open(ctx, testenv.Connect(t, srv), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(Config{Conn: testenv.Connect(t, srv), Keys: store})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)
	e := &env{t: t, gw: gw, srv: srv, writer: w, store: store, http: hs}
	e.admin = e.key(keys.RoleAdmin, "")
	e.agent = e.key(keys.RoleAgent, "c1")
	e.anyAg = e.key(keys.RoleAgent, "")
	e.audit = e.key(keys.RoleAuditor, "")
	return e
}

func (e *env) key(role keys.Role, customer string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	secret, _, err := e.store.Create(ctx, role, customer, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// response is a decoded reply.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) code() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

// do sends a request with a JSON body (a string, sent as is, or a value to
// encode; nil for none) and the key as a bearer token ("" for none).
func (e *env) do(method, path, key string, body any) response {
	e.t.Helper()
	return e.doCT(method, path, key, "application/json", body)
}

func (e *env) doCT(method, path, key, contentType string, body any) response {
	e.t.Helper()
	return e.doCTHeaders(method, path, key, contentType, nil, body)
}

// doCTHeaders is doCT with more request headers.
func (e *env) doCTHeaders(method, path, key, contentType string, headers map[string]string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil && contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out.body); err != nil {
		e.t.Fatalf("%s %s: reply is not JSON: %q", method, path, raw)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	return out
}

// expect fails unless the reply has the status and (for errors) the code.
func expect(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Fatalf("got %d %q (%s), want %d %q", r.status, r.code(), r.raw, status, code)
	}
}

func (e *env) lastSeq() uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	seq, err := projections.LastSequence(ctx, testenv.JetStream(e.t, testenv.Connect(e.t, e.srv)))
	if err != nil {
		e.t.Fatal(err)
	}
	return seq
}

func (e *env) setBudget(customer, limit string) {
	e.t.Helper()
	r := e.do("PUT", "/v1/budget", e.admin, map[string]any{"customer_id": customer, "limit_units": limit, "period": "month"})
	expect(e.t, r, 200, "")
}

func num(t *testing.T, r response, field string) string {
	t.Helper()
	v, ok := r.body[field].(json.Number)
	if !ok {
		t.Fatalf("field %s is %T in %s, want a JSON number", field, r.body[field], r.raw)
	}
	return v.String()
}

func TestStatusTable(t *testing.T) {
	want := map[ledger.Code]int{
		ledger.CodeInvalidArgument: 400, ledger.CodeUnauthenticated: 401, ledger.CodePermissionDenied: 403,
		ledger.CodeNotFound: 404, ledger.CodeConflict: 409, ledger.CodeUnavailable: 503, ledger.CodeInternal: 500,
		ledger.CodeRateLimited:       429,
		ledger.Code("something_new"): 500,
	}
	for code, status := range want {
		if got := Status(code); got != status {
			t.Errorf("Status(%s) = %d, want %d", code, got, status)
		}
		rec := httptest.NewRecorder()
		writeError(rec, ledger.Errorf(code, "m"))
		var body ledger.ErrorReply
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != code || body.Error.Message != "m" {
			t.Errorf("body %q for %s", rec.Body.String(), code)
		}
		if rec.Code != status {
			t.Errorf("%s written with %d, want %d", code, rec.Code, status)
		}
	}
	// Errors without a code of their own.
	classified := []struct {
		err  error
		code ledger.Code
	}{
		{errors.New("boom"), ledger.CodeInternal},
		{context.DeadlineExceeded, ledger.CodeUnavailable},
		{fmt.Errorf("wrapped: %w", keys.ErrUnauthenticated), ledger.CodeUnauthenticated},
		{fmt.Errorf("wrapped: %w", keys.ErrPermissionDenied), ledger.CodePermissionDenied},
		{fmt.Errorf("wrapped: %w", keys.ErrUnavailable), ledger.CodeUnavailable},
		{errors.Join(context.Canceled, ledger.Errorf(ledger.CodeUnavailable, "x")), ledger.CodeUnavailable},
	}
	for _, c := range classified {
		if got := toError(c.err).Code; got != c.code {
			t.Errorf("toError(%v) = %s, want %s", c.err, got, c.code)
		}
	}
	if m := toError(errors.New("secret detail")).Message; strings.Contains(m, "secret") {
		t.Errorf("internal message leaks the cause: %q", m)
	}
}

// TestEveryCodeEndToEnd produces each code through real requests.
func TestEveryCodeEndToEnd(t *testing.T) {
	e := newEnv(t, nil) // no default budget: unknown customers are not_found
	e.setBudget("c1", "100")

	r := e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "a", "estimated_units": "-1"})
	expect(t, r, 400, "invalid_argument")

	r = e.do("POST", "/v1/preflight", "", map[string]any{"agent_id": "a"})
	expect(t, r, 401, "unauthenticated")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}

	r = e.do("PUT", "/v1/budget", e.agent, map[string]any{"customer_id": "c1", "limit_units": 5, "period": "day"})
	expect(t, r, 403, "permission_denied")

	r = e.do("GET", "/v1/customers/nobody", e.admin, nil)
	expect(t, r, 404, "not_found")

	body := map[string]any{"agent_id": "a", "estimated_units": 1, "idempotency_key": "k-1"}
	expect(t, e.do("POST", "/v1/preflight", e.agent, body), 200, "")
	body["estimated_units"] = 2
	expect(t, e.do("POST", "/v1/preflight", e.agent, body), 409, "conflict")

	e.writer.Stop(t)
	r = e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "a"})
	expect(t, r, 503, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

func TestPreflightRecordRelease(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "100")

	r := e.do("POST", "/v1/preflight", e.agent, map[string]any{"customer_id": "c1", "agent_id": "research", "estimated_units": 10})
	expect(t, r, 200, "")
	if r.body["approved"] != true || num(t, r, "remaining_units") != "90" {
		t.Fatalf("preflight: %s", r.raw)
	}
	res := r.body["reservation_id"].(string)

	// Record with the AgentBill REST names: event_type is the agent.
	r = e.do("POST", "/v1/events", e.agent, map[string]any{
		"customer_id": "c1", "event_type": "research", "units": "7.25", "reservation_id": res,
	})
	expect(t, r, 200, "")
	if r.body["status"] != "recorded" || num(t, r, "charged_units") != "7.25" || num(t, r, "released_units") != "2.75" {
		t.Fatalf("record: %s", r.raw)
	}

	// A refusal is a 200 with approved false, a reason and a message.
	r = e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "research", "estimated_units": 1000})
	expect(t, r, 200, "")
	if r.body["approved"] != false || r.body["reason"] != "budget_exhausted" || !strings.Contains(r.body["message"].(string), "92.75") {
		t.Fatalf("refusal: %s", r.raw)
	}

	// Release gives a hold back.
	r = e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "research", "estimated_units": 5})
	res = r.body["reservation_id"].(string)
	r = e.do("POST", "/v1/release", e.agent, map[string]any{"reservation_id": res, "idempotency_key": "rel-1"})
	expect(t, r, 200, "")
	if r.body["status"] != "released" || num(t, r, "released_units") != "5" {
		t.Fatalf("release: %s", r.raw)
	}
	// The same key again: the first reply, marked duplicate.
	r = e.do("POST", "/v1/release", e.agent, map[string]any{"reservation_id": res, "idempotency_key": "rel-1"})
	if r.status != 200 || r.body["status"] != "duplicate" {
		t.Fatalf("release retry: %s", r.raw)
	}

	r = e.do("GET", "/v1/budget?customer_id=c1", e.agent, nil)
	expect(t, r, 200, "")
	want := map[string]string{"limit_units": "100", "used_units": "7.25", "reserved_units": "0", "remaining_units": "92.75"}
	for f, v := range want {
		if got := num(t, r, f); got != v {
			t.Errorf("budget %s = %s, want %s", f, got, v)
		}
	}
	if r.body["is_blocked"] != false || r.body["customer_id"] != "c1" {
		t.Fatalf("budget: %s", r.raw)
	}

	r = e.do("GET", "/v1/customers/c1", e.agent, nil)
	expect(t, r, 200, "")
	if num(t, r, "used") != "7.25" || r.body["period"] != "month" {
		t.Fatalf("status: %s", r.raw)
	}
}

func TestDefaults(t *testing.T) {
	e := newEnv(t, &ledger.DefaultBudget{Limit: events.NewUnits(50, 0), Period: ledger.PeriodMonth})
	// An unbound key naming no customer acts on "default"; no estimate is 1.
	r := e.do("POST", "/v1/preflight", e.anyAg, map[string]any{"agent_id": "a"})
	expect(t, r, 200, "")
	if r.body["approved"] != true || num(t, r, "reserved_units") != "1" || num(t, r, "remaining_units") != "49" {
		t.Fatalf("default preflight: %s", r.raw)
	}
	r = e.do("GET", "/v1/budget", e.anyAg, nil)
	if r.body["customer_id"] != DefaultCustomer || num(t, r, "reserved_units") != "1" {
		t.Fatalf("default budget: %s", r.raw)
	}
	// A key bound to a customer acts on that customer by default.
	r = e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "a", "estimated_units": 2})
	expect(t, r, 200, "")
	r = e.do("GET", "/v1/budget", e.agent, nil)
	if r.body["customer_id"] != "c1" || num(t, r, "reserved_units") != "2" {
		t.Fatalf("bound key's budget: %s", r.raw)
	}
	// A failed run needs no units: it releases.
	r = e.do("POST", "/v1/events", e.agent, map[string]any{"event_type": "a", "success": false})
	expect(t, r, 200, "")
	if r.body["status"] != "released" {
		t.Fatalf("failed run: %s", r.raw)
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t, &ledger.DefaultBudget{Limit: events.NewUnits(50, 0), Period: ledger.PeriodMonth})
	pf := map[string]any{"customer_id": "c2", "agent_id": "a"}
	cases := []struct {
		name, method, path, key string
		body                    any
		status                  int
	}{
		{"bound agent, other customer, preflight", "POST", "/v1/preflight", e.agent, pf, 403},
		{"bound agent, other customer, record", "POST", "/v1/events", e.agent, map[string]any{"customer_id": "c2", "event_type": "a", "units": 1}, 403},
		{"bound agent, other customer, budget", "GET", "/v1/budget?customer_id=c2", e.agent, nil, 403},
		{"bound agent, other customer, status", "GET", "/v1/customers/c2", e.agent, nil, 403},
		{"agent sets a budget", "PUT", "/v1/budget", e.anyAg, map[string]any{"customer_id": "c2", "limit_units": 1, "period": "day"}, 403},
		{"agent tops up", "POST", "/v1/topup", e.anyAg, map[string]any{"customer_id": "c2", "units": 1}, 403},
		{"agent reads the log", "GET", "/v1/customers/c1/events", e.agent, nil, 403},
		{"auditor preflights", "POST", "/v1/preflight", e.audit, pf, 403},
		{"auditor records", "POST", "/v1/events", e.audit, map[string]any{"customer_id": "c2", "event_type": "a", "units": 1}, 403},
		{"auditor sets a budget", "PUT", "/v1/budget", e.audit, map[string]any{"customer_id": "c2", "limit_units": 1, "period": "day"}, 403},
		{"auditor reads a budget", "GET", "/v1/budget?customer_id=c2", e.audit, nil, 200},
		{"auditor reads the log", "GET", "/v1/customers/c2/events", e.audit, nil, 200},
		{"unbound agent, any customer", "POST", "/v1/preflight", e.anyAg, pf, 200},
		{"admin tops up", "POST", "/v1/topup", e.admin, map[string]any{"customer_id": "c2", "units": "2.5"}, 200},
		{"no key", "GET", "/v1/budget", "", nil, 401},
		{"malformed key", "GET", "/v1/budget", "agb_short", nil, 401},
		{"unknown key", "GET", "/v1/budget", "agb_" + strings.Repeat("A", 43), nil, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.lastSeq()
			r := e.do(c.method, c.path, c.key, c.body)
			if r.status != c.status {
				t.Fatalf("got %d (%s), want %d", r.status, r.raw, c.status)
			}
			if c.status != 200 && e.lastSeq() != before {
				t.Fatal("a refused request changed the log")
			}
		})
	}
	// Not "Bearer".
	req, _ := http.NewRequest("GET", e.http.URL+"/v1/budget", nil)
	req.Header.Set("Authorization", "Basic "+e.admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("Basic auth: %d, want 401", res.StatusCode)
	}
}

func TestRevokedKeyFailsAtOnce(t *testing.T) {
	e := newEnv(t, &ledger.DefaultBudget{Limit: events.NewUnits(50, 0), Period: ledger.PeriodMonth})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	secret, k, err := e.store.Create(ctx, keys.RoleAgent, "", "")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, e.do("GET", "/v1/budget", secret, nil), 200, "")
	if _, err := e.store.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/v1/budget", secret, nil)
	expect(t, r, 401, "unauthenticated")
	if !strings.Contains(r.raw, "revoked") {
		t.Fatalf("revoked key: %s", r.raw)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, &ledger.DefaultBudget{Limit: events.NewUnits(50, 0), Period: ledger.PeriodMonth})
	e.setBudget("c1", "100")
	huge := `{"agent_id":"a","metadata":{"pad":"` + strings.Repeat("x", BodyBytesMax) + `"}}`
	cases := []struct {
		name, method, path, ct, body, want string
	}{
		{"body over the limit", "POST", "/v1/preflight", "application/json", huge, "larger than"},
		{"malformed JSON", "POST", "/v1/preflight", "application/json", `{"agent_id":`, "malformed JSON"},
		{"not an object", "POST", "/v1/preflight", "application/json", `[1,2]`, "JSON object"},
		{"trailing data", "POST", "/v1/preflight", "application/json", `{"agent_id":"a"} {}`, "data after the JSON value"},
		{"unbalanced", "POST", "/v1/preflight", "application/json", `{"agent_id":"a"}}`, "malformed JSON: unbalanced"},
		{"unknown field", "POST", "/v1/preflight", "application/json", `{"agent_id":"a","estimated_unit":5}`, "estimated_unit"},
		{"wrong type", "POST", "/v1/preflight", "application/json", `{"agent_id":7}`, "agent_id"},
		{"empty body", "POST", "/v1/preflight", "application/json", ``, "empty"},
		{"text/plain", "POST", "/v1/preflight", "text/plain", `{"agent_id":"a"}`, "Content-Type"},
		{"form", "PUT", "/v1/budget", "application/x-www-form-urlencoded", `limit_units=5`, "Content-Type"},
		{"no content type", "POST", "/v1/events", "", `{"event_type":"a","units":1}`, "Content-Type"},
		{"negative amount", "POST", "/v1/preflight", "application/json", `{"agent_id":"a","estimated_units":-5}`, "negative"},
		{"negative string", "POST", "/v1/events", "application/json", `{"event_type":"a","units":"-0.5"}`, "negative"},
		{"amount too big", "POST", "/v1/preflight", "application/json", `{"agent_id":"a","estimated_units":1e16}`, "maximum"},
		{"too many decimals", "POST", "/v1/events", "application/json", `{"event_type":"a","units":"0.0000000000000000001"}`, "fractional"},
		{"NaN", "POST", "/v1/preflight", "application/json", `{"agent_id":"a","estimated_units":"NaN"}`, "not a decimal"},
		{"zero estimate", "POST", "/v1/preflight", "application/json", `{"agent_id":"a","estimated_units":0}`, "greater than 0"},
		{"no agent", "POST", "/v1/preflight", "application/json", `{"estimated_units":1}`, "agent_id"},
		{"no units", "POST", "/v1/events", "application/json", `{"event_type":"a"}`, "units"},
		{"no event_type", "POST", "/v1/events", "application/json", `{"units":1}`, "event_type"},
		{"agent names disagree", "POST", "/v1/events", "application/json", `{"event_type":"a","agent_id":"b","units":1}`, "disagree"},
		{"bad period", "PUT", "/v1/budget", "application/json", `{"limit_units":1,"period":"year"}`, "period"},
		{"no limit", "PUT", "/v1/budget", "application/json", `{"period":"day"}`, "limit_units"},
		{"bad customer", "POST", "/v1/preflight", "application/json", `{"agent_id":"a","customer_id":"x\u0000y"}`, "control"},
		{"bad ttl", "POST", "/v1/preflight", "application/json", `{"agent_id":"a","ttl":"forever"}`, "ttl"},
		{"bad limit param", "GET", "/v1/customers/c1/events?limit=0", "", ``, "limit"},
		{"method", "DELETE", "/v1/budget", "", ``, "not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.lastSeq()
			var body any
			if c.ct != "" || c.body != "" {
				body = c.body
			}
			r := e.doCT(c.method, c.path, e.admin, c.ct, body)
			expect(t, r, 400, "invalid_argument")
			msg, _ := r.body["error"].(map[string]any)["message"].(string)
			if !strings.Contains(msg, c.want) {
				t.Fatalf("message %q does not mention %q", msg, c.want)
			}
			if strings.Count(msg, "malformed JSON") > 1 {
				t.Fatalf("message %q says malformed JSON twice", msg)
			}
			if e.lastSeq() != before {
				t.Fatal("bad input changed the log")
			}
		})
	}
	r := e.do("DELETE", "/v1/budget", e.admin, nil)
	if r.header.Get("Allow") != "GET, PUT" {
		t.Fatalf("Allow %q", r.header.Get("Allow"))
	}
	expect(t, e.do("GET", "/v2/anything", e.admin, nil), 404, "not_found")
	// The service still works.
	expect(t, e.do("POST", "/v1/preflight", e.admin, map[string]any{"customer_id": "c1", "agent_id": "a"}), 200, "")
}

func TestExactAmounts(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "1000000000000000") // 10^15, beyond float64's exact integers with fractions
	tiny := "0.000000000000000001"
	r := e.do("POST", "/v1/events", e.agent, `{"event_type":"a","units":`+tiny+`}`)
	expect(t, r, 200, "")
	if num(t, r, "charged_units") != tiny || num(t, r, "remaining_units") != "999999999999999.999999999999999999" {
		t.Fatalf("exact record: %s", r.raw)
	}
}

func TestCustomerEvents(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "100")
	e.setBudget("c2", "100")
	for i := range 5 {
		for _, c := range []string{"c1", "c2"} {
			r := e.do("POST", "/v1/preflight", e.admin, map[string]any{"customer_id": c, "agent_id": fmt.Sprintf("a%d", i)})
			expect(t, r, 200, "")
		}
	}
	r := e.do("GET", "/v1/customers/c1/events?limit=3", e.audit, nil)
	expect(t, r, 200, "")
	evs := r.body["events"].([]any)
	if len(evs) != 3 || r.body["truncated"] != false {
		t.Fatalf("events: %s", r.raw)
	}
	for i, ev := range evs {
		m := ev.(map[string]any)
		agent := m["data"].(map[string]any)["agent_id"]
		if m["customer_id"] != "c1" || m["type"] != "reserved" || agent != fmt.Sprintf("a%d", i+2) {
			t.Fatalf("event %d: %v (want the newest three of c1, oldest first)", i, m)
		}
	}
	r = e.do("GET", "/v1/customers/c1/events", e.admin, nil)
	if evs := r.body["events"].([]any); len(evs) != 6 { // budget_set and 5 reserved
		t.Fatalf("all events of c1: %d, want 6: %s", len(evs), r.raw)
	}
	// An ID with characters outside a plain token, escaped in the path.
	id := "org/7 team"
	e.setBudget(id, "10")
	r = e.do("GET", "/v1/customers/org%2F7%20team/events", e.audit, nil)
	if evs := r.body["events"].([]any); len(evs) != 1 || r.body["customer_id"] != id {
		t.Fatalf("escaped ID: %s", r.raw)
	}
	r = e.do("GET", "/v1/customers/nobody/events", e.audit, nil)
	if evs := r.body["events"].([]any); len(evs) != 0 {
		t.Fatalf("unknown customer: %s", r.raw)
	}
}

func TestEventScanIsBounded(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "100000")
	// Fill the log with more commits than one scan may read, none of
	// them c1's, after c1's budget.
	e.setBudget("c2", "100000")
	c := testenv.Client(t, e.srv)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i := range audit.ScanCommitsMax + 10 {
		u := events.NewUnits(1, 0)
		if _, err := c.Preflight(ctx, "c2", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: &u, TTL: "24h"}); err != nil {
			t.Fatalf("preflight %d: %v", i, err)
		}
	}
	r := e.do("GET", "/v1/customers/c1/events", e.audit, nil)
	expect(t, r, 200, "")
	if r.body["truncated"] != true || num(t, r, "scanned_commits") != fmt.Sprint(audit.ScanCommitsMax) {
		t.Fatalf("scan: truncated=%v scanned=%v", r.body["truncated"], r.body["scanned_commits"])
	}
	if evs := r.body["events"].([]any); len(evs) != 0 {
		t.Fatalf("c1's budget_set is beyond the scan bound, yet found: %s", r.raw)
	}
}

func TestConcurrentPreflightsNeverOverspend(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "100")
	const runs = 50
	var wg sync.WaitGroup
	approved := make(chan string, runs)
	for range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "a", "estimated_units": 7})
			if r.status == 200 && r.body["approved"] == true {
				approved <- r.body["reservation_id"].(string)
			}
		}()
	}
	wg.Wait()
	close(approved)
	n := 0
	for range approved {
		n++
	}
	if n != 14 { // floor(100 / 7)
		t.Fatalf("%d approved, want 14", n)
	}
	r := e.do("GET", "/v1/budget", e.agent, nil)
	if num(t, r, "reserved_units") != "98" || num(t, r, "remaining_units") != "2" {
		t.Fatalf("after the race: %s", r.raw)
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("GET", "/healthz", "", nil)
	expect(t, r, 200, "")
	if r.body["status"] != "ok" {
		t.Fatalf("healthz: %s", r.raw)
	}
}

func TestBusyIsUnavailable(t *testing.T) {
	e := newEnv(t, &ledger.DefaultBudget{Limit: events.NewUnits(50, 0), Period: ledger.PeriodMonth})
	// Every scan slot taken: an events read is refused at once.
	releases := make([]func(), 0, audit.ScansMax)
	for range audit.ScansMax {
		release, err := e.gw.scans.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	r := e.do("GET", "/v1/customers/c1/events", e.audit, nil)
	expect(t, r, 503, "unavailable")
	for _, release := range releases {
		release()
	}
	expect(t, e.do("GET", "/v1/customers/c1/events", e.audit, nil), 200, "")
	// Every request slot taken: everything is refused at once, then served.
	for range ConcurrentRequestsMax {
		e.gw.slots <- struct{}{}
	}
	r = e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "a"})
	expect(t, r, 503, "unavailable")
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// MCP shares the slots.
	expect(t, e.do("POST", MCPPath, e.agent, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}), 503, "unavailable")
	for range ConcurrentRequestsMax {
		<-e.gw.slots
	}
	expect(t, e.do("POST", "/v1/preflight", e.agent, map[string]any{"agent_id": "a"}), 200, "")
}
