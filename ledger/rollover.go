package ledger

import (
	"time"

	"github.com/agentbill/agentbill/events"
)

// RolloverAll is the rollover policy that carries all unused allowance.
const RolloverAll = "all"

// rollover emits, as the first event of the customer's new period that
// starts at start, the grant its rollover policy makes of the period
// that ended: what the allowance (limit and top-ups) had left, up to the
// cap, expiring when the new period ends. If more than one period passed
// with no event, the period before the new one saw no usage, so its whole
// limit is what is left. A budget without rollover, or without periods,
// emits nothing.
func (d *decision) rollover(c *Customer, start time.Time) {
	left := c.rolloverUnits(start)
	if left.Sign() <= 0 {
		return
	}
	end := c.Period.End(start)
	d.rolling = true
	defer func() { d.rolling = false }()
	id := d.s.NewID()
	d.emit(id, &events.Granted{
		GrantID: id, Units: left, Priority: GrantPriorityDefault, Source: events.SourceRollover,
		EffectiveAt: start, ExpiresAt: end, Balance: events.Balance{PeriodStart: start},
	})
}

// rolloverUnits is what the customer's rollover policy carries into the
// period that starts at start (zero without one).
func (c *Customer) rolloverUnits(start time.Time) events.Units {
	p := c.Policy
	if p == nil || p.Rollover == "" || c.Period.End(start).IsZero() {
		return events.Zero
	}
	left := c.allowanceLeft()
	if c.Period.End(c.PeriodStart).Before(start) {
		left = c.Limit
	}
	if p.Rollover != RolloverAll {
		left = left.Min(p.RolloverCap)
	}
	return left.NonNegative()
}
