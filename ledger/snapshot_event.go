package ledger

import (
	"bytes"
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
)

// Flags of a remembered request: which of its event's fields equal others
// written already, and are therefore written once.
const (
	idemSameKey    byte = 1 << iota // the window key's key part == data's IdempotencyKey
	idemResIsEvent                  // a reserved event's ReservationID == its event ID
)

// writeIdemEntry writes a remembered request: its event ID, the period
// kind then, and the event that answered it (which holds its hash and op).
func writeIdemEntry(e *snapWriter, key string, v idemEntry) error {
	if v.data == nil {
		return fmt.Errorf("snapshot: idempotency key %q has no event", key)
	}
	req, _ := requestOf(v.data)
	var flags byte
	if _, k, _ := strings.Cut(key, "\x00"); k == req.IdempotencyKey {
		flags |= idemSameKey
	}
	if r, ok := v.data.(*events.Reserved); ok && r.ReservationID == v.eventID {
		flags |= idemResIsEvent
	}
	e.b = append(e.b, flags)
	e.str(v.eventID)
	e.str(string(v.period))
	if err := e.eventData(v.data, flags); err != nil {
		return fmt.Errorf("snapshot: idempotency key %q: %w", key, err)
	}
	return nil
}

func readIdemEntry(d *snapReader, key string) (idemEntry, error) {
	flags := d.byte()
	v := idemEntry{eventID: d.str(), period: Period(d.oneOf(knownPeriods))}
	_, k, _ := strings.Cut(key, "\x00")
	v.data = d.eventData(flags, k, v.eventID)
	return v, d.err
}

func (e *snapWriter) eventData(d events.Data, flags byte) error {
	switch v := d.(type) {
	case *events.BudgetSet:
		e.b = append(e.b, snapBudgetSet)
		e.units(v.Limit)
		e.str(v.Period)
		e.unitsList(v.Thresholds)
		e.str(v.UpgradeURL)
		e.unitsMap(v.AgentLimits)
		e.str(v.Source)
		e.request(v.Request, flags)
		e.balance(v.Balance)
	case *events.ToppedUp:
		e.b = append(e.b, snapToppedUp)
		e.units(v.Units)
		e.str(v.Note)
		e.request(v.Request, flags)
		e.balance(v.Balance)
	case *events.Reserved:
		e.b = append(e.b, snapReserved)
		if flags&idemResIsEvent == 0 {
			e.str(v.ReservationID)
		}
		e.str(v.AgentID)
		e.units(v.Units)
		e.str(v.TaskRef)
		e.unitsPtr(v.TaskCeiling)
		e.time(v.ExpiresAt)
		e.raw(v.Metadata)
		e.request(v.Request, flags)
		e.balance(v.Balance)
	case *events.Denied:
		e.b = append(e.b, snapDenied)
		e.str(v.AgentID)
		e.units(v.Requested)
		e.strs(v.Reason, v.Message, v.TaskRef, v.UpgradeURL)
		e.request(v.Request, flags)
		e.balance(v.Balance)
	case *events.Recorded:
		e.b = append(e.b, snapRecorded)
		e.strs(v.AgentID, v.ReservationID)
		e.units(v.HeldUnits)
		e.units(v.Units)
		e.units(v.Released)
		e.units(v.Overage)
		e.str(v.TaskRef)
		e.raw(v.Metadata)
		e.request(v.Request, flags)
		e.balance(v.Balance)
	case *events.Released:
		e.b = append(e.b, snapReleased)
		e.strs(v.ReservationID, v.AgentID)
		e.units(v.Units)
		e.str(v.Cause)
		e.request(v.Request, flags)
		e.balance(v.Balance)
	case *events.Extended:
		e.b = append(e.b, snapExtended)
		e.strs(v.ReservationID, v.AgentID)
		e.time(v.ExpiresAt)
		e.request(v.Request, flags)
		e.balance(v.Balance)
	default:
		return fmt.Errorf("a %T event answers no request", d)
	}
	return nil
}

func (d *snapReader) eventData(flags byte, key, eventID string) events.Data {
	switch kind := d.byte(); kind {
	case snapBudgetSet:
		v := &events.BudgetSet{Limit: d.units(), Period: d.str(), Thresholds: d.unitsList(ThresholdsMax),
			UpgradeURL: d.str(), AgentLimits: d.unitsMap(AgentLimitsMax), Source: d.str()}
		v.Request, v.Balance = d.request(flags, key), d.balance()
		return v
	case snapToppedUp:
		v := &events.ToppedUp{Units: d.units(), Note: d.str()}
		v.Request, v.Balance = d.request(flags, key), d.balance()
		return v
	case snapReserved:
		id := eventID
		if flags&idemResIsEvent == 0 {
			id = d.str()
		}
		v := &events.Reserved{ReservationID: id, AgentID: d.str(), Units: d.units(), TaskRef: d.str(),
			TaskCeiling: d.unitsPtr(), ExpiresAt: d.time(), Metadata: d.raw()}
		v.Request, v.Balance = d.request(flags, key), d.balance()
		return v
	case snapDenied:
		v := &events.Denied{AgentID: d.str(), Requested: d.units(), Reason: d.str(), Message: d.str(),
			TaskRef: d.str(), UpgradeURL: d.str()}
		v.Request, v.Balance = d.request(flags, key), d.balance()
		return v
	case snapRecorded:
		v := &events.Recorded{AgentID: d.str(), ReservationID: d.str(), HeldUnits: d.units(), Units: d.units(),
			Released: d.units(), Overage: d.units(), TaskRef: d.str(), Metadata: d.raw()}
		v.Request, v.Balance = d.request(flags, key), d.balance()
		return v
	case snapReleased:
		v := &events.Released{ReservationID: d.str(), AgentID: d.str(), Units: d.units(), Cause: d.str()}
		v.Request, v.Balance = d.request(flags, key), d.balance()
		return v
	case snapExtended:
		v := &events.Extended{ReservationID: d.str(), AgentID: d.str(), ExpiresAt: d.time()}
		v.Request, v.Balance = d.request(flags, key), d.balance()
		return v
	default:
		d.fail(fmt.Errorf("unknown event kind %d", kind))
		return nil
	}
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

func (e *snapWriter) balance(b events.Balance) {
	e.time(b.PeriodStart)
	e.units(b.Limit)
	e.units(b.TopUps)
	e.units(b.Used)
	e.units(b.Reserved)
	e.units(b.Remaining)
}

func (d *snapReader) balance() events.Balance {
	return events.Balance{PeriodStart: d.time(), Limit: d.units(), TopUps: d.units(), Used: d.units(),
		Reserved: d.units(), Remaining: d.units()}
}

// knownPeriods are read without allocating.
var knownPeriods = []string{string(PeriodDay), string(PeriodWeek), string(PeriodMonth), string(PeriodNone)}
