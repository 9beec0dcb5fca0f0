package ledger

import (
	"fmt"

	"github.com/agentbill/agentbill/events"
)

// Apply folds one event into the state. It cannot fail: events in the log
// were decided against the state they are applied to. It never reads a
// clock; period rollover follows the period start recorded in the event.
// A broken invariant (a negative balance) panics: carrying on with wrong
// money is worse than stopping, and the log is intact for a restart.
func (s *State) Apply(e *events.Envelope) {
	s.applyState(e)
	s.remember(e)
}

// applyState is Apply without remembering the reply: Decide fills in the
// event's balance between the two.
func (s *State) applyState(e *events.Envelope) {
	s.events++
	c := s.customers[e.CustomerID]
	if c == nil {
		bs, ok := e.Data.(*events.BudgetSet)
		if !ok {
			// Only a refusal can concern a customer without a budget
			// (no_budget); it changes no balance.
			return
		}
		c = &Customer{ID: e.CustomerID, PeriodStart: bs.Balance.PeriodStart}
		s.customers[e.CustomerID] = c
	}
	if ps := events.BalanceOf(e.Data).PeriodStart; ps.After(c.PeriodStart) {
		c.rollTo(ps)
	}
	switch d := e.Data.(type) {
	case *events.BudgetSet:
		s.applyBudgetSet(c, d)
	case *events.ToppedUp:
		c.TopUps = c.TopUps.Add(d.Units)
		if c.Remaining().Sign() > 0 {
			c.Exhausted = false
		}
	case *events.Reserved:
		s.applyReserved(c, d)
	case *events.Denied:
	case *events.Recorded:
		s.applyRecorded(c, d, e)
	case *events.Released:
		s.close(c, d.ReservationID, StatusReleased, e)
	case *events.Expired:
		s.close(c, d.ReservationID, StatusExpired, e)
	case *events.Extended:
		if r := s.reservations[d.ReservationID]; r != nil {
			r.ExpiresAt = d.ExpiresAt
			s.pushExpiry(r)
		}
	case *events.ThresholdCrossed:
		for i, f := range c.Thresholds {
			if f.Cmp(d.Fraction) == 0 {
				c.Fired |= 1 << i
			}
		}
	case *events.BudgetExhausted:
		c.Exhausted = true
	case *events.BudgetRestored:
		c.Exhausted = false // already re-armed by the event before it
	}
	c.check()
}

func (s *State) applyBudgetSet(c *Customer, d *events.BudgetSet) {
	// A new period kind can move the start back (day -> month): the start
	// follows, usage is kept (rollTo above handles moving forward).
	c.PeriodStart = d.Balance.PeriodStart
	fired := firedFractions(c)
	raised := d.Limit.Cmp(c.Limit) > 0
	c.Limit = d.Limit
	c.Period = Period(d.Period)
	c.Thresholds = append([]events.Units(nil), d.Thresholds...)
	c.UpgradeURL = d.UpgradeURL
	c.AgentLimits = nil
	if len(d.AgentLimits) > 0 {
		c.AgentLimits = make(map[string]events.Units, len(d.AgentLimits))
		for a, l := range d.AgentLimits {
			c.AgentLimits[a] = l
		}
	}
	// A fraction that already fired this period stays fired.
	c.Fired = 0
	for i, t := range c.Thresholds {
		for _, f := range fired {
			if f.Cmp(t) == 0 {
				c.Fired |= 1 << i
			}
		}
	}
	// Only a raised limit re-arms budget_exhausted (so do a top-up and a
	// new period); restating or lowering the limit does not.
	if raised && c.Remaining().Sign() > 0 {
		c.Exhausted = false
	}
}

func firedFractions(c *Customer) []events.Units {
	var out []events.Units
	for i, t := range c.Thresholds {
		if c.Fired&(1<<i) != 0 {
			out = append(out, t)
		}
	}
	return out
}

func (s *State) applyReserved(c *Customer, d *events.Reserved) {
	r := &Reservation{
		ID: d.ReservationID, CustomerID: c.ID, AgentID: d.AgentID,
		TaskRef: d.TaskRef, Units: d.Units, ExpiresAt: d.ExpiresAt,
	}
	c.Reserved = c.Reserved.Add(r.Units)
	a := c.agent(r.AgentID)
	a.Reserved = a.Reserved.Add(r.Units)
	if r.TaskRef != "" {
		t := c.task(r.TaskRef)
		if d.TaskCeiling != nil {
			ceiling := *d.TaskCeiling
			t.Ceiling = &ceiling
		}
		t.Reserved = t.Reserved.Add(r.Units)
	}
	c.Open = append(c.Open, r)
	s.reservations[r.ID] = r
	s.pushExpiry(r)
}

func (s *State) applyRecorded(c *Customer, d *events.Recorded, e *events.Envelope) {
	taskRef := d.TaskRef
	if r := s.reservations[d.ReservationID]; r != nil {
		if taskRef == "" {
			taskRef = r.TaskRef
		}
		s.close(c, r.ID, StatusRecorded, e)
	} else if d.ReservationID != "" {
		// A late record of an expired or released hold charges it once; it
		// is settled from now on, so a repeat is a conflict, not a charge.
		s.closed.put(d.ReservationID, closedEntry{customerID: c.ID, status: StatusRecorded}, e.At)
	}
	c.Used = c.Used.Add(d.Units)
	a := c.agent(d.AgentID)
	a.Used = a.Used.Add(d.Units)
	if taskRef != "" {
		t := c.task(taskRef)
		t.Used = t.Used.Add(d.Units)
	}
}

// close ends an open hold (settled, released or expired) and remembers how
// it ended, so a late record or release of it can be answered.
func (s *State) close(c *Customer, id, status string, e *events.Envelope) {
	r := s.reservations[id]
	if r == nil {
		return
	}
	delete(s.reservations, id)
	c.Reserved = c.Reserved.Sub(r.Units)
	if a := c.Agents[r.AgentID]; a != nil {
		a.Reserved = a.Reserved.Sub(r.Units)
	}
	if t := c.Tasks[r.TaskRef]; r.TaskRef != "" && t != nil {
		t.Reserved = t.Reserved.Sub(r.Units)
	}
	for i, o := range c.Open {
		if o == r {
			c.Open = append(c.Open[:i], c.Open[i+1:]...)
			break
		}
	}
	s.closed.put(id, closedEntry{customerID: c.ID, status: status}, e.At)
}

// remember stores the event that answered a request with an idempotency
// key, so the same request gets the same reply, even after a restart: the
// reply is rebuilt from the event only if a retry comes.
func (s *State) remember(e *events.Envelope) {
	req, _ := requestOf(e.Data)
	if req.IdempotencyKey == "" {
		return
	}
	s.idem.put(idemKey(e.CustomerID, req.IdempotencyKey),
		idemEntry{eventID: e.ID, data: e.Data, period: s.periodOf(e.CustomerID)}, e.At)
}

func (s *State) periodOf(customerID string) Period {
	if c := s.customers[customerID]; c != nil {
		return c.Period
	}
	return PeriodNone
}

func idemKey(customerID, key string) string { return customerID + "\x00" + key }

// requestOf returns the request an event answered, and its op. Events
// caused by no request (expiry, alerts) have none.
func requestOf(d events.Data) (events.Request, events.Op) {
	switch e := d.(type) {
	case *events.BudgetSet:
		return e.Request, events.OpBudget
	case *events.ToppedUp:
		return e.Request, events.OpTopUp
	case *events.Reserved:
		return e.Request, events.OpPreflight
	case *events.Denied:
		return e.Request, events.OpPreflight
	case *events.Recorded:
		return e.Request, events.OpRecord
	case *events.Released:
		if e.Cause == events.CauseRunFailed {
			return e.Request, events.OpRecord
		}
		return e.Request, events.OpRelease
	case *events.Extended:
		return e.Request, events.OpExtend
	}
	return events.Request{}, ""
}

// check asserts the customer's invariants after every event.
func (c *Customer) check() {
	if c.Used.Sign() < 0 || c.Reserved.Sign() < 0 || c.TopUps.Sign() < 0 {
		panic(fmt.Sprintf("agentbill: customer %q has a negative balance: used %s reserved %s top-ups %s",
			c.ID, c.Used, c.Reserved, c.TopUps))
	}
}
