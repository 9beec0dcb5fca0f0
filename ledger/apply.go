package ledger

import (
	"fmt"
	"time"

	"github.com/agentbill/agentbill/events"
)

// Apply folds one event into the state. It cannot fail: events in the log
// were decided against the state they are applied to. It never reads a
// clock; period rollover follows the period start recorded in the event.
// A broken invariant (a negative balance) panics: carrying on with wrong
// money is worse than stopping, and the log is intact for a restart.
// It keeps neither e nor the struct of e.Data, only the values of their
// fields, so a replay may reuse those structs (events.Arena).
func (s *State) Apply(e *events.Envelope) {
	s.applyState(e)
	s.remember(e)
}

// ApplyKept is Apply for a state that follows another: raw, if not nil,
// is what the other state kept for e (Kept), whose state before e was this
// one's. It is kept as it is, so the two share those bytes.
func (s *State) ApplyKept(e *events.Envelope, raw []byte) {
	s.applyState(e)
	s.rememberAs(e, raw)
}

// applyState is Apply without remembering the reply: Decide fills in the
// event's balance between the two.
func (s *State) applyState(e *events.Envelope) {
	s.events++
	if d, ok := e.Data.(*events.PricesSet); ok {
		s.applyPrices(d, e.At) // concerns no customer
		return
	}
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
		s.applyBudgetSet(c, d, e.At)
	case *events.ToppedUp:
		c.TopUps = c.TopUps.Add(d.Units)
		if !c.exhaustedAt(e.At) {
			c.Exhausted = false
		}
	case *events.Granted:
		s.applyGranted(c, d)
		if !c.exhaustedAt(e.At) {
			c.Exhausted = false
		}
	case *events.GrantExpired:
		c.removeGrant(d.GrantID)
	case *events.OverdraftStarted:
		c.Overdrafted = true
	case *events.Reserved:
		s.applyReserved(c, d)
	case *events.Denied:
	case *events.Recorded:
		s.applyRecorded(c, d, e)
		if d.Unpriced != "" {
			c.Unpriced++
		}
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

func (s *State) applyBudgetSet(c *Customer, d *events.BudgetSet, at time.Time) {
	// A new period kind can move the start back (day -> month): the start
	// follows, usage is kept (rollTo above handles moving forward).
	c.PeriodStart = d.Balance.PeriodStart
	fired := firedFractions(c)
	overdraft := events.Zero
	if d.Overdraft != nil {
		overdraft = *d.Overdraft
	}
	raised := d.Limit.Cmp(c.Limit) > 0 || overdraft.Cmp(c.overdraft()) > 0
	c.Limit = d.Limit
	c.Policy = policyOf(d, overdraft)
	s.notePolicy(c)
	c.setScopeLimits(d.ScopeLimits, at)
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
	if raised && !c.exhaustedAt(at) {
		c.Exhausted = false
	}
}

// policyOf returns a budget's less common settings, nil if it has none.
func policyOf(d *events.BudgetSet, overdraft events.Units) *Policy {
	if overdraft.IsZero() && d.Rollover == "" && d.MaxRuns == 0 && d.MaxRunsPerAgent == 0 && d.PriceList == "" && d.RateLimit == nil {
		return nil
	}
	p := &Policy{Overdraft: overdraft, Rollover: d.Rollover, MaxRuns: d.MaxRuns, MaxRunsPerAgent: d.MaxRunsPerAgent,
		PriceList: d.PriceList, RateLimit: d.RateLimit}
	if d.Rollover != "" && d.Rollover != RolloverAll {
		// Decide wrote a canonical decimal; a log that says otherwise
		// rolls nothing over rather than guess.
		p.RolloverCap, _ = events.ParseUnits(d.Rollover)
	}
	return p
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
		ID: d.ReservationID, CustomerID: c.ID, AgentID: s.internAgentID(d.AgentID),
		TaskRef: d.TaskRef, Units: d.Units, ExpiresAt: d.ExpiresAt, Scope: scopeOf(d.Scope),
	}
	c.Reserved = c.Reserved.Add(r.Units)
	c.holdScopes(r.Scope, r.Units, 1)
	a := c.agents.use(r.AgentID)
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
	applyFunded(c, d.FundedBy)
	c.chargeScopes(d.CountedScopes, d.Units, e.At)
	a := c.agents.use(s.internAgentID(d.AgentID))
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
	c.holdScopes(r.Scope, r.Units, -1)
	if a := c.agents.get(r.AgentID); a != nil {
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
// reply is rebuilt from the event only if a retry comes. The event is kept
// as the bytes a snapshot holds for it, in slabs without pointers
// (idemEntry); an event whose lists are past the snapshot's bounds, which
// no decision makes, is kept decoded (a copy: Apply keeps no event's
// struct), and the snapshot refuses it.
func (s *State) remember(e *events.Envelope) []byte { return s.rememberAs(e, nil) }

// rememberAs remembers e's request, as raw if it is not nil (ApplyKept),
// and returns the bytes kept (nil if none).
func (s *State) rememberAs(e *events.Envelope, raw []byte) []byte {
	req, _ := requestOf(e.Data)
	if req.IdempotencyKey == "" {
		return nil
	}
	if s.idem.skips(e.At) {
		key := ""
		if s.idem.tracks(e.At) {
			key = idemKey(e.CustomerID, req.IdempotencyKey)
		}
		s.idem.skipReplay(key, e.At)
		return nil
	}
	key := idemKey(e.CustomerID, req.IdempotencyKey)
	v := idemEntry{raw: raw}
	if raw == nil {
		v = idemEntry{eventID: e.ID, data: e.Data, period: s.periodOf(e.CustomerID)}
		s.idemEnc.b = s.idemEnc.b[:0]
		if writeIdemEntry(&s.idemEnc, key, v) == nil {
			v = idemEntry{raw: s.idemSlab.keep(s.idemEnc.b)}
		} else {
			v.data = events.Detach(v.data)
		}
	}
	s.idem.put(key, v, e.At)
	return v.raw
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
	case *events.Granted:
		return e.Request, events.OpGrant
	}
	return events.Request{}, ""
}

// check asserts the customer's invariants after every event.
func (c *Customer) check() {
	if c.Used.Sign() < 0 || c.Reserved.Sign() < 0 || c.TopUps.Sign() < 0 {
		panic(fmt.Sprintf("agentbill: customer %q has a negative balance: used %s reserved %s top-ups %s",
			c.ID, c.Used, c.Reserved, c.TopUps))
	}
	if cr := c.Credits; cr != nil {
		if cr.Used.Sign() < 0 || cr.Used.Cmp(c.Used) > 0 {
			panic(fmt.Sprintf("agentbill: customer %q: grants funded %s of %s used", c.ID, cr.Used, c.Used))
		}
		for _, g := range cr.Grants {
			if g.Remaining.Sign() < 0 || g.Remaining.Cmp(g.Units) > 0 {
				panic(fmt.Sprintf("agentbill: customer %q grant %s has %s of %s left", c.ID, g.ID, g.Remaining, g.Units))
			}
		}
	}
	for r, u := range c.Scopes {
		if u.Used.Sign() < 0 || u.Reserved.Sign() < 0 {
			panic(fmt.Sprintf("agentbill: customer %q scope %s=%s has used %s reserved %s",
				c.ID, r.Dimension, r.Value, u.Used, u.Reserved))
		}
	}
}
