package ledger

import (
	"fmt"
	"testing"

	"github.com/agentbill/agentbill/events"
)

// TestApprovalMessageAsFormatted: approvalMessage writes what the
// fmt.Sprintf it replaced wrote, for whole and partial approvals, in and
// out of overdraft, in every period, with amounts of any length and sign.
func TestApprovalMessageAsFormatted(t *testing.T) {
	formatted := func(period Period, d *events.Reserved) string {
		msg := fmt.Sprintf("reserved %s units for agent %s; %s units left %s",
			d.Units, d.AgentID, remainingOf(d.Balance), period.phrase())
		if !d.Requested.IsZero() {
			msg = fmt.Sprintf("reserved %s of the %s units requested for agent %s (all that fits); %s units left %s",
				d.Units, d.Requested, d.AgentID, remainingOf(d.Balance), period.phrase())
		}
		if d.InOverdraft {
			msg += ", in overdraft"
		}
		return msg
	}
	amounts := []string{"0", "7", "10", "12.5", "0.000000000000000001", "1000000000000000", "123456789012345678901.25"}
	n := 0
	for _, period := range []Period{PeriodDay, PeriodWeek, PeriodMonth, PeriodNone} {
		for i, u := range amounts {
			for j, req := range []string{"0", amounts[(i+1)%len(amounts)]} {
				for _, overdrawn := range []string{"0", "3.5"} {
					d := &events.Reserved{AgentID: fmt.Sprintf("agent-%d-ü", i), Units: mustTotal(t, u),
						Requested: mustTotal(t, req), InOverdraft: overdrawn != "0",
						Balance: events.Balance{Remaining: mustTotal(t, amounts[(i+j+2)%len(amounts)]), Overdrawn: events.MustParseUnits(overdrawn)}}
					if got, want := approvalMessage(period, d), formatted(period, d); got != want {
						t.Errorf("approvalMessage = %q, want %q", got, want)
					}
					n++
				}
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d cases", n)
	}
}

func mustTotal(t *testing.T, s string) events.Units {
	t.Helper()
	var u events.Units
	if err := u.UnmarshalJSON([]byte(s)); err != nil {
		t.Fatal(err)
	}
	return u
}
