package events

import (
	"bytes"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// plainForm drops what appendFast leaves to encoding/json (and the
// characters it escapes from every string, scope keys too), so that both
// paths are exercised.
func plainForm(e *Envelope) {
	switch d := e.Data.(type) {
	case *Reserved:
		d.Metadata, d.Pricing = nil, nil
	case *Recorded:
		d.Metadata, d.Usage, d.Pricing = nil, nil, nil
	}
	plainStrings(reflect.ValueOf(e).Elem())
}

// plainStrings replaces the characters encoding/json escapes in every
// string field of v, recursively.
func plainStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(plainString(v.String()))
	case reflect.Map:
		if m, ok := v.Interface().(ScopeMap); ok && m != nil {
			plain := make(ScopeMap, len(m))
			for k, val := range m {
				plain[plainString(k)] = plainString(val)
			}
			v.Set(reflect.ValueOf(plain))
		}
	case reflect.Slice:
		for i := range v.Len() {
			plainStrings(v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				plainStrings(v.Field(i))
			}
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			plainStrings(v.Elem())
		}
	}
}

// plainString replaces the characters encoding/json escapes.
func plainString(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == '\u2028' || r == '\u2029' || r == utf8.RuneError {
			return 'x'
		}
		return r
	}, s)
}

// TestFastEncodeEquivalence: whatever appendFast writes is byte for byte
// what encoding/json writes, and it writes the plain reserved and recorded
// events the writer appends for every preflight and record.
func TestFastEncodeEquivalence(t *testing.T) {
	const eventsN = 20000
	r := rand.New(rand.NewSource(3))
	fast := make(map[Type]int)
	fastWith := make(map[string]int) // fast-written events with scopes and grant draws
	for i := range eventsN {
		g := &eventGen{r: r, unusual: i%4 == 0, small: i%3 == 0}
		e := g.envelope()
		if i%2 == 0 {
			plainForm(e)
		}
		want, err := encodeJSON(e)
		if err != nil {
			continue // encoding/json refuses it (a year past 9999); so must Encode
		}
		got, ok := appendFast(nil, e)
		if ok {
			fast[e.Type]++
			for _, k := range []string{`"scope":`, `"counted_scopes":`, `"funded_by":`} {
				if bytes.Contains(got, []byte(k)) {
					fastWith[k]++
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("appendFast differs:\n got %s\nwant %s", got, want)
			}
		}
		enc, err := Encode(e)
		if err != nil || !bytes.Equal(enc, want) {
			t.Fatalf("Encode = %s, %v; want %s", enc, err, want)
		}
	}
	for _, typ := range []Type{TypeReserved, TypeRecorded} {
		if fast[typ] < 200 {
			t.Errorf("appendFast wrote %d %s events: the generator does not reach it", fast[typ], typ)
		}
	}
	for k, n := range fastWith {
		if n < 100 {
			t.Errorf("appendFast wrote %d events with %s: the generator does not reach it", n, k)
		}
	}
	if len(fastWith) != 3 {
		t.Errorf("appendFast wrote events with %v only: want scope, counted_scopes and funded_by", fastWith)
	}
}

// TestFastEncodeKnowsEveryField fails when a field is added to a struct
// appendFast writes: add it there (or to its fall-back conditions), then
// update the count here.
func TestFastEncodeKnowsEveryField(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{
		{Envelope{}, 6}, {Reserved{}, 15}, {Recorded{}, 16}, {Balance{}, 10}, {Request{}, 2},
	} {
		if got := reflect.TypeOf(c.v).NumField(); got != c.want {
			t.Errorf("%T has %d fields; appendFast knows %d", c.v, got, c.want)
		}
	}
}

// BenchmarkEncodeJSON is BenchmarkEncode's event through encoding/json
// alone: the cost before appendFast, and of any event it leaves.
func BenchmarkEncodeJSON(b *testing.B) {
	u := NewUnits(10, 0)
	at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	e := &Envelope{
		ID: "0195a3c4-6f2e-7a10-8b3d-2f6c9e1d4a7b", Type: TypeReserved, V: Version, At: at, CustomerID: "user_123",
		Data: &Reserved{
			ReservationID: "0195a3c4-6f2e-7a10-8b3d-2f6c9e1d4a7b", AgentID: "research_agent", Units: u, ExpiresAt: at.Add(15 * time.Minute),
			Request: Request{IdempotencyKey: "0195a3c4-6f2e-7a10-8b3d-2f6c9e1d4a7c", RequestHash: "9742f958cfaa38352321fdb6b65f3a89"},
			Balance: Balance{PeriodStart: at, Limit: NewUnits(1000, 0), Used: NewUnits(120, 0), Reserved: u, Remaining: NewUnits(870, 0)},
		},
	}
	if _, ok := appendFast(nil, e); !ok {
		b.Fatal("appendFast does not write the sample event")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeJSON(e); err != nil {
			b.Fatal(err)
		}
	}
}
