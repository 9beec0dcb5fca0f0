package ledger

import (
	"cmp"
	"slices"
	"time"

	"github.com/agentbill/agentbill/events"
)

// known returns an existing customer, or not_found. It never creates one:
// a customer that does not exist can hold no reservation.
func (d *decision) known() (*Customer, error) {
	if c := d.s.customers[d.cid]; c != nil {
		return c, nil
	}
	return nil, Errorf(CodeNotFound, "customer %s has no budget", d.cid)
}

// reservation finds an open hold of this customer. If it is closed, it
// returns how it was closed; if it was never seen, not_found.
func (d *decision) reservation(id string) (*Reservation, string, error) {
	if r := d.s.reservations[id]; r != nil && r.CustomerID == d.cid {
		return r, "", nil
	}
	if cl, ok := d.s.closed.get(id); ok && cl.customerID == d.cid {
		return nil, cl.status, nil
	}
	return nil, "", Errorf(CodeNotFound, "customer %s has no reservation %s", d.cid, id)
}

func (d *decision) record(r *RecordRequest) (Reply, error) {
	res, err := d.recordTarget(r)
	if err != nil {
		return nil, err
	}
	charge := recordCharge{units: events.Zero}
	if r.Success == nil || *r.Success {
		hold := res
		if existing := d.s.customers[d.cid]; r.ReservationID == "" && existing != nil {
			hold = oldestOpen(existing, r.AgentID)
		}
		if charge, err = d.priceRecord(r, d.s.customers[d.cid], hold); err != nil {
			return nil, err
		}
	}
	c := d.customer() // may create it from the default budget: no errors after this
	if c == nil {
		return nil, Errorf(CodeNotFound, "customer %s has no budget and there is no default budget", d.cid)
	}
	d.prepare(c)
	if r.ReservationID == "" {
		res = oldestOpen(c, r.AgentID)
	}
	if r.Success != nil && !*r.Success {
		if res == nil {
			rem := d.view(c).remaining()
			return &RecordReply{Status: StatusReleased, RemainingUnits: c.shown(rem),
				Exhausted: rem.Add(c.overdraft()).Sign() <= 0}, nil
		}
		e := d.emit("", &events.Released{ReservationID: res.ID, AgentID: res.AgentID, Units: res.Units,
			Cause: events.CauseRunFailed, Request: d.req})
		return replyOf(d.s, e), nil
	}
	units := charge.units
	sc := scopeOf(r.Scope)
	if res != nil {
		sc = res.Scope
	}
	rec := &events.Recorded{AgentID: r.AgentID, Units: units, TaskRef: r.TaskRef, Metadata: r.Metadata,
		Scope: sc.asMap(), CountedScopes: c.counted(sc), FundedBy: c.draw(units, d.view(c).allowanceLeft(), d.now),
		Usage: r.Usage, Pricing: charge.pricing, Unpriced: charge.unpriced, Request: d.req}
	if res != nil {
		rec.ReservationID, rec.HeldUnits = res.ID, res.Units
		rec.Released = res.Units.Sub(units).NonNegative()
		rec.Overage = units.Sub(res.Units).NonNegative()
	} else if r.ReservationID != "" {
		rec.ReservationID = r.ReservationID // closed hold, charged as plain usage
	}
	e := d.emit("", rec)
	d.alerts(c, r.AgentID)
	return replyOf(d.s, e), nil
}

// recordTarget decides every way a record can fail before anything is
// emitted: the named reservation (nil if it expired or was released: the
// usage still happened and is charged as plain usage) and table bounds.
func (d *decision) recordTarget(r *RecordRequest) (*Reservation, error) {
	c := d.s.customers[d.cid]
	var res *Reservation
	if r.ReservationID != "" {
		if c == nil {
			return nil, Errorf(CodeNotFound, "customer %s has no reservation %s", d.cid, r.ReservationID)
		}
		var closed string
		var err error
		if res, closed, err = d.reservation(r.ReservationID); err != nil {
			return nil, err
		}
		if closed == StatusRecorded {
			return nil, Errorf(CodeConflict, "reservation %s was already settled by a record", r.ReservationID)
		}
		if res != nil && res.AgentID != r.AgentID {
			return nil, invalid("reservation %s belongs to agent %s, not %s", res.ID, res.AgentID, r.AgentID)
		}
	}
	if c == nil {
		return res, nil
	}
	if c.agents.get(r.AgentID) == nil && c.agents.len() >= AgentsPerCustomerMax {
		return nil, invalid("customer %s already has %d agents this period, the maximum", d.cid, AgentsPerCustomerMax)
	}
	if r.TaskRef != "" {
		if _, ok := c.Tasks[r.TaskRef]; !ok && len(c.Tasks) >= TasksPerCustomerMax && c.idleTask() < 0 {
			return nil, invalid("customer %s has %d tasks with open reservations, the maximum", d.cid, TasksPerCustomerMax)
		}
	}
	return res, nil
}

func oldestOpen(c *Customer, agentID string) *Reservation {
	for _, r := range c.Open {
		if r.AgentID == agentID {
			return r
		}
	}
	return nil
}

// release gives a hold back. A hold past its deadline but not yet swept is
// released like any other (the effect is the same as its expiry).
func (d *decision) release(r *ReleaseRequest) (Reply, error) {
	c, err := d.known()
	if err != nil {
		return nil, err
	}
	res, closed, err := d.reservation(r.ReservationID)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return &ReleaseReply{Status: closed, RemainingUnits: c.shown(d.view(c).remaining())}, nil
	}
	e := d.emit("", &events.Released{ReservationID: res.ID, AgentID: res.AgentID, Units: res.Units,
		Cause: events.CauseReleased, Request: d.req})
	return replyOf(d.s, e), nil
}

// extend moves a hold's deadline to now + ttl. A hold already past its
// deadline cannot be revived: the run must preflight again.
func (d *decision) extend(r *ExtendRequest) (Reply, error) {
	if _, err := d.known(); err != nil {
		return nil, err
	}
	res, closed, err := d.reservation(r.ReservationID)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, Errorf(CodeConflict, "reservation %s is closed (%s); preflight again", r.ReservationID, closed)
	}
	if !res.ExpiresAt.After(d.now) {
		return nil, Errorf(CodeConflict, "reservation %s expired at %s; preflight again",
			r.ReservationID, res.ExpiresAt.Format(time.RFC3339Nano))
	}
	ttl, _ := ParseTTL(r.TTL)
	e := d.emit("", &events.Extended{ReservationID: res.ID, AgentID: res.AgentID, ExpiresAt: d.now.Add(ttl), Request: d.req})
	return replyOf(d.s, e), nil
}

func (d *decision) budget(r *BudgetRequest) (Reply, error) {
	if r.PriceList != "" && d.s.prices[r.PriceList] == nil {
		return nil, invalid("no price list %q is set; set it (agentbill prices set) before a budget names it", r.PriceList)
	}
	period, _ := ParsePeriod(r.Period)
	since := d.now
	if c := d.s.customers[d.cid]; c != nil && c.Period == PeriodNone && period == PeriodNone {
		since = c.PeriodStart
	}
	d.emit("", &events.BudgetSet{
		Limit: *r.Limit, Period: string(period), Thresholds: r.Thresholds, UpgradeURL: r.UpgradeURL,
		AgentLimits: r.AgentLimits, Source: "admin", Rollover: string(r.Rollover), Overdraft: r.Overdraft,
		ScopeLimits: sortedScopeLimits(r.ScopeLimits, period), MaxRuns: r.MaxRuns, MaxRunsPerAgent: r.MaxRunsPerAgent,
		PriceList: r.PriceList, RateLimit: r.RateLimit, Request: d.req, Balance: events.Balance{PeriodStart: period.Start(d.now, since)},
	})
	c := d.s.customers[d.cid]
	d.alerts(c, "")
	return d.s.Status(d.cid, d.now)
}

func (d *decision) topUp(r *TopUpRequest) (Reply, error) {
	c := d.customer()
	if c == nil {
		return nil, Errorf(CodeNotFound, "customer %s has no budget; set one before topping up", d.cid)
	}
	d.prepare(c)
	d.emit("", &events.ToppedUp{Units: *r.Units, Note: r.Note, Request: d.req})
	d.alerts(c, "")
	return d.s.Status(d.cid, d.now)
}

// Status returns a customer's position as of now. An unknown customer reads
// as the default budget, untouched; with no default it is not_found.
func (s *State) Status(cid string, now time.Time) (*StatusReply, error) {
	c := s.customers[cid]
	if c == nil {
		if s.Default == nil {
			return nil, Errorf(CodeNotFound, "customer %s has no budget", cid)
		}
		start := s.Default.Period.Start(now, now)
		c = &Customer{ID: cid, Limit: s.Default.Limit, Period: s.Default.Period, PeriodStart: start}
	}
	d := &decision{s: s, now: now}
	v := d.view(c)
	start := c.Period.Start(now, c.PeriodStart)
	if !v.rolled {
		start = c.PeriodStart
	}
	// A rollover grant not written yet (no event since the period began)
	// counts as the grant it will be.
	pending := events.Zero
	if v.rolled {
		pending = c.rolloverUnits(start)
	}
	rem := v.remaining().Add(pending)
	st := &StatusReply{
		CustomerID: cid, Limit: c.Limit, TopUps: v.topUps(), Used: v.used(), Reserved: c.Reserved,
		Remaining: c.shown(rem), Period: c.Period, PeriodStart: start,
		OpenReservations: len(c.Open), Exhausted: rem.Add(c.overdraft()).Sign() <= 0,
		Thresholds: c.Thresholds, UpgradeURL: c.UpgradeURL, Agents: make(map[string]AgentStatus, c.agents.len()),
		GrantsRemaining: c.grantsLeft(now).Add(pending), GrantsUsed: v.grantsUsed(),
	}
	if p := c.Policy; p != nil {
		if p.Overdraft.Sign() > 0 {
			od := p.Overdraft
			st.Overdraft = &od
		}
		st.Rollover, st.MaxRuns, st.MaxRunsPerAgent = p.Rollover, p.MaxRuns, p.MaxRunsPerAgent
		st.PriceList = p.PriceList
		st.RateLimit = p.RateLimit
	}
	st.UnpricedRecords = c.Unpriced
	st.Grants = c.grantStatus(now)
	st.Scopes = c.scopeStatus(now)
	if end := c.Period.End(start); !end.IsZero() {
		st.PeriodEnd = &end
	}
	for id, a := range c.agents.all() {
		as := AgentStatus{Used: a.Used, Reserved: a.Reserved}
		if v.rolled {
			as.Used = events.Zero
		}
		if l, ok := c.AgentLimits[id]; ok {
			as.Limit = &l
		}
		st.Agents[id] = as
	}
	for id, l := range c.AgentLimits {
		if _, ok := st.Agents[id]; !ok {
			st.Agents[id] = AgentStatus{Limit: &l}
		}
	}
	return st, nil
}

// grantStatus lists the open grants not expired at now, in draw-down order.
func (c *Customer) grantStatus(now time.Time) []GrantStatus {
	if c.Credits == nil {
		return nil
	}
	var out []GrantStatus
	for _, g := range c.Credits.Grants {
		if !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt) {
			continue
		}
		gs := GrantStatus{GrantID: g.ID, Units: g.Units, Remaining: g.Remaining, Priority: g.Priority,
			Source: g.Source, EffectiveAt: g.EffectiveAt}
		if !g.ExpiresAt.IsZero() {
			exp := g.ExpiresAt
			gs.ExpiresAt = &exp
		}
		out = append(out, gs)
	}
	return out
}

// scopeStatus lists the limited scope values by dimension and value.
func (c *Customer) scopeStatus(now time.Time) []ScopeStatus {
	if len(c.Scopes) == 0 {
		return nil
	}
	out := make([]ScopeStatus, 0, len(c.Scopes))
	for ref, u := range c.Scopes {
		spent := u.spent(now)
		start := u.Period.Start(now, u.PeriodStart)
		out = append(out, ScopeStatus{Dimension: ref.Dimension, Value: ref.Value, Limit: u.Limit, Period: u.Period,
			PeriodStart: start, Used: spent.Sub(u.Reserved), Reserved: u.Reserved,
			Remaining: events.SignedOf(u.Limit.Sub(spent))})
	}
	slices.SortFunc(out, func(a, b ScopeStatus) int {
		return cmp.Or(cmp.Compare(a.Dimension, b.Dimension), cmp.Compare(a.Value, b.Value))
	})
	return out
}

func (d *decision) grant(r *GrantRequest) (Reply, error) {
	if r.ExpiresAt != nil && !r.ExpiresAt.After(d.now) {
		return nil, invalid("expires_at %s is not in the future", r.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
	if c := d.s.customers[d.cid]; c != nil && c.Credits != nil && len(c.grantStatus(d.now)) >= GrantsPerCustomerMax {
		return nil, invalid("customer %s has %d open grants, the maximum", d.cid, GrantsPerCustomerMax)
	}
	c := d.customer() // may create it from the default budget: no errors after this
	if c == nil {
		return nil, Errorf(CodeNotFound, "customer %s has no budget; set one before granting credits", d.cid)
	}
	d.prepare(c)
	g := &events.Granted{Units: *r.Units, Priority: GrantPriorityDefault, Source: events.SourcePurchase,
		Note: r.Note, EffectiveAt: d.now, Request: d.req}
	if r.Priority != nil {
		g.Priority = *r.Priority
	}
	if r.Source != "" {
		g.Source = r.Source
	}
	if r.EffectiveAt != nil && r.EffectiveAt.After(d.now) {
		g.EffectiveAt = r.EffectiveAt.UTC()
	}
	if r.ExpiresAt != nil {
		g.ExpiresAt = r.ExpiresAt.UTC()
	}
	g.GrantID = d.s.NewID()
	e := d.emit(g.GrantID, g)
	return replyOf(d.s, e), nil
}
