package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	many := func(n int, dup string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(dup + `"end":0}`)
		return b.String()
	}
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, c := range []struct {
		name, body string
		want       error // nil: accepted
	}{
		{"plain", `{"a":1,"b":{"a":2},"c":[{"a":1},{"a":1}]}`, nil},
		{"empty", ``, nil},
		{"duplicate", `{"a":1,"b":2,"a":3}`, ErrDuplicateKey},
		{"duplicate, case folded at the top", `{"units":1,"UNITS":2}`, ErrDuplicateKey},
		{"duplicate, Kelvin sign", `{"k":1,"` + "\u212a" + `":2}`, ErrDuplicateKey},
		{"nested keys differ by case", `{"m":{"K":1,"k":2}}`, nil},
		{"nested duplicate", `{"m":{"x":{"k":1,"k":2}}}`, ErrDuplicateKey},
		{"escaped duplicate", `{"a":1,"\u0061":2}`, ErrDuplicateKey},
		{"escaped, distinct", `{"a\"b":1,"a":2,"\\":3}`, nil},
		{"string values that look like keys", `{"a":"a","b":"a"}`, nil},
		{"braces inside strings", `{"a":"{\"a\":1,","b":"}"}`, nil},
		{"many keys", many(100, ""), nil},
		{"many keys, duplicate late", many(100, `"k3":1,`), ErrDuplicateKey},
		{"many keys, duplicate early", many(5, `"k3":1,`), ErrDuplicateKey},
		{"many nested keys", `{"a":` + many(70, "") + `,"b":` + many(70, `"k69":1,`) + `}`, ErrDuplicateKey},
		{"keys after a big sibling", `{"a":` + many(70, "") + `,"b":1,"b":2}`, ErrDuplicateKey},
		{"depth at the bound", nest(DepthMax), nil},
		{"too deep", nest(DepthMax + 1), ErrTooDeep},
		{"invalid UTF-8", "{\"a\":\"\xc3\x28\"}", ErrInvalidUTF8},
		{"unbalanced", `{}}`, ErrMalformed},
		{"unterminated", `{"a`, ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Check([]byte(c.body))
			if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
				t.Errorf("Check(%.60s) = %v, want %v", c.body, err, c.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	var v struct {
		A int `json:"a"`
	}
	for body, ok := range map[string]bool{
		`{"a":1}`:       true,
		`{"a":1,"b":2}`: false, // unknown field
		`{"a":1} {}`:    false, // trailing data
		`{"a":1,"A":2}`: false, // duplicate by folding
		`{"a":"x"}`:     false, // wrong type
	} {
		if err := Decode([]byte(body), &v); (err == nil) != ok {
			t.Errorf("Decode(%s) = %v, want ok %v", body, err, ok)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	body := []byte(`{"agent_id":"research_agent","estimated_units":"12.5","task_ref":"task-42","ttl":"15m","idempotency_key":"0190f2c4-8e2a-7c3b-9d1e-2f4a5b6c7d8e","metadata":{"model":"gpt-4o","run":{"id":7,"tags":["a","b"]}}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := Check(body); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCheck compares Check with a slow reference built on encoding/json's
// tokenizer, for every input encoding/json accepts as valid JSON.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2}]}}`, `[[[[`, `{"\u0061":1,"a":2}`, "\xff",
		`{"A":1,"a":2}`, `{"m":{"A":1,"a":2}}`, `[{"a":1},{"a":1}]`, `{"k":1,"\u212a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := Check(body)
		if !json.Valid(body) {
			return
		}
		want := reference(body)
		if (err == nil) != (want == nil) || (want != nil && !errors.Is(err, want)) {
			t.Fatalf("Check(%q) = %v, reference says %v", body, err, want)
		}
	})
}

// reference is Check the slow way, for valid JSON only.
func reference(body []byte) error {
	if !utf8.Valid(body) {
		return ErrInvalidUTF8
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	// Numbers stay text: as float64 a number past 1e308 is a token error,
	// which read as the end of the input would hide every key after it.
	dec.UseNumber()
	type obj struct {
		object, expectKey bool
		keys              []string
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil // valid JSON was fully read
		}
		if err != nil {
			return fmt.Errorf("reference tokenizer: %w", err)
		}
		top := func() *obj {
			if len(stack) == 0 {
				return nil
			}
			return stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if len(stack) == DepthMax {
					return ErrTooDeep
				}
				if o := top(); o != nil && o.object {
					o.expectKey = true
				}
				stack = append(stack, &obj{object: v == '{', expectKey: v == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			o := top()
			if o != nil && o.object && o.expectKey {
				for _, k := range o.keys {
					if k == v || (len(stack) == 1 && strings.EqualFold(k, v)) {
						return ErrDuplicateKey
					}
				}
				o.keys = append(o.keys, v)
				o.expectKey = false
				continue
			}
			if o != nil && o.object {
				o.expectKey = true
			}
		default:
			if o := top(); o != nil && o.object {
				o.expectKey = true
			}
		}
	}
}
