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
	est, pricing, err := d.priceEstimate(r, d.s.customers[d.cid])
	if err != nil {
		return nil, err
	}
	if r.MinUnits != nil && r.MinUnits.Cmp(est) > 0 {
		return nil, invalid("min_units %s is more than the estimate %s", *r.MinUnits, est)
	}
	if pricing != nil {
		r.EstimatedUnits = &est // the rooms below read the priced estimate
	}
	c := d.customer() // may create it from the default budget: no errors after this
	if c == nil {
		msg := fmt.Sprintf("customer %s has no budget and there is no default budget; %s requested", d.cid, est)
		e := d.emit("", &events.Denied{AgentID: r.AgentID, Requested: est, Reason: ReasonNoBudget,
			Message: msg, TaskRef: r.TaskRef, Scope: r.Scope, Request: d.req})
		return replyOf(d.s, e), nil
	}
	d.prepare(c)
	d.expireDue(c)
	sc := scopeOf(r.Scope)
	units, no := d.fit(c, r, sc)
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
		ExpiresAt: d.now.Add(ttl), Metadata: r.Metadata, Scope: r.Scope, CountedScopes: c.counted(sc),
		InOverdraft: d.rem.Cmp(units) < 0 && c.overdraft().Sign() > 0, Request: d.req,
	}
	if units.Cmp(est) < 0 {
		res.Requested = est
	}
	if pricing != nil {
		res.Pricing, res.MaxOutputTokens = pricing, *r.UsageEstimate.MaxOutputTokens
		if units.Cmp(est) < 0 { // partial: the output the smaller hold covers
			res.MaxOutputTokens = d.outputFitting(r, c, units)
		}
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
	if c.agents.get(r.AgentID) == nil && c.agents.len() >= AgentsPerCustomerMax {
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

// roomKind says which limit a room is.
type roomKind uint8

const (
	roomCeiling roomKind = iota
	roomTask
	roomAgent
	roomScope
	roomRuns
	roomCustomer
)

// room is one limit a hold must fit: how much it has left, and what to
// say when it refuses. Rooms are plain values in a reused slice: the
// preflight path allocates nothing for them.
type room struct {
	kind  roomKind
	left  events.Units
	limit events.Units    // the ceiling, task ceiling, agent limit, scope limit or overdraft
	ref   events.ScopeRef // roomScope: the scope value; roomTask: Value is the task
	per   Period          // roomAgent, roomScope, roomCustomer: the period the limit is per
	msg   string          // roomRuns: the whole message
}

// refusal is the room's refusal of a request for want units.
func (rm *room) refusal(d *decision, agentID string, want events.Units) refusal {
	left := rm.left.NonNegative()
	switch rm.kind {
	case roomCeiling:
		return refusal{reason: ReasonCeilingExceeded,
			message: fmt.Sprintf("%s units requested, above this call's ceiling of %s", want, rm.limit)}
	case roomTask:
		return refusal{reason: ReasonTaskCeilingExceeded,
			message: fmt.Sprintf("task %s has %s units left of its ceiling of %s; %s requested", rm.ref.Value, left, rm.limit, want)}
	case roomAgent:
		return refusal{reason: ReasonAgentLimitExceeded,
			message: fmt.Sprintf("agent %s of customer %s has %s units left of its %s-unit limit %s; %s requested",
				agentID, d.cid, left, rm.limit, rm.per.phrase(), want)}
	case roomScope:
		ref := rm.ref
		return refusal{reason: ReasonScopeLimitExceeded, scope: &ref,
			message: fmt.Sprintf("%s %s of customer %s has %s units left of its %s-unit limit %s; %s requested",
				ref.Dimension, ref.Value, d.cid, left, rm.limit, rm.per.phrase(), want)}
	case roomRuns:
		return refusal{reason: ReasonConcurrencyLimitExceeded, message: rm.msg}
	}
	if rm.limit.Sign() > 0 {
		return refusal{reason: ReasonBudgetExhausted, message: fmt.Sprintf(
			"customer %s has %s units left %s, with its overdraft of %s; %s requested", d.cid, left, rm.per.phrase(), rm.limit, want)}
	}
	return refusal{reason: ReasonBudgetExhausted, message: fmt.Sprintf(
		"customer %s has %s units left %s; %s requested", d.cid, left, rm.per.phrase(), want)}
}

// fit decides how many units a preflight may hold: its estimate if that
// fits every limit; if not, and the request has min_units, the most that
// fits everywhere, if that is at least min_units. Otherwise it returns the
// refusal of the most specific limit the request does not fit: the call's
// ceiling, the task's ceiling, the agent's limit, each scope limit (by
// dimension), the run caps, then the customer's budget (its remaining plus
// any overdraft). Every limit is checked in this one step, so no scope can
// be passed by holds decided in between.
func (d *decision) fit(c *Customer, r *PreflightRequest, sc scope) (events.Units, *refusal) {
	est := *r.EstimatedUnits
	need := est
	if r.MinUnits != nil {
		need = *r.MinUnits
	}
	rooms := d.rooms(c, r, sc)
	for i := range rooms {
		if rooms[i].left.Cmp(need) < 0 {
			no := rooms[i].refusal(d, r.AgentID, need)
			return events.Zero, &no
		}
	}
	units := est
	for i := range rooms {
		units = units.Min(rooms[i].left)
	}
	return units, nil
}

// rooms returns every limit the preflight must fit, most specific first,
// in the state's scratch slice (valid until the next decision). sc is the
// request's scope (scopeOf).
func (d *decision) rooms(c *Customer, r *PreflightRequest, sc scope) []room {
	v := d.view(c)
	out := d.s.rooms[:0]
	if r.Ceiling != nil {
		out = append(out, room{kind: roomCeiling, left: *r.Ceiling, limit: *r.Ceiling})
	}
	if r.TaskRef != "" {
		if rm, ok := taskRoom(c, v, r); ok {
			out = append(out, rm)
		}
	}
	if l, ok := c.AgentLimits[r.AgentID]; ok {
		out = append(out, room{kind: roomAgent, left: l.Sub(v.agentSpent(r.AgentID)), limit: l, per: c.Period})
	}
	if len(c.Scopes) > 0 {
		for _, ref := range sc {
			if u := c.Scopes[ref]; u != nil {
				out = append(out, room{kind: roomScope, left: u.Limit.Sub(u.spent(d.now)), limit: u.Limit, ref: ref, per: u.Period})
			}
		}
	}
	if msg := d.runsFull(c, r.AgentID); msg != "" {
		out = append(out, room{kind: roomRuns, left: events.Zero, msg: msg})
	}
	od := c.overdraft()
	d.rem = v.remaining()
	out = append(out, room{kind: roomCustomer, left: d.rem.Add(od), limit: od, per: c.Period})
	d.s.rooms = out
	return out
}

func taskRoom(c *Customer, v view, r *PreflightRequest) (room, bool) {
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
	return room{kind: roomTask, left: ceiling.Sub(spent), limit: *ceiling, ref: events.ScopeRef{Value: r.TaskRef}}, true
}

// runsFull says why the customer, or the agent, may not open another run
// (its run cap is reached), or "".
func (d *decision) runsFull(c *Customer, agentID string) string {
	p := c.Policy
	if p == nil || (p.MaxRuns == 0 && p.MaxRunsPerAgent == 0) {
		return ""
	}
	if p.MaxRuns > 0 && len(c.Open) >= p.MaxRuns {
		return fmt.Sprintf("customer %s has %d runs open, its maximum of concurrent runs; record or release one first",
			d.cid, len(c.Open))
	}
	if p.MaxRunsPerAgent > 0 {
		n := 0
		for _, o := range c.Open {
			if o.AgentID == agentID {
				n++
			}
		}
		if n >= p.MaxRunsPerAgent {
			return fmt.Sprintf("agent %s of customer %s has %d runs open, the maximum per agent; record or release one first",
				agentID, d.cid, n)
		}
	}
	return ""
}
