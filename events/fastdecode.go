package events

import (
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"
)

// The fast decoder reads, in one pass and without reflection, the exact
// bytes Encode and CommitEncoder write. It is a shortcut in front of
// encoding/json, not a second definition of the format: it accepts only
// input it decodes with certainty to the very values encoding/json would
// produce, and answers errNotHandled for anything else, after which the
// caller decodes with encoding/json. Acceptance, rejection and error text
// of Decode and DecodeCommit are therefore those of encoding/json alone.
//
// Handed to encoding/json: white space anywhere; a key that is unknown,
// repeated, out of the encoder's order or spelled with an escape; a string
// with a \u escape, a control character or invalid UTF-8; null anywhere; an
// amount that is not a JSON number or that parseTotal refuses; a time not
// in the exact UTC form time.Time.MarshalJSON writes; an integer with a
// sign but no digits, a leading zero, a fraction, an exponent or more than
// intDigitsMax digits; a boolean that is not true or false; empty
// thresholds, agent limits, scope, scope limits, counted scopes or
// funded_by (encoding/json makes them empty, not nil; the encoder omits
// them); metadata that is not an object or nests deeper than
// metadataDepthMax; a wrong version or unknown type; trailing bytes.
//
// Keys may be absent: encoding/json leaves an absent field at its zero
// value, and so does the fast decoder.
//
// Amounts are parsed by parseTotal, as Units.UnmarshalJSON parses them,
// except plain ones (digits and a point, up to 18 digits), which
// plainUnits parses to the very same value without allocating; a small
// memo (unitsMemo) spares parsing the same other text twice in a commit.
// A string equal to one just decoded (strReusing) is that string again.
// Times are parsed by hand, for the one form MarshalJSON writes, into the
// same time.Date the time package builds. Every loop consumes input, so
// the input's length bounds it; recursion happens only inside metadata,
// bounded by metadataDepthMax.

// errNotHandled: the fast decoder is not certain about the input; decode it
// with encoding/json.
var errNotHandled = errors.New("events: not handled by the fast decoder")

const (
	// metadataDepthMax bounds the nesting the fast decoder validates inside
	// metadata (encoding/json allows 10000). Deeper metadata is handed over.
	metadataDepthMax = 64
	// unitsMemoSize is the number of amounts a decoder remembers: a commit
	// repeats few amounts often (zeros, a default limit), so a handful of
	// entries catch most repeats and a miss costs a handful of compares.
	unitsMemoSize = 8
	// unitsMemoTextMax bounds the text of a remembered amount. Up to 38
	// digits, apd keeps the coefficient inline (128 bits), so a remembered
	// Units holds no pointer and its copies share no memory.
	unitsMemoTextMax = 38
	// intDigitsMax bounds the digits of an integer (a priority, a run
	// cap) the fast decoder reads: 18 digits always fit an int64, so the
	// value is exact; an int that cannot hold it is handed over.
	intDigitsMax = 18
)

// fastDecodeCommit decodes a commit body, its events' structs taken from
// a (nil: each allocated alone), or returns errNotHandled.
func fastDecodeCommit(b []byte, a *Arena) (*Commit, error) {
	d := newFastDecoder(b)
	if a != nil {
		d.arena = a
	}
	c, ok := d.commit()
	if !ok || d.i != len(b) {
		return nil, errNotHandled
	}
	return c, nil
}

// fastDecode decodes one event body, or returns errNotHandled.
func fastDecode(b []byte) (*Envelope, error) {
	d := newFastDecoder(b)
	e, ok := d.envelope()
	if !ok || d.i != len(b) {
		return nil, errNotHandled
	}
	return e, nil
}

// fastDecoder is a cursor over one input. Every method returns false
// ("not handled") rather than an error, leaving the cursor wherever it
// stopped: the caller abandons the decoder then.
type fastDecoder struct {
	b    []byte
	i    int
	buf  []byte // scratch for unescaping strings
	memo unitsMemo
	// The strings last decoded, reused for the same bytes (strReusing):
	// the current event's ID, the last customer ID, and each data
	// field's last value.
	eventID, customerID string
	seen                [fieldBalance + 1]string
	arena               *Arena // the structs of the events decoded
}

// unitsMemo remembers the last amounts parseTotal returned, by their exact
// text, so that an amount repeated in a commit is parsed once. Every value
// it returns is parseTotal's for the very same text.
type unitsMemo struct {
	text [unitsMemoSize]string
	u    [unitsMemoSize]Units
	next int
}

func newFastDecoder(b []byte) fastDecoder { return fastDecoder{b: b, arena: solo} }

// Keys of the commit and the envelope, in the order the encoders write them.
var (
	commitKeys   = []string{"v", "id", "writer", "at", "events"}
	envelopeKeys = []string{"id", "type", "v", "at", "customer_id", "data"}
	balanceKeys  = []string{"period_start", "limit", "top_ups", "used", "reserved", "remaining",
		"grants", "grants_used", "overdraft", "overdrawn"}
	scopeRefKeys   = []string{"dimension", "value"}
	scopeLimitKeys = []string{"dimension", "value", "limit", "period"}
	grantDrawKeys  = []string{"grant_id", "units"}
	rateLimitKeys  = []string{"per_second", "burst"}
)

func (d *fastDecoder) commit() (*Commit, bool) {
	c := &Commit{Events: []*Envelope{}} // never nil, as in decodeCommitSlow
	if !d.eat('{') {
		return nil, false
	}
	if d.eat('}') {
		return nil, false // no version
	}
	for next := 0; ; {
		k := d.key(commitKeys, next)
		if k < 0 {
			return nil, false
		}
		next = k + 1
		ok := false
		switch k {
		case 0:
			c.V, ok = d.version()
		case 1:
			c.ID, ok = d.str()
		case 2:
			c.Writer, ok = d.str()
		case 3:
			c.At, ok = d.time()
		case 4:
			c.Events, ok = d.events()
		}
		if !ok {
			return nil, false
		}
		if !d.eat(',') {
			return c, d.eat('}') && c.V == Version
		}
	}
}

func (d *fastDecoder) events() ([]*Envelope, bool) {
	es := []*Envelope{}
	if !d.eat('[') {
		return nil, false
	}
	if d.eat(']') {
		return es, true
	}
	for {
		e, ok := d.envelope()
		if !ok {
			return nil, false
		}
		es = append(es, e)
		if !d.eat(',') {
			return es, d.eat(']')
		}
	}
}

// envelope decodes one event, with the checks of wireEnvelope.envelope.
func (d *fastDecoder) envelope() (*Envelope, bool) {
	e := take(d.arena, &d.arena.envelopes)
	var schema *fastSchema
	if !d.eat('{') || d.eat('}') {
		return nil, false
	}
	for next := 0; ; {
		k := d.key(envelopeKeys, next)
		if k < 0 {
			return nil, false
		}
		next = k + 1
		ok := false
		switch k {
		case 0:
			e.ID, ok = d.str()
			d.eventID = e.ID
		case 1:
			schema = schemaOf(d.plainStr())
			ok = schema != nil
			if ok {
				e.Type = schema.t
			}
		case 2:
			e.V, ok = d.version()
		case 3:
			e.At, ok = d.time()
		case 4:
			e.CustomerID, ok = d.strReusing(d.customerID, "")
			d.customerID = e.CustomerID
		case 5:
			e.Data, ok = d.data(schema)
		}
		if !ok {
			return nil, false
		}
		if !d.eat(',') {
			return e, d.eat('}') && e.V == Version && e.Data != nil
		}
	}
}

// data decodes an event's data into the union wireData, as encoding/json
// does, and converts it with the same typed.
func (d *fastDecoder) data(schema *fastSchema) (Data, bool) {
	var w wireData
	if schema == nil || !d.eat('{') {
		return nil, false
	}
	if d.eat('}') {
		return w.typed(schema.t, d.arena), true
	}
	for next := 0; ; {
		k := d.key(schema.names, next)
		if k < 0 {
			return nil, false
		}
		next = k + 1
		if !d.field(schema.fields[k], &w) {
			return nil, false
		}
		if !d.eat(',') {
			return w.typed(schema.t, d.arena), d.eat('}')
		}
	}
}

// field decodes the value of one data field into w.
func (d *fastDecoder) field(f dataField, w *wireData) bool {
	var ok bool
	switch f {
	case fieldLimit, fieldUnits, fieldRequested, fieldHeldUnits, fieldReleased, fieldOverage, fieldFraction,
		fieldRemaining:
		*w.unitsField(f), ok = d.units()
	case fieldPeriod, fieldUpgradeURL, fieldSource, fieldNote, fieldReservationID, fieldAgentID, fieldTaskRef,
		fieldReason, fieldMessage, fieldCause, fieldTrigger, fieldIdempotencyKey, fieldRequestHash, fieldRollover,
		fieldGrantID, fieldPriceList, fieldUnpriced, fieldVersion, fieldDigest:
		p := w.stringField(f)
		*p, ok = d.strReusing(d.seen[f], d.eventID) // a hold's ID is its event's
		d.seen[f] = *p
	case fieldThresholds:
		w.Thresholds, ok = d.unitsList()
	case fieldAgentLimits:
		w.AgentLimits, ok = mapOf(d, d.units)
	case fieldTaskCeiling, fieldOverdraft:
		var u Units
		if u, ok = d.units(); ok {
			*w.unitsPtrField(f) = &u
		}
	case fieldExpiresAt:
		w.ExpiresAt, ok = d.time()
	case fieldEffectiveAt:
		w.EffectiveAt, ok = d.time()
	case fieldMetadata:
		w.Metadata, ok = d.rawObject()
	case fieldBalance:
		ok = d.balance(&w.Balance)
	default:
		ok = d.extField(f, w)
	}
	return ok
}

// extField decodes the fields that came with grants and scopes, apart
// from the amounts, strings and times field decodes with the rest.
func (d *fastDecoder) extField(f dataField, w *wireData) bool {
	var ok bool
	switch f {
	case fieldMaxRuns:
		w.MaxRuns, ok = d.int()
	case fieldMaxRunsPerAgent:
		w.MaxRunsPerAgent, ok = d.int()
	case fieldPriority:
		w.Priority, ok = d.int()
	case fieldInOverdraft:
		w.InOverdraft, ok = d.bool()
	case fieldScope:
		w.Scope, ok = mapOf(d, d.str)
	case fieldScopeLimits:
		w.ScopeLimits, ok = listOf(d, d.scopeLimit)
	case fieldCountedScopes:
		w.CountedScopes, ok = listOf(d, d.scopeRef)
	case fieldFundedBy:
		w.FundedBy, ok = listOf(d, d.grantDraw)
	case fieldRateLimit:
		var r RateLimit
		if ok = d.rateLimit(&r); ok {
			w.RateLimit = &r
		}
	case fieldRefusedScope:
		var r ScopeRef
		if ok = d.scopeRef(&r); ok {
			w.RefusedScope = &r
		}
	case fieldModels:
		w.Models, ok = d.int()
	case fieldMaxOutputTokens:
		var n int
		n, ok = d.int()
		w.MaxOutputTokens = int64(n)
	case fieldBody:
		w.Body, ok = d.rawObject()
	case fieldUsage: // through a variable of its own: viaJSON's argument
		// escapes, and w must not (it stays on the stack)
		var u *Usage
		ok = d.viaJSON(&u)
		w.Usage = u
	case fieldPricing:
		var p *Pricing
		ok = d.viaJSON(&p)
		w.Pricing = p
	}
	return ok
}

// viaJSON decodes an object field with encoding/json: usage and pricing
// come with priced records only, and are not worth a decoder of their own.
func (d *fastDecoder) viaJSON(v any) bool {
	raw, ok := d.rawObject()
	return ok && json.Unmarshal(raw, v) == nil
}

func (w *wireData) unitsPtrField(f dataField) **Units {
	switch f {
	case fieldTaskCeiling:
		return &w.TaskCeiling
	case fieldOverdraft:
		return &w.Overdraft
	}
	panic("events: fast decoder: not an optional amount field")
}

func (w *wireData) unitsField(f dataField) *Units {
	switch f {
	case fieldLimit:
		return &w.Limit
	case fieldUnits:
		return &w.Units
	case fieldRequested:
		return &w.Requested
	case fieldHeldUnits:
		return &w.HeldUnits
	case fieldReleased:
		return &w.Released
	case fieldOverage:
		return &w.Overage
	case fieldFraction:
		return &w.Fraction
	case fieldRemaining:
		return &w.Remaining
	}
	panic("events: fast decoder: not an amount field")
}

func (w *wireData) stringField(f dataField) *string {
	switch f {
	case fieldPeriod:
		return &w.Period
	case fieldUpgradeURL:
		return &w.UpgradeURL
	case fieldSource:
		return &w.Source
	case fieldNote:
		return &w.Note
	case fieldReservationID:
		return &w.ReservationID
	case fieldAgentID:
		return &w.AgentID
	case fieldTaskRef:
		return &w.TaskRef
	case fieldReason:
		return &w.Reason
	case fieldMessage:
		return &w.Message
	case fieldCause:
		return &w.Cause
	case fieldTrigger:
		return &w.Trigger
	case fieldIdempotencyKey:
		return &w.IdempotencyKey
	case fieldRequestHash:
		return &w.RequestHash
	case fieldRollover:
		return &w.Rollover
	case fieldGrantID:
		return &w.GrantID
	case fieldPriceList:
		return &w.PriceList
	case fieldUnpriced:
		return &w.Unpriced
	case fieldVersion:
		return &w.Version
	case fieldDigest:
		return &w.Digest
	}
	panic("events: fast decoder: not a string field")
}

// balance decodes a balance: its period start, then amounts, in the order
// of balanceKeys.
func (d *fastDecoder) balance(b *Balance) bool {
	amounts := [...]*Units{&b.Limit, &b.TopUps, &b.Used, &b.Reserved, &b.Remaining,
		&b.Grants, &b.GrantsUsed, &b.Overdraft, &b.Overdrawn}
	if !d.eat('{') {
		return false
	}
	if d.eat('}') {
		return true
	}
	for next := 0; ; {
		k := d.key(balanceKeys, next)
		if k < 0 {
			return false
		}
		next = k + 1
		ok := false
		if k == 0 {
			b.PeriodStart, ok = d.time()
		} else {
			*amounts[k-1], ok = d.units()
		}
		if !ok {
			return false
		}
		if !d.eat(',') {
			return d.eat('}')
		}
	}
}

// unitsList decodes a non-empty array of amounts. An empty array is handed
// over: encoding/json makes it an empty, non-nil slice, and the encoder
// never writes one.
func (d *fastDecoder) unitsList() ([]Units, bool) {
	var us []Units
	if !d.eat('[') || d.eat(']') {
		return nil, false
	}
	for {
		u, ok := d.units()
		if !ok {
			return nil, false
		}
		us = append(us, u)
		if !d.eat(',') {
			return us, d.eat(']')
		}
	}
}

// mapOf decodes a non-empty object of values that value decodes (amounts,
// strings). An empty object is handed over (encoding/json makes it an
// empty, non-nil map, and the encoder never writes one), and so is a
// repeated key (encoding/json keeps the last; we do not try to).
func mapOf[V any](d *fastDecoder, value func() (V, bool)) (map[string]V, bool) {
	if !d.eat('{') || d.eat('}') {
		return nil, false
	}
	m := make(map[string]V)
	for {
		k, ok := d.str()
		if !ok || !d.eat(':') {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		if m[k], ok = value(); !ok {
			return nil, false
		}
		if !d.eat(',') {
			return m, d.eat('}')
		}
	}
}

// listOf decodes a non-empty array of objects that elem decodes into a
// zero T, as encoding/json decodes each element into a zero value. An
// empty array is handed over: encoding/json makes it an empty, non-nil
// slice, and the encoder never writes one.
func listOf[T any](d *fastDecoder, elem func(*T) bool) ([]T, bool) {
	var out []T
	if !d.eat('[') || d.eat(']') {
		return nil, false
	}
	for {
		var v T
		if !elem(&v) {
			return nil, false
		}
		out = append(out, v)
		if !d.eat(',') {
			return out, d.eat(']')
		}
	}
}

// object decodes an object whose keys are among names, in their order
// (as the encoder writes a struct's fields), calling value with the index
// of each. Keys may be absent: their fields stay zero, as in encoding/json.
func (d *fastDecoder) object(names []string, value func(k int) bool) bool {
	if !d.eat('{') {
		return false
	}
	if d.eat('}') {
		return true
	}
	for next := 0; ; {
		k := d.key(names, next)
		if k < 0 || !value(k) {
			return false
		}
		next = k + 1
		if !d.eat(',') {
			return d.eat('}')
		}
	}
}

func (d *fastDecoder) scopeRef(r *ScopeRef) bool {
	return d.object(scopeRefKeys, func(k int) (ok bool) {
		switch k {
		case 0:
			r.Dimension, ok = d.str()
		case 1:
			r.Value, ok = d.str()
		}
		return ok
	})
}

func (d *fastDecoder) scopeLimit(l *ScopeLimit) bool {
	return d.object(scopeLimitKeys, func(k int) (ok bool) {
		switch k {
		case 0:
			l.Dimension, ok = d.str()
		case 1:
			l.Value, ok = d.str()
		case 2:
			l.Limit, ok = d.units()
		case 3:
			l.Period, ok = d.str()
		}
		return ok
	})
}

func (d *fastDecoder) rateLimit(r *RateLimit) bool {
	return d.object(rateLimitKeys, func(k int) (ok bool) {
		switch k {
		case 0:
			r.PerSecond, ok = d.units()
		case 1:
			r.Burst, ok = d.int()
		}
		return ok
	})
}

func (d *fastDecoder) grantDraw(g *GrantDraw) bool {
	return d.object(grantDrawKeys, func(k int) (ok bool) {
		switch k {
		case 0:
			g.GrantID, ok = d.str()
		case 1:
			g.Units, ok = d.units()
		}
		return ok
	})
}

// int decodes an integer as encoding/json does (strconv.ParseInt of the
// token) for the tokens it is certain about: an optional minus, then 0 or
// 1 to intDigitsMax digits without a leading zero. The caller requires one
// of ",}]" next, so a fraction or an exponent is handed over.
func (d *fastDecoder) int() (int, bool) {
	neg := d.eat('-')
	start := d.i
	var v int64
	for d.i < len(d.b) && isDigit(d.b[d.i]) && d.i-start < intDigitsMax {
		v = v*10 + int64(d.b[d.i]-'0')
		d.i++
	}
	n := d.i - start
	if n == 0 || (d.b[start] == '0' && n > 1) || (d.i < len(d.b) && isDigit(d.b[d.i])) {
		return 0, false
	}
	if neg {
		v = -v
	}
	if int64(int(v)) != v {
		return 0, false // past a 32-bit int: encoding/json refuses it
	}
	return int(v), true
}

// bool decodes the literals true and false.
func (d *fastDecoder) bool() (bool, bool) {
	switch {
	case d.skipLiteral("true"):
		return true, true
	case d.skipLiteral("false"):
		return false, true
	}
	return false, false
}

// units decodes an amount written as a JSON number through parseTotal, as
// Units.UnmarshalJSON does with the same bytes. The token ends at the first
// byte that cannot be part of a number; the caller then requires one of
// ",}]". parseTotal accepts only the JSON number grammar, so a token it
// accepts is exactly the token encoding/json hands to UnmarshalJSON.
// Amounts written as strings are handed over.
func (d *fastDecoder) units() (Units, bool) {
	start := d.i
	for d.i < len(d.b) && isNumberByte(d.b[d.i]) {
		d.i++
	}
	if d.i == start {
		return Units{}, false
	}
	if u, ok := plainUnits(d.b[start:d.i]); ok {
		return u, true
	}
	m := &d.memo
	for j := range m.text {
		if m.text[j] == string(d.b[start:d.i]) { // compared without a copy
			return m.u[j], true
		}
	}
	text := string(d.b[start:d.i])
	u, err := parseTotal(text)
	if err != nil {
		return Units{}, false
	}
	if len(text) <= unitsMemoTextMax {
		m.text[m.next], m.u[m.next] = text, u
		m.next = (m.next + 1) % unitsMemoSize
	}
	return u, true
}

// plainUnitsDigitsMax bounds the digits plainUnits reads: 18 digits
// always fit an int64, so the coefficient is exact.
const plainUnitsDigitsMax = 18

// plainUnits parses, without allocating, the amounts the encoder writes
// nearly always: digits, then optionally a point and more digits, at most
// plainUnitsDigitsMax digits in all, with no leading zero but a lone one
// before the point. Its result is parseTotal's for the same text (the
// coefficient reduced, zero canonical), checked by the tests against
// parseTotal; anything else (a sign, an exponent, more digits) is left to
// parseTotal.
func plainUnits(b []byte) (Units, bool) {
	var coeff int64
	var exp int32
	digits, i := 0, 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		coeff = coeff*10 + int64(b[i]-'0')
		digits++
	}
	if digits == 0 || (b[0] == '0' && digits > 1) {
		return Units{}, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		frac := 0
		for ; i < len(b) && isDigit(b[i]); i++ {
			coeff = coeff*10 + int64(b[i]-'0')
			frac++
		}
		if frac == 0 {
			return Units{}, false
		}
		digits += frac
		exp = -int32(frac)
	}
	if i != len(b) || digits > plainUnitsDigitsMax {
		return Units{}, false
	}
	if coeff == 0 {
		return Units{}, true // canonical zero, exponent 0
	}
	for coeff%10 == 0 {
		coeff /= 10
		exp++
	}
	return NewUnits(coeff, exp), true
}

func isNumberByte(c byte) bool {
	return isDigit(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E'
}

// version decodes the only version there is, 1; any other value is
// handed over, since decoding it ends in an error anyway.
func (d *fastDecoder) version() (int, bool) {
	if d.eat('1') {
		return Version, true
	}
	return 0, false
}

// eat consumes c if it is the next byte.
func (d *fastDecoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// key consumes `"name":` for the first of names[from:] that the input
// has next, and returns its index; -1 if none (an unknown, repeated or
// reordered key, or one spelled with an escape). Keys must come in the
// encoder's order, which also rules out repeats.
//
// Most absent keys (the optional fields an event leaves out) are passed
// over by the two bytes after the name's length, which must be `":`, before
// the name is compared: an old event skips the keys that came with grants
// and scopes at the cost of a few byte compares.
func (d *fastDecoder) key(names []string, from int) int {
	rest := d.b[d.i:]
	if len(rest) == 0 || rest[0] != '"' {
		return -1
	}
	for j := from; j < len(names); j++ {
		n := names[j]
		if len(rest) >= len(n)+3 && rest[1+len(n)] == '"' && rest[2+len(n)] == ':' && string(rest[1:1+len(n)]) == n {
			d.i += len(n) + 3
			return j
		}
	}
	return -1
}

// plainStr consumes a string without escapes and returns its bytes, or nil.
func (d *fastDecoder) plainStr() []byte {
	b, i := d.b, d.i
	if i >= len(b) || b[i] != '"' {
		return nil
	}
	i++
	start := i
	for i < len(b) && b[i] != '"' && b[i] != '\\' {
		i++
	}
	if i >= len(b) || b[i] != '"' {
		return nil
	}
	d.i = i + 1
	return b[start:i]
}

// str decodes a string as encoding/json does, for the strings it can be
// certain about: valid UTF-8, no control characters, and only the escapes
// of simpleEscape.
func (d *fastDecoder) str() (string, bool) { return d.strReusing("", "") }

// strReusing is str, but returns a or b instead of a new copy when the
// string has the same bytes: IDs repeat within a commit (an agent's, a
// customer's, a hold's in its own reserved event), and a copy of each
// would be an allocation per event. Strings are immutable, so the values
// decoded are the same either way.
func (d *fastDecoder) strReusing(a, b string) (string, bool) {
	in, i := d.b, d.i
	if i >= len(in) || in[i] != '"' {
		return "", false
	}
	i++
	start := i
	for i < len(in) {
		c := in[i]
		switch {
		case strPlain[c]:
			i++
		case c == '"':
			d.i = i + 1
			s := in[start:i]
			if string(s) == a { // compared without a copy
				return a, true
			}
			if string(s) == b {
				return b, true
			}
			return string(s), true
		case c == '\\':
			return d.strEscaped(start, i)
		case c < utf8.RuneSelf: // a control character
			return "", false
		default:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size == 1 {
				return "", false // encoding/json would substitute U+FFFD
			}
			i += size
		}
	}
	return "", false
}

// strEscaped continues str from its first backslash at i.
func (d *fastDecoder) strEscaped(start, i int) (string, bool) {
	b := d.b
	buf := append(d.buf[:0], b[start:i]...)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			d.i = i + 1
			d.buf = buf
			return string(buf), true
		case c == '\\':
			if i+1 >= len(b) || simpleEscape[b[i+1]] == 0 {
				return "", false
			}
			buf = append(buf, simpleEscape[b[i+1]])
			i += 2
		case c < ' ':
			return "", false
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			buf = append(buf, b[i:i+size]...)
			i += size
		}
	}
	return "", false
}

// strPlain marks the bytes a string holds as they are: ASCII from the
// space up, but for the quote and the backslash.
var strPlain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// simpleEscape maps the byte after a backslash to what it stands for, for
// the escapes of one byte; 0 for the rest (\u and invalid escapes).
var simpleEscape = [256]byte{
	'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t',
}

// time decodes the text time.Time.MarshalJSON writes for a UTC time,
// "2006-01-02T15:04:05Z" with an optional fraction of 1 to 9 digits, and
// nothing else. For that text time.Time.UnmarshalJSON (time's
// parseRFC3339) checks the same ranges and returns the same
// Date(..., UTC).
func (d *fastDecoder) time() (time.Time, bool) {
	const form = `"2006-01-02T15:04:05Z"`
	b := d.b[d.i:]
	if len(b) < len(form) || b[0] != '"' {
		return time.Time{}, false
	}
	b = b[1:]
	if b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 ||
		day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	n, nsec, ok := fraction(b, len("2006-01-02T15:04:05"))
	if !ok || n+1 >= len(b) || b[n] != 'Z' || b[n+1] != '"' {
		return time.Time{}, false
	}
	d.i += 1 + n + 2
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// fraction reads an optional fraction of a second at b[n:], of 1 to 9
// digits, and returns the index after it and its nanoseconds.
func fraction(b []byte, n int) (int, int, bool) {
	if b[n] != '.' {
		return n, 0, true
	}
	n++
	nsec, k := 0, 0
	for ; n < len(b) && isDigit(b[n]); n++ {
		if k++; k > 9 {
			return 0, 0, false // time truncates; we do not try to
		}
		nsec = nsec*10 + int(b[n]-'0')
	}
	if k == 0 {
		return 0, 0, false
	}
	for ; k < 9; k++ {
		nsec *= 10
	}
	return n, nsec, true
}

// digits parses a fixed-width unsigned decimal.
func digits(b []byte) (int, bool) {
	x := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		x = x*10 + int(c-'0')
	}
	return x, true
}

// daysIn is the number of days in a month of the proleptic Gregorian
// calendar, as time computes it.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// rawObject decodes metadata: a JSON object, validated exactly as
// encoding/json's scanner does and copied byte for byte, as
// json.RawMessage.UnmarshalJSON copies it.
func (d *fastDecoder) rawObject() (json.RawMessage, bool) {
	start := d.i
	if d.i >= len(d.b) || d.b[d.i] != '{' || !d.skipValue(0) {
		return nil, false
	}
	return append(json.RawMessage(nil), d.b[start:d.i]...), true
}

// skipValue consumes one JSON value without white space.
func (d *fastDecoder) skipValue(depth int) bool {
	if depth >= metadataDepthMax || d.i >= len(d.b) {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.skipObject(depth)
	case c == '[':
		return d.skipArray(depth)
	case c == '"':
		return d.skipString()
	case c == '-' || isDigit(c):
		return d.skipNumber()
	case c == 't':
		return d.skipLiteral("true")
	case c == 'f':
		return d.skipLiteral("false")
	case c == 'n':
		return d.skipLiteral("null")
	}
	return false
}

func (d *fastDecoder) skipObject(depth int) bool {
	d.i++ // '{'
	if d.eat('}') {
		return true
	}
	for {
		if !d.skipString() || !d.eat(':') || !d.skipValue(depth+1) {
			return false
		}
		if !d.eat(',') {
			return d.eat('}')
		}
	}
}

func (d *fastDecoder) skipArray(depth int) bool {
	d.i++ // '['
	if d.eat(']') {
		return true
	}
	for {
		if !d.skipValue(depth + 1) {
			return false
		}
		if !d.eat(',') {
			return d.eat(']')
		}
	}
}

// skipString consumes a string as the scanner accepts it: any byte from
// 0x20 up (the scanner does not check UTF-8; RawMessage keeps the bytes),
// and the escapes \" \\ \/ \b \f \n \r \t and \u with four hex digits.
func (d *fastDecoder) skipString() bool {
	b, i := d.b, d.i
	if i >= len(b) || b[i] != '"' {
		return false
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			d.i = i + 1
			return true
		case c < ' ':
			return false
		case c != '\\':
		case i+1 < len(b) && simpleEscape[b[i+1]] != 0:
			i++
		case i+5 < len(b) && b[i+1] == 'u' && isHex(b[i+2]) && isHex(b[i+3]) && isHex(b[i+4]) && isHex(b[i+5]):
			i += 5
		default:
			return false
		}
	}
	return false
}

func isHex(c byte) bool { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }

// skipNumber consumes a number of RFC 8259's grammar. The caller checks
// that a structural byte follows, so "01" or "1x" are not accepted.
func (d *fastDecoder) skipNumber() bool {
	d.eat('-')
	if !d.eat('0') && !d.skipDigits() {
		return false
	}
	if d.eat('.') && !d.skipDigits() {
		return false
	}
	if d.eat('e') || d.eat('E') {
		if !d.eat('+') {
			d.eat('-')
		}
		return d.skipDigits()
	}
	return true
}

// skipDigits consumes one or more digits.
func (d *fastDecoder) skipDigits() bool {
	start := d.i
	for d.i < len(d.b) && isDigit(d.b[d.i]) {
		d.i++
	}
	return d.i > start
}

func (d *fastDecoder) skipLiteral(lit string) bool {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// dataField names one field of wireData.
type dataField uint8

const (
	fieldLimit dataField = iota
	fieldPeriod
	fieldThresholds
	fieldUpgradeURL
	fieldAgentLimits
	fieldSource
	fieldUnits
	fieldNote
	fieldReservationID
	fieldAgentID
	fieldTaskRef
	fieldTaskCeiling
	fieldExpiresAt
	fieldMetadata
	fieldRequested
	fieldReason
	fieldMessage
	fieldHeldUnits
	fieldReleased
	fieldOverage
	fieldCause
	fieldFraction
	fieldTrigger
	fieldRollover
	fieldOverdraft
	fieldScopeLimits
	fieldMaxRuns
	fieldMaxRunsPerAgent
	fieldScope
	fieldCountedScopes
	fieldInOverdraft
	fieldRefusedScope
	fieldFundedBy
	fieldGrantID
	fieldPriority
	fieldEffectiveAt
	fieldRemaining
	fieldPriceList
	fieldUsage
	fieldPricing
	fieldUnpriced
	fieldVersion
	fieldDigest
	fieldModels
	fieldBody
	fieldMaxOutputTokens
	fieldRateLimit
	fieldIdempotencyKey
	fieldRequestHash
	fieldBalance
)

// dataFieldNames are the JSON names of wireData's fields.
var dataFieldNames = [...]string{
	fieldLimit: "limit", fieldPeriod: "period", fieldThresholds: "thresholds", fieldUpgradeURL: "upgrade_url",
	fieldAgentLimits: "agent_limits", fieldSource: "source", fieldUnits: "units", fieldNote: "note",
	fieldReservationID: "reservation_id", fieldAgentID: "agent_id", fieldTaskRef: "task_ref",
	fieldTaskCeiling: "task_ceiling", fieldExpiresAt: "expires_at", fieldMetadata: "metadata",
	fieldRequested: "requested", fieldReason: "reason", fieldMessage: "message", fieldHeldUnits: "held_units",
	fieldReleased: "released", fieldOverage: "overage", fieldCause: "cause", fieldFraction: "fraction",
	fieldTrigger: "trigger", fieldRollover: "rollover", fieldOverdraft: "overdraft", fieldScopeLimits: "scope_limits",
	fieldMaxRuns: "max_concurrent_runs", fieldMaxRunsPerAgent: "max_concurrent_runs_per_agent", fieldScope: "scope",
	fieldCountedScopes: "counted_scopes", fieldInOverdraft: "in_overdraft", fieldRefusedScope: "refused_scope",
	fieldFundedBy: "funded_by", fieldGrantID: "grant_id", fieldPriority: "priority", fieldEffectiveAt: "effective_at",
	fieldRemaining: "remaining", fieldPriceList: "price_list", fieldUsage: "usage", fieldPricing: "pricing",
	fieldUnpriced: "unpriced", fieldVersion: "version", fieldDigest: "digest", fieldModels: "models",
	fieldBody: "body", fieldMaxOutputTokens: "max_output_tokens", fieldRateLimit: "rate_limit",
	fieldIdempotencyKey: "idempotency_key", fieldRequestHash: "request_hash",
	fieldBalance: "balance",
}

// fastSchema is an event type's data fields in the order Encode writes
// them: the order of its struct (TestFastSchemasMatchStructs checks it).
// A field of the union that its type does not have is handed over.
type fastSchema struct {
	t      Type
	fields []dataField
	names  []string // the fields' JSON names
}

var fastSchemas = [...]fastSchema{
	schema(TypeBudgetSet, fieldLimit, fieldPeriod, fieldThresholds, fieldUpgradeURL, fieldAgentLimits,
		fieldSource, fieldRollover, fieldOverdraft, fieldScopeLimits, fieldMaxRuns, fieldMaxRunsPerAgent,
		fieldPriceList, fieldRateLimit, fieldIdempotencyKey, fieldRequestHash, fieldBalance),
	schema(TypeToppedUp, fieldUnits, fieldNote, fieldIdempotencyKey, fieldRequestHash, fieldBalance),
	schema(TypeReserved, fieldReservationID, fieldAgentID, fieldUnits, fieldTaskRef, fieldTaskCeiling,
		fieldExpiresAt, fieldMetadata, fieldScope, fieldCountedScopes, fieldRequested, fieldInOverdraft,
		fieldPricing, fieldMaxOutputTokens, fieldIdempotencyKey, fieldRequestHash, fieldBalance),
	schema(TypeDenied, fieldAgentID, fieldRequested, fieldReason, fieldMessage, fieldTaskRef,
		fieldUpgradeURL, fieldScope, fieldRefusedScope, fieldIdempotencyKey, fieldRequestHash, fieldBalance),
	schema(TypeRecorded, fieldAgentID, fieldReservationID, fieldHeldUnits, fieldUnits, fieldReleased,
		fieldOverage, fieldTaskRef, fieldMetadata, fieldScope, fieldCountedScopes, fieldFundedBy,
		fieldUsage, fieldPricing, fieldUnpriced, fieldIdempotencyKey, fieldRequestHash, fieldBalance),
	schema(TypeReleased, fieldReservationID, fieldAgentID, fieldUnits, fieldCause, fieldIdempotencyKey,
		fieldRequestHash, fieldBalance),
	schema(TypeExpired, fieldReservationID, fieldAgentID, fieldUnits, fieldExpiresAt, fieldBalance),
	schema(TypeExtended, fieldReservationID, fieldAgentID, fieldExpiresAt, fieldIdempotencyKey,
		fieldRequestHash, fieldBalance),
	schema(TypeThresholdCrossed, fieldFraction, fieldBalance),
	schema(TypeBudgetExhausted, fieldTrigger, fieldAgentID, fieldUpgradeURL, fieldBalance),
	schema(TypeBudgetRestored, fieldTrigger, fieldBalance),
	schema(TypeGranted, fieldGrantID, fieldUnits, fieldPriority, fieldSource, fieldNote, fieldEffectiveAt,
		fieldExpiresAt, fieldIdempotencyKey, fieldRequestHash, fieldBalance),
	schema(TypeGrantExpired, fieldGrantID, fieldUnits, fieldRemaining, fieldExpiresAt, fieldBalance),
	schema(TypeOverdraftStarted, fieldAgentID, fieldOverdraft, fieldBalance),
	schema(TypePricesSet, fieldPriceList, fieldVersion, fieldDigest, fieldModels, fieldBody),
}

func schema(t Type, fields ...dataField) fastSchema {
	s := fastSchema{t: t, fields: fields}
	for _, f := range fields {
		s.names = append(s.names, dataFieldNames[f])
	}
	return s
}

// schemaOf returns the schema of the type spelled t, or nil.
func schemaOf(t []byte) *fastSchema {
	if t == nil {
		return nil
	}
	for i := range fastSchemas {
		if string(fastSchemas[i].t) == string(t) {
			return &fastSchemas[i]
		}
	}
	return nil
}
