package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
)

func TestWorkerRunsUntilRefused(t *testing.T) {
	srv := testenv.StartServer(t, "")
	testenv.StartWriter(t, srv, nil, nil)
	c := testenv.Client(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.SetBudget(ctx, "user_123", ledger.BudgetRequest{Limit: testenv.Ptr(t, "25"), Period: "month"}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := work(ctx, c, "user_123", 2, &out); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "approved"); got != 2 {
		t.Fatalf("output:\n%s", out.String())
	}
	// 6 + 6.5 used of 25: 12.5 left. The next run (10 estimated, 6 used)
	// fits, leaving 6.5; the one after asks for 10 and is refused.
	err := work(ctx, c, "user_123", 3, &out)
	var refused *client.RefusedError
	if !errors.As(err, &refused) || refused.Reason != ledger.ReasonBudgetExhausted {
		t.Fatalf("got %v, want a budget_exhausted refusal", err)
	}
	st, err := c.Status(ctx, "user_123")
	if err != nil {
		t.Fatal(err)
	}
	if st.Used.Cmp(events.MustParseUnits("18.5")) != 0 || !st.Reserved.IsZero() {
		t.Fatalf("used %s reserved %s, want 18.5 and 0", st.Used, st.Reserved)
	}
}
