package projections_test

import (
	"strings"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
)

// A typical preflight, as the Go client sends it.
var benchPreflight = []byte(`{"agent_id":"research_agent","estimated_units":"12.5","task_ref":"task-42","ttl":"15m","idempotency_key":"0190f2c4-8e2a-7c3b-9d1e-2f4a5b6c7d8e","metadata":{"model":"gpt-4o","run":{"id":7,"tags":["a","b"]}}}`)

func BenchmarkDecodeRequest(b *testing.B) {
	subj := events.RequestSubject(events.OpPreflight, "user_123")
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPreflight)))
	for b.Loop() {
		if _, err := projections.DecodeRequest(subj, benchPreflight); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeRequestRejectsHostileBodies: every body gets invalid_argument
// with a message that says what is wrong.
func TestDecodeRequestRejectsHostileBodies(t *testing.T) {
	subj := events.RequestSubject(events.OpPreflight, "user_123")
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	for _, c := range []struct{ name, body, want string }{
		{"duplicate key", `{"agent_id":"a","estimated_units":1,"estimated_units":1000}`, "duplicate key"},
		{"duplicate key, other case", `{"agent_id":"a","estimated_units":1,"ESTIMATED_UNITS":1000}`, "duplicate key"},
		{"duplicate key, escaped", `{"agent_id":"a","agent_\u0069d":"b","estimated_units":1}`, "duplicate key"},
		{"duplicate metadata key", `{"agent_id":"a","estimated_units":1,"metadata":{"k":1,"k":2}}`, "duplicate key"},
		{"unknown field", `{"agent_id":"a","estimated_units":1,"admin":true}`, "unknown field"},
		{"malformed UTF-8", "{\"agent_id\":\"a\xff\",\"estimated_units\":1}", "UTF-8"},
		{"deep nesting", `{"agent_id":"a","estimated_units":1,"metadata":` + deep + `}`, "nested too deeply"},
		{"huge exponent", `{"agent_id":"a","estimated_units":1e999999}`, "invalid amount"},
		{"negative zero", `{"agent_id":"a","estimated_units":-0}`, "negative"},
		{"negative", `{"agent_id":"a","estimated_units":-1}`, "negative"},
		{"too precise", `{"agent_id":"a","estimated_units":0.0000000000000000001}`, "fractional digits"},
		{"float text", `{"agent_id":"a","estimated_units":"NaN"}`, "not a decimal number"},
		{"trailing data", `{"agent_id":"a","estimated_units":1} {}`, "after the JSON"},
		{"not an object", `[1,2]`, "malformed"},
		{"unbalanced", `{"agent_id":"a"}}`, "malformed"},
		{"too big", `{"agent_id":"` + strings.Repeat("a", projections.RequestBytesMax) + `"}`, "more than"},
		{"long agent", `{"agent_id":"` + strings.Repeat("a", ledger.AgentIDBytesMax+1) + `","estimated_units":1}`, "agent_id"},
		{"ttl too long", `{"agent_id":"a","estimated_units":1,"ttl":"10000h"}`, "ttl"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := projections.DecodeRequest(subj, []byte(c.body))
			if got := ledger.ErrorCode(err); got != ledger.CodeInvalidArgument {
				t.Fatalf("code %q (%v), want invalid_argument", got, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
	if _, err := projections.DecodeRequest(subj, benchPreflight); err != nil {
		t.Fatalf("a normal preflight: %v", err)
	}
}
