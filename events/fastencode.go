package events

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// fastEncodeBufBytes is the initial capacity of a fast-encoded event: a
// reserved or recorded event with its balance is about 600 bytes.
const fastEncodeBufBytes = 768

// appendFast appends e's JSON to b exactly as encodeJSON writes it, for the
// two events every preflight and record write (reserved, recorded) in
// their common forms: scopes and grant draws included, no metadata, usage
// or pricing, strings
// that need no escaping, UTC-offset times in years 0 to 9999. It reports
// false for anything else, and Encode falls back to encoding/json. Writing
// them by hand took events.Encode from 4.5% of the bench process's CPU
// (encoding/json's reflection) to well under 1% (BENCHMARKS.md, "CPU per
// request"). TestFastEncodeEquivalence checks it byte for byte against
// encodeJSON, and TestFastEncodeKnowsEveryField fails when a field is
// added to these structs and not here.
func appendFast(b []byte, e *Envelope) ([]byte, bool) {
	o := fastObject{b: b, ok: true}
	o.open()
	o.str("id", e.ID)
	o.str("type", string(e.Type))
	o.key("v")
	o.b = strconv.AppendInt(o.b, int64(e.V), 10)
	o.time("at", e.At)
	o.str("customer_id", e.CustomerID)
	o.key("data")
	switch d := e.Data.(type) {
	case *Reserved:
		o.reserved(d)
	case *Recorded:
		o.recorded(d)
	default:
		return b, false
	}
	o.close()
	return o.b, o.ok
}

// fastObject writes one JSON object's fields; ok turns false at the first
// value it cannot write as encoding/json would.
type fastObject struct {
	b     []byte
	ok    bool
	comma bool
}

func (o *fastObject) open() { o.b, o.comma = append(o.b, '{'), false }

func (o *fastObject) close() { o.b, o.comma = append(o.b, '}'), true }

func (o *fastObject) key(k string) {
	if o.comma {
		o.b = append(o.b, ',')
	}
	o.b = append(append(append(o.b, '"'), k...), '"', ':')
	o.comma = true
}

// str writes a string that encoding/json writes as it is (with HTML
// escaping off): no control character, '"' or '\\', and valid UTF-8
// without U+2028 or U+2029. Anything else is left to encoding/json.
func (o *fastObject) str(k, v string) {
	if !plainJSON(v) {
		o.ok = false
		return
	}
	o.key(k)
	o.b = append(append(append(o.b, '"'), v...), '"')
}

// plainJSON reports whether encoding/json writes v as it is, between
// quotes.
func plainJSON(v string) bool {
	for i := range len(v) {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		} else if c >= utf8.RuneSelf && !validJSONText(v) {
			return false
		}
	}
	return true
}

// scope writes a ScopeMap field (omitempty) as its MarshalJSON does: keys
// sorted. Keys that need escaping go to encoding/json.
func (o *fastObject) scope(m ScopeMap) {
	if len(m) == 0 {
		return
	}
	if len(m) > scopeMapSortMax {
		o.ok = false
		return
	}
	var arr [scopeMapSortMax]string
	keys := arr[:0]
	for k := range m {
		if !plainJSON(k) {
			o.ok = false
			return
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	o.key("scope")
	o.open()
	for _, k := range keys {
		o.str(k, m[k])
	}
	o.close()
}

// list writes a list field of n objects (omitempty), each written by
// item between the object's braces.
func (o *fastObject) list(k string, n int, item func(i int)) {
	if n == 0 {
		return
	}
	o.key(k)
	o.b = append(o.b, '[')
	for i := range n {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.open()
		item(i)
		o.close()
	}
	o.b = append(o.b, ']')
}

// scopeRefs writes a []ScopeRef field (omitempty).
func (o *fastObject) scopeRefs(k string, refs []ScopeRef) {
	o.list(k, len(refs), func(i int) {
		o.str("dimension", refs[i].Dimension)
		o.str("value", refs[i].Value)
	})
}

// grantDraws writes a []GrantDraw field (omitempty).
func (o *fastObject) grantDraws(k string, draws []GrantDraw) {
	o.list(k, len(draws), func(i int) {
		o.str("grant_id", draws[i].GrantID)
		o.units("units", draws[i].Units)
	})
}

// validJSONText reports whether encoding/json writes v's non-ASCII bytes
// unchanged: valid UTF-8 without U+2028 and U+2029 (which it escapes).
func validJSONText(v string) bool {
	return utf8.ValidString(v) && !strings.Contains(v, "\u2028") && !strings.Contains(v, "\u2029")
}

func (o *fastObject) strOmit(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

// time writes t as time.Time.MarshalJSON does (RFC 3339 with nanoseconds,
// trailing zeros trimmed), for a zero offset ("Z") and years 0 to 9999;
// other times go to encoding/json.
func (o *fastObject) time(k string, t time.Time) {
	if _, off := t.Zone(); off != 0 || t.Year() < 0 || t.Year() > 9999 {
		o.ok = false
		return
	}
	o.key(k)
	o.b = append(t.AppendFormat(append(o.b, '"'), time.RFC3339Nano), '"')
}

func (o *fastObject) units(k string, u Units) {
	o.key(k)
	o.b = u.AppendJSON(o.b)
}

// unitsOmitZero is a Units field tagged omitzero.
func (o *fastObject) unitsOmitZero(k string, u Units) {
	if !u.IsZero() {
		o.units(k, u)
	}
}

func (o *fastObject) request(r Request) {
	o.strOmit("idempotency_key", r.IdempotencyKey)
	o.strOmit("request_hash", r.RequestHash)
}

func (o *fastObject) balance(bal *Balance) {
	o.key("balance")
	o.open()
	o.time("period_start", bal.PeriodStart)
	o.units("limit", bal.Limit)
	o.units("top_ups", bal.TopUps)
	o.units("used", bal.Used)
	o.units("reserved", bal.Reserved)
	o.units("remaining", bal.Remaining)
	o.unitsOmitZero("grants", bal.Grants)
	o.unitsOmitZero("grants_used", bal.GrantsUsed)
	o.unitsOmitZero("overdraft", bal.Overdraft)
	o.unitsOmitZero("overdrawn", bal.Overdrawn)
	o.close()
}

// reserved writes a Reserved without metadata or pricing.
func (o *fastObject) reserved(d *Reserved) {
	if len(d.Metadata) != 0 || d.Pricing != nil {
		o.ok = false
		return
	}
	o.open()
	o.str("reservation_id", d.ReservationID)
	o.str("agent_id", d.AgentID)
	o.units("units", d.Units)
	o.strOmit("task_ref", d.TaskRef)
	if d.TaskCeiling != nil {
		o.units("task_ceiling", *d.TaskCeiling)
	}
	o.time("expires_at", d.ExpiresAt)
	o.scope(d.Scope)
	o.scopeRefs("counted_scopes", d.CountedScopes)
	o.unitsOmitZero("requested", d.Requested)
	if d.InOverdraft {
		o.key("in_overdraft")
		o.b = append(o.b, "true"...)
	}
	if d.MaxOutputTokens != 0 {
		o.key("max_output_tokens")
		o.b = strconv.AppendInt(o.b, d.MaxOutputTokens, 10)
	}
	o.request(d.Request)
	o.balance(&d.Balance)
	o.close()
}

// recorded writes a Recorded without metadata, usage or pricing.
func (o *fastObject) recorded(d *Recorded) {
	if len(d.Metadata) != 0 || d.Usage != nil || d.Pricing != nil {
		o.ok = false
		return
	}
	o.open()
	o.str("agent_id", d.AgentID)
	o.strOmit("reservation_id", d.ReservationID)
	o.units("held_units", d.HeldUnits)
	o.units("units", d.Units)
	o.units("released", d.Released)
	o.units("overage", d.Overage)
	o.strOmit("task_ref", d.TaskRef)
	o.scope(d.Scope)
	o.scopeRefs("counted_scopes", d.CountedScopes)
	o.grantDraws("funded_by", d.FundedBy)
	o.strOmit("unpriced", d.Unpriced)
	o.request(d.Request)
	o.balance(&d.Balance)
	o.close()
}
