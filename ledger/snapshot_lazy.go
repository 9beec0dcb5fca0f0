package ledger

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Remembered requests are restored lazily. A snapshot of a full 24-hour
// window holds about a million of them, and decoding each into its event
// cost 1.5 to 2 µs at restart, plus the collector's work on ~700 bytes of
// pointers each, for events almost none of which a retry will ever ask
// for. So a restored entry keeps its snapshot bytes (idemEntry.raw, in
// slabs that hold no pointers) and is decoded by readIdemEntry only when a
// request with its key comes (State.remembered). Applying an event keeps
// it the same way (State.remember), so a replayed window costs no more.
//
// Loading still checks every entry as strictly as a full decode would:
// skipIdemEntry walks the same layout with the same bounds, parses every
// amount and time, and runs the real decoders on the rare parts (scopes,
// rate limits, priced fields), dropping what they return. A test checks
// that the walk consumes exactly the bytes readIdemEntry does, for every
// event type and field.

// snapshotLazySlabBytes is the size of one slab of remembered entries'
// bytes (a typical entry is 150 to 250 bytes): large enough that the
// allocations do not matter, small enough that a slab's tail left unused
// does not either.
const snapshotLazySlabBytes = 1 << 20

// snapshotLazyPeekBytes is how much of the read buffer skipIdemFast
// looks at for one entry; a longer entry takes the careful walk.
const snapshotLazyPeekBytes = 4 << 10

// lazyIdem reads remembered requests as their bytes, into slabs.
type lazyIdem struct {
	slab []byte
	// ahead: the slabs are made ahead (prefault.go), by made, from the
	// second slab on; then close must be called once the reading ends.
	ahead bool
	made  *prefaulter[byte]
}

// close stops the making of slabs ahead.
func (l *lazyIdem) close() {
	if l.made != nil {
		l.made.close()
	}
}

// read is readWindow's value reader for the idempotency window.
func (l *lazyIdem) read(d *snapReader, _ string) (idemEntry, error) {
	if d.err == nil {
		b, _ := d.r.Peek(min(snapshotLazyPeekBytes, d.r.Size())) // fewer near the end
		if n := skipIdemFast(b); n > 0 {
			raw := l.keep(b[:n])
			_, _ = d.r.Discard(n)
			return idemEntry{raw: raw}, nil
		}
	}
	d.rec, d.recording = d.rec[:0], true
	d.skipIdemEntry()
	d.recording = false
	if d.err != nil {
		return idemEntry{}, d.err
	}
	return idemEntry{raw: l.keep(d.rec)}, nil
}

// keep copies b into the current slab (a new one when it is full) and
// returns the copy, capped so that nothing appends past it.
func (l *lazyIdem) keep(b []byte) []byte {
	if len(b) > cap(l.slab)-len(l.slab) {
		switch {
		case len(b) > snapshotLazySlabBytes:
			l.slab = make([]byte, 0, len(b))
		case l.made != nil:
			l.slab = l.made.next()[:0]
		case l.slab != nil && l.ahead: // the second slab: the window is large
			l.made = prefault[byte](snapshotLazySlabBytes, -1)
			l.slab = l.made.next()[:0]
		default:
			l.slab = make([]byte, 0, snapshotLazySlabBytes)
		}
	}
	start := len(l.slab)
	l.slab = append(l.slab, b...)
	return l.slab[start:len(l.slab):len(l.slab)]
}

// decodeRaw decodes a remembered request kept as its snapshot bytes; key
// is its window key.
func decodeRaw(raw []byte, key string) (idemEntry, error) {
	d := &snapReader{r: bufio.NewReaderSize(bytes.NewReader(raw), len(raw))}
	v, err := readIdemEntry(d, key)
	if err == nil {
		if _, rerr := d.r.ReadByte(); rerr == nil {
			err = fmt.Errorf("bytes after the event")
		}
	}
	return v, err
}

// skipIdemEntry reads past what writeIdemEntry wrote, with readIdemEntry's
// checks, keeping nothing.
func (d *snapReader) skipIdemEntry() {
	flags := d.byte()
	if flags&^idemFlagsAll != 0 {
		d.fail(fmt.Errorf("unknown flags %#x", flags))
	}
	d.skipStr() // event ID
	d.oneOf(knownPeriods)
	d.skipEventData(flags)
}

// skipEventData walks what eventData reads (snapshot_event.go), field by
// field in the same order.
func (d *snapReader) skipEventData(flags byte) {
	ext := flags&idemDataExt != 0
	switch kind := d.byte(); kind {
	case snapBudgetSet:
		d.skipBudgetSet(ext)
	case snapToppedUp:
		d.units()
		d.skipStr()
	case snapReserved:
		d.skipReserved(flags)
	case snapDenied:
		d.skipStr()
		d.units()
		d.skipStrs(4)
		if ext {
			d.strMap(ScopeDimensionsMax)
			d.scopeRefPtr()
		}
	case snapRecorded:
		d.skipStrs(2)
		d.units()
		d.units()
		d.units()
		d.units()
		d.skipStrs(2) // task ref, metadata
		if ext {
			d.strMap(ScopeDimensionsMax)
			d.scopeRefs()
			d.grantDraws()
		}
	case snapReleased:
		d.skipStrs(2)
		d.units()
		d.skipStr()
	case snapExtended:
		d.skipStrs(2)
		d.time()
	case snapGranted:
		if flags&idemIDIsEvent == 0 {
			d.skipStr()
		}
		d.units()
		d.int()
		d.skipStrs(2)
		d.time()
		d.time()
	default:
		d.fail(fmt.Errorf("unknown event kind %d", kind))
		return
	}
	if flags&idemPriced != 0 {
		var p pricedExt
		if err := json.Unmarshal(d.raw(), &p); err != nil && d.err == nil {
			d.fail(fmt.Errorf("priced fields: %w", err))
		}
	}
	if flags&idemSameKey == 0 {
		d.skipStr() // the request's key
	}
	d.skipStr() // its hash
	d.time()    // the balance
	n := 5
	if flags&idemBalanceExt != 0 {
		n = 9
	}
	for range n {
		d.units()
	}
}

func (d *snapReader) skipBudgetSet(ext bool) {
	d.units()
	d.skipStr()
	d.unitsList(ThresholdsMax)
	d.skipStr()
	for n := d.count(AgentLimitsMax); n > 0 && d.err == nil; n-- {
		d.skipStr()
		d.units()
	}
	d.skipStr()
	if ext {
		d.skipStr()
		d.unitsPtr()
		d.scopeLimits()
		d.int()
		d.int()
		d.rateLimit()
	}
}

func (d *snapReader) skipReserved(flags byte) {
	if flags&idemIDIsEvent == 0 {
		d.skipStr()
	}
	d.skipStr()
	d.units()
	d.skipStr()
	d.unitsPtr()
	d.time()
	d.skipStr() // metadata
	if flags&idemDataExt != 0 {
		d.strMap(ScopeDimensionsMax)
		d.scopeRefs()
		d.units()
		d.byte()
	}
}

// skipStr reads past a string (or raw JSON: the same layout).
func (d *snapReader) skipStr() {
	if n := d.length(); n > 0 {
		d.bytes(n)
	}
}

func (d *snapReader) skipStrs(n int) {
	for range n {
		d.skipStr()
	}
}

// skipIdemFast is skipIdemEntry's fast path for the common entries (no
// scopes, grants, overdraft or prices; not a budget_set): it walks b, the
// buffered input, and returns the entry's length, or 0 when the entry is
// not one of those, does not fit in b, or anything in it fails a check,
// and the careful walk is to read it (and say why it fails). It accepts
// only what skipIdemEntry accepts, with the same checks, from the same
// bytes; TestSnapshotLazyIdemEveryField runs both on every field.
func skipIdemFast(b []byte) int {
	w := fastWalk{b: b}
	flags := w.byte()
	if flags&^idemFlagsAll != 0 || flags&(idemDataExt|idemPriced) != 0 {
		return 0
	}
	w.str() // event ID
	w.period()
	switch w.byte() {
	case snapToppedUp:
		w.units()
		w.str()
	case snapReserved:
		if flags&idemIDIsEvent == 0 {
			w.str()
		}
		w.str()
		w.units()
		w.str()
		if w.byte() == 1 { // a task ceiling
			w.units()
		}
		w.time()
		w.str() // metadata
	case snapDenied:
		w.str()
		w.units()
		w.strs(4)
	case snapRecorded:
		w.strs(2)
		w.unitsN(4)
		w.strs(2) // task ref, metadata
	case snapReleased:
		w.strs(2)
		w.units()
		w.str()
	case snapExtended:
		w.strs(2)
		w.time()
	default:
		return 0 // budget_set, granted: the careful walk
	}
	if flags&idemSameKey == 0 {
		w.str()
	}
	w.str() // the request's hash
	w.time()
	if flags&idemBalanceExt != 0 {
		w.unitsN(9)
	} else {
		w.unitsN(5)
	}
	if w.bad {
		return 0
	}
	return w.i
}

// fastWalk walks a byte slice for skipIdemFast; once bad, it stays bad.
type fastWalk struct {
	b   []byte
	i   int
	bad bool
}

func (w *fastWalk) byte() byte {
	if w.bad || w.i >= len(w.b) {
		w.bad = true
		return 0
	}
	w.i++
	return w.b[w.i-1]
}

func (w *fastWalk) uvarint() uint64 {
	if w.bad {
		return 0
	}
	v, n := binary.Uvarint(w.b[w.i:])
	if n <= 0 {
		w.bad = true
		return 0
	}
	w.i += n
	return v
}

// bytes returns the next string's bytes (snapReader.length's bound).
func (w *fastWalk) bytes() []byte {
	n := w.uvarint()
	if w.bad || n > snapshotStringBytesMax || n > uint64(len(w.b)-w.i) {
		w.bad = true
		return nil
	}
	w.i += int(n)
	return w.b[w.i-int(n) : w.i]
}

func (w *fastWalk) str() { w.bytes() }

func (w *fastWalk) strs(n int) {
	for range n {
		w.bytes()
	}
}

// period checks snapReader.oneOf(knownPeriods).
func (w *fastWalk) period() {
	b := w.bytes()
	for _, k := range knownPeriods {
		if string(b) == k {
			return
		}
	}
	w.bad = true
}

// units accepts what smallUnits parses (snapReader.units' fast path);
// anything else goes to the careful walk.
func (w *fastWalk) units() {
	if _, ok := smallUnits(w.bytes()); !ok {
		w.bad = true
	}
}

func (w *fastWalk) unitsN(n int) {
	for range n {
		w.units()
	}
}

// time checks what snapReader.time does: a signed varint of seconds, then
// fewer than a second of nanoseconds.
func (w *fastWalk) time() {
	w.uvarint()
	if w.uvarint() >= uint64(time.Second) {
		w.bad = true
	}
}
