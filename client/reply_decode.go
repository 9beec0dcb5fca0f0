package client

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
)

// decodeReplyFast decodes the plain preflight and record replies the
// writer writes (ledger.AppendReply: its members in their order, no
// escapes, no white space) into out without encoding/json's reflection,
// and reports false for any other body, or out of another type, leaving
// out untouched: the caller then uses encoding/json. What it decodes is
// what encoding/json decodes (FuzzDecodeReplyFast). The bench's 64
// clients spent about 5% of the process's CPU decoding replies with
// encoding/json (BENCHMARKS.md, "CPU per request").
func decodeReplyFast(data []byte, out any) bool {
	p := replyParser{b: data, ok: true}
	switch out := out.(type) {
	case *ledger.PreflightReply:
		var r ledger.PreflightReply
		p.open()
		r.Approved = p.boolean("approved", false)
		r.Reason = p.str("reason", true)
		r.Message = p.str("message", false)
		r.ReservationID = p.str("reservation_id", true)
		r.ReservedUnits = p.units("reserved_units")
		r.RemainingUnits = p.signed("remaining_units")
		r.ExpiresAt = p.time("expires_at")
		r.UpgradeURL = p.str("upgrade_url", true)
		r.Partial = p.boolean("partial", true)
		r.Overdraft = p.boolean("overdraft", true)
		r.RetryAfterMs = p.int("retry_after_ms")
		r.Unchecked = p.boolean("unchecked", true)
		r.MaxOutputTokens = p.int("max_output_tokens")
		if p.close() {
			*out = r
			return true
		}
	case *ledger.RecordReply:
		var r ledger.RecordReply
		p.open()
		r.Status = p.str("status", false)
		r.EventID = p.str("event_id", true)
		r.ReservationID = p.str("reservation_id", true)
		r.ChargedUnits = p.units("charged_units")
		r.ReleasedUnits = p.units("released_units")
		r.OverageUnits = p.units("overage_units")
		r.RemainingUnits = p.signed("remaining_units")
		r.Exhausted = p.boolean("exhausted", false)
		r.FundedBy = p.grantDraws("funded_by")
		r.Unpriced = p.str("unpriced", true)
		if p.close() {
			*out = r
			return true
		}
	}
	return false
}

// replyParser reads one object's members in a fixed order; ok turns false
// at the first byte it does not expect.
type replyParser struct {
	b    []byte
	i    int
	ok   bool
	more bool // a member was read: the next one follows a comma
}

func (p *replyParser) open() {
	p.ok = p.ok && len(p.b) > 0 && p.b[0] == '{'
	p.i = 1
}

// close reports whether the object ends here, and the body with it.
func (p *replyParser) close() bool {
	return p.ok && p.i == len(p.b)-1 && p.b[p.i] == '}'
}

// key consumes `,"k":` (no comma first) if it comes next. An optional
// member that is absent is not an error; a required one is.
func (p *replyParser) key(k string, optional bool) bool {
	if !p.ok {
		return false
	}
	rest := p.b[p.i:]
	n := 0
	if p.more {
		if len(rest) == 0 || rest[0] != ',' {
			p.ok = p.ok && optional
			return false
		}
		n = 1
	}
	if len(rest) < n+len(k)+3 || rest[n] != '"' || string(rest[n+1:n+1+len(k)]) != k || rest[n+1+len(k)] != '"' || rest[n+2+len(k)] != ':' {
		p.ok = p.ok && optional
		return false
	}
	p.i += n + len(k) + 3
	p.more = true
	return true
}

// literal returns the bytes of a number, true, false or null up to the
// next ',' or '}'.
func (p *replyParser) literal() []byte {
	j := p.i
	for j < len(p.b) && p.b[j] != ',' && p.b[j] != '}' {
		j++
	}
	v := p.b[p.i:j]
	p.i = j
	if len(v) == 0 {
		p.ok = false
	}
	return v
}

// quoted returns a string's bytes with their quotes, if it has no escape
// and is valid UTF-8 (encoding/json would change anything else).
func (p *replyParser) quoted() []byte {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		p.ok = false
		return nil
	}
	j := bytes.IndexByte(p.b[p.i+1:], '"')
	if j < 0 {
		p.ok = false
		return nil
	}
	v := p.b[p.i : p.i+j+2]
	for _, c := range v[1 : len(v)-1] {
		if c < 0x20 || c == '\\' {
			p.ok = false
			return nil
		}
	}
	if !utf8.Valid(v) {
		p.ok = false
		return nil
	}
	p.i += len(v)
	return v
}

func (p *replyParser) str(k string, optional bool) string {
	if !p.key(k, optional) {
		return ""
	}
	v := p.quoted()
	if !p.ok {
		return ""
	}
	return string(v[1 : len(v)-1])
}

func (p *replyParser) boolean(k string, optional bool) bool {
	if !p.key(k, optional) {
		return false
	}
	switch string(p.literal()) {
	case "true":
		return true
	case "false":
		return false
	}
	p.ok = false
	return false
}

// int reads an optional integer member of digits only (anything else,
// like 1e3, goes to encoding/json).
func (p *replyParser) int(k string) int64 {
	if !p.key(k, true) {
		return 0
	}
	v := p.literal()
	for _, c := range v {
		if c < '0' || c > '9' {
			p.ok = false
			return 0
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || len(v) > 1 && v[0] == '0' {
		p.ok = false
	}
	return n
}

// grantDraws reads an optional array of grant draws as AppendReply writes
// it: at least one {"grant_id":"...","units":N}, no white space.
func (p *replyParser) grantDraws(k string) []events.GrantDraw {
	if !p.key(k, true) {
		return nil
	}
	var out []events.GrantDraw
	for sep := byte('['); p.ok; {
		if p.i+1 >= len(p.b) || p.b[p.i] != sep || p.b[p.i+1] != '{' {
			p.ok = false
			return nil
		}
		d := replyParser{b: p.b, i: p.i + 2, ok: true}
		g := events.GrantDraw{GrantID: d.str("grant_id", false), Units: d.units("units")}
		if !d.ok || d.i >= len(d.b) || d.b[d.i] != '}' {
			p.ok = false
			return nil
		}
		out = append(out, g)
		p.i = d.i + 1
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return out
		}
		sep = ','
	}
	return nil
}

// number returns a JSON number's bytes: what encoding/json hands to
// events.Units.UnmarshalJSON. Strings, null and anything that is not a
// JSON number go to encoding/json.
func (p *replyParser) number() []byte {
	v := p.literal()
	if !validNumber(v) {
		p.ok = false
		return nil
	}
	return v
}

// validNumber reports whether v is a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(v []byte) bool {
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(v) && '0' <= v[i] && v[i] <= '9' {
			i, n = i+1, n+1
		}
		return n
	}
	start := i
	if n := digits(); n == 0 || n > 1 && v[start] == '0' {
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(v)
}

func (p *replyParser) units(k string) events.Units {
	var u events.Units
	if p.key(k, false) {
		if v := p.number(); p.ok && u.UnmarshalJSON(v) != nil {
			p.ok = false
		}
	}
	return u
}

func (p *replyParser) signed(k string) events.Signed {
	var s events.Signed
	if p.key(k, false) {
		if v := p.number(); p.ok && s.UnmarshalJSON(v) != nil {
			p.ok = false
		}
	}
	return s
}

// time reads an optional time member as time.Time.UnmarshalJSON does.
func (p *replyParser) time(k string) *time.Time {
	if !p.key(k, true) {
		return nil
	}
	v := p.quoted()
	if !p.ok {
		return nil
	}
	t := new(time.Time)
	if err := t.UnmarshalJSON(v); err != nil {
		p.ok = false
		return nil
	}
	return t
}
