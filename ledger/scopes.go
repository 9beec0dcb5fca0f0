package ledger

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/agentbill/agentbill/events"
)

// A scope names where in a customer's organisation a run belongs: up to
// ScopeDimensionsMax dimensions (team, user, project...) with a value each.
// A budget's scope limits cap the usage of one value of one dimension per
// period. Only scope values with a limit are tracked, so a scope costs
// nothing until it is limited.
//
// Invariant (asserted by the property test): a scope's Reserved is the sum
// of the open holds whose scope has its value, and its Used the charges
// with its value since its period started (or since the limit was set).

// DimensionAgent is reserved: agent limits are the agent dimension, set by
// a budget's agent_limits and matched by the request's agent_id.
const DimensionAgent = "agent"

// ScopeUsage is one limited scope value's position.
type ScopeUsage struct {
	Limit       events.Units
	Period      Period
	PeriodStart time.Time
	Used        events.Units // this scope period's
	Reserved    events.Units // every open hold with this value
}

// scope is a run's scope in canonical form: sorted by dimension.
type scope []events.ScopeRef

func scopeOf(m map[string]string) scope {
	if len(m) == 0 {
		return nil
	}
	out := make(scope, 0, len(m))
	for k, v := range m {
		out = append(out, events.ScopeRef{Dimension: k, Value: v})
	}
	slices.SortFunc(out, func(a, b events.ScopeRef) int { return cmp.Compare(a.Dimension, b.Dimension) })
	return out
}

func (s scope) asMap() map[string]string {
	if len(s) == 0 {
		return nil
	}
	m := make(map[string]string, len(s))
	for _, r := range s {
		m[r.Dimension] = r.Value
	}
	return m
}

// counted returns the refs of s that the customer limits: s itself when
// it limits all of them (scopes are never modified once made).
func (c *Customer) counted(s scope) []events.ScopeRef {
	n := 0
	for _, r := range s {
		if _, ok := c.Scopes[r]; ok {
			n++
		}
	}
	if n == len(s) {
		if n == 0 {
			return nil
		}
		return s
	}
	out := make([]events.ScopeRef, 0, n)
	for _, r := range s {
		if _, ok := c.Scopes[r]; ok {
			out = append(out, r)
		}
	}
	return out
}

// rollScope starts the scope's new period if t is past its current one.
func (u *ScopeUsage) rollTo(t time.Time) {
	if start := u.Period.Start(t, u.PeriodStart); start.After(u.PeriodStart) {
		u.PeriodStart, u.Used = start, events.Zero
	}
}

// spent is used plus reserved as of t (usage reads as zero once the
// scope's period has rolled over, before an event applies it).
func (u *ScopeUsage) spent(t time.Time) events.Units {
	if u.Period.Start(t, u.PeriodStart).After(u.PeriodStart) {
		return u.Reserved
	}
	return u.Used.Add(u.Reserved)
}

// setScopeLimits replaces the customer's scope limits at event time t.
// Usage of a value that stays limited is kept; a newly limited value
// starts its period at t with nothing used, and counts the open holds
// that already have its value.
func (c *Customer) setScopeLimits(limits []events.ScopeLimit, t time.Time) {
	if len(limits) == 0 {
		c.Scopes = nil
		return
	}
	next := make(map[events.ScopeRef]*ScopeUsage, len(limits))
	for _, l := range limits {
		ref := events.ScopeRef{Dimension: l.Dimension, Value: l.Value}
		u := c.Scopes[ref]
		p := Period(l.Period)
		if u == nil || u.Period != p {
			u = &ScopeUsage{Period: p, PeriodStart: p.Start(t, t), Reserved: c.heldIn(ref)}
		}
		u.Limit = l.Limit
		next[ref] = u
	}
	c.Scopes = next
}

func (c *Customer) heldIn(ref events.ScopeRef) events.Units {
	held := events.Zero
	for _, r := range c.Open {
		if slices.Contains(r.Scope, ref) {
			held = held.Add(r.Units)
		}
	}
	return held
}

// holdScopes adds (sign 1) or removes (sign -1) a hold's units from the
// limited scopes its scope names.
func (c *Customer) holdScopes(s scope, units events.Units, sign int) {
	for _, r := range s {
		if u := c.Scopes[r]; u != nil {
			if sign > 0 {
				u.Reserved = u.Reserved.Add(units)
			} else {
				u.Reserved = u.Reserved.Sub(units)
			}
		}
	}
}

// chargeScopes adds a charge at time t to the limited scopes named.
func (c *Customer) chargeScopes(refs []events.ScopeRef, units events.Units, t time.Time) {
	for _, r := range refs {
		if u := c.Scopes[r]; u != nil {
			u.rollTo(t)
			u.Used = u.Used.Add(units)
		}
	}
}

// validateScope checks a request's scope.
func validateScope(m map[string]string) error {
	if len(m) > ScopeDimensionsMax {
		return invalid("scope has %d dimensions, more than %d", len(m), ScopeDimensionsMax)
	}
	valid := true
	for d, v := range m {
		if !validDimension(d) || d == DimensionAgent || events.ValidateID("", v, AgentIDBytesMax) != nil {
			valid = false
			break
		}
	}
	if valid {
		return nil // on every preflight: no sorting, no messages
	}
	for _, r := range scopeOf(m) { // the first problem by dimension, for a stable message
		if err := checkDimension("scope", r.Dimension); err != nil {
			return err
		}
		if err := checkID(fmt.Sprintf("scope value of %s", r.Dimension), r.Value, AgentIDBytesMax, true); err != nil {
			return err
		}
	}
	return nil
}

// validDimension reports whether dim matches ^[a-z][a-z0-9_]{0,31}$.
func validDimension(dim string) bool {
	if len(dim) == 0 || len(dim) > ScopeDimensionBytesMax || dim[0] < 'a' || dim[0] > 'z' {
		return false
	}
	for i := 1; i < len(dim); i++ {
		if c := dim[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func checkDimension(what, dim string) error {
	if !validDimension(dim) {
		return invalid("%s dimension %q must match ^[a-z][a-z0-9_]{0,31}$", what, truncate(dim, 40))
	}
	if dim == DimensionAgent {
		return invalid("%s dimension %q is reserved: the agent is agent_id, and its limit is in agent_limits", what, dim)
	}
	return nil
}

// validateScopeLimits checks a budget's scope limits.
func validateScopeLimits(ls []ScopeLimitRequest) []error {
	var errs []error
	if len(ls) > ScopeLimitsMax {
		return []error{invalid("%d scope limits, more than %d", len(ls), ScopeLimitsMax)}
	}
	seen := make(map[events.ScopeRef]bool, len(ls))
	for _, l := range ls {
		ref := events.ScopeRef{Dimension: l.Dimension, Value: l.Value}
		errs = append(errs,
			checkDimension("scope_limits", l.Dimension),
			checkID("scope_limits value", l.Value, AgentIDBytesMax, true),
			checkAmount(fmt.Sprintf("limit of scope %s=%s", truncate(l.Dimension, 32), truncate(l.Value, 64)), l.Limit, true, false))
		if l.Period != "" {
			_, err := ParsePeriod(l.Period)
			errs = append(errs, err)
		}
		if seen[ref] {
			errs = append(errs, invalid("scope limit %s=%s is listed twice", truncate(l.Dimension, 32), truncate(l.Value, 64)))
		}
		seen[ref] = true
	}
	return errs
}

// sortedScopeLimits returns limits sorted by dimension and value, each with
// its period filled in (the customer's when left out).
func sortedScopeLimits(ls []ScopeLimitRequest, period Period) []events.ScopeLimit {
	if len(ls) == 0 {
		return nil
	}
	out := make([]events.ScopeLimit, len(ls))
	for i, l := range ls {
		out[i] = events.ScopeLimit{Dimension: l.Dimension, Value: l.Value, Limit: *l.Limit, Period: l.Period}
		if out[i].Period == "" {
			out[i].Period = string(period)
		}
	}
	slices.SortFunc(out, func(a, b events.ScopeLimit) int {
		return cmp.Or(cmp.Compare(a.Dimension, b.Dimension), cmp.Compare(a.Value, b.Value))
	})
	return out
}
