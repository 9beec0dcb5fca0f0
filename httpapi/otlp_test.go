package httpapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/keys"
)

// otlpList rates every kind the ingest reports, per million tokens.
const otlpList = `{"list":"default","version":"v1","models":[{"id":"m","rates":` +
	`{"input":"3","output":"15","cache_read":"0.3","cache_write":"3.75"}}]}`

// otlpAttr is one OTLP attribute; v is the AnyValue's JSON.
func otlpAttr(key, v string) string {
	return fmt.Sprintf(`{"key":%q,"value":%s}`, key, v)
}

func otlpStr(s string) string { return fmt.Sprintf(`{"stringValue":%q}`, s) }

// otlpExport is an ExportLogsServiceRequest of one resource (its
// attributes) and one scope holding records.
func otlpExport(resource []string, records ...string) string {
	return `{"resourceLogs":[` + otlpResourceJSON(resource, records...) + `]}`
}

func otlpResourceJSON(resource []string, records ...string) string {
	return `{"resource":{"attributes":[` + strings.Join(resource, ",") + `]},` +
		`"scopeLogs":[{"scope":{"name":"test"},"logRecords":[` + strings.Join(records, ",") + `]}]}`
}

// otlpRecord is a log record with attributes, at time ns.
func otlpRecord(ns int, attrs ...string) string {
	return fmt.Sprintf(`{"timeUnixNano":"%d","attributes":[%s]}`, ns, strings.Join(attrs, ","))
}

// claudeCodeRecord is an api_request event as Claude Code sends it: the
// counts as strings, the event named in the body and event.name.
func claudeCodeRecord(requestID string, in, out, cacheRead, cacheWrite int) string {
	return fmt.Sprintf(`{"timeUnixNano":"1","body":{"stringValue":"claude_code.api_request"},"attributes":[%s]}`,
		strings.Join([]string{
			otlpAttr("event.name", otlpStr("api_request")), otlpAttr("session.id", otlpStr("s-1")),
			otlpAttr("model", otlpStr("m")), otlpAttr("request_id", otlpStr(requestID)),
			otlpAttr("input_tokens", otlpStr(fmt.Sprint(in))), otlpAttr("output_tokens", otlpStr(fmt.Sprint(out))),
			otlpAttr("cache_read_tokens", otlpStr(fmt.Sprint(cacheRead))),
			otlpAttr("cache_creation_tokens", otlpStr(fmt.Sprint(cacheWrite))),
			otlpAttr("cost_usd", `{"doubleValue":0.0123}`),
		}, ","))
}

var otlpWhoAttrs = []string{otlpAttr("customer", otlpStr("c1")), otlpAttr("agent", otlpStr("coder"))}

func (e *env) otlp(key, body string) response {
	e.t.Helper()
	return e.do("POST", OTLPLogsPath, key, body)
}

// used is what customer c1 has used.
func (e *env) used() string {
	e.t.Helper()
	r := e.do("GET", "/v1/customers/c1", e.admin, nil)
	expect(e.t, r, 200, "")
	return num(e.t, r, "used")
}

// accepted fails unless r accepted every record.
func accepted(t *testing.T, r response) {
	t.Helper()
	expect(t, r, 200, "")
	if strings.TrimSpace(r.raw) != "{}" {
		t.Fatalf("got %s, want {} (every record accepted)", r.raw)
	}
}

func (e *env) otlpEnv() {
	e.t.Helper()
	e.setBudget("c1", "10")
	expect(e.t, e.do("POST", "/v1/prices", e.admin, otlpList), 200, "")
}

// TestOTLPClaudeCode: Claude Code's api_request is priced with its cache
// tokens added to the input (100 + 1,000 read + 200 written = 1,300
// prompt tokens): 100 x 3 + 1,000 x 0.3 + 200 x 3.75 + 400 x 15 per
// million = 0.00735. The same export again (a retry) charges nothing;
// Claude Code's other events are ignored, not rejected.
func TestOTLPClaudeCode(t *testing.T) {
	e := newEnv(t, nil)
	e.otlpEnv()
	prompt := otlpRecord(2, otlpAttr("event.name", otlpStr("user_prompt")), otlpAttr("prompt_length", `{"intValue":"12"}`))
	body := otlpExport(otlpWhoAttrs, claudeCodeRecord("req_1", 100, 400, 1000, 200), prompt)
	accepted(t, e.otlp(e.anyAg, body))
	if got := e.used(); got != "0.00735" {
		t.Fatalf("used %s, want 0.00735", got)
	}
	accepted(t, e.otlp(e.anyAg, body))
	if got := e.used(); got != "0.00735" {
		t.Fatalf("a retried export charged again: used %s, want 0.00735", got)
	}
	ev := e.do("GET", "/v1/customers/c1/events", e.audit, nil)
	if !strings.Contains(ev.raw, `"metadata":{"source":"otel","event":"claude_code.api_request","session_id":"s-1"}`) {
		t.Fatalf("the recorded event does not say where it came from: %s", ev.raw)
	}
	// The key bound to c1 needs no customer attribute.
	accepted(t, e.otlp(e.agent, otlpExport(otlpWhoAttrs[1:], claudeCodeRecord("req_2", 0, 1000, 0, 0))))
	if got := e.used(); got != "0.02235" {
		t.Fatalf("used %s, want 0.02235", got)
	}
}

// TestOTLPGenAIValues: GenAI semantic-convention records, their counts as
// an int64 string, a JSON number and a whole double, are charged exactly;
// a record without a response ID is charged once however often the same
// export is retried, and again when it is another record (another time).
func TestOTLPGenAIValues(t *testing.T) {
	e := newEnv(t, nil)
	e.otlpEnv()
	genAI := func(ns int, in, out string, extra ...string) string {
		return otlpRecord(ns, append([]string{otlpAttr("gen_ai.request.model", otlpStr("m")),
			otlpAttr(genAIInputTokens, in), otlpAttr(genAIOutputTokens, out)}, extra...)...)
	}
	// 1,200 x 3 + 400 x 15 per million = 0.0096.
	cases := []struct{ name, in, out, id string }{
		{"int64 as string", `{"intValue":"1200"}`, `{"intValue":"400"}`, "r1"},
		{"int64 as number", `{"intValue":1200}`, `{"intValue":400}`, "r2"},
		{"whole doubles", `{"doubleValue":1200.0}`, `{"doubleValue":400}`, "r3"},
	}
	want := []string{"0.0096", "0.0192", "0.0288"}
	for i, c := range cases {
		accepted(t, e.otlp(e.anyAg, otlpExport(otlpWhoAttrs, genAI(1, c.in, c.out, otlpAttr(genAIResponseID, otlpStr(c.id))))))
		if got := e.used(); got != want[i] {
			t.Fatalf("%s: used %s, want %s", c.name, got, want[i])
		}
	}
	noID := otlpExport(otlpWhoAttrs, genAI(7, `{"intValue":"1200"}`, `{"intValue":"400"}`))
	accepted(t, e.otlp(e.anyAg, noID))
	accepted(t, e.otlp(e.anyAg, noID))
	if got := e.used(); got != "0.0384" {
		t.Fatalf("a retried record without an ID: used %s, want 0.0384", got)
	}
	accepted(t, e.otlp(e.anyAg, otlpExport(otlpWhoAttrs, genAI(8, `{"intValue":"1200"}`, `{"intValue":"400"}`))))
	if got := e.used(); got != "0.048" {
		t.Fatalf("another record without an ID: used %s, want 0.048", got)
	}
}

// TestOTLPPartialSuccess: in a mixed batch the good record is charged and
// each bad one is rejected with its reason; a record the key may not
// charge is rejected too, not the export.
func TestOTLPPartialSuccess(t *testing.T) {
	e := newEnv(t, nil)
	e.otlpEnv()
	rec := func(id string, in string) string {
		return otlpRecord(1, otlpAttr("gen_ai.request.model", otlpStr("m")), otlpAttr(genAIResponseID, otlpStr(id)),
			otlpAttr(genAIInputTokens, in), otlpAttr(genAIOutputTokens, `{"intValue":"400"}`))
	}
	bad := []struct{ name, in, reason string }{
		{"fraction", `{"doubleValue":1.5}`, "not a whole number"},
		{"exponent", `{"doubleValue":1e3}`, "not a whole number"},
		{"negative", `{"intValue":"-5"}`, "not a whole number"},
		{"past int64", `{"intValue":"99999999999999999999"}`, "out of range"},
		{"past TokensMax", `{"intValue":"1000000000001"}`, "1000000000000"},
		{"a bool", `{"boolValue":true}`, "whole number"},
	}
	for _, b := range bad {
		r := e.otlp(e.anyAg, otlpExport(otlpWhoAttrs, rec("ok-"+b.name, `{"intValue":"1200"}`), rec("bad-"+b.name, b.in)))
		expect(t, r, 200, "")
		ps, _ := r.body["partialSuccess"].(map[string]any)
		if ps["rejectedLogRecords"] != "1" || !strings.Contains(fmt.Sprint(ps["errorMessage"]), b.reason) ||
			!strings.Contains(fmt.Sprint(ps["errorMessage"]), "logRecords[1]") {
			t.Fatalf("%s: got %s, want 1 rejected for %q", b.name, r.raw, b.reason)
		}
	}
	if got := e.used(); got != "0.0576" { // six good records of 0.0096
		t.Fatalf("used %s, want 0.0576 (the good records only)", got)
	}
	before := e.used()
	noCustomer := otlpResourceJSON(otlpWhoAttrs[1:], rec("nc", `{"intValue":"1"}`))
	other := otlpResourceJSON([]string{otlpAttr("customer", otlpStr("c2")), otlpWhoAttrs[1]}, rec("other", `{"intValue":"1"}`))
	noModel := otlpRecord(1, otlpAttr(genAIInputTokens, `{"intValue":"1"}`))
	unpriced := otlpRecord(1, otlpAttr("gen_ai.request.model", otlpStr("unknown-model")), otlpAttr(genAIInputTokens, `{"intValue":"1"}`))
	body := `{"resourceLogs":[` + noCustomer + `,` + other + `,` + otlpResourceJSON(otlpWhoAttrs, noModel, unpriced) + `]}`
	r := e.otlp(e.anyAg, body) // c2 has no budget
	ps, _ := r.body["partialSuccess"].(map[string]any)
	msg := fmt.Sprint(ps["errorMessage"])
	if r.status != 200 || ps["rejectedLogRecords"] != "4" || !strings.Contains(msg, "no customer") ||
		!strings.Contains(msg, "and 1 more") {
		t.Fatalf("got %s, want 4 rejected, 3 reasons", r.raw)
	}
	r = e.otlp(e.agent, `{"resourceLogs":[`+other+`]}`) // bound to c1: c2 is not its customer
	if ps, _ := r.body["partialSuccess"].(map[string]any); ps["rejectedLogRecords"] != "1" ||
		!strings.Contains(fmt.Sprint(ps["errorMessage"]), "bound to customer") {
		t.Fatalf("another customer's record: got %s", r.raw)
	}
	r = e.otlp(e.anyAg, otlpExport(nil, rec("nc2", `{"intValue":"1"}`)))
	if ps, _ := r.body["partialSuccess"].(map[string]any); ps["rejectedLogRecords"] != "1" ||
		!strings.Contains(fmt.Sprint(ps["errorMessage"]), "no agent") {
		t.Fatalf("no agent: got %s", r.raw)
	}
	r = e.otlp(e.anyAg, otlpExport([]string{otlpAttr("customer", `{"intValue":"1"}`), otlpWhoAttrs[1]}, rec("typed", `{"intValue":"1"}`)))
	if ps, _ := r.body["partialSuccess"].(map[string]any); ps["rejectedLogRecords"] != "1" ||
		!strings.Contains(fmt.Sprint(ps["errorMessage"]), "attribute customer: want a stringValue") {
		t.Fatalf("a customer that is not a string: got %s", r.raw)
	}
	if got := e.used(); got != before {
		t.Fatalf("rejected records charged: used %s, want %s", got, before)
	}
}

// TestOTLPRefusals: the export itself is refused, changing nothing, for a
// missing or unfit key, another encoding (415), a body that is not OTLP
// JSON, one past the bounds, and another method; 503 only when the
// writer is down, with Retry-After.
func TestOTLPRefusals(t *testing.T) {
	e := newEnv(t, nil)
	e.otlpEnv()
	ok := otlpExport(otlpWhoAttrs, claudeCodeRecord("req_x", 1, 1, 0, 0))
	seq := e.lastSeq()
	expect(t, e.otlp("", ok), 401, "unauthenticated")
	expect(t, e.otlp(e.audit, ok), 403, "permission_denied")
	for _, ct := range []string{"application/x-protobuf", "text/plain", ""} {
		r := e.doCT("POST", OTLPLogsPath, e.anyAg, ct, ok)
		if r.status != 415 || !strings.Contains(r.raw, "http/json") {
			t.Fatalf("Content-Type %q: got %d %s, want 415 naming http/json", ct, r.status, r.raw)
		}
	}
	for _, body := range []string{"", "[1]", `{"resourceLogs":{}}`, "{", `{"resourceLogs":[{"scopeLogs":[{"logRecords":[1]}]}]}`} {
		r := e.otlp(e.anyAg, body)
		if body == `{"resourceLogs":[{"scopeLogs":[{"logRecords":[1]}]}]}` {
			// The export is OTLP; its one record is not: rejected.
			if ps, _ := r.body["partialSuccess"].(map[string]any); r.status != 200 || ps["rejectedLogRecords"] != "1" {
				t.Fatalf("a record that is not a record: got %s", r.raw)
			}
			continue
		}
		expect(t, r, 400, "invalid_argument")
	}
	huge := otlpExport(otlpWhoAttrs, otlpRecord(1, otlpAttr("x", otlpStr(strings.Repeat("x", OTLPBodyBytesMax)))))
	expect(t, e.otlp(e.anyAg, huge), 400, "invalid_argument")
	many := otlpExport(otlpWhoAttrs, strings.Repeat(otlpRecord(1)+",", OTLPLogRecordsMax)+otlpRecord(1))
	expect(t, e.otlp(e.anyAg, many), 400, "invalid_argument")
	r := e.do("GET", OTLPLogsPath, e.anyAg, nil)
	if expect(t, r, 400, "invalid_argument"); r.header.Get("Allow") != "POST" {
		t.Fatalf("Allow %q, want POST", r.header.Get("Allow"))
	}
	if got := e.lastSeq(); got != seq {
		t.Fatalf("refused exports wrote to the log: sequence %d, want %d", got, seq)
	}
	accepted(t, e.otlp(e.anyAg, otlpExport(otlpWhoAttrs, otlpRecord(1, otlpAttr("event.name", otlpStr("tool_result"))))))

	e.writer.Stop(t)
	r = e.otlp(e.anyAg, ok)
	if expect(t, r, 503, "unavailable"); r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
}

// TestOTLPGzip: a compressed export is 415 whatever its Content-Type.
func TestOTLPGzip(t *testing.T) {
	e := newEnv(t, nil)
	req := map[string]string{"Content-Encoding": "gzip"}
	r := e.doCTHeaders("POST", OTLPLogsPath, e.key(keys.RoleAgent, ""), "application/json", req, "\x1f\x8b")
	if r.status != 415 || !strings.Contains(r.raw, "no compression") {
		t.Fatalf("gzip: got %d %s, want 415", r.status, r.raw)
	}
}
