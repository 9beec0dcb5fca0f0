package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agentbill/agentbill/events"
)

// A remembered request holds the event that answered it, and a window can
// hold millions of them, so the snapshot writes those events in a compact
// binary form rather than their JSON: measured on 2,000,000 keys, JSON was
// ~550 bytes and ~8 us per key to write and read back. Every field of
// every event type that can answer a request is written;
// TestSnapshotEventCodecCoversEveryField fails if a field is added to
// events without being added here.

// Event data kinds in a snapshot.
const (
	snapBudgetSet byte = 1 + iota
	snapToppedUp
	snapReserved
	snapDenied
	snapRecorded
	snapReleased
	snapExtended
	snapGranted
)

// Flags of a remembered request: which of its event's fields equal others
// written already, and are therefore written once; and which fields follow
// that most events leave zero (so a remembered request of a customer
// without grants, scopes or overdraft costs no more than before them).
const (
	idemSameKey    byte = 1 << iota // the window key's key part == data's IdempotencyKey
	idemIDIsEvent                   // a reserved event's ReservationID, a granted event's GrantID, == its event ID
	idemDataExt                     // the event's fields of scopes, grants and overdraft follow (dataExt)
	idemBalanceExt                  // the balance's grants, grants_used, overdraft and overdrawn follow
	idemPriced                      // the event's fields of priced usage follow, as JSON (pricedExt)
	idemFlagsAll   = idemPriced<<1 - 1
)

// writeIdemEntry writes a remembered request: its event ID, the period
// kind then, and the event that answered it (which holds its hash and op).
func writeIdemEntry(e *snapWriter, key string, v idemEntry) error {
	if v.raw != nil {
		// Restored from a snapshot and not decoded since: these are the
		// bytes this function wrote then (lazyIdem), and ReadSnapshot
		// reads only snapshotVersion. A version that changes the layout
		// of a remembered request must decode raw here and write it anew.
		e.b = append(e.b, v.raw...)
		return nil
	}
	if v.data == nil {
		return fmt.Errorf("snapshot: idempotency key %q has no event", key)
	}
	_, k, _ := strings.Cut(key, "\x00")
	flags := idemFlags(v.data, k, v.eventID)
	e.b = append(e.b, flags)
	e.str(v.eventID)
	e.str(string(v.period))
	if err := e.eventData(v.data, flags); err != nil {
		return fmt.Errorf("snapshot: idempotency key %q: %w", key, err)
	}
	return nil
}

// idemFlags returns the flags of a remembered event whose window key has
// the key part key.
func idemFlags(d events.Data, key, eventID string) byte {
	var flags byte
	if req, _ := requestOf(d); key == req.IdempotencyKey {
		flags |= idemSameKey
	}
	switch v := d.(type) {
	case *events.Reserved:
		if v.ReservationID == eventID {
			flags |= idemIDIsEvent
		}
	case *events.Granted:
		if v.GrantID == eventID {
			flags |= idemIDIsEvent
		}
	}
	if dataExt(d) {
		flags |= idemDataExt
	}
	if b := events.BalanceOf(d); !b.Grants.IsZero() || !b.GrantsUsed.IsZero() || !b.Overdraft.IsZero() || !b.Overdrawn.IsZero() {
		flags |= idemBalanceExt
	}
	if pricedOf(d) != (pricedExt{}) {
		flags |= idemPriced
	}
	return flags
}

// dataExt reports whether any of an event's fields that came with grants,
// scopes and overdraft is set. TestSnapshotEventCodecKeepsEachField fails
// if one is missing here.
func dataExt(d events.Data) bool {
	switch v := d.(type) {
	case *events.BudgetSet:
		return v.Rollover != "" || v.Overdraft != nil || len(v.ScopeLimits) > 0 || v.MaxRuns != 0 || v.MaxRunsPerAgent != 0 ||
			v.RateLimit != nil
	case *events.Reserved:
		return len(v.Scope) > 0 || len(v.CountedScopes) > 0 || !v.Requested.IsZero() || v.InOverdraft
	case *events.Denied:
		return len(v.Scope) > 0 || v.RefusedScope != nil
	case *events.Recorded:
		return len(v.Scope) > 0 || len(v.CountedScopes) > 0 || len(v.FundedBy) > 0
	}
	return false
}

func readIdemEntry(d *snapReader, key string) (idemEntry, error) {
	flags := d.byte()
	if flags&^idemFlagsAll != 0 {
		d.fail(fmt.Errorf("unknown flags %#x", flags))
	}
	v := idemEntry{eventID: d.str(), period: Period(d.oneOf(knownPeriods))}
	_, k, _ := strings.Cut(key, "\x00")
	v.data = d.eventData(flags, k, v.eventID)
	return v, d.err
}

// eventData writes an event that answers requests: every field, those of
// dataExt only with idemDataExt.
func (e *snapWriter) eventData(d events.Data, flags byte) error {
	if err := checkEventTables(d); err != nil {
		return err
	}
	switch v := d.(type) {
	case *events.BudgetSet:
		e.budgetSet(v, flags)
	case *events.ToppedUp:
		e.b = append(e.b, snapToppedUp)
		e.units(v.Units)
		e.str(v.Note)
	case *events.Reserved:
		e.reserved(v, flags)
	case *events.Denied:
		e.denied(v, flags)
	case *events.Recorded:
		e.recorded(v, flags)
	case *events.Released:
		e.b = append(e.b, snapReleased)
		e.strs(v.ReservationID, v.AgentID)
		e.units(v.Units)
		e.str(v.Cause)
	case *events.Extended:
		e.b = append(e.b, snapExtended)
		e.strs(v.ReservationID, v.AgentID)
		e.time(v.ExpiresAt)
	case *events.Granted:
		e.granted(v, flags)
	default:
		return fmt.Errorf("a %T event answers no request", d)
	}
	if flags&idemPriced != 0 {
		b, err := json.Marshal(pricedOf(d))
		if err != nil {
			return err
		}
		e.raw(b)
	}
	req, _ := requestOf(d)
	e.request(req, flags)
	e.balance(events.BalanceOf(d), flags)
	return nil
}

func (e *snapWriter) budgetSet(v *events.BudgetSet, flags byte) {
	e.b = append(e.b, snapBudgetSet)
	e.units(v.Limit)
	e.str(v.Period)
	e.unitsList(v.Thresholds)
	e.str(v.UpgradeURL)
	e.unitsMap(v.AgentLimits)
	e.str(v.Source)
	if flags&idemDataExt != 0 {
		e.str(v.Rollover)
		e.unitsPtr(v.Overdraft)
		e.scopeLimits(v.ScopeLimits)
		e.int(v.MaxRuns)
		e.int(v.MaxRunsPerAgent)
		e.rateLimit(v.RateLimit)
	}
}

func (e *snapWriter) denied(v *events.Denied, flags byte) {
	e.b = append(e.b, snapDenied)
	e.str(v.AgentID)
	e.units(v.Requested)
	e.strs(v.Reason, v.Message, v.TaskRef, v.UpgradeURL)
	if flags&idemDataExt != 0 {
		e.strMap(v.Scope)
		e.scopeRefPtr(v.RefusedScope)
	}
}

func (e *snapWriter) reserved(v *events.Reserved, flags byte) {
	e.b = append(e.b, snapReserved)
	if flags&idemIDIsEvent == 0 {
		e.str(v.ReservationID)
	}
	e.str(v.AgentID)
	e.units(v.Units)
	e.str(v.TaskRef)
	e.unitsPtr(v.TaskCeiling)
	e.time(v.ExpiresAt)
	e.raw(v.Metadata)
	if flags&idemDataExt != 0 {
		e.strMap(v.Scope)
		e.scopeRefs(v.CountedScopes)
		e.units(v.Requested)
		e.bool(v.InOverdraft)
	}
}

func (e *snapWriter) recorded(v *events.Recorded, flags byte) {
	e.b = append(e.b, snapRecorded)
	e.strs(v.AgentID, v.ReservationID)
	e.units(v.HeldUnits)
	e.units(v.Units)
	e.units(v.Released)
	e.units(v.Overage)
	e.str(v.TaskRef)
	e.raw(v.Metadata)
	if flags&idemDataExt != 0 {
		e.strMap(v.Scope)
		e.scopeRefs(v.CountedScopes)
		e.grantDraws(v.FundedBy)
	}
}

func (e *snapWriter) granted(v *events.Granted, flags byte) {
	e.b = append(e.b, snapGranted)
	if flags&idemIDIsEvent == 0 {
		e.str(v.GrantID)
	}
	e.units(v.Units)
	e.int(v.Priority)
	e.strs(v.Source, v.Note)
	e.time(v.EffectiveAt)
	e.time(v.ExpiresAt)
}

// checkEventTables refuses to write an event whose lists are past the
// bounds the reader enforces.
func checkEventTables(d events.Data) error {
	var sc map[string]string
	var limits, counted, funded int
	switch v := d.(type) {
	case *events.BudgetSet:
		limits = len(v.ScopeLimits)
	case *events.Reserved:
		sc, counted = v.Scope, len(v.CountedScopes)
	case *events.Denied:
		sc = v.Scope
	case *events.Recorded:
		sc, counted, funded = v.Scope, len(v.CountedScopes), len(v.FundedBy)
	}
	if limits > ScopeLimitsMax || len(sc) > ScopeDimensionsMax || counted > ScopeDimensionsMax || funded > GrantsHeldMax {
		return fmt.Errorf("a %T event's list is past its bound: %d scope limits, %d scope dimensions, %d counted scopes, %d grants drawn",
			d, limits, len(sc), counted, funded)
	}
	return nil
}

func (d *snapReader) eventData(flags byte, key, eventID string) events.Data {
	var v events.Data
	switch kind := d.byte(); kind {
	case snapBudgetSet:
		v = d.budgetSet(flags)
	case snapToppedUp:
		v = &events.ToppedUp{Units: d.units(), Note: d.str()}
	case snapReserved:
		v = d.reserved(flags, eventID)
	case snapDenied:
		v = d.denied(flags)
	case snapRecorded:
		v = d.recorded(flags)
	case snapReleased:
		v = &events.Released{ReservationID: d.str(), AgentID: d.str(), Units: d.units(), Cause: d.str()}
	case snapExtended:
		v = &events.Extended{ReservationID: d.str(), AgentID: d.str(), ExpiresAt: d.time()}
	case snapGranted:
		v = d.granted(flags, eventID)
	default:
		d.fail(fmt.Errorf("unknown event kind %d", kind))
		return nil
	}
	if flags&idemPriced != 0 {
		var p pricedExt
		if err := json.Unmarshal(d.raw(), &p); err != nil {
			d.fail(fmt.Errorf("priced fields: %w", err))
			return nil
		}
		setPriced(v, p)
	}
	req, bal := d.request(flags, key), d.balance(flags)
	setRequest(v, req)
	*events.BalanceRef(v) = bal
	return v
}

// setRequest sets the request of an event that answers requests.
func setRequest(d events.Data, r events.Request) {
	switch v := d.(type) {
	case *events.BudgetSet:
		v.Request = r
	case *events.ToppedUp:
		v.Request = r
	case *events.Reserved:
		v.Request = r
	case *events.Denied:
		v.Request = r
	case *events.Recorded:
		v.Request = r
	case *events.Released:
		v.Request = r
	case *events.Extended:
		v.Request = r
	case *events.Granted:
		v.Request = r
	}
}

func (d *snapReader) budgetSet(flags byte) *events.BudgetSet {
	v := &events.BudgetSet{Limit: d.units(), Period: d.str(), Thresholds: d.unitsList(ThresholdsMax),
		UpgradeURL: d.str(), AgentLimits: d.unitsMap(AgentLimitsMax), Source: d.str()}
	if flags&idemDataExt != 0 {
		v.Rollover, v.Overdraft, v.ScopeLimits = d.str(), d.unitsPtr(), d.scopeLimits()
		v.MaxRuns, v.MaxRunsPerAgent = d.int(), d.int()
		v.RateLimit = d.rateLimit()
	}
	return v
}

func (d *snapReader) reserved(flags byte, eventID string) *events.Reserved {
	id := eventID
	if flags&idemIDIsEvent == 0 {
		id = d.str()
	}
	v := &events.Reserved{ReservationID: id, AgentID: d.str(), Units: d.units(), TaskRef: d.str(),
		TaskCeiling: d.unitsPtr(), ExpiresAt: d.time(), Metadata: d.raw()}
	if flags&idemDataExt != 0 {
		v.Scope, v.CountedScopes, v.Requested, v.InOverdraft = d.strMap(ScopeDimensionsMax), d.scopeRefs(), d.units(), d.byte() == 1
	}
	return v
}

func (d *snapReader) denied(flags byte) *events.Denied {
	v := &events.Denied{AgentID: d.str(), Requested: d.units(), Reason: d.str(), Message: d.str(),
		TaskRef: d.str(), UpgradeURL: d.str()}
	if flags&idemDataExt != 0 {
		v.Scope, v.RefusedScope = d.strMap(ScopeDimensionsMax), d.scopeRefPtr()
	}
	return v
}

func (d *snapReader) recorded(flags byte) *events.Recorded {
	v := &events.Recorded{AgentID: d.str(), ReservationID: d.str(), HeldUnits: d.units(), Units: d.units(),
		Released: d.units(), Overage: d.units(), TaskRef: d.str(), Metadata: d.raw()}
	if flags&idemDataExt != 0 {
		v.Scope, v.CountedScopes, v.FundedBy = d.strMap(ScopeDimensionsMax), d.scopeRefs(), d.grantDraws()
	}
	return v
}

func (d *snapReader) granted(flags byte, eventID string) *events.Granted {
	id := eventID
	if flags&idemIDIsEvent == 0 {
		id = d.str()
	}
	return &events.Granted{GrantID: id, Units: d.units(), Priority: d.int(), Source: d.str(), Note: d.str(),
		EffectiveAt: d.time(), ExpiresAt: d.time()}
}

func (e *snapWriter) strs(vs ...string) {
	for _, v := range vs {
		e.str(v)
	}
}

// raw writes a JSON value compacted, as events.Encode writes it, so a live
// state and a replayed one write the same bytes.
func (e *snapWriter) raw(m json.RawMessage) {
	if len(m) == 0 {
		e.uvarint(0)
		return
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, m); err == nil {
		m = buf.Bytes()
	}
	e.uvarint(uint64(len(m)))
	e.b = append(e.b, m...)
}

func (d *snapReader) raw() json.RawMessage {
	n := d.length()
	if n == 0 {
		return nil
	}
	return bytes.Clone(d.bytes(n))
}

func (e *snapWriter) unitsPtr(u *events.Units) {
	e.bool(u != nil)
	if u != nil {
		e.units(*u)
	}
}

func (d *snapReader) unitsPtr() *events.Units {
	if d.byte() != 1 {
		return nil
	}
	u := d.units()
	return &u
}

func (e *snapWriter) unitsList(us []events.Units) {
	e.uvarint(uint64(len(us)))
	for _, u := range us {
		e.units(u)
	}
}

func (d *snapReader) unitsList(max int) []events.Units {
	n := d.count(max)
	if n == 0 {
		return nil
	}
	us := make([]events.Units, n)
	for i := range us {
		us[i] = d.units()
	}
	return us
}

func (e *snapWriter) unitsMap(m map[string]events.Units) {
	e.uvarint(uint64(len(m)))
	for _, k := range sortedKeys(e, m) {
		e.str(k)
		e.units(m[k])
	}
}

func (d *snapReader) unitsMap(max int) map[string]events.Units {
	n := d.count(max)
	if n == 0 {
		return nil
	}
	m := make(map[string]events.Units, n)
	for range n {
		m[d.str()] = d.units()
	}
	return m
}

func (e *snapWriter) request(r events.Request, flags byte) {
	if flags&idemSameKey == 0 {
		e.str(r.IdempotencyKey)
	}
	e.str(r.RequestHash)
}

func (d *snapReader) request(flags byte, key string) events.Request {
	if flags&idemSameKey == 0 {
		key = d.str()
	}
	return events.Request{IdempotencyKey: key, RequestHash: d.str()}
}

func (e *snapWriter) balance(b events.Balance, flags byte) {
	e.time(b.PeriodStart)
	e.units(b.Limit)
	e.units(b.TopUps)
	e.units(b.Used)
	e.units(b.Reserved)
	e.units(b.Remaining)
	if flags&idemBalanceExt != 0 {
		e.units(b.Grants)
		e.units(b.GrantsUsed)
		e.units(b.Overdraft)
		e.units(b.Overdrawn)
	}
}

func (d *snapReader) balance(flags byte) events.Balance {
	b := events.Balance{PeriodStart: d.time(), Limit: d.units(), TopUps: d.units(), Used: d.units(),
		Reserved: d.units(), Remaining: d.units()}
	if flags&idemBalanceExt != 0 {
		b.Grants, b.GrantsUsed, b.Overdraft, b.Overdrawn = d.units(), d.units(), d.units(), d.units()
	}
	return b
}

// int writes a signed integer (a priority, a run cap) as a signed varint.
func (e *snapWriter) int(v int) { e.b = binary.AppendVarint(e.b, int64(v)) }

func (d *snapReader) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.fail(fmt.Errorf("integer %d overflows int", v))
		return 0
	}
	return int(v)
}

// strMap writes a map of strings (a scope) sorted by key.
func (e *snapWriter) strMap(m map[string]string) {
	e.uvarint(uint64(len(m)))
	for _, k := range sortedKeys(e, m) {
		e.str(k)
		e.str(m[k])
	}
}

func (d *snapReader) strMap(max int) map[string]string {
	n := d.count(max)
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.str()
		m[k] = d.str()
	}
	if len(m) != n && d.err == nil {
		d.fail(fmt.Errorf("a key of a map of %d is listed twice", n))
	}
	return m
}

func (e *snapWriter) scopeRefPtr(r *events.ScopeRef) {
	e.bool(r != nil)
	if r != nil {
		e.strs(r.Dimension, r.Value)
	}
}

func (d *snapReader) scopeRefPtr() *events.ScopeRef {
	if d.byte() != 1 {
		return nil
	}
	return &events.ScopeRef{Dimension: d.str(), Value: d.str()}
}

func (e *snapWriter) scopeLimits(ls []events.ScopeLimit) {
	e.uvarint(uint64(len(ls)))
	for _, l := range ls {
		e.strs(l.Dimension, l.Value)
		e.units(l.Limit)
		e.str(l.Period)
	}
}

func (d *snapReader) scopeLimits() []events.ScopeLimit {
	n := d.count(ScopeLimitsMax)
	if n == 0 {
		return nil
	}
	ls := make([]events.ScopeLimit, n)
	for i := range ls {
		ls[i] = events.ScopeLimit{Dimension: d.str(), Value: d.str(), Limit: d.units(), Period: d.str()}
	}
	return ls
}

func (e *snapWriter) grantDraws(gs []events.GrantDraw) {
	e.uvarint(uint64(len(gs)))
	for _, g := range gs {
		e.str(g.GrantID)
		e.units(g.Units)
	}
}

func (d *snapReader) grantDraws() []events.GrantDraw {
	n := d.count(GrantsHeldMax)
	if n == 0 {
		return nil
	}
	gs := make([]events.GrantDraw, n)
	for i := range gs {
		gs[i] = events.GrantDraw{GrantID: d.str(), Units: d.units()}
	}
	return gs
}

// knownPeriods are read without allocating.
var knownPeriods = []string{string(PeriodDay), string(PeriodWeek), string(PeriodMonth), string(PeriodNone)}

// pricedExt is the fields of priced usage an event that answers requests
// may have: rare, so a remembered event writes them as JSON, only when
// set (idemPriced).
type pricedExt struct {
	PriceList       string          `json:"price_list,omitempty"`
	Usage           *events.Usage   `json:"usage,omitempty"`
	Pricing         *events.Pricing `json:"pricing,omitempty"`
	Unpriced        string          `json:"unpriced,omitempty"`
	MaxOutputTokens int64           `json:"max_output_tokens,omitempty"`
}

func pricedOf(d events.Data) pricedExt {
	switch v := d.(type) {
	case *events.BudgetSet:
		return pricedExt{PriceList: v.PriceList}
	case *events.Reserved:
		return pricedExt{Pricing: v.Pricing, MaxOutputTokens: v.MaxOutputTokens}
	case *events.Recorded:
		return pricedExt{Usage: v.Usage, Pricing: v.Pricing, Unpriced: v.Unpriced}
	}
	return pricedExt{}
}

func setPriced(d events.Data, p pricedExt) {
	switch v := d.(type) {
	case *events.BudgetSet:
		v.PriceList = p.PriceList
	case *events.Reserved:
		v.Pricing, v.MaxOutputTokens = p.Pricing, p.MaxOutputTokens
	case *events.Recorded:
		v.Usage, v.Pricing, v.Unpriced = p.Usage, p.Pricing, p.Unpriced
	}
}
