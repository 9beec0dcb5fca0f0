package ledger

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentbill/agentbill/events"
)

// replyBufBytes is the initial capacity of a reply AppendReply writes: a
// preflight's or record's reply is about 250 bytes.
const replyBufBytes = 320

// AppendReply appends r's JSON to b exactly as encoding/json writes it with
// HTML escaping off (the writer's encodeReply), for the replies every
// preflight and record gets in their plain form: a *PreflightReply without
// scope or pricing, a *RecordReply without pricing, strings that
// encoding/json writes unchanged and UTC-offset times. It reports false for
// anything else, which the caller encodes with encoding/json. Encoding
// replies through reflection cost 2.4% of the bench process's CPU in the
// spread scenario (BENCHMARKS.md, "CPU per request").
// TestAppendReplyEquivalence checks it byte for byte.
func AppendReply(b []byte, r Reply) ([]byte, bool) {
	if b == nil {
		b = make([]byte, 0, replyBufBytes)
	}
	o := replyObject{b: b, ok: true}
	switch r := r.(type) {
	case *PreflightReply:
		o.preflight(r)
	case *RecordReply:
		o.record(r)
	default:
		return b, false
	}
	return o.b, o.ok
}

// replyObject writes one JSON object's members; ok turns false at the
// first value it cannot write as encoding/json would.
type replyObject struct {
	b    []byte
	ok   bool
	more bool
}

func (o *replyObject) key(k string) {
	if o.more {
		o.b = append(o.b, ',')
	}
	o.more = true
	o.b = append(append(append(o.b, '"'), k...), '"', ':')
}

// str writes a string encoding/json writes unchanged with HTML escaping
// off: no control character, '"' or '\\', valid UTF-8 without U+2028 and
// U+2029.
func (o *replyObject) str(k, v string) {
	for i := range len(v) {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' {
			o.ok = false
			return
		}
	}
	if !utf8.ValidString(v) || strings.Contains(v, "\u2028") || strings.Contains(v, "\u2029") {
		o.ok = false
		return
	}
	o.key(k)
	o.b = append(append(append(o.b, '"'), v...), '"')
}

func (o *replyObject) strOmit(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *replyObject) boolean(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

func (o *replyObject) boolOmit(k string, v bool) {
	if v {
		o.boolean(k, v)
	}
}

func (o *replyObject) intOmit(k string, v int64) {
	if v != 0 {
		o.key(k)
		o.b = strconv.AppendInt(o.b, v, 10)
	}
}

func (o *replyObject) units(k string, u events.Units) {
	o.key(k)
	o.b = u.AppendJSON(o.b)
}

// timeOmit writes *t as time.Time.MarshalJSON does, for a zero offset and
// years 0 to 9999 (anything else goes to encoding/json); nil is omitted.
func (o *replyObject) timeOmit(k string, t *time.Time) {
	if t == nil {
		return
	}
	if _, off := t.Zone(); off != 0 || t.Year() < 0 || t.Year() > 9999 {
		o.ok = false
		return
	}
	o.key(k)
	o.b = append(t.AppendFormat(append(o.b, '"'), time.RFC3339Nano), '"')
}

func (o *replyObject) preflight(r *PreflightReply) {
	if r.Scope != nil || r.EstimatePricing != nil {
		o.ok = false
		return
	}
	o.b = append(o.b, '{')
	o.boolean("approved", r.Approved)
	o.strOmit("reason", r.Reason)
	o.str("message", r.Message)
	o.strOmit("reservation_id", r.ReservationID)
	o.units("reserved_units", r.ReservedUnits)
	o.units("remaining_units", r.RemainingUnits.Units)
	o.timeOmit("expires_at", r.ExpiresAt)
	o.strOmit("upgrade_url", r.UpgradeURL)
	o.boolOmit("partial", r.Partial)
	o.boolOmit("overdraft", r.Overdraft)
	o.intOmit("retry_after_ms", r.RetryAfterMs)
	o.boolOmit("unchecked", r.Unchecked)
	o.intOmit("max_output_tokens", r.MaxOutputTokens)
	o.b = append(o.b, '}')
}

func (o *replyObject) record(r *RecordReply) {
	if r.Pricing != nil {
		o.ok = false
		return
	}
	o.b = append(o.b, '{')
	o.str("status", r.Status)
	o.strOmit("event_id", r.EventID)
	o.strOmit("reservation_id", r.ReservationID)
	o.units("charged_units", r.ChargedUnits)
	o.units("released_units", r.ReleasedUnits)
	o.units("overage_units", r.OverageUnits)
	o.units("remaining_units", r.RemainingUnits.Units)
	o.boolean("exhausted", r.Exhausted)
	if len(r.FundedBy) != 0 {
		o.key("funded_by")
		o.b = append(o.b, '[')
		for i, d := range r.FundedBy {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = append(o.b, '{')
			o.more = false
			o.str("grant_id", d.GrantID)
			o.units("units", d.Units)
			o.b = append(o.b, '}')
		}
		o.b = append(o.b, ']')
		o.more = true
	}
	o.strOmit("unpriced", r.Unpriced)
	o.b = append(o.b, '}')
}
