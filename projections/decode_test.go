package projections_test

import (
	"bytes"
	"encoding/json"
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

// FuzzDecodeRequest: any subject token and body either decode to a valid
// command bound to the subject's customer, whose JSON decodes again to the
// same command, or fail with invalid_argument or not_found; never a panic.
func FuzzDecodeRequest(f *testing.F) {
	ops := []events.Op{events.OpPreflight, events.OpRecord, events.OpRelease, events.OpExtend,
		events.OpStatus, events.OpBudget, events.OpTopUp, "bogus"}
	for i, body := range []string{
		string(benchPreflight),
		`{"agent_id":"a","units":"2.5","success":false,"metadata":{"k":[1,2]}}`,
		`{"reservation_id":"r1","idempotency_key":"k"}`,
		`{"reservation_id":"r1","ttl":"1h"}`,
		`{}`,
		`{"limit":100,"period":"month","thresholds":[0.5,0.8],"agent_limits":{"a":10},"upgrade_url":"https://x.example/up"}`,
		`{"units":5,"note":"n"}`,
		``,
		`{"agent_id":"a","estimated_units":1,"estimated_units":2}`,
		"{\"agent_id\":\"\xff\"}",
		`{"agent_id":"a","estimated_units":1e999999}`,
	} {
		f.Add(uint8(i), "user_123", []byte(body))
		f.Add(uint8(i), events.Token("acme.prod"), []byte(body))
	}
	f.Fuzz(func(t *testing.T, opIdx uint8, tok string, body []byte) {
		op := ops[int(opIdx)%len(ops)]
		prefix := events.RequestPrefix
		if op.IsAdmin() {
			prefix = events.AdminPrefix
		}
		cmd, err := projections.DecodeRequest(prefix+string(op)+"."+tok, body)
		if err != nil {
			if code := ledger.ErrorCode(err); code != ledger.CodeInvalidArgument && code != ledger.CodeNotFound {
				t.Fatalf("error %v has code %q", err, code)
			}
			return
		}
		if err := cmd.Validate(); err != nil {
			t.Fatalf("decoded command does not validate: %v", err)
		}
		if got := events.Token(cmd.Customer()); got != tok {
			t.Fatalf("command for %q came from token %q, whose canonical form is %q", cmd.Customer(), tok, got)
		}
		again, err := json.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		cmd2, err := projections.DecodeRequest(prefix+string(op)+"."+tok, again)
		if err != nil {
			t.Fatalf("re-encoded command %s does not decode: %v", again, err)
		}
		if again2, _ := json.Marshal(cmd2); !bytes.Equal(again, again2) {
			t.Fatalf("decode is not stable:\n%s\n%s", again, again2)
		}
	})
}
