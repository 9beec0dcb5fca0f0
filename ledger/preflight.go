package ledger

import (
	"fmt"

	"github.com/agentbill/agentbill/events"
)

func (d *decision) preflight(r *PreflightRequest) (Reply, error) {
	if c := d.s.customers[d.cid]; c != nil {
		if err := d.preflightLimits(c, r); err != nil {
			return nil, err
		}
	}
	c := d.customer() // may create it from the default budget: no errors after this
	est := *r.EstimatedUnits
	if c == nil {
		msg := fmt.Sprintf("customer %s has no budget and there is no default budget; %s requested", d.cid, est)
		e := d.emit("", &events.Denied{AgentID: r.AgentID, Requested: est, Reason: ReasonNoBudget,
			Message: msg, TaskRef: r.TaskRef, Scope: r.Scope, Request: d.req})
		return replyOf(d.s, e), nil
	}
	d.prepare(c)
	d.expireDue(c)
	units, no := d.fit(c, r)
	if no != nil {
		e := d.emit("", &events.Denied{AgentID: r.AgentID, Requested: est, Reason: no.reason, Message: no.message,
			TaskRef: r.TaskRef, UpgradeURL: c.UpgradeURL, Scope: r.Scope, RefusedScope: no.scope, Request: d.req})
		if no.reason == ReasonBudgetExhausted && !c.Exhausted {
			d.emit("", &events.BudgetExhausted{Trigger: events.TriggerRefused, AgentID: r.AgentID, UpgradeURL: c.UpgradeURL})
		}
		return replyOf(d.s, e), nil
	}
	ttl, _ := ParseTTL(r.TTL) // validated
	id := d.s.NewID()
	res := &events.Reserved{
		ReservationID: id, AgentID: r.AgentID, Units: units, TaskRef: r.TaskRef, TaskCeiling: r.TaskCeiling,
		ExpiresAt: d.now.Add(ttl), Metadata: r.Metadata, Scope: r.Scope, CountedScopes: c.counted(scopeOf(r.Scope)),
		InOverdraft: c.RemainingAt(d.now).Cmp(units) < 0 && c.overdraft().Sign() > 0, Request: d.req,
	}
	if units.Cmp(est) < 0 {
		res.Requested = est
	}
	e := d.emit(id, res)
	d.alerts(c, r.AgentID)
	return replyOf(d.s, e), nil
}

// preflightLimits refuses, with an error, a preflight that would push the
// customer's tables past their bounds. These are checked before any event.
func (d *decision) preflightLimits(c *Customer, r *PreflightRequest) error {
	if len(c.Open) >= OpenReservationsPerCustomerMax {
		return invalid("customer %s has %d open reservations, the maximum; record or release some first",
			d.cid, len(c.Open))
	}
	if _, ok := c.Agents[r.AgentID]; !ok && len(c.Agents) >= AgentsPerCustomerMax {
		return invalid("customer %s already has %d agents this period, the maximum", d.cid, AgentsPerCustomerMax)
	}
	if r.TaskRef != "" {
		if _, ok := c.Tasks[r.TaskRef]; !ok && len(c.Tasks) >= TasksPerCustomerMax && c.idleTask() < 0 {
			return invalid("customer %s has %d tasks with open reservations, the maximum", d.cid, TasksPerCustomerMax)
		}
	}
	return nil
}

// refusal is why a preflight was refused.
type refusal struct {
	reason  string
	message string
	scope   *events.ScopeRef // the scope limit that refused, for scope_limit_exceeded
}

// room is one limit a hold must fit: how much it has left, and how to say
// so when it refuses.
type room struct {
	left   events.Units
	refuse func(want events.Units) refusal
}

// fit decides how many units a preflight may hold: its estimate if that
// fits every limit; if not, and the request has min_units, the most that
// fits everywhere, if that is at least min_units. Otherwise it returns the
// refusal of the most specific limit the request does not fit: the call's
// ceiling, the task's ceiling, the agent's limit, each scope limit (by
// dimension), the run caps, then the customer's budget (its remaining plus
// any overdraft). Every limit is checked in this one step, so no scope can
// be passed by holds decided in between.
func (d *decision) fit(c *Customer, r *PreflightRequest) (events.Units, *refusal) {
	est := *r.EstimatedUnits
	need := est
	if r.MinUnits != nil {
		need = *r.MinUnits
	}
	rooms := d.rooms(c, r)
	for _, rm := range rooms {
		if rm.left.Cmp(need) < 0 {
			no := rm.refuse(need)
			return events.Zero, &no
		}
	}
	units := est
	for _, rm := range rooms {
		units = units.Min(rm.left)
	}
	return units, nil
}

func (d *decision) rooms(c *Customer, r *PreflightRequest) []room {
	v := d.view(c)
	var out []room
	if r.Ceiling != nil {
		ceiling := *r.Ceiling
		out = append(out, room{left: ceiling, refuse: func(want events.Units) refusal {
			return refusal{reason: ReasonCeilingExceeded,
				message: fmt.Sprintf("%s units requested, above this call's ceiling of %s", want, ceiling)}
		}})
	}
	if r.TaskRef != "" {
		if rm, ok := d.taskRoom(c, v, r); ok {
			out = append(out, rm)
		}
	}
	if l, ok := c.AgentLimits[r.AgentID]; ok {
		left := l.Sub(v.agentSpent(r.AgentID))
		out = append(out, room{left: left, refuse: func(want events.Units) refusal {
			return refusal{reason: ReasonAgentLimitExceeded,
				message: fmt.Sprintf("agent %s of customer %s has %s units left of its %s-unit limit %s; %s requested",
					r.AgentID, d.cid, left.NonNegative(), l, c.Period.phrase(), want)}
		}})
	}
	for _, ref := range scopeOf(r.Scope) {
		if u := c.Scopes[ref]; u != nil {
			out = append(out, d.scopeRoom(ref, u))
		}
	}
	if rm, ok := d.runsRoom(c, r.AgentID); ok {
		out = append(out, rm)
	}
	left, od := v.remaining(), c.overdraft()
	out = append(out, room{left: left.Add(od), refuse: func(want events.Units) refusal {
		msg := fmt.Sprintf("customer %s has %s units left %s; %s requested", d.cid, left.NonNegative(), c.Period.phrase(), want)
		if od.Sign() > 0 {
			msg = fmt.Sprintf("customer %s has %s units left %s, with its overdraft of %s; %s requested",
				d.cid, left.Add(od).NonNegative(), c.Period.phrase(), od, want)
		}
		return refusal{reason: ReasonBudgetExhausted, message: msg}
	}})
	return out
}

func (d *decision) taskRoom(c *Customer, v view, r *PreflightRequest) (room, bool) {
	t := c.Tasks[r.TaskRef]
	ceiling := r.TaskCeiling
	if ceiling == nil && t != nil {
		ceiling = t.Ceiling
	}
	if ceiling == nil {
		return room{}, false
	}
	spent := events.Zero
	if t != nil {
		spent = v.taskSpent(t)
	}
	left, cl := ceiling.Sub(spent), *ceiling
	return room{left: left, refuse: func(want events.Units) refusal {
		return refusal{reason: ReasonTaskCeilingExceeded,
			message: fmt.Sprintf("task %s has %s units left of its ceiling of %s; %s requested",
				r.TaskRef, left.NonNegative(), cl, want)}
	}}, true
}

func (d *decision) scopeRoom(ref events.ScopeRef, u *ScopeUsage) room {
	left := u.Limit.Sub(u.spent(d.now))
	return room{left: left, refuse: func(want events.Units) refusal {
		return refusal{reason: ReasonScopeLimitExceeded, scope: &ref,
			message: fmt.Sprintf("%s %s of customer %s has %s units left of its %s-unit limit %s; %s requested",
				ref.Dimension, ref.Value, d.cid, left.NonNegative(), u.Limit, u.Period.phrase(), want)}
	}}
}

// runsRoom is the run caps as a limit: no room at all when the customer,
// or the agent, already has its maximum of open holds.
func (d *decision) runsRoom(c *Customer, agentID string) (room, bool) {
	p := c.Policy
	if p == nil || (p.MaxRuns == 0 && p.MaxRunsPerAgent == 0) {
		return room{}, false
	}
	full := func(msg string) (room, bool) {
		return room{left: events.Zero, refuse: func(events.Units) refusal {
			return refusal{reason: ReasonConcurrencyLimitExceeded, message: msg}
		}}, true
	}
	if p.MaxRuns > 0 && len(c.Open) >= p.MaxRuns {
		return full(fmt.Sprintf("customer %s has %d runs open, its maximum of concurrent runs; record or release one first",
			d.cid, len(c.Open)))
	}
	if p.MaxRunsPerAgent > 0 {
		n := 0
		for _, o := range c.Open {
			if o.AgentID == agentID {
				n++
			}
		}
		if n >= p.MaxRunsPerAgent {
			return full(fmt.Sprintf("agent %s of customer %s has %d runs open, the maximum per agent; record or release one first",
				agentID, d.cid, n))
		}
	}
	return room{}, false
}
