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
			Message: msg, TaskRef: r.TaskRef, Request: d.req})
		return replyOf(d.s, e), nil
	}
	d.expireDue(c)
	if reason, msg := d.refusal(c, r); reason != "" {
		e := d.emit("", &events.Denied{AgentID: r.AgentID, Requested: est, Reason: reason, Message: msg,
			TaskRef: r.TaskRef, UpgradeURL: c.UpgradeURL, Request: d.req})
		if reason == ReasonBudgetExhausted && !c.Exhausted {
			d.emit("", &events.BudgetExhausted{Trigger: events.TriggerRefused, AgentID: r.AgentID, UpgradeURL: c.UpgradeURL})
		}
		return replyOf(d.s, e), nil
	}
	ttl, _ := ParseTTL(r.TTL) // validated
	id := d.s.NewID()
	e := d.emit(id, &events.Reserved{
		ReservationID: id, AgentID: r.AgentID, Units: est, TaskRef: r.TaskRef, TaskCeiling: r.TaskCeiling,
		ExpiresAt: d.now.Add(ttl), Metadata: r.Metadata, Request: d.req,
	})
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

// refusal returns the reason and message for refusing the preflight, or ""
// if it fits every scope: the call's ceiling, the task's ceiling, the
// agent's limit and the customer's period budget, most specific first.
func (d *decision) refusal(c *Customer, r *PreflightRequest) (string, string) {
	est := *r.EstimatedUnits
	v := d.view(c)
	if r.Ceiling != nil && est.Cmp(*r.Ceiling) > 0 {
		return ReasonCeilingExceeded, fmt.Sprintf("%s units requested, above this call's ceiling of %s", est, *r.Ceiling)
	}
	if r.TaskRef != "" {
		t := c.Tasks[r.TaskRef]
		ceiling := r.TaskCeiling
		if ceiling == nil && t != nil {
			ceiling = t.Ceiling
		}
		if ceiling != nil {
			spent := events.Zero
			if t != nil {
				spent = v.taskSpent(t)
			}
			if left := ceiling.Sub(spent); est.Cmp(left) > 0 {
				return ReasonTaskCeilingExceeded, fmt.Sprintf("task %s has %s units left of its ceiling of %s; %s requested",
					r.TaskRef, left.NonNegative(), *ceiling, est)
			}
		}
	}
	if l, ok := c.AgentLimits[r.AgentID]; ok {
		if left := l.Sub(v.agentSpent(r.AgentID)); est.Cmp(left) > 0 {
			return ReasonAgentLimitExceeded, fmt.Sprintf("agent %s of customer %s has %s units left of its %s-unit limit %s; %s requested",
				r.AgentID, d.cid, left.NonNegative(), l, c.Period.phrase(), est)
		}
	}
	if left := v.remaining(); est.Cmp(left) > 0 {
		return ReasonBudgetExhausted, fmt.Sprintf("customer %s has %s units left %s; %s requested",
			d.cid, left.NonNegative(), c.Period.phrase(), est)
	}
	return "", ""
}
