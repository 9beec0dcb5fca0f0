package httpapi

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestHostileInput sends bodies built to hurt a JSON decoder: each gets
// 400 invalid_argument with a message naming the problem, the log is
// unchanged, and a normal request right after succeeds.
func TestHostileInput(t *testing.T) {
	e := newEnv(t, nil)
	e.setBudget("c1", "100")
	deep := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	cases := []struct{ name, path, body, want string }{
		{"malformed UTF-8", "/v1/preflight", "{\"customer_id\":\"c1\",\"agent_id\":\"a\xc3\x28\"}", "UTF-8"},
		{"malformed UTF-8 in a key", "/v1/preflight", "{\"customer_id\":\"c1\",\"agent_id\":\"a\",\"\xff\":1}", "UTF-8"},
		{"deep nesting", "/v1/events", `{"event_type":"a","units":1,"metadata":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "nested too deeply"},
		{"very deep nesting, over the size limit", "/v1/events", deep, "larger than"},
		{"10 MB body", "/v1/preflight", `{"customer_id":"c1","agent_id":"` + strings.Repeat("a", 10<<20) + `"}`, "larger than"},
		{"duplicate key", "/v1/preflight", `{"customer_id":"c1","agent_id":"a","estimated_units":1,"estimated_units":1000}`, "duplicate key"},
		{"duplicate key, other case", "/v1/preflight", `{"customer_id":"c1","agent_id":"a","estimated_units":1,"Estimated_Units":1000}`, "duplicate key"},
		{"duplicate customer", "/v1/preflight", `{"customer_id":"c1","agent_id":"a","customer_id":"c2"}`, "duplicate key"},
		{"1e999999", "/v1/preflight", `{"customer_id":"c1","agent_id":"a","estimated_units":1e999999}`, "invalid amount"},
		{"1e-999999", "/v1/events", `{"customer_id":"c1","event_type":"a","units":1e-999999}`, "invalid amount"},
		{"negative zero", "/v1/events", `{"customer_id":"c1","event_type":"a","units":-0}`, "negative"},
		{"negative zero string", "/v1/preflight", `{"customer_id":"c1","agent_id":"a","estimated_units":"-0.0"}`, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.lastSeq()
			r := e.do("POST", c.path, e.admin, c.body)
			expect(t, r, 400, "invalid_argument")
			msg, _ := r.body["error"].(map[string]any)["message"].(string)
			if !strings.Contains(msg, c.want) {
				t.Errorf("message %q does not mention %q", msg, c.want)
			}
			if got := e.lastSeq(); got != before {
				t.Errorf("the log moved from %d to %d", before, got)
			}
			ok := e.do("POST", "/v1/preflight", e.admin, map[string]any{"customer_id": "c1", "agent_id": "a", "estimated_units": 1})
			expect(t, ok, 200, "")
			if ok.body["approved"] != true {
				t.Errorf("a normal preflight right after: %s", ok.raw)
			}
		})
	}
}

// TestHostileCustomerIDsOverHTTP: IDs with subject metacharacters, white
// space, '~', unicode and 128 bytes each reach exactly their own customer,
// in bodies, query strings and paths.
func TestHostileCustomerIDsOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	ids := []string{"acme.prod", "a*", "a>", ">", "a b", "~", "~abc", "日本語のお客様", "émoji🙂", "x.*.>",
		"slash/in/id", "q?x=1&y", strings.Repeat("x", 65), strings.Repeat("é", 64)}
	for i, id := range ids {
		r := e.do("PUT", "/v1/budget", e.admin, map[string]any{"customer_id": id, "limit_units": 1000 + i, "period": "month"})
		expect(t, r, 200, "")
		r = e.do("POST", "/v1/preflight", e.admin, map[string]any{"customer_id": id, "agent_id": "a", "estimated_units": i + 1})
		expect(t, r, 200, "")
	}
	for i, id := range ids {
		r := e.do("GET", "/v1/budget?customer_id="+url.QueryEscape(id), e.admin, nil)
		expect(t, r, 200, "")
		if got, want := num(t, r, "limit_units"), fmt.Sprint(1000+i); got != want || r.body["customer_id"] != id {
			t.Errorf("budget of %q: customer %v limit %s, want %s", id, r.body["customer_id"], got, want)
		}
		r = e.do("GET", "/v1/customers/"+url.PathEscape(id), e.admin, nil)
		expect(t, r, 200, "")
		if r.body["customer_id"] != id {
			t.Errorf("GET /v1/customers/%s: %s", url.PathEscape(id), r.raw)
		}
		if got, want := num(t, r, "reserved"), fmt.Sprint(i+1); got != want {
			t.Errorf("customer %q: reserved %s, want %s", id, got, want)
		}
	}
}
