package ledger

import (
	"container/heap"
	"fmt"
	"time"

	"github.com/agentbill/agentbill/events"
)

// Decide answers one command at time now. It validates the command, checks
// its idempotency key, decides, and returns the reply with the events that
// record the decision. It changes the state only by applying those events
// (so replaying them reproduces it exactly); a command that is refused with
// an error produces no events and changes nothing.
//
// Errors are *Error: invalid_argument (bad request), not_found (unknown
// customer or reservation), conflict (idempotency key reused for a different
// request, or a reservation already settled), internal (a remembered
// request restored from a snapshot does not decode; see State.remembered).
func (s *State) Decide(cmd Command, now time.Time) (Reply, []*events.Envelope, error) {
	if err := cmd.Validate(); err != nil {
		return nil, nil, err
	}
	clear(s.kept)
	s.kept = s.kept[:0]
	d := &decision{s: s, now: now.UTC(), cid: cmd.Customer(), keeps: true}
	if err := events.ValidateCustomerID(d.cid); err != nil {
		return nil, nil, invalid("%v", err)
	}
	if key := cmd.key(); key != "" {
		d.req = events.Request{IdempotencyKey: key, RequestHash: d.s.requestHash(cmd)}
		e, ok, err := s.remembered(idemKey(d.cid, key))
		if err != nil {
			return nil, nil, err
		}
		if ok {
			if req, op := requestOf(e.data); req.RequestHash != d.req.RequestHash || op != cmd.Op() {
				return nil, nil, Errorf(CodeConflict,
					"idempotency_key %q was already used with a different request", truncate(key, 64))
			}
			return s.duplicateReply(e, d.cid, d.now), nil, nil
		}
	}
	var (
		reply Reply
		err   error
	)
	switch c := cmd.(type) {
	case *PreflightRequest:
		reply, err = d.preflight(c)
	case *RecordRequest:
		reply, err = d.record(c)
	case *ReleaseRequest:
		reply, err = d.release(c)
	case *ExtendRequest:
		reply, err = d.extend(c)
	case *StatusRequest:
		reply, err = s.Status(d.cid, d.now)
	case *BudgetRequest:
		reply, err = d.budget(c)
	case *TopUpRequest:
		reply, err = d.topUp(c)
	case *GrantRequest:
		reply, err = d.grant(c)
	default:
		err = invalid("unknown command %T", cmd)
	}
	if err != nil {
		if len(d.out) > 0 {
			// Every refusal is decided before the first event; an error
			// after events were applied would leave state the log lacks.
			panic(fmt.Sprintf("agentbill: %T failed after emitting %d events: %v", cmd, len(d.out), err))
		}
		return nil, nil, err
	}
	return reply, d.out, nil
}

// decision is the scratch space of one Decide call.
type decision struct {
	s   *State
	now time.Time
	cid string
	req events.Request
	out []*events.Envelope
	// keeps: note what remember keeps (State.Kept); Decide's alone, so
	// that State.kept is bounded by the events of one command.
	keeps bool

	rolling bool // emitting the rollover grant that opens a new period
	// rem is the customer's remaining as the preflight's rooms saw it
	// (nothing is emitted between them and its reserved event).
	rem events.Units
}

// emit applies an event and appends it to the decision's output. The
// balance inside data is filled in: its period start before applying (it
// drives rollover), the rest after.
func (d *decision) emit(id string, data events.Data) *events.Envelope {
	b := events.BalanceRef(data)
	c := d.s.customers[d.cid]
	if c != nil && b.PeriodStart.IsZero() {
		// budget_set computes the start of its new period itself.
		b.PeriodStart = c.Period.Start(d.now, c.PeriodStart)
	}
	if c != nil && !d.rolling && b.PeriodStart.After(c.PeriodStart) {
		d.rollover(c, b.PeriodStart) // the rollover grant opens the new period
	}
	if id == "" {
		id = d.s.NewID() // after the rollover's: IDs rise in log order
	}
	e := &events.Envelope{ID: id, Type: data.EventType(), V: events.Version, At: d.now, CustomerID: d.cid, Data: data}
	exhausted, period := c != nil && c.Exhausted, time.Time{}
	if c != nil {
		period = c.PeriodStart
	}
	d.s.applyState(e)
	if c = d.s.customers[d.cid]; c != nil {
		*b = c.balance(d.now)
	}
	if raw := d.s.remember(e); raw != nil && d.keeps {
		d.s.kept = append(d.s.kept, Kept{Event: e, Raw: raw})
	}
	d.out = append(d.out, e)
	if exhausted && !c.Exhausted && !c.exhaustedAt(d.now) {
		d.emit("", &events.BudgetRestored{Trigger: restoredBy(e.Type, c.PeriodStart.After(period))})
	}
	return e
}

// restoredBy names what gave an exhausted customer budget again: the
// period rolling over, or the event of type t.
func restoredBy(t events.Type, rolled bool) string {
	switch {
	case rolled:
		return events.TriggerNewPeriod
	case t == events.TypeToppedUp:
		return events.TriggerToppedUp
	case t == events.TypeGranted:
		return events.TriggerGranted
	}
	return events.TriggerBudgetSet
}

// customer returns the customer, creating it from the default budget (with
// a budget_set event) if it is unknown; nil if there is no default.
func (d *decision) customer() *Customer {
	if c := d.s.customers[d.cid]; c != nil {
		return c
	}
	def := d.s.Default
	if def == nil {
		return nil
	}
	start := def.Period.Start(d.now, d.now)
	d.emit("", &events.BudgetSet{
		Limit: def.Limit, Period: string(def.Period), Source: "default",
		Balance: events.Balance{PeriodStart: start},
	})
	return d.s.customers[d.cid]
}

// expireDue expires the customer's overdue holds before a decision, so a
// hold past its deadline never blocks a run while waiting for the sweep.
func (d *decision) expireDue(c *Customer) {
	n := 0
	for i := 0; i < len(c.Open) && n < ExpiriesPerCommandMax; {
		r := c.Open[i]
		if r.ExpiresAt.After(d.now) {
			i++
			continue
		}
		d.emit("", &events.Expired{ReservationID: r.ID, AgentID: r.AgentID, Units: r.Units, ExpiresAt: r.ExpiresAt})
		n++ // r left c.Open; i now points at its successor
	}
}

// prepare brings a customer up to the decision's time before deciding:
// it opens a new period that has started with its rollover grant, if it
// has one, so the first decision of the period can use it (without one,
// the view reads the new period), and expires grants past their expiry.
func (d *decision) prepare(c *Customer) {
	if start := c.Period.Start(d.now, c.PeriodStart); start.After(c.PeriodStart) {
		d.rollover(c, start)
	}
	d.expireGrants(c)
}

// view is a customer's period numbers as of now: if the period has rolled
// over but no event has applied the rollover yet, usage reads as zero.
type view struct {
	c      *Customer
	rolled bool
	now    time.Time
}

func (d *decision) view(c *Customer) view {
	return view{c: c, rolled: c.Period.Start(d.now, c.PeriodStart).After(c.PeriodStart), now: d.now}
}

func (v view) used() events.Units {
	if v.rolled {
		return events.Zero
	}
	return v.c.Used
}

func (v view) topUps() events.Units {
	if v.rolled {
		return events.Zero
	}
	return v.c.TopUps
}

func (v view) grantsUsed() events.Units {
	if v.rolled {
		return events.Zero
	}
	return v.c.grantsUsed()
}

// allowanceLeft is Customer.allowanceLeft with the period's numbers as of
// now.
func (v view) allowanceLeft() events.Units {
	return v.c.Limit.Add(v.topUps()).Sub(v.used().Sub(v.grantsUsed()))
}

// remaining is RemainingAt(now) with the period's numbers as of now.
func (v view) remaining() events.Units {
	return v.allowanceLeft().Add(v.c.grantsLeft(v.now)).Sub(v.c.Reserved)
}

func (v view) agentSpent(id string) events.Units {
	a := v.c.agents.get(id)
	if a == nil {
		return events.Zero
	}
	if v.rolled {
		return a.Reserved
	}
	return a.Used.Add(a.Reserved)
}

func (v view) taskSpent(t *Task) events.Units {
	if v.rolled {
		return t.Reserved
	}
	return t.Used.Add(t.Reserved)
}

// alerts appends threshold_crossed, overdraft_started and budget_exhausted
// events that the customer's new position calls for. Thresholds measure
// the period's allowance (limit and top-ups), not grants.
func (d *decision) alerts(c *Customer, agentID string) {
	denom := c.Limit.Add(c.TopUps)
	if denom.Sign() > 0 {
		consumed := c.Used.Add(c.Reserved)
		for i, f := range c.Thresholds {
			if c.Fired&(1<<i) == 0 && consumed.Cmp(f.Mul(denom)) >= 0 {
				d.emit("", &events.ThresholdCrossed{Fraction: f})
			}
		}
	}
	od := c.overdraft()
	startsOverdraft := od.Sign() > 0 && !c.Overdrafted
	if !startsOverdraft && c.Exhausted {
		return
	}
	// Neither alert below changes what remains: one figure serves both.
	rem := c.RemainingAt(d.now)
	if startsOverdraft && rem.Sign() < 0 {
		d.emit("", &events.OverdraftStarted{AgentID: agentID, Overdraft: od})
	}
	if !c.Exhausted && rem.Add(od).Sign() <= 0 { // exhaustedAt
		d.emit("", &events.BudgetExhausted{Trigger: events.TriggerRemainingZero, AgentID: agentID, UpgradeURL: c.UpgradeURL})
	}
}

// SweepEventsPerExpiryMax bounds the events one expiry of Sweep brings:
// the expiry, and if it opens a new period a rollover grant and a
// budget_restored; after a grant expiry, a budget_exhausted.
const SweepEventsPerExpiryMax = 4

// Sweep expires up to max grants and holds (grants first) whose deadline
// has passed, and returns the events (already applied): at most
// SweepEventsPerExpiryMax*max.
func (s *State) Sweep(now time.Time, max int) []*events.Envelope {
	now = now.UTC()
	out, n := s.sweepGrants(now, max)
	for ; len(s.expiries) > 0 && n < max; n++ {
		top := s.expiries[0]
		if top.at.After(now) {
			break
		}
		heap.Pop(&s.expiries)
		r := s.reservations[top.id]
		if r == nil || !r.ExpiresAt.Equal(top.at) {
			n--
			continue // settled or extended since
		}
		d := &decision{s: s, now: now, cid: r.CustomerID}
		d.emit("", &events.Expired{ReservationID: r.ID, AgentID: r.AgentID, Units: r.Units, ExpiresAt: r.ExpiresAt})
		out = append(out, d.out...)
	}
	return out
}

func (s *State) sweepGrants(now time.Time, max int) ([]*events.Envelope, int) {
	var out []*events.Envelope
	n := 0
	for len(s.grantExpiries) > 0 && n < max {
		top := s.grantExpiries[0]
		if top.at.After(now) {
			break
		}
		heap.Pop(&s.grantExpiries)
		c := s.customers[top.customer]
		if c == nil {
			continue
		}
		g := c.grant(top.id)
		if g == nil || !g.ExpiresAt.Equal(top.at) {
			continue // used up
		}
		d := &decision{s: s, now: now, cid: c.ID}
		d.emit("", &events.GrantExpired{GrantID: g.ID, Units: g.Units, Remaining: g.Remaining, ExpiresAt: g.ExpiresAt})
		if !c.Exhausted && c.exhaustedAt(now) {
			d.emit("", &events.BudgetExhausted{Trigger: events.TriggerRemainingZero, UpgradeURL: c.UpgradeURL})
		}
		out = append(out, d.out...)
		n++
	}
	return out, n
}

// NextExpiry returns the earliest hold or grant deadline, if any (possibly
// stale).
func (s *State) NextExpiry() (time.Time, bool) {
	var at time.Time
	if len(s.expiries) > 0 {
		at = s.expiries[0].at
	}
	if len(s.grantExpiries) > 0 && (at.IsZero() || s.grantExpiries[0].at.Before(at)) {
		at = s.grantExpiries[0].at
	}
	return at, !at.IsZero()
}
