package ledger_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

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

// RateLimits lists exactly the customers whose budget has a rate limit:
// after budgets set, changed and lifted, after a replay of their events,
// and after a snapshot of them is read back.
func TestRateLimitsFollowBudgets(t *testing.T) {
	s := ledger.NewState()
	n := 0
	s.NewID = func() string { n++; return fmt.Sprintf("01900000-0000-7000-8000-%012d", n) }
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	var log []*events.Envelope
	budget := func(cid, perSecond string) {
		t.Helper()
		limit := events.MustParseUnits("1000")
		r := &ledger.BudgetRequest{CustomerID: cid, Limit: &limit, Period: "month"}
		if perSecond != "" {
			r.RateLimit = &events.RateLimit{PerSecond: events.MustParseUnits(perSecond), Burst: 5}
		}
		_, evs, err := s.Decide(r, now)
		if err != nil {
			t.Fatal(err)
		}
		log = append(log, evs...)
	}
	for i := range 50 {
		budget(fmt.Sprintf("plain-%d", i), "")
	}
	budget("limited", "2")
	budget("changed", "1")
	budget("changed", "3")
	budget("lifted", "4")
	budget("lifted", "")
	want := map[string]events.RateLimit{
		"limited": {PerSecond: events.MustParseUnits("2"), Burst: 5},
		"changed": {PerSecond: events.MustParseUnits("3"), Burst: 5},
	}
	same := func(what string, got map[string]events.RateLimit) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: rate limits for %d customers, want %d: %v", what, len(got), len(want), got)
		}
		for id, w := range want {
			if g, ok := got[id]; !ok || g.Burst != w.Burst || g.PerSecond.Cmp(w.PerSecond) != 0 {
				t.Fatalf("%s: %s's rate limit is %v, want %v", what, id, g, w)
			}
		}
	}
	same("the writer's state", s.RateLimits())

	replayed := ledger.NewState()
	for _, e := range log {
		replayed.Apply(e)
	}
	same("the replayed state", replayed.RateLimits())

	var buf bytes.Buffer
	if err := s.WriteSnapshot(&buf, ledger.SnapshotMeta{Seq: 1, Writer: "w", Commit: "c"}); err != nil {
		t.Fatal(err)
	}
	restored, _, err := ledger.ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	same("the state read from a snapshot", restored.RateLimits())
}
