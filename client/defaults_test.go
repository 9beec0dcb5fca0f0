package client_test

import (
	"context"
	"testing"

	"github.com/agentbill/agentbill/ledger"
)

// TestDefaultsOverNATS: a NATS request gets the same defaults as the HTTP
// gateway and MCP (they live in ledger): a preflight without an estimate
// reserves 1, and a failed record without units releases.
func TestDefaultsOverNATS(t *testing.T) {
	c := gateEnv(t, "100")
	ctx := context.Background()
	pr, err := c.Preflight(ctx, "u", ledger.PreflightRequest{AgentID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if !pr.Approved || pr.ReservedUnits.String() != "1" || pr.RemainingUnits.String() != "99" {
		t.Fatalf("preflight without an estimate: approved %v reserved %s remaining %s, want true 1 99",
			pr.Approved, pr.ReservedUnits, pr.RemainingUnits)
	}
	failed := false
	rr, err := c.Record(ctx, "u", ledger.RecordRequest{AgentID: "a", ReservationID: pr.ReservationID, Success: &failed})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Status != ledger.StatusReleased || rr.ReleasedUnits.String() != "1" {
		t.Fatalf("failed record without units: status %s released %s, want released 1", rr.Status, rr.ReleasedUnits)
	}
}
