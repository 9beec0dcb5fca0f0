package ledger

// The decoding half of the snapshot codec (format: snapshot.go).

import (
	"bufio"
	"bytes"
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/prices"
)

// ReadSnapshot restores a state written by WriteSnapshot, and its meta.
// The whole input is read; anything that does not verify (magic, version,
// bounds, invariants, the SHA-256 trailer, trailing data) is refused with
// an error wrapping ErrInvalidSnapshot, and no state is returned. The
// restored state has no Default and no NewID: set them as for a replay.
func ReadSnapshot(r io.Reader) (*State, SnapshotMeta, error) {
	tr := &trailerReader{r: r, h: sha256.New(), buf: make([]byte, snapshotBufferBytes+sha256.Size)}
	ahead := newReadAhead(tr)
	defer ahead.close()
	d := &snapReader{r: bufio.NewReaderSize(ahead, snapshotBufferBytes), keys: new(keySlabs)}
	s, meta, err := d.state()
	d.keys.close()
	if err != nil {
		return nil, SnapshotMeta{}, fmt.Errorf("%w: %v", ErrInvalidSnapshot, err)
	}
	if err := d.end(tr); err != nil {
		return nil, SnapshotMeta{}, fmt.Errorf("%w: %v", ErrInvalidSnapshot, err)
	}
	meta.Digest = bytes.Clone(tr.buf[:sha256.Size])
	return s, meta, nil
}

func (d *snapReader) state() (*State, SnapshotMeta, error) {
	var meta SnapshotMeta
	magic := d.bytes(len(snapshotMagic))
	switch {
	case d.err != nil && !errors.Is(d.err, io.ErrUnexpectedEOF):
		return nil, meta, fmt.Errorf("reading it: %w", d.err) // the source's own error, e.g. a compressed part's
	case d.err != nil:
		return nil, meta, fmt.Errorf("not a snapshot (bad magic): %w", d.err)
	case string(magic) != snapshotMagic:
		return nil, meta, fmt.Errorf("not a snapshot (bad magic)")
	}
	if v := d.uvarint(); d.err == nil && v != snapshotVersion {
		return nil, meta, fmt.Errorf("version %d, want %d", v, snapshotVersion)
	}
	meta.Seq = d.uvarint()
	meta.Writer = d.str()
	meta.Commit = d.str()
	s := NewState()
	s.events = d.uvarint()
	if d.err != nil {
		return nil, meta, fmt.Errorf("header: %w", d.err)
	}
	indexed := d.customers(s)
	var err error
	if d.err == nil {
		lazy := &lazyIdem{ahead: true}
		s.idem, err = readWindow(d, IdempotencyKeysMax, lazy.read)
		lazy.close()
		if err != nil {
			err = fmt.Errorf("idempotency keys: %w", err)
		} else if s.closed, err = readWindow(d, ClosedReservationsMax, readClosedEntry); err != nil {
			err = fmt.Errorf("closed reservations: %w", err)
		} else if err = d.priceLists(s); err != nil {
			err = fmt.Errorf("price lists: %w", err)
		}
	}
	if err = errors.Join(indexed(), err); err != nil {
		return nil, meta, err
	}
	s.agentIDs = d.agentIDs // the live state interns into them
	return s, meta, nil
}

// customers decodes the customers on this goroutine and indexes them on
// another (the map inserts cost about as much as the decoding: a cache
// miss each), in slabs of snapshotSlabCustomers. The indexing goes on
// while the windows are read; the returned func waits for it. A
// customer's agents are set on the indexing goroutine too (the map of a
// customer with more than one).
func (d *snapReader) customers(s *State) (wait func() error) {
	n := d.uvarint()
	slabs := make(chan *restoredSlab, snapshotSlabsQueued)
	indexed := make(chan error, 1)
	go func() {
		// Made here, as its every group is written empty (faults, when
		// its memory is new) while the first slab is decoded.
		s.customers = make(map[string]*Customer, min(n, snapshotPresizeMax))
		var err error
		for slab := range slabs {
			if err == nil {
				err = s.index(slab)
			}
		}
		if err == nil {
			heap.Init(&s.expiries)
			heap.Init(&s.grantExpiries)
		}
		indexed <- err
	}()
	err := d.decodeCustomers(n, slabs)
	close(slabs)
	if err != nil {
		d.fail(err) // the windows are not read
	}
	return func() error { return errors.Join(err, <-indexed) }
}

// restoredSlab is a slab of decoded customers and their agents, which
// the indexing goroutine puts in maps: customer j's agents are
// agentIDs[agentEnd[j-1]:agentEnd[j]], with their usage at the same
// places in agentUse.
type restoredSlab struct {
	customers []Customer
	agentEnd  []int
	agentIDs  []string
	agentUse  []AgentUsage
}

func (d *snapReader) decodeCustomers(n uint64, slabs chan<- *restoredSlab) error {
	var prev hashedCustomer
	// One allocation per slab: a million small objects cost the allocator
	// and the collector far more than a thousand large. The slabs are
	// made and faulted in on another goroutine (prefault.go), for at most
	// snapshotPresizeMax customers: the count is read before the bytes
	// that would bear it out, and past it next makes each slab itself.
	total := int(min(n, snapshotPresizeMax))
	custSlabs, useSlabs := prefault[Customer](snapshotSlabCustomers, total), prefault[AgentUsage](snapshotSlabCustomers, total)
	defer custSlabs.close()
	defer useSlabs.close()
	for i := uint64(0); i < n && d.err == nil; {
		k := min(n-i, snapshotSlabCustomers)
		slab := &restoredSlab{customers: custSlabs.next()[:k], agentEnd: make([]int, 0, k),
			agentIDs: make([]string, 0, k), agentUse: useSlabs.next()[:0:k]}
		for j := range slab.customers {
			c := &slab.customers[j]
			if err := d.customer(c, slab); err != nil {
				return fmt.Errorf("customer %d: %w", i, err)
			}
			hc := hashedCustomer{h: idHash(c.ID), c: c}
			if i > 0 && compareHashed(prev, hc) >= 0 {
				return fmt.Errorf("customer %q out of order", c.ID)
			}
			prev = hc
			i++
		}
		slabs <- slab
	}
	return d.err
}

// index adds decoded customers, their agents, their open holds and their
// expiring grants to the state's tables (the heaps are ordered once all
// are in).
func (s *State) index(sl *restoredSlab) error {
	slab, from := sl.customers, 0
	for i := range slab {
		c := &slab[i]
		if to := sl.agentEnd[i]; to > from {
			if !c.agents.restore(sl.agentIDs[from:to], sl.agentUse[from:to]) {
				return fmt.Errorf("customer %q: an agent is listed twice", c.ID)
			}
			from = to
		}
		s.customers[c.ID] = c
		s.notePolicy(c)
		for _, r := range c.Open {
			if s.reservations[r.ID] != nil {
				return fmt.Errorf("reservation %s is open twice", r.ID)
			}
			s.reservations[r.ID] = r
			s.expiries = append(s.expiries, expiryItem{at: r.ExpiresAt, id: r.ID})
		}
		if c.Credits != nil {
			for _, g := range c.Credits.Grants {
				if !g.ExpiresAt.IsZero() {
					s.grantExpiries = append(s.grantExpiries, grantExpiry{at: g.ExpiresAt, customer: c.ID, id: g.ID})
				}
			}
		}
	}
	return nil
}

func (d *snapReader) customer(c *Customer, sl *restoredSlab) error {
	c.ID = d.key()
	c.Limit = d.units()
	c.Period = Period(d.oneOf(knownPeriods))
	c.Thresholds = d.unitsList(ThresholdsMax)
	c.UpgradeURL = d.str()
	c.AgentLimits = d.unitsMap(AgentLimitsMax)
	c.PeriodStart = d.time()
	c.TopUps, c.Used, c.Reserved = d.units(), d.units(), d.units()
	agents := len(sl.agentIDs)
	d.agents(sl)
	agents = len(sl.agentIDs) - agents
	agentsReserved := events.Zero
	for _, a := range sl.agentUse[len(sl.agentUse)-agents:] {
		agentsReserved = agentsReserved.Add(a.Reserved)
	}
	d.tasks(c)
	flags := d.byte()
	if flags&^custFlagsAll != 0 {
		d.fail(fmt.Errorf("unknown customer flags %#x", flags))
	}
	c.Exhausted, c.Overdrafted = flags&custExhausted != 0, flags&custOverdrafted != 0
	d.holds(c, flags&custScopedHolds != 0)
	c.Fired = uint32(d.uvarint())
	c.Unpriced = d.uvarint()
	if flags&custPolicy != 0 {
		c.Policy = d.policy()
	}
	if flags&custCredits != 0 {
		c.Credits = d.credits()
	}
	if flags&custScopes != 0 {
		c.Scopes = d.scopeUsage()
	}
	if d.err != nil {
		return d.err
	}
	return checkRestored(c, agents, agentsReserved)
}

// agents appends a customer's agents to the slab (index puts them in the
// customer's map) and ends its range there.
func (d *snapReader) agents(sl *restoredSlab) {
	for range d.count(AgentsPerCustomerMax) {
		id := d.agentID()
		sl.agentIDs = append(sl.agentIDs, id)
		sl.agentUse = append(sl.agentUse, AgentUsage{Used: d.units(), Reserved: d.units()})
	}
	sl.agentEnd = append(sl.agentEnd, len(sl.agentIDs))
}

func (d *snapReader) tasks(c *Customer) {
	if n := d.count(TasksPerCustomerMax); n > 0 {
		c.Tasks, c.taskOrder = make(map[string]*Task, n), make([]string, 0, n)
		for range n {
			ref, t := d.str(), &Task{Ceiling: d.unitsPtr()}
			t.Used, t.Reserved = d.units(), d.units()
			c.Tasks[ref], c.taskOrder = t, append(c.taskOrder, ref)
		}
	}
}

func (d *snapReader) holds(c *Customer, scoped bool) {
	n := d.count(OpenReservationsPerCustomerMax)
	if n == 0 {
		return
	}
	c.Open = make([]*Reservation, n)
	for i := range c.Open {
		r := &Reservation{ID: d.str(), CustomerID: c.ID, AgentID: d.agentID(), TaskRef: d.str(),
			Units: d.units(), ExpiresAt: d.time()}
		if scoped {
			r.Scope = d.holdScope()
		}
		c.Open[i] = r
	}
}

func (d *snapReader) policy() *Policy {
	return &Policy{Overdraft: d.units(), Rollover: d.str(), RolloverCap: d.units(),
		MaxRuns:         d.intUpTo("max_concurrent_runs", ConcurrentRunsMax),
		MaxRunsPerAgent: d.intUpTo("max_concurrent_runs_per_agent", ConcurrentRunsMax),
		RateLimit:       d.rateLimit(), PriceList: d.str()}
}

// rateLimit reads what snapWriter.rateLimit wrote, and checks it as a
// request's.
func (d *snapReader) rateLimit() *events.RateLimit {
	if d.byte() == 0 {
		return nil
	}
	r := &events.RateLimit{PerSecond: d.units(), Burst: d.intUpTo("rate_limit burst", RateBurstMax)}
	if err := ValidateRateLimit(r); err != nil {
		d.fail(fmt.Errorf("customer rate limit: %w", err))
	}
	return r
}

// credits reads what snapWriter.credits wrote; checkRestored checks the
// order and the amounts.
func (d *snapReader) credits() *Credits {
	cr := &Credits{seq: d.uvarint(), Used: d.units()}
	n := d.count(GrantsHeldMax)
	if n == 0 {
		return cr
	}
	cr.Grants = make([]*Grant, n)
	for i := range cr.Grants {
		cr.Grants[i] = &Grant{ID: d.str(), Units: d.units(), Remaining: d.units(), Priority: d.intUpTo("priority", GrantPriorityMax),
			Source: d.str(), EffectiveAt: d.time(), ExpiresAt: d.time(), seq: d.uvarint()}
	}
	return cr
}

// scopeUsage reads the limited scope values, which must be in the order
// snapWriter.scopeUsage writes (which also rules out repeats).
func (d *snapReader) scopeUsage() map[events.ScopeRef]*ScopeUsage {
	n := d.count(ScopeLimitsMax)
	m := make(map[events.ScopeRef]*ScopeUsage, n)
	var prev events.ScopeRef
	for i := 0; i < n && d.err == nil; i++ {
		r := events.ScopeRef{Dimension: d.str(), Value: d.str()}
		if i > 0 && compareRefs(prev, r) >= 0 {
			d.fail(fmt.Errorf("scope %s=%s out of order", truncate(r.Dimension, 32), truncate(r.Value, 64)))
		}
		m[r] = &ScopeUsage{Limit: d.units(), Period: Period(d.oneOf(knownPeriods)), PeriodStart: d.time(),
			Used: d.units(), Reserved: d.units()}
		prev = r
	}
	return m
}

// holdScope reads a hold's scope: at most ScopeDimensionsMax refs, sorted
// by dimension, each dimension once (scopeOf's form).
func (d *snapReader) holdScope() scope {
	s := d.scopeRefs()
	for i := 1; i < len(s); i++ {
		if s[i-1].Dimension >= s[i].Dimension {
			d.fail(fmt.Errorf("scope dimension %q out of order", truncate(s[i].Dimension, 32)))
		}
	}
	return s
}

// scopeRefs reads a list of at most ScopeDimensionsMax scope refs.
func (d *snapReader) scopeRefs() []events.ScopeRef {
	n := d.count(ScopeDimensionsMax)
	if n == 0 {
		return nil
	}
	s := make([]events.ScopeRef, n)
	for i := range s {
		s[i] = events.ScopeRef{Dimension: d.str(), Value: d.str()}
	}
	return s
}

// checkRestored asserts a restored customer's invariants: the tables are
// consistent, every hold is counted once (in the customer, its agent and
// its task, and in each limited scope it names), and grants hold what the
// ledger could have left them. Its agents are not in its map yet: agents
// is their count and agentsReserved what they hold.
func checkRestored(c *Customer, agents int, agentsReserved events.Units) error {
	if err := events.ValidateCustomerID(c.ID); err != nil {
		return err
	}
	if len(c.Tasks) != len(c.taskOrder) {
		return fmt.Errorf("customer %q: a task is listed twice", c.ID)
	}
	if err := checkRestoredHolds(c, agents, agentsReserved); err != nil {
		return err
	}
	if err := checkRestoredScopes(c); err != nil {
		return err
	}
	return checkRestoredCredits(c)
}

// checkRestoredHolds: the customer's reserved is what its open holds sum
// to, and what its agents' holds sum to.
func checkRestoredHolds(c *Customer, agentCount int, agents events.Units) error {
	if len(c.Open) == 0 && agentCount == 0 {
		if !c.Reserved.IsZero() {
			return fmt.Errorf("customer %q: reserved %s with no open hold", c.ID, c.Reserved)
		}
		return nil
	}
	held := events.Zero
	for _, r := range c.Open {
		held = held.Add(r.Units)
	}
	if held.Cmp(c.Reserved) != 0 || agents.Cmp(c.Reserved) != 0 {
		return fmt.Errorf("customer %q: reserved %s, open holds sum to %s, agents' holds to %s", c.ID, c.Reserved, held, agents)
	}
	return nil
}

// checkRestoredScopes: each limited scope's reserved is the sum of the open
// holds whose scope names it.
func checkRestoredScopes(c *Customer) error {
	if len(c.Scopes) == 0 {
		return nil
	}
	held := make(map[events.ScopeRef]events.Units, len(c.Scopes))
	for _, r := range c.Open {
		for _, ref := range r.Scope {
			if _, ok := c.Scopes[ref]; ok {
				held[ref] = held[ref].Add(r.Units)
			}
		}
	}
	for ref, u := range c.Scopes {
		if u.Used.Sign() < 0 || u.Reserved.Cmp(held[ref]) != 0 {
			return fmt.Errorf("customer %q: scope %s=%s has used %s, reserved %s; its open holds sum to %s",
				c.ID, truncate(ref.Dimension, 32), truncate(ref.Value, 64), u.Used, u.Reserved, held[ref])
		}
	}
	return nil
}

// checkRestoredCredits: grants are in draw-down order with distinct IDs and
// counters, each has 0 <= remaining <= units, and grants funded at most
// the period's usage.
func checkRestoredCredits(c *Customer) error {
	cr := c.Credits
	if cr == nil {
		return nil
	}
	if cr.Used.Sign() < 0 || cr.Used.Cmp(c.Used) > 0 {
		return fmt.Errorf("customer %q: grants funded %s of %s used", c.ID, cr.Used, c.Used)
	}
	ids := make(map[string]bool, len(cr.Grants))
	for i, g := range cr.Grants {
		switch {
		case g.Remaining.Sign() < 0 || g.Remaining.Cmp(g.Units) > 0:
			return fmt.Errorf("customer %q: grant %s has %s of %s left", c.ID, g.ID, g.Remaining, g.Units)
		case g.seq == 0 || g.seq > cr.seq:
			return fmt.Errorf("customer %q: grant %s is number %d of %d", c.ID, g.ID, g.seq, cr.seq)
		case i > 0 && !drawsBefore(cr.Grants[i-1], g):
			return fmt.Errorf("customer %q: grant %s is out of draw-down order", c.ID, g.ID)
		case ids[g.ID]:
			return fmt.Errorf("customer %q: grant %s is listed twice", c.ID, g.ID)
		}
		ids[g.ID] = true
	}
	return nil
}

// restoredEntry is a window entry read, on its way to the window's index.
type restoredEntry struct{ hash, seq uint64 }

// readWindow reads a window; the entries' hashes go into its index on
// another goroutine, as customers do. A key listed twice is refused.
func readWindow[V any](d *snapReader, max int, value func(*snapReader, string) (V, error)) (w window[V], err error) {
	w = newWindow[V](max)
	n := d.uvarint()
	if d.err == nil && n > uint64(max) {
		return w, fmt.Errorf("%d keys, more than %d", n, max)
	}
	// Whole blocks, as push makes (the last one too: pushes after the
	// restore fill it).
	blocks := (int(min(n, snapshotPresizeMax)) + windowBlockKeys - 1) / windowBlockKeys
	w.order.made = prefault[windowEntry[V]](windowBlockKeys, blocks*windowBlockKeys)
	var index hashIndex // made by the indexing goroutine
	batches := make(chan []restoredEntry, snapshotSlabsQueued)
	shared := make(chan []restoredEntry, 1)
	go func() {
		// Made here, so that its tables' new memory is faulted in by
		// this goroutine's puts while the first entries are read.
		index = newHashIndex(int(min(n, snapshotPresizeMax)))
		// An entry whose hash an earlier one has is chained after the
		// read, with its key compared: a key listed twice, or (rarely)
		// two keys of one hash.
		var again []restoredEntry
		for b := range batches {
			for _, r := range b {
				if index.get(r.hash) != 0 {
					again = append(again, r)
					continue
				}
				index.set(r.hash, r.seq+1)
			}
		}
		shared <- again
	}()
	batch := make([]restoredEntry, 0, min(n, snapshotSlabCustomers))
	defer func() {
		if len(batch) > 0 {
			batches <- batch
		}
		close(batches)
		w.order.made.close()
		w.order.made = nil
		again := <-shared
		w.index = index
		for _, r := range again {
			if err != nil {
				break
			}
			e := w.order.at(r.seq)
			if w.find(e.key, r.hash) != nil {
				err = fmt.Errorf("key %q is listed twice", e.key)
				break
			}
			e.prev = w.index.get(r.hash)
			w.index.set(r.hash, r.seq+1)
		}
	}()
	for i := uint64(0); i < n && d.err == nil; i++ {
		key, at := d.key(), d.time()
		v, err := value(d, key)
		if err != nil {
			return w, fmt.Errorf("key %q: %w", key, err)
		}
		h := w.hash(key)
		seq := w.order.push(windowEntry[V]{key: key, at: at, hash: h, v: v})
		if batch = append(batch, restoredEntry{hash: h, seq: seq}); len(batch) == snapshotSlabCustomers {
			batches <- batch
			batch = make([]restoredEntry, 0, snapshotSlabCustomers)
		}
	}
	return w, d.err
}

var closedStatuses = []string{StatusRecorded, StatusReleased, StatusExpired}

func readClosedEntry(d *snapReader, _ string) (closedEntry, error) {
	v := closedEntry{customerID: d.key()}
	v.status = d.oneOf(closedStatuses)
	return v, d.err
}

// snapReader decodes from a buffered reader; the first error sticks and
// every later read returns zero values.
type snapReader struct {
	r   *bufio.Reader
	err error
	// With recording on, every byte read is also appended to rec
	// (lazyIdem keeps a remembered request's bytes this way).
	recording bool
	rec       []byte
	// keys, if set, holds the strings key reads (keySlabs); agentIDs
	// interns the agent IDs read.
	keys     *keySlabs
	agentIDs map[string]string
}

// key reads a string that lives as long as the entry it keys: a
// customer's ID, a window's key, a closed reservation's customer.
func (d *snapReader) key() string {
	if d.keys == nil {
		return d.str()
	}
	n := d.length()
	if n == 0 {
		return ""
	}
	b := d.bytes(n)
	if d.err != nil {
		return ""
	}
	return d.keys.keep(b)
}

// agentID reads an agent ID, interned: a million customers run a few
// agents.
func (d *snapReader) agentID() string {
	b := d.bytes(d.length())
	if d.err != nil {
		return ""
	}
	if id, ok := d.agentIDs[string(b)]; ok {
		return id
	}
	id := string(b)
	if d.agentIDs == nil {
		d.agentIDs = make(map[string]string)
	}
	if len(d.agentIDs) < AgentIDsInternedMax {
		d.agentIDs[id] = id
	}
	return id
}

func (d *snapReader) fail(err error) {
	if d.err == nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
	}
}

func (d *snapReader) byte() byte {
	if d.err != nil {
		return 0
	}
	b, err := d.r.ReadByte()
	if err != nil {
		d.fail(err)
	} else if d.recording {
		d.rec = append(d.rec, b)
	}
	return b
}

func (d *snapReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	b, _ := d.r.Peek(binary.MaxVarintLen64) // fewer near the end
	v, n := binary.Uvarint(b)
	if n <= 0 {
		d.fail(varintError(n, len(b)))
		return 0
	}
	if d.recording {
		d.rec = append(d.rec, b[:n]...)
	}
	_, _ = d.r.Discard(n)
	return v
}

// varint reads a signed varint: zigzag over an unsigned one, as
// binary.AppendVarint writes it.
func (d *snapReader) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func varintError(n, avail int) error {
	if n == 0 && avail < binary.MaxVarintLen64 {
		return io.ErrUnexpectedEOF
	}
	return fmt.Errorf("varint overflows 64 bits")
}

// count reads a table size, at most max.
func (d *snapReader) count(max int) int {
	n := d.uvarint()
	if n > uint64(max) {
		d.fail(fmt.Errorf("table of %d entries, more than %d", n, max))
		return 0
	}
	return int(n)
}

// intUpTo reads a setting that is an integer in 0..max (a run cap, a
// grant's priority).
func (d *snapReader) intUpTo(what string, max int) int {
	n := d.uvarint()
	if n > uint64(max) {
		d.fail(fmt.Errorf("%s %d is more than %d", what, n, max))
		return 0
	}
	return int(n)
}

// length reads a string length, at most snapshotStringBytesMax.
func (d *snapReader) length() int { return d.count(snapshotStringBytesMax) }

// bytes returns the next n bytes; valid until the next read.
func (d *snapReader) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n <= d.r.Size() {
		b, err := d.r.Peek(n)
		if err != nil {
			d.fail(err)
			return nil
		}
		_, _ = d.r.Discard(n)
		if d.recording {
			d.rec = append(d.rec, b...)
		}
		return b
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.fail(err)
		return nil
	}
	if d.recording {
		d.rec = append(d.rec, b...)
	}
	return b
}

func (d *snapReader) str() string {
	n := d.length()
	if n == 0 {
		return ""
	}
	return string(d.bytes(n))
}

// oneOf reads a string that must be one of known, and returns the known
// one it equals, without allocating. Any other string fails the read.
func (d *snapReader) oneOf(known []string) string {
	b := d.bytes(d.length())
	if d.err != nil {
		return ""
	}
	for _, k := range known {
		if string(b) == k {
			return k
		}
	}
	d.fail(fmt.Errorf("unknown value %q, want one of %q", truncate(string(b), 16), known))
	return ""
}

func (d *snapReader) time() time.Time {
	sec, nsec := d.varint(), d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		d.fail(fmt.Errorf("time with %d nanoseconds", nsec))
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// units reads an amount from its canonical text, exactly. Amounts of at
// most 18 digits (all but running totals past 10^18) take a fast path;
// both paths enforce the bounds of any amount in the log.
func (d *snapReader) units() events.Units {
	b := d.bytes(d.length())
	if d.err != nil {
		return events.Zero
	}
	if u, ok := smallUnits(b); ok {
		return u
	}
	var u events.Units
	if err := u.UnmarshalJSON(b); err != nil {
		d.fail(err)
	}
	return u
}

// smallUnits parses "digits[.digits]" of at most 18 digits into the same
// reduced value events.ParseUnits would return.
func smallUnits(b []byte) (events.Units, bool) {
	var coeff int64
	exp, digits, dot := int32(0), 0, -1
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			coeff = coeff*10 + int64(c-'0')
			digits++
			if dot >= 0 {
				exp--
			}
		case c == '.' && dot < 0 && i > 0 && i < len(b)-1:
			dot = i
		default:
			return events.Units{}, false
		}
	}
	if digits == 0 || digits > 18 || (b[0] == '0' && len(b) > 1 && b[1] != '.') {
		return events.Units{}, false
	}
	if coeff == 0 {
		return events.Zero, true
	}
	for coeff%10 == 0 {
		coeff /= 10
		exp++
	}
	return events.NewUnits(coeff, exp), true
}

// end checks that the input ends right after the payload with the trailer,
// and that the trailer is the SHA-256 of everything before it.
func (d *snapReader) end(tr *trailerReader) error {
	if _, err := d.r.ReadByte(); err == nil {
		return fmt.Errorf("data after the state")
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	if tr.n != sha256.Size {
		return fmt.Errorf("truncated: no trailer")
	}
	if !bytes.Equal(tr.buf[:sha256.Size], tr.h.Sum(nil)) {
		return fmt.Errorf("SHA-256 does not match: the snapshot is corrupt")
	}
	return nil
}

// trailerReader passes its input through except the last sha256.Size
// bytes (the trailer), which it holds back, hashing what it passes.
type trailerReader struct {
	r   io.Reader
	h   hash.Hash
	buf []byte // buf[:n] read and not yet passed
	n   int
	eof bool
}

func (t *trailerReader) Read(p []byte) (int, error) {
	for {
		if t.n > sha256.Size && len(p) > 0 {
			k := copy(p, t.buf[:t.n-sha256.Size])
			t.h.Write(p[:k])
			t.n = copy(t.buf, t.buf[k:t.n])
			return k, nil
		}
		if len(p) == 0 {
			return 0, nil
		}
		if t.eof {
			return 0, io.EOF
		}
		m, err := t.r.Read(t.buf[t.n:])
		t.n += m
		if errors.Is(err, io.EOF) {
			t.eof = true
		} else if err != nil {
			return 0, err
		}
	}
}

// priceLists reads what writePriceLists wrote, parsing each list again
// (a snapshot is checked as strictly as the log).
func (d *snapReader) priceLists(s *State) error {
	n := d.count(prices.ListsMax)
	for range n {
		name, digest, at, body := d.str(), d.str(), d.time(), d.raw()
		if d.err != nil {
			return d.err
		}
		l, err := prices.Parse(body)
		if err != nil || l.Name != name {
			return fmt.Errorf("price list %q does not parse: %v", name, err)
		}
		if s.prices == nil {
			s.prices = make(map[string]*priceList)
		}
		s.prices[name] = &priceList{list: l, digest: digest, setAt: at, body: body}
	}
	return d.err
}
