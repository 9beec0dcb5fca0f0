package main

import (
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/events"
)

func balance(used, reserved, limit string) events.Balance {
	u, r, l := events.MustParseUnits(used), events.MustParseUnits(reserved), events.MustParseUnits(limit)
	return events.Balance{Limit: l, TopUps: events.Zero, Used: u, Reserved: r, Remaining: l.Sub(u).Sub(r).NonNegative()}
}

func TestAlertText(t *testing.T) {
	at := time.Date(2026, 3, 14, 9, 4, 0, 0, time.UTC)
	for _, c := range []struct {
		data   events.Data
		plain  string
		colour string // the label as coloured
	}{
		{&events.BudgetExhausted{Trigger: events.TriggerRefused, UpgradeURL: "https://example.com/up", Balance: balance("55.5", "0", "100")},
			"2026-03-14T09:04:00Z  budget_exhausted   user_123: 55.5 used, 0 reserved of 100, 44.5 left (refused); upgrade: https://example.com/up",
			"\x1b[1;31mbudget_exhausted \x1b[0m"},
		{&events.ThresholdCrossed{Fraction: events.MustParseUnits("0.8"), Balance: balance("80", "5", "100")},
			"2026-03-14T09:04:00Z  threshold_crossed  user_123: passed 0.8 of 100; 80 used, 5 reserved, 15 left",
			"\x1b[1;33mthreshold_crossed\x1b[0m"},
		// A balance's limit includes the period's top-ups: 100 + 10 is 110, not 120.
		{&events.BudgetRestored{Trigger: events.TriggerToppedUp, Balance: events.Balance{Limit: events.MustParseUnits("110"),
			TopUps: events.MustParseUnits("10"), Used: events.MustParseUnits("100"), Remaining: events.MustParseUnits("10")}},
			"2026-03-14T09:04:00Z  budget_restored    user_123: 10 left of 110 again (topped_up)",
			"\x1b[1;32mbudget_restored  \x1b[0m"},
		{&events.Denied{AgentID: "research", Requested: events.MustParseUnits("50"), Reason: "budget_exhausted",
			Message: "customer user_123 has 44.5 units left in this month; 50 requested", Balance: balance("55.5", "0", "100")},
			"2026-03-14T09:04:00Z  denied             user_123: agent research asked 50; budget_exhausted: customer user_123 has 44.5 units left in this month; 50 requested",
			"\x1b[1;35mdenied           \x1b[0m"},
		{&events.OverdraftStarted{AgentID: "research", Overdraft: events.MustParseUnits("20"),
			Balance: events.Balance{Limit: events.MustParseUnits("100"), Used: events.MustParseUnits("100"), Reserved: events.MustParseUnits("7.5"),
				Overdraft: events.MustParseUnits("20"), Overdrawn: events.MustParseUnits("7.5")}},
			"2026-03-14T09:04:00Z  overdraft_started  user_123: 7.5 below zero, of an overdraft of 20 (agent research)",
			"\x1b[1;33moverdraft_started\x1b[0m"},
		{&events.GrantExpired{GrantID: "g1", Units: events.MustParseUnits("50"), Remaining: events.MustParseUnits("12"), Balance: balance("30", "0", "100")},
			"2026-03-14T09:04:00Z  grant_expired      user_123: grant g1 of 50 expired with 12 unused; 70 left",
			"\x1b[1;33mgrant_expired    \x1b[0m"},
	} {
		e := &events.Envelope{Type: c.data.EventType(), At: at, CustomerID: "user_123", Data: c.data}
		if got := alertText(e, plain); got != c.plain {
			t.Errorf("plain %s:\n got %q\nwant %q", e.Type, got, c.plain)
		}
		got := alertText(e, ansi)
		if !strings.Contains(got, c.colour) || !strings.Contains(got, "\x1b[1muser_123\x1b[0m") {
			t.Errorf("colour %s: got %q, want the label as %q and the customer in bold", e.Type, got, c.colour)
		}
	}
}
