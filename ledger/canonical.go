package ledger

import (
	"encoding/json"

	"github.com/agentbill/agentbill/events"
)

// The hot requests' canonical JSON without reflection: appendCanonical
// writes the bytes json.Marshal writes for a preflight or a record, and
// requestHash hashes them. The bytes must not change, ever: the hashes are
// in the log (events.Request), and a retry after an upgrade must match
// the hash its first attempt stored. TestCanonicalMatchesMarshal compares
// the two on random requests; anything this file does not handle (metadata,
// which json.Marshal compacts, or a scope of more dimensions than a valid
// request has) goes to json.Marshal.

// requestHashBuf bounds the scratch buffer State.requestHash keeps
// between requests; one grown past it by a longer request is dropped.
const requestHashBuf = 512

// MarshalRequest returns c's JSON: the bytes json.Marshal writes, written
// without reflection for a preflight or a record (the Go client sends them
// this way).
func MarshalRequest(c Command) ([]byte, error) {
	if b, ok := appendCanonical(make([]byte, 0, requestHashBuf), c); ok {
		return b, nil
	}
	return json.Marshal(c)
}

// appendCanonical appends c's canonical JSON to b, or reports false if c
// is not one it writes.
func appendCanonical(b []byte, c Command) ([]byte, bool) {
	switch r := c.(type) {
	case *PreflightRequest:
		if len(r.Metadata) != 0 || len(r.Scope) > ScopeDimensionsMax || r.UsageEstimate != nil {
			return b, false
		}
		o := object{b: append(b, '{')}
		o.stringOmit("customer_id", r.CustomerID)
		o.string("agent_id", r.AgentID)
		o.units("estimated_units", r.EstimatedUnits, false)
		o.stringOmit("task_ref", r.TaskRef)
		o.units("task_ceiling", r.TaskCeiling, true)
		o.units("ceiling", r.Ceiling, true)
		o.stringOmit("ttl", r.TTL)
		o.stringOmit("idempotency_key", r.IdempotencyKey)
		o.scope("scope", r.Scope)
		o.units("min_units", r.MinUnits, true)
		return append(o.b, '}'), true
	case *RecordRequest:
		if len(r.Metadata) != 0 || len(r.Scope) > ScopeDimensionsMax || r.Usage != nil {
			return b, false
		}
		o := object{b: append(b, '{')}
		o.stringOmit("customer_id", r.CustomerID)
		o.string("agent_id", r.AgentID)
		o.units("units", r.Units, false)
		o.stringOmit("reservation_id", r.ReservationID)
		if r.Success != nil {
			o.key("success")
			if *r.Success {
				o.b = append(o.b, "true"...)
			} else {
				o.b = append(o.b, "false"...)
			}
		}
		o.stringOmit("task_ref", r.TaskRef)
		o.stringOmit("idempotency_key", r.IdempotencyKey)
		o.scope("scope", r.Scope)
		return append(o.b, '}'), true
	}
	return b, false
}

// object writes a JSON object's members as encoding/json does.
type object struct {
	b    []byte
	more bool
}

func (o *object) key(k string) {
	if o.more {
		o.b = append(o.b, ',')
	}
	o.more = true
	o.b = appendString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *object) string(k, v string) {
	o.key(k)
	o.b = appendString(o.b, v)
}

func (o *object) stringOmit(k, v string) {
	if v != "" {
		o.string(k, v)
	}
}

// units writes an amount (Units.MarshalJSON: a JSON number), null when
// nil unless omitempty.
func (o *object) units(k string, u *events.Units, omitempty bool) {
	if u == nil {
		if !omitempty {
			o.key(k)
			o.b = append(o.b, "null"...)
		}
		return
	}
	o.key(k)
	o.b = u.AppendJSON(o.b)
}

// scope writes a map of strings with its keys sorted (omitempty).
func (o *object) scope(k string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	var keys [ScopeDimensionsMax]string
	n := 0
	for d := range m {
		i := n
		for ; i > 0 && keys[i-1] > d; i-- {
			keys[i] = keys[i-1]
		}
		keys[i] = d
		n++
	}
	o.key(k)
	o.b = append(o.b, '{')
	for i, d := range keys[:n] {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendString(o.b, d)
		o.b = append(o.b, ':')
		o.b = appendString(o.b, m[d])
	}
	o.b = append(o.b, '}')
}

// appendString writes s as json.Marshal does: printable ASCII other than
// what it escapes ('"', '\\', and '<', '>', '&' for HTML) as is; any
// other string through json.Marshal itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
