package events

import (
	"bytes"
	"encoding/json"
	"slices"
)

// The scope fields of the hot events (a run's scope, the scope limits it
// counted against, the grants that funded it) are written without
// reflection: encoding/json's map and struct encoders were most of what a
// scoped event cost to encode. The bytes are encoding/json's own
// (TestScopeJSONMatchesEncodingJSON): these methods write strings as it
// does with HTML escaping off, and an encoder that escapes HTML escapes
// their output as it would its own.

// ScopeMap is a run's scope: dimension to value (at most a few entries).
type ScopeMap map[string]string

// scopeMapSortMax is the most entries MarshalJSON sorts on the stack.
const scopeMapSortMax = 8

// MarshalJSON writes the map with its keys sorted, as encoding/json does.
func (m ScopeMap) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	var arr [scopeMapSortMax]string
	keys := arr[:0]
	if len(m) > scopeMapSortMax {
		keys = make([]string, 0, len(m))
	}
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := make([]byte, 0, 16+24*len(m))
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}'), nil
}

// MarshalJSON writes {"dimension":...,"value":...}.
func (r ScopeRef) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 32+len(r.Dimension)+len(r.Value))
	b = append(b, `{"dimension":`...)
	b = appendJSONString(b, r.Dimension)
	b = append(b, `,"value":`...)
	b = appendJSONString(b, r.Value)
	return append(b, '}'), nil
}

// MarshalJSON writes {"grant_id":...,"units":...}.
func (g GrantDraw) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64+len(g.GrantID))
	b = append(b, `{"grant_id":`...)
	b = appendJSONString(b, g.GrantID)
	b = append(b, `,"units":`...)
	b = g.Units.AppendJSON(b)
	return append(b, '}'), nil
}

// appendJSONString writes s as encoding/json does with HTML escaping off:
// printable ASCII other than '"' and '\\' as is, any other string through
// an encoder of its own.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s) // a string always encodes
			return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
