package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/testing/testenv"
	"github.com/agentbill/agentbill/ledger"
)

// hostileIDs are customer IDs built to break out of a subject token.
var hostileIDs = []string{
	"acme.prod", "a*", "a>", ">", "*", "a b", " lead", "trail ", "~", "~abc", "~dXNlcl8xMjM",
	"user_123.", "..", "日本語のお客様", "émoji🙂", "x.*.>", "\u00a0nbsp", "ws\u2028sep",
	strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("é", 64), // 128 bytes
	"user_123", // the plain neighbour of "~dXNlcl8xMjM"'s decoding
}

// TestHostileCustomerIDsLandOnOneCustomer gives every hostile ID its own
// limit and one reservation through the Go client, then checks each
// customer sees exactly its own, and the log names each customer exactly.
func TestHostileCustomerIDsLandOnOneCustomer(t *testing.T) {
	s := testenv.StartServer(t, "")
	testenv.StartWriter(t, s, nil, nil)
	c := testenv.Client(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	limit := func(i int) events.Units { return events.NewUnits(int64(1000+i), 0) }
	for i, id := range hostileIDs {
		l := limit(i)
		if _, err := c.SetBudget(ctx, id, ledger.BudgetRequest{Limit: &l, Period: "month"}); err != nil {
			t.Fatalf("budget %q: %v", id, err)
		}
		est := events.NewUnits(int64(i+1), 0)
		if r, err := c.Preflight(ctx, id, ledger.PreflightRequest{AgentID: "a", EstimatedUnits: &est}); err != nil || !r.Approved {
			t.Fatalf("preflight %q: %+v, %v", id, r, err)
		}
	}
	for i, id := range hostileIDs {
		st, err := c.Status(ctx, id)
		if err != nil {
			t.Fatalf("status %q: %v", id, err)
		}
		if st.CustomerID != id || st.Limit.Cmp(limit(i)) != 0 || st.Reserved.Cmp(events.NewUnits(int64(i+1), 0)) != 0 || st.OpenReservations != 1 {
			t.Errorf("status %q: customer %q limit %s reserved %s open %d", id, st.CustomerID, st.Limit, st.Reserved, st.OpenReservations)
		}
	}
	perCustomer := map[string]int{}
	for _, e := range testenv.StreamEvents(t, testenv.Connect(t, s)) {
		perCustomer[e.CustomerID]++
	}
	if len(perCustomer) != len(hostileIDs) {
		t.Errorf("the log names %d customers, want %d", len(perCustomer), len(hostileIDs))
	}
	for _, id := range hostileIDs {
		if perCustomer[id] != 2 { // budget_set, reserved
			t.Errorf("customer %q has %d events, want 2", id, perCustomer[id])
		}
	}
}
