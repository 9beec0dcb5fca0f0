package errcode

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
	"github.com/nats-io/nats.go"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want ledger.Code
	}{
		{ledger.Errorf(ledger.CodeConflict, "x"), ledger.CodeConflict},
		{fmt.Errorf("wrapped: %w", keys.ErrUnauthenticated), ledger.CodeUnauthenticated},
		{keys.ErrPermissionDenied, ledger.CodePermissionDenied},
		{keys.ErrInvalid, ledger.CodeInvalidArgument},
		// The MCP transport's own copy had lost this case: a key store
		// outage must be retried, not reported as an internal error.
		{fmt.Errorf("lookup: %w", keys.ErrUnavailable), ledger.CodeUnavailable},
		{nats.ErrNoResponders, ledger.CodeUnavailable},
		{nats.ErrTimeout, ledger.CodeUnavailable},
		{fmt.Errorf("secret detail"), ledger.CodeInternal},
	}
	for _, c := range cases {
		if got := Classify(c.err).Code; got != c.want {
			t.Errorf("Classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
	if m := Classify(fmt.Errorf("secret detail")).Message; strings.Contains(m, "secret") {
		t.Errorf("internal error message leaks details: %q", m)
	}
}
