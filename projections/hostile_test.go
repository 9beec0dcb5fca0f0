package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/projections"
	"github.com/nats-io/nats.go"
)

// TestHostileRequestsOverNATS sends hostile requests straight to the
// writer's subjects: each gets an invalid_argument reply (or, past NATS's
// max_payload, never leaves the client), the log is unchanged, and a
// normal request right after is approved.
func TestHostileRequestsOverNATS(t *testing.T) {
	srv := testenv.StartServer(t, "")
	testenv.StartWriter(t, srv, testenv.NewClock(time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)), nil)
	nc := testenv.Connect(t, srv)
	c := testenv.Client(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.SetBudget(ctx, "user_123", ledger.BudgetRequest{Limit: testenv.Ptr(t, "100"), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	lastSeq := func() uint64 {
		seq, err := projections.LastSequence(ctx, testenv.JetStream(t, nc))
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	preflight := events.RequestSubject(events.OpPreflight, "user_123")
	cases := []struct{ name, subject, body, want string }{
		{"malformed UTF-8", preflight, "{\"agent_id\":\"\xed\xa0\x80\",\"estimated_units\":1}", "UTF-8"},
		{"deep nesting", preflight, `{"agent_id":"a","estimated_units":1,"metadata":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`, "nested too deeply"},
		{"body near max_payload", preflight, `{"agent_id":"` + strings.Repeat("a", 1000*1000) + `"}`, "more than"},
		{"duplicate key", preflight, `{"agent_id":"a","estimated_units":1,"estimated_units":1000}`, "duplicate key"},
		{"duplicate customer", preflight, `{"customer_id":"user_123","agent_id":"a","estimated_units":1,"customer_id":"user_456"}`, "duplicate key"},
		{"1e999999", preflight, `{"agent_id":"a","estimated_units":1e999999}`, "invalid amount"},
		{"negative zero", preflight, `{"agent_id":"a","estimated_units":-0}`, "negative"},
		{"customer disagrees", preflight, `{"customer_id":"user_456","agent_id":"a","estimated_units":1}`, "customer"},
		{"bad token", "agentbill.v1.preflight.~!!", `{"agent_id":"a","estimated_units":1}`, "customer token"},
		{"non-canonical token", "agentbill.v1.preflight." + "~" + "dXNlcl8xMjM", `{"agent_id":"a","estimated_units":1}`, "canonical"},
		{"too many thresholds", events.RequestSubject(events.OpBudget, "user_123"), `{"limit":1,"period":"month","thresholds":[` + strings.Repeat("0.5,", ledger.ThresholdsMax) + `0.5]}`, "threshold"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := lastSeq()
			msg, err := nc.Request(tc.subject, []byte(tc.body), 10*time.Second)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			var reply struct{ Error *ledger.Error }
			if err := json.Unmarshal(msg.Data, &reply); err != nil || reply.Error == nil {
				t.Fatalf("reply %s is not an error (%v)", msg.Data, err)
			}
			if reply.Error.Code != ledger.CodeInvalidArgument || !strings.Contains(reply.Error.Message, tc.want) {
				t.Errorf("got %s: %s, want invalid_argument mentioning %q", reply.Error.Code, reply.Error.Message, tc.want)
			}
			if got := lastSeq(); got != before {
				t.Errorf("the log moved from %d to %d", before, got)
			}
			r, err := c.Preflight(ctx, "user_123", ledger.PreflightRequest{AgentID: "a", EstimatedUnits: testenv.Ptr(t, "1")})
			if err != nil || !r.Approved {
				t.Fatalf("a normal preflight right after: %+v, %v", r, err)
			}
		})
	}
	// 10 MB is past NATS's max_payload: the client refuses to send it.
	if _, err := nc.Request(preflight, make([]byte, 10<<20), time.Second); !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("10 MB request: %v, want %v", err, nats.ErrMaxPayload)
	}
}
