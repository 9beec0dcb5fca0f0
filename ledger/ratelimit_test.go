package ledger_test

import (
	"strings"
	"testing"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

func TestValidateRateLimit(t *testing.T) {
	for _, c := range []struct {
		perSecond string
		burst     int
		want      string // "" valid, else part of the invalid_argument message
	}{
		{"1", 1, ""}, {"0.001", 1, ""}, {"100000", 100000, ""}, {"2.5", 10, ""},
		{"0", 0, ""}, // no limit: lifts the server's default
		{"0", 5, "leave burst out"},
		{"0.0009", 1, "outside 0.001..100000"},
		{"100000.5", 1, "outside 0.001..100000"},
		{"10", 0, "burst 0 is outside 1..100000"},
		{"10", -1, "burst -1 is outside"},
		{"10", 100001, "burst 100001 is outside"},
	} {
		err := ledger.ValidateRateLimit(&events.RateLimit{PerSecond: events.MustParseUnits(c.perSecond), Burst: c.burst})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s/s burst %d: %v, want valid", c.perSecond, c.burst, err)
		case c.want != "" && (ledger.ErrorCode(err) != ledger.CodeInvalidArgument || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s/s burst %d: %v, want invalid_argument with %q", c.perSecond, c.burst, err, c.want)
		}
	}
	if err := ledger.ValidateRateLimit(nil); err != nil {
		t.Errorf("no rate limit: %v, want valid (the server's default)", err)
	}
}
