// Package strictjson decodes request bodies the way every AgentBill
// transport must (NATS, HTTP, MCP): valid UTF-8, bounded nesting, no
// duplicate keys, no unknown fields, one value and nothing after it.
// encoding/json alone accepts duplicate keys (the last wins), replaces
// invalid UTF-8 with U+FFFD and matches field names case-insensitively, so
// `{"units":1,"UNITS":1000}` would silently mean 1000; Check closes those
// gaps in one pass over the bytes before encoding/json sees them.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"
)

// DepthMax bounds the nesting of objects and arrays in a request. The
// deepest legitimate request is a request object holding metadata with a
// few levels of its own; 32 leaves room and keeps a hostile body from
// costing more than a few hundred bytes of stack per level.
const DepthMax = 32

// keysLinearMax: objects with at most this many keys are checked for
// duplicates by comparing with each earlier key (no allocation); larger
// ones, and objects with escaped keys, use a map.
const keysLinearMax = 16

// keysStackMax bounds the keys of all open objects held without
// allocating; past it the innermost object switches to a map.
const keysStackMax = 64

// Errors Check returns, wrapped with detail.
var (
	ErrInvalidUTF8  = errors.New("not valid UTF-8")
	ErrTooDeep      = errors.New("nested too deeply")
	ErrDuplicateKey = errors.New("duplicate key")
	ErrMalformed    = errors.New("malformed JSON")
)

// Decode checks body (Check), then decodes it into v with unknown fields
// refused and nothing allowed after the value.
func Decode(body []byte, v any) error {
	if err := Check(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON value", ErrMalformed)
	}
	return nil
}

// frame is one open object or array.
type frame struct {
	object    bool
	expectKey bool
	keysFrom  int                 // this object's keys are refs[keysFrom:nrefs]
	seen      map[string]struct{} // once the object has too many keys
}

// keyRef is a key's bytes in the body, quotes excluded.
type keyRef struct{ from, to int }

// scanner holds Check's state, all of it in one value on the stack.
type scanner struct {
	body  []byte
	stack [DepthMax]frame
	depth int
	refs  [keysStackMax]keyRef
	nrefs int
}

// Check reports the first problem of the kinds encoding/json lets through:
// invalid UTF-8, nesting deeper than DepthMax, or a key repeated in one
// object. Keys of the outermost object are compared case-insensitively, as
// encoding/json matches them to struct fields; deeper keys (metadata, map
// entries) exactly. It does not validate the grammar fully: encoding/json
// does that next; on malformed input Check either reports it or stops
// without error, and never panics.
func Check(body []byte) error {
	if !utf8.Valid(body) {
		return ErrInvalidUTF8
	}
	s := scanner{body: body}
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{', '[':
			if s.depth == DepthMax {
				return fmt.Errorf("%w: more than %d levels", ErrTooDeep, DepthMax)
			}
			s.stack[s.depth] = frame{object: body[i] == '{', expectKey: body[i] == '{', keysFrom: s.nrefs}
			s.depth++
		case '}', ']':
			if s.depth == 0 {
				return fmt.Errorf("%w: unbalanced %q", ErrMalformed, body[i])
			}
			s.depth--
			s.nrefs = s.stack[s.depth].keysFrom
			s.stack[s.depth] = frame{}
		case ':':
			if s.depth > 0 {
				s.stack[s.depth-1].expectKey = false
			}
		case ',':
			if s.depth > 0 && s.stack[s.depth-1].object {
				s.stack[s.depth-1].expectKey = true
			}
		case '"':
			end, escaped := stringEnd(body, i+1)
			if end < 0 {
				return fmt.Errorf("%w: unterminated string", ErrMalformed)
			}
			if s.depth > 0 && s.stack[s.depth-1].expectKey {
				if err := s.addKey(i, end, escaped); err != nil {
					return err
				}
			}
			i = end
		}
	}
	return nil
}

// stringEnd returns the index of the quote closing the string whose
// contents start at from, or -1, and whether it has escapes.
func stringEnd(body []byte, from int) (int, bool) {
	escaped := false
	for j := from; j < len(body); j++ {
		switch body[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j, escaped
		}
	}
	return -1, escaped
}

// addKey records the key quoted by body[open] and body[close] in the
// innermost object, or reports it as a duplicate.
func (s *scanner) addKey(open, close int, escaped bool) error {
	f := &s.stack[s.depth-1]
	fold := s.depth == 1
	key := s.body[open+1 : close]
	if f.seen == nil && !escaped && s.nrefs-f.keysFrom < keysLinearMax && s.nrefs < keysStackMax {
		for _, r := range s.refs[f.keysFrom:s.nrefs] {
			k := s.body[r.from:r.to]
			if bytes.Equal(k, key) || (fold && bytes.EqualFold(k, key)) {
				return fmt.Errorf("%w %s", ErrDuplicateKey, truncate(s.body[open:close+1]))
			}
		}
		s.refs[s.nrefs] = keyRef{open + 1, close}
		s.nrefs++
		return nil
	}
	if escaped {
		var k string
		if err := json.Unmarshal(s.body[open:close+1], &k); err != nil {
			return fmt.Errorf("%w: bad key %s", ErrMalformed, truncate(s.body[open:close+1]))
		}
		key = []byte(k)
	}
	if f.seen == nil {
		f.seen = make(map[string]struct{}, 2*keysLinearMax)
		for _, r := range s.refs[f.keysFrom:s.nrefs] {
			f.seen[mapKey(s.body[r.from:r.to], fold)] = struct{}{}
		}
	}
	mk := mapKey(key, fold)
	if _, dup := f.seen[mk]; dup {
		return fmt.Errorf("%w %s", ErrDuplicateKey, truncate(s.body[open:close+1]))
	}
	f.seen[mk] = struct{}{}
	return nil
}

// mapKey is the key as compared: folded to lower case under Unicode simple
// folding (every rune mapped to the smallest rune of its fold orbit, so
// the Kelvin sign and 'k' agree, as bytes.EqualFold says) when fold is set.
func mapKey(k []byte, fold bool) string {
	if !fold {
		return string(k)
	}
	return string(bytes.Map(foldRune, k))
}

func truncate(b []byte) string {
	const n = 64
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// foldRune maps r to the smallest rune of its simple fold orbit.
func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}
