package projections

import (
	"unicode/utf8"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// The fast request decoder reads, without reflection, the plain preflight
// and record bodies the Go client and the SDKs send. It is a shortcut in
// front of decodeStrict, not a second definition of the request format: it
// accepts only input it decodes with certainty to the very command
// decodeStrict would produce, and reports false for anything else, after
// which the caller decodes with decodeStrict. Acceptance, rejection and
// error text of DecodeRequest are therefore those of the strict path alone.
// Decoding requests through encoding/json and strictjson cost about 4.5%
// of the spread scenario's CPU (BENCHMARKS.md, "CPU per request").
//
// Accepted: one object, JSON white space around any token, whose keys are
// among preflightKeys or recordKeys spelled exactly (no escape, no other
// case), each at most once; strings without escapes or control characters
// in valid UTF-8; amounts as a JSON number, a plain string or null, parsed
// by Units.UnmarshalJSON from the very bytes encoding/json would hand it;
// success as true or false; scope as a non-empty object of plain strings
// without a repeated key.
//
// Handed to decodeStrict: any other key (metadata, usage, usage_estimate,
// an unknown one, a case variant); a repeated key; null anywhere but an
// amount; a string with an escape, a control character or invalid UTF-8;
// an amount Units.UnmarshalJSON refuses or a number outside the JSON
// grammar; an empty scope (encoding/json makes it an empty, non-nil map);
// a scope of more than scopeEntriesFastMax entries; trailing bytes; any
// other op.
//
// Every loop consumes input, so the body's length (at most
// RequestBytesMax) bounds it; there is no recursion.

// scopeEntriesFastMax bounds the scope entries the fast decoder reads; a
// valid scope has at most ledger.ScopeDimensionsMax, and a larger one is
// refused by Validate, so it is handed over rather than read.
const scopeEntriesFastMax = ledger.ScopeDimensionsMax

// fastKeysMax bounds the keys of one request the fast decoder reads: a
// key's index is its bit in a uint32 and its slot in reqDecoder.vals.
const fastKeysMax = 16

// valueKind is what a key's value must be.
type valueKind uint8

const (
	kindString valueKind = iota // a plain string
	kindUnits                   // an amount: number, plain string or null
	kindBool                    // true or false
	kindScope                   // a non-empty object of plain strings
)

// fastKey is a key the fast decoder reads and the kind of its value.
type fastKey struct {
	name string
	kind valueKind
}

// Keys the fast decoder reads, by op, in the order of the request's
// fields; a key's index is its slot in reqDecoder.vals, which preflight
// and record read by number (a slot read as the wrong field fails
// TestDecodeFastTakesClientBodies and the differential test).
var (
	preflightKeys = []fastKey{{"customer_id", kindString}, {"agent_id", kindString},
		{"estimated_units", kindUnits}, {"task_ref", kindString}, {"task_ceiling", kindUnits},
		{"ceiling", kindUnits}, {"ttl", kindString}, {"idempotency_key", kindString},
		{"scope", kindScope}, {"min_units", kindUnits}}
	recordKeys = []fastKey{{"customer_id", kindString}, {"agent_id", kindString}, {"units", kindUnits},
		{"reservation_id", kindString}, {"success", kindBool}, {"task_ref", kindString},
		{"idempotency_key", kindString}, {"scope", kindScope}}
)

func init() {
	if len(preflightKeys) > fastKeysMax || len(recordKeys) > fastKeysMax {
		panic("projections: more fast decoder keys than fastKeysMax")
	}
}

// decodeFast decodes a plain preflight or record body into a command, or
// reports false (see above). It reads in two passes: the first checks the
// whole body and notes where each value is, allocating nothing, so a body
// handed over costs only that scan; the second builds the command from
// values known to be good. The command is not yet bound to its customer
// nor validated.
func decodeFast(op events.Op, body []byte) (ledger.Command, bool) {
	d := reqDecoder{b: body}
	switch op {
	case events.OpPreflight:
		if d.scan(preflightKeys) {
			return d.preflight()
		}
	case events.OpRecord:
		if d.scan(recordKeys) {
			return d.record()
		}
	}
	return nil, false
}

func (d *reqDecoder) preflight() (ledger.Command, bool) {
	r := &ledger.PreflightRequest{
		CustomerID:     d.str(0),
		AgentID:        d.str(1),
		TaskRef:        d.str(3),
		TTL:            d.str(6),
		IdempotencyKey: d.str(7),
		Scope:          d.scope(8),
	}
	if !d.units(2, &r.EstimatedUnits) || !d.units(4, &r.TaskCeiling) || !d.units(5, &r.Ceiling) ||
		!d.units(9, &r.MinUnits) {
		return nil, false
	}
	return r, true
}

func (d *reqDecoder) record() (ledger.Command, bool) {
	r := &ledger.RecordRequest{
		CustomerID:     d.str(0),
		AgentID:        d.str(1),
		ReservationID:  d.str(3),
		Success:        d.boolean(4),
		TaskRef:        d.str(5),
		IdempotencyKey: d.str(6),
		Scope:          d.scope(7),
	}
	if !d.units(2, &r.Units) {
		return nil, false
	}
	return r, true
}

// span is where a value is in the body; to is 0 for a key not given.
type span struct{ from, to int }

// reqDecoder is a cursor over one body and the values its scan found.
// Scanning methods return false ("not handled") rather than an error; the
// caller abandons the decoder then.
type reqDecoder struct {
	b    []byte
	i    int
	vals [fastKeysMax]span
}

// scan checks that the body is one object whose keys are among keys, each
// at most once, with values of their kinds and nothing after it, and notes
// each value's span.
func (d *reqDecoder) scan(keys []fastKey) bool {
	var seen uint32
	d.space()
	if !d.eat('{') {
		return false
	}
	d.space()
	if d.eat('}') {
		return d.end()
	}
	for {
		k := d.key(keys)
		if k < 0 || seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		d.space()
		if !d.eat(':') {
			return false
		}
		d.space()
		from := d.i
		if !d.value(keys[k].kind) {
			return false
		}
		d.vals[k] = span{from, d.i}
		d.space()
		if !d.eat(',') {
			return d.eat('}') && d.end()
		}
		d.space()
	}
}

// end reports whether nothing but white space is left.
func (d *reqDecoder) end() bool {
	d.space()
	return d.i == len(d.b)
}

// key reads a key without escapes and returns its index in keys, or -1.
func (d *reqDecoder) key(keys []fastKey) int {
	k, ok := d.plain()
	if !ok {
		return -1
	}
	for j := range keys {
		if string(k) == keys[j].name {
			return j
		}
	}
	return -1
}

// value scans one value of kind.
func (d *reqDecoder) value(kind valueKind) bool {
	switch kind {
	case kindString:
		_, ok := d.plain()
		return ok
	case kindUnits:
		if d.literal("null") {
			return true
		}
		if d.i < len(d.b) && d.b[d.i] == '"' {
			_, ok := d.plain()
			return ok
		}
		return d.number()
	case kindBool:
		return d.literal("true") || d.literal("false")
	case kindScope:
		return d.scanScope()
	}
	return false
}

// plain reads a string that encoding/json decodes to its very bytes: no
// escape, no control character, valid UTF-8. It returns the bytes between
// the quotes.
func (d *reqDecoder) plain() ([]byte, bool) {
	b, i := d.b, d.i
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	i++
	start := i
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			d.i = i + 1
			return b[start:i], true
		case c == '\\' || c < ' ':
			return nil, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false // strictjson refuses it
			}
			i += size
		}
	}
	return nil, false
}

// number reads a token of the JSON number grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *reqDecoder) number() bool {
	d.eat('-')
	switch {
	case d.eat('0'):
	case d.i < len(d.b) && d.b[d.i] >= '1' && d.b[d.i] <= '9':
		d.digits()
	default:
		return false
	}
	if d.eat('.') && d.digits() == 0 {
		return false
	}
	if d.eat('e') || d.eat('E') {
		if !d.eat('+') {
			d.eat('-')
		}
		if d.digits() == 0 {
			return false
		}
	}
	return true
}

// digits reads decimal digits and returns how many.
func (d *reqDecoder) digits() int {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

// scanScope scans a scope: a non-empty object of plain strings, at most
// scopeEntriesFastMax entries, no key twice. Keys are compared as bytes:
// without escapes, equal bytes are equal strings.
func (d *reqDecoder) scanScope() bool {
	var keys [scopeEntriesFastMax][]byte
	if !d.eat('{') {
		return false
	}
	d.space()
	if d.eat('}') {
		return false // an empty, non-nil map: handed over
	}
	for n := 0; n < scopeEntriesFastMax; n++ {
		k, ok := d.plain()
		if !ok {
			return false
		}
		for _, seen := range keys[:n] {
			if string(seen) == string(k) {
				return false
			}
		}
		keys[n] = k
		d.space()
		if !d.eat(':') {
			return false
		}
		d.space()
		if _, ok := d.plain(); !ok {
			return false
		}
		d.space()
		if !d.eat(',') {
			return d.eat('}')
		}
		d.space()
	}
	return false
}

// str is the string at slot k ("" if absent), a plain string the scan
// checked.
func (d *reqDecoder) str(k int) string {
	v := d.vals[k]
	if v.to == 0 {
		return ""
	}
	return string(d.b[v.from+1 : v.to-1])
}

// units sets *u to the amount at slot k: nil if absent or null, as
// encoding/json leaves a pointer for null; else Units.UnmarshalJSON of the
// very bytes encoding/json would hand it (a number token, or a string with
// its quotes). It reports false if UnmarshalJSON refuses them.
func (d *reqDecoder) units(k int, u **events.Units) bool {
	v := d.vals[k]
	if v.to == 0 || string(d.b[v.from:v.to]) == "null" {
		return true
	}
	var x events.Units
	if x.UnmarshalJSON(d.b[v.from:v.to]) != nil {
		return false
	}
	*u = &x
	return true
}

// boolean is the boolean at slot k, nil if absent.
func (d *reqDecoder) boolean(k int) *bool {
	v := d.vals[k]
	if v.to == 0 {
		return nil
	}
	b := d.b[v.from] == 't'
	return &b
}

// scope is the scope at slot k, nil if absent: it reads again the object
// scanScope checked.
func (d *reqDecoder) scope(k int) map[string]string {
	v := d.vals[k]
	if v.to == 0 {
		return nil
	}
	m := make(map[string]string, scopeEntriesFastMax)
	s := reqDecoder{b: d.b[:v.to], i: v.from + 1}
	for n := 0; n < scopeEntriesFastMax && s.i < v.to-1; n++ {
		s.space()
		key, _ := s.plain()
		s.space()
		s.eat(':')
		s.space()
		val, _ := s.plain()
		m[string(key)] = string(val)
		s.space()
		s.eat(',')
	}
	return m
}

// literal consumes lit if the input has it next.
func (d *reqDecoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// eat consumes c if it is the next byte.
func (d *reqDecoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// space skips JSON white space: space, tab, line feed, carriage return.
func (d *reqDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}
