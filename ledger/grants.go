package ledger

import (
	"container/heap"
	"fmt"
	"slices"
	"time"

	"github.com/agentbill/agentbill/events"
)

// Grant is an open credit grant: units a customer can use after its period
// allowance, across periods, until used up or expired.
type Grant struct {
	ID          string
	Units       events.Units // granted
	Remaining   events.Units
	Priority    int
	Source      string
	EffectiveAt time.Time
	ExpiresAt   time.Time // zero: never
	seq         uint64    // grant order, the last tie-break of draw-down
}

// usable reports whether the grant can fund usage at t.
func (g *Grant) usable(t time.Time) bool {
	return !g.EffectiveAt.After(t) && (g.ExpiresAt.IsZero() || t.Before(g.ExpiresAt))
}

// drawsBefore is the draw-down order: priority (lower first), then the
// earliest expiry (a grant that never expires last), then the oldest.
func drawsBefore(a, b *Grant) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if !a.ExpiresAt.Equal(b.ExpiresAt) {
		switch {
		case a.ExpiresAt.IsZero():
			return false
		case b.ExpiresAt.IsZero():
			return true
		}
		return a.ExpiresAt.Before(b.ExpiresAt)
	}
	return a.seq < b.seq
}

// Credits is a customer's open grants, in draw-down order, and what they
// funded this period. Nil for a customer that never had a grant, so an
// idle customer costs a pointer.
type Credits struct {
	Grants []*Grant
	Used   events.Units // this period's usage funded by grants
	seq    uint64       // grants ever applied, for the oldest-first tie-break
}

// grantsLeft is what the grants usable at t have left.
func (c *Customer) grantsLeft(t time.Time) events.Units {
	left := events.Zero
	if c.Credits == nil {
		return left
	}
	first := true
	for _, g := range c.Credits.Grants {
		if g.usable(t) {
			if first {
				left, first = g.Remaining, false // no addition for the common one grant
				continue
			}
			left = left.Add(g.Remaining)
		}
	}
	return left
}

func (c *Customer) grantsUsed() events.Units {
	if c.Credits == nil {
		return events.Zero
	}
	return c.Credits.Used
}

// allowanceLeft is what the period's allowance (limit and top-ups) has
// left; negative once usage past everything was charged to it.
func (c *Customer) allowanceLeft() events.Units {
	return c.Limit.Add(c.TopUps).Sub(c.Used.Sub(c.grantsUsed()))
}

func (c *Customer) grant(id string) *Grant {
	if c.Credits == nil {
		return nil
	}
	for _, g := range c.Credits.Grants {
		if g.ID == id {
			return g
		}
	}
	return nil
}

// draw splits a charge of units at time t, given what the period's
// allowance has left: first the allowance, then grants usable at t in
// draw-down order; what is left after both is charged to the allowance
// too (overage, or overdraft). It returns what each grant funds; it
// changes nothing.
func (c *Customer) draw(units, allowanceLeft events.Units, t time.Time) []events.GrantDraw {
	if c.Credits == nil {
		return nil
	}
	rest := units.Sub(allowanceLeft.NonNegative().Min(units))
	var out []events.GrantDraw
	for _, g := range c.Credits.Grants {
		if rest.Sign() <= 0 {
			break
		}
		if !g.usable(t) || g.Remaining.Sign() <= 0 {
			continue
		}
		take := g.Remaining.Min(rest)
		out = append(out, events.GrantDraw{GrantID: g.ID, Units: take})
		rest = rest.Sub(take)
	}
	return out
}

func (s *State) applyGranted(c *Customer, d *events.Granted) {
	if c.Credits == nil {
		c.Credits = &Credits{}
	}
	c.Credits.seq++
	g := &Grant{
		ID: d.GrantID, Units: d.Units, Remaining: d.Units, Priority: d.Priority, Source: d.Source,
		EffectiveAt: d.EffectiveAt, ExpiresAt: d.ExpiresAt, seq: c.Credits.seq,
	}
	gs := c.Credits.Grants
	i, _ := slices.BinarySearchFunc(gs, g, func(a, b *Grant) int {
		if drawsBefore(a, b) {
			return -1
		}
		return 1
	})
	c.Credits.Grants = slices.Insert(gs, i, g)
	s.pushGrantExpiry(c.ID, g)
}

// applyFunded draws a charge's grant parts. A draw names a grant the
// decision found open, so a missing grant is a broken log: stop.
func applyFunded(c *Customer, funded []events.GrantDraw) {
	for _, f := range funded {
		g := c.grant(f.GrantID)
		if g == nil {
			panic(fmt.Sprintf("agentbill: customer %q charged grant %s, which is not open", c.ID, f.GrantID))
		}
		g.Remaining = g.Remaining.Sub(f.Units)
		c.Credits.Used = c.Credits.Used.Add(f.Units)
		if g.Remaining.IsZero() {
			c.removeGrant(g.ID)
		}
	}
}

func (c *Customer) removeGrant(id string) {
	if c.Credits == nil {
		return
	}
	c.Credits.Grants = slices.DeleteFunc(c.Credits.Grants, func(g *Grant) bool { return g.ID == id })
	if len(c.Credits.Grants) == 0 && c.Credits.Used.IsZero() {
		c.Credits = nil
	}
}

// grantExpiryHeap orders open grants of every customer by expiry, for the
// sweep. Entries of grants used up before they expire are skipped.
type grantExpiryHeap []grantExpiry

type grantExpiry struct {
	at       time.Time
	customer string
	id       string
}

func (h grantExpiryHeap) Len() int { return len(h) }
func (h grantExpiryHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].id < h[j].id
	}
	return h[i].at.Before(h[j].at)
}
func (h grantExpiryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *grantExpiryHeap) Push(x any)   { *h = append(*h, x.(grantExpiry)) }
func (h *grantExpiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (s *State) pushGrantExpiry(customer string, g *Grant) {
	if !g.ExpiresAt.IsZero() {
		heap.Push(&s.grantExpiries, grantExpiry{at: g.ExpiresAt, customer: customer, id: g.ID})
	}
}

// expireGrants emits grant_expired for the customer's grants past their
// expiry at the decision's time, at most GrantExpiriesPerCommandMax.
func (d *decision) expireGrants(c *Customer) {
	if c == nil || c.Credits == nil {
		return
	}
	if h := d.s.grantExpiries; len(h) == 0 || h[0].at.After(d.now) {
		return // every open grant with an expiry has an entry: none anywhere is due
	}
	for n := 0; n < GrantExpiriesPerCommandMax; n++ {
		g := c.expiredGrant(d.now)
		if g == nil {
			return
		}
		d.emit("", &events.GrantExpired{GrantID: g.ID, Units: g.Units, Remaining: g.Remaining, ExpiresAt: g.ExpiresAt})
	}
}

func (c *Customer) expiredGrant(t time.Time) *Grant {
	if c.Credits == nil {
		return nil
	}
	for _, g := range c.Credits.Grants {
		if !g.ExpiresAt.IsZero() && !t.Before(g.ExpiresAt) {
			return g
		}
	}
	return nil
}
