package ledger

import (
	"container/heap"
	"iter"
	"time"

	"github.com/agentbill/agentbill/events"
)

// DefaultBudget is the budget an unknown customer gets on first use.
type DefaultBudget struct {
	Limit  events.Units
	Period Period
}

// State is every balance the writer owns, in memory. Only Apply changes it
// (Decide and Sweep call Apply for every event they produce).
type State struct {
	customers     map[string]*Customer
	reservations  map[string]*Reservation // open only
	expiries      expiryHeap
	grantExpiries grantExpiryHeap
	idem          window[idemEntry]
	closed        window[closedEntry]
	// rateLimited are the customers whose policy has a rate limit, so
	// that RateLimits reads them and not every customer.
	rateLimited map[string]*Customer

	// Default is the budget given to unknown customers; nil refuses them
	// with no_budget. It is configuration, not state: the budget_set event
	// that applies it records it, so replay does not depend on it.
	Default *DefaultBudget
	// NewID returns a fresh event ID (UUID v7); reservation IDs are the IDs
	// of their reserved events.
	NewID func() string

	events   uint64                // events applied, for assertions and progress
	agentIDs map[string]string     // one copy of each agent ID; not state
	prices   map[string]*priceList // by name; nil until the first prices_set
	rooms    []room                // scratch of Decide's preflight; not state
	hashBuf  []byte                // scratch of requestHash; not state
	idemSlab lazyIdem              // the remembered requests' bytes (remember)
	idemEnc  snapWriter            // scratch of remember; not state
	kept     []Kept                // the last Decide's (Kept); not state
}

// Kept is an event the last Decide remembered, with the bytes its
// idempotency window keeps for it.
type Kept struct {
	Event *events.Envelope
	Raw   []byte
}

// Kept returns the events the last Decide remembered (a subsequence of
// those it returned, in order) and the bytes kept for each: a second
// state that applies the same events in the same order (the writer's
// snapshot shadow, ApplyKept) can keep those bytes instead of encoding
// each event again. The bytes are never changed; the slice is valid until
// the next Decide.
func (s *State) Kept() []Kept { return s.kept }

// NewState returns an empty ledger.
func NewState() *State {
	return &State{
		customers:    make(map[string]*Customer),
		reservations: make(map[string]*Reservation),
		rateLimited:  make(map[string]*Customer),
		idem:         newWindow[idemEntry](IdempotencyKeysMax),
		closed:       newWindow[closedEntry](ClosedReservationsMax),
	}
}

// Customer is one customer's budget and position in its current period.
type Customer struct {
	ID          string
	Limit       events.Units
	Period      Period
	Thresholds  []events.Units
	UpgradeURL  string
	AgentLimits map[string]events.Units

	PeriodStart time.Time
	TopUps      events.Units // this period's
	Used        events.Units // this period's
	Reserved    events.Units // every open hold, whatever period it began in
	agents      agents       // this period's, and any holding a reservation (Agent, Agents)
	Tasks       map[string]*Task
	taskOrder   []string       // tasks in first-use order, for eviction
	Open        []*Reservation // open holds, oldest first

	Exhausted   bool   // budget_exhausted appended this period and not re-armed
	Overdrafted bool   // overdraft_started appended this period
	Fired       uint32 // bit i: Thresholds[i] crossed this period

	Policy  *Policy                         // nil: no overdraft, rollover or run caps
	Credits *Credits                        // nil: no grants
	Scopes  map[events.ScopeRef]*ScopeUsage // limited scope values only

	Unpriced uint64 // records whose usage could not be priced, ever
}

// Policy is a budget's less common settings, kept apart so a customer
// without them costs one pointer.
type Policy struct {
	Overdraft       events.Units // approvals may go this far below zero
	Rollover        string       // "all", a decimal cap, or "" (none)
	RolloverCap     events.Units // Rollover parsed, when it is a cap
	MaxRuns         int          // open holds of the customer; 0: no cap
	MaxRunsPerAgent int          // open holds of one agent; 0: no cap
	PriceList       string       // the price list of its usage; "": default
	// RateLimit is the budget's own preflight rate (enforced by the
	// writer, not decided here); nil: the server's default.
	RateLimit *events.RateLimit
}

func (c *Customer) overdraft() events.Units {
	if c.Policy == nil {
		return events.Zero
	}
	return c.Policy.Overdraft
}

// AgentUsage is one agent's position within its customer.
type AgentUsage struct {
	Used     events.Units // this period's
	Reserved events.Units

	id string // its agent ID (interned)
}

// Task is one task_ref's position within its customer's period.
type Task struct {
	Ceiling  *events.Units
	Used     events.Units
	Reserved events.Units
}

// Reservation is an open hold.
type Reservation struct {
	ID         string
	CustomerID string
	AgentID    string
	TaskRef    string
	Units      events.Units
	ExpiresAt  time.Time
	Scope      scope // sorted by dimension; nil without one
}

// idemEntry is a remembered request. Its hash and op are its event's
// (requestOf), read only when a retry comes. An entry holds only raw, the
// bytes writeIdemEntry writes, until a retry decodes them: a window holds
// up to a million of them, and as decoded events they were the most of
// the heap a replay grows and the collector marks (State.remember,
// snapshot_lazy.go). Read entries through State.remembered.
type idemEntry struct {
	eventID string
	data    events.Data // the event that answered; the reply is rebuilt from it
	period  Period      // the customer's period kind then (the message names it)
	raw     []byte      // not decoded: the other fields are empty
}

// remembered returns the remembered request under the window key key,
// decoded. The error, which only bytes that writeIdemEntry wrote (or a
// snapshot verified and its loader passed) and its decoder refuses could
// cause, is an *Error with code internal.
func (s *State) remembered(key string) (idemEntry, bool, error) {
	e, ok := s.idem.get(key)
	if !ok || e.raw == nil {
		return e, ok, nil
	}
	e, err := decodeRaw(e.raw, key)
	if err != nil {
		return idemEntry{}, false, Errorf(CodeInternal, "remembered request %q does not decode: %v",
			truncate(key, 64), err)
	}
	return e, true, nil
}

type closedEntry struct {
	customerID string
	status     string // StatusRecorded, StatusReleased or StatusExpired
}

// Customers returns how many customers the ledger holds.
func (s *State) Customers() int { return len(s.customers) }

// OpenReservations returns how many holds are open.
func (s *State) OpenReservations() int { return len(s.reservations) }

// EventsApplied returns how many events have been applied.
func (s *State) EventsApplied() uint64 { return s.events }

// RateLimits returns the budgets' own rate limits, by customer.
func (s *State) RateLimits() map[string]events.RateLimit {
	m := make(map[string]events.RateLimit, len(s.rateLimited))
	for id, c := range s.rateLimited {
		m[id] = *c.Policy.RateLimit
	}
	return m
}

// notePolicy keeps rateLimited in step with c's policy.
func (s *State) notePolicy(c *Customer) {
	if c.Policy != nil && c.Policy.RateLimit != nil {
		s.rateLimited[c.ID] = c
	} else {
		delete(s.rateLimited, c.ID)
	}
}

// Customer returns a customer's state, or nil. Callers must not modify it.
func (s *State) Customer(id string) *Customer { return s.customers[id] }

// CustomerIDs calls fn for every customer ID, in no particular order.
func (s *State) CustomerIDs(fn func(id string)) {
	for id := range s.customers {
		fn(id)
	}
}

// RemainingAt is what the customer has left at t: the allowance's rest
// (limit + top-ups - usage it funded), plus what grants usable at t have
// left, minus every hold. Negative after overage or in overdraft.
func (c *Customer) RemainingAt(t time.Time) events.Units {
	return c.allowanceLeft().Add(c.grantsLeft(t)).Sub(c.Reserved)
}

// exhaustedAt reports whether nothing more can be approved at t: the
// remaining, plus any overdraft, is spent.
func (c *Customer) exhaustedAt(t time.Time) bool {
	return c.RemainingAt(t).Add(c.overdraft()).Sign() <= 0
}

// Agent returns the customer's usage of agent id, or nil if it has none.
func (c *Customer) Agent(id string) *AgentUsage { return c.agents.get(id) }

// Agents yields each of the customer's agents and its usage, in no
// particular order.
func (c *Customer) Agents() iter.Seq2[string, *AgentUsage] { return c.agents.all() }

// AgentCount returns how many agents the customer has.
func (c *Customer) AgentCount() int { return c.agents.len() }

// internAgentID returns id, as the first copy of it the ledger kept when
// there is one: agent IDs are few and repeat in every event, and equal
// strings at one address compare without reading their bytes.
func (s *State) internAgentID(id string) string {
	if v, ok := s.agentIDs[id]; ok {
		return v
	}
	if s.agentIDs == nil {
		s.agentIDs = make(map[string]string)
	}
	if len(s.agentIDs) < AgentIDsInternedMax {
		s.agentIDs[id] = id
	}
	return id
}

// task returns the task, creating it (and forgetting the oldest idle task
// if the customer is at TasksPerCustomerMax). Decide refuses a new task
// when no task is idle, so creation here always has room.
func (c *Customer) task(ref string) *Task {
	t := c.Tasks[ref]
	if t != nil {
		return t
	}
	if c.Tasks == nil {
		c.Tasks = make(map[string]*Task)
	}
	if len(c.Tasks) >= TasksPerCustomerMax {
		c.evictIdleTask()
	}
	t = &Task{}
	c.Tasks[ref] = t
	c.taskOrder = append(c.taskOrder, ref)
	return t
}

func (c *Customer) idleTask() int {
	for i, ref := range c.taskOrder {
		if c.Tasks[ref].Reserved.IsZero() {
			return i
		}
	}
	return -1
}

func (c *Customer) evictIdleTask() {
	i := c.idleTask()
	if i < 0 {
		panic("agentbill: task table full with no idle task; Decide must refuse first")
	}
	delete(c.Tasks, c.taskOrder[i])
	c.taskOrder = append(c.taskOrder[:i], c.taskOrder[i+1:]...)
}

// rollTo starts a new period: usage, top-ups and alerts reset; open holds
// keep their hold.
func (c *Customer) rollTo(start time.Time) {
	c.PeriodStart = start
	c.Used, c.TopUps = events.Zero, events.Zero
	c.Exhausted, c.Overdrafted, c.Fired = false, false, 0
	if c.Credits != nil {
		c.Credits.Used = events.Zero
		if len(c.Credits.Grants) == 0 {
			c.Credits = nil
		}
	}
	c.agents.newPeriod()
	order := c.taskOrder[:0]
	for _, ref := range c.taskOrder {
		t := c.Tasks[ref]
		t.Used = events.Zero
		if t.Reserved.IsZero() {
			delete(c.Tasks, ref)
			continue
		}
		order = append(order, ref)
	}
	c.taskOrder = order
}

// balance is the customer's position at t as events record it.
func (c *Customer) balance(t time.Time) events.Balance {
	grants := c.grantsLeft(t)
	rem := c.allowanceLeft().Add(grants).Sub(c.Reserved) // RemainingAt
	b := events.Balance{
		PeriodStart: c.PeriodStart,
		Limit:       c.Limit.Add(c.TopUps),
		TopUps:      c.TopUps,
		Used:        c.Used,
		Reserved:    c.Reserved,
		Remaining:   rem.NonNegative(),
		Grants:      grants,
		GrantsUsed:  c.grantsUsed(),
	}
	if od := c.overdraft(); od.Sign() > 0 {
		b.Overdraft = od
		if rem.Sign() < 0 {
			b.Overdrawn = events.Zero.Sub(rem)
		}
	}
	return b
}

// expiryHeap orders open holds by deadline. Entries go stale when a hold
// is settled or extended; they are skipped when popped.
type expiryHeap []expiryItem

type expiryItem struct {
	at time.Time
	id string
}

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].id < h[j].id
	}
	return h[i].at.Before(h[j].at)
}
func (h expiryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)   { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// expiryCompactMin is the fewest entries the expiry heap holds before
// pushExpiry compacts it.
const expiryCompactMin = 1024

func (s *State) pushExpiry(r *Reservation) {
	if len(s.expiries) >= expiryCompactMin && len(s.expiries) > 2*len(s.reservations) {
		s.compactExpiries()
	}
	heap.Push(&s.expiries, expiryItem{at: r.ExpiresAt, id: r.ID})
}

// compactExpiries drops the heap's stale entries: those of holds settled,
// released or extended since. Only Sweep pops the heap, and a replay never
// sweeps (expiries are events in the log), so without this a replay
// would keep an entry for every hold the log ever opened, and the first
// Sweep after it would pop them all on the writer's loop
// (BenchmarkFirstSweepAfterReplay: 215 ms for 300,000 settled holds, 0.3
// ms compacted). Compacting once stale entries outnumber the
// open holds keeps the heap within twice them, at a constant cost per
// push; Sweep's events do not change, since it skips stale entries and
// orders the rest by deadline and ID alone.
func (s *State) compactExpiries() {
	live := s.expiries[:0]
	for _, it := range s.expiries {
		if r := s.reservations[it.id]; r != nil && r.ExpiresAt.Equal(it.at) {
			live = append(live, it)
		}
	}
	clear(s.expiries[len(live):]) // the dropped entries' IDs are not held
	s.expiries = live
	heap.Init(&s.expiries)
}
