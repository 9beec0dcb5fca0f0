package httpapi

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/ledger"
)

// TestOTLPTokens: each form a count may take decodes to the same int64,
// exactly, up to the largest int64 (which no float64 holds).
func TestOTLPTokens(t *testing.T) {
	const big = "9223372036854775807"
	cases := []struct {
		value string // the AnyValue's JSON
		want  int64  // -1: refused
	}{
		{`{"intValue":"1200"}`, 1200}, {`{"intValue":1200}`, 1200}, {`{"intValue":"` + big + `"}`, 1<<63 - 1},
		{`{"intValue":` + big + `}`, 1<<63 - 1}, {`{"stringValue":"1200"}`, 1200}, {`{"doubleValue":1200}`, 1200},
		{`{"doubleValue":1200.000}`, 1200}, {`{"doubleValue":"1200"}`, 1200}, {`{"intValue":"0"}`, 0},
		{`{"intValue":"9223372036854775808"}`, -1}, {`{"doubleValue":1200.5}`, -1}, {`{"doubleValue":1.2e3}`, -1},
		{`{"doubleValue":"NaN"}`, -1}, {`{"doubleValue":"Infinity"}`, -1}, {`{"intValue":"-1"}`, -1},
		{`{"intValue":"+1"}`, -1}, {`{"intValue":" 1"}`, -1}, {`{"stringValue":"1,200"}`, -1},
		{`{"stringValue":""}`, -1}, {`{"boolValue":true}`, -1}, {`{}`, -1}, {`{"doubleValue":1.}`, -1},
	}
	for _, c := range cases {
		var v otlpAnyValue
		if err := json.Unmarshal([]byte(c.value), &v); err != nil {
			if c.want >= 0 {
				t.Errorf("%s: %v", c.value, err)
			}
			continue
		}
		got, err := otlpAttrs{"n": v}.tokens("n")
		switch {
		case c.want < 0 && err == nil:
			t.Errorf("%s: got %d, want refused", c.value, *got)
		case c.want >= 0 && (err != nil || *got != c.want):
			t.Errorf("%s: got %v %v, want %d", c.value, got, err, c.want)
		}
	}
}

// FuzzOTLPTokens: an intValue is accepted only when its text is the
// decimal digits of the count it decodes to (no rounding, ever).
func FuzzOTLPTokens(f *testing.F) {
	for _, s := range []string{"0", "1200", "9223372036854775807", "9223372036854775808", "-1", "1e3", "1.0", "00012", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		raw, _ := json.Marshal(text)
		got, err := otlpAttrs{"n": {IntValue: raw}}.tokens("n")
		if err != nil {
			return
		}
		if strings.TrimLeft(text, "0123456789") != "" || strings.TrimLeft(text, "0") != strings.TrimLeft(strconv.FormatInt(*got, 10), "0") {
			t.Fatalf("intValue %q decoded to %d", text, *got)
		}
	})
}

// TestOTLPKey: an ID is the key; without one, the record's text with its
// resource and scope is hashed (whitespace aside), so another resource
// or record is another key; every key fits the ledger's bound.
func TestOTLPKey(t *testing.T) {
	res, scope := json.RawMessage(`{"attributes":[]}`), json.RawMessage(`{"name":"s"}`)
	rec := json.RawMessage(`{"timeUnixNano":"1"}`)
	if got := otlpKey("req_1", res, scope, rec); got != "otel:req_1" {
		t.Errorf("with an ID: got %q", got)
	}
	h := otlpKey("", res, scope, rec)
	if !strings.HasPrefix(h, "otel:sha256:") || h != otlpKey("", res, scope, json.RawMessage(` { "timeUnixNano" : "1" } `)) {
		t.Errorf("the hash of a record is not stable across whitespace: %q", h)
	}
	for _, other := range []string{
		otlpKey("", json.RawMessage(`{"attributes":[1]}`), scope, rec), otlpKey("", res, json.RawMessage(`{}`), rec),
		otlpKey("", res, scope, json.RawMessage(`{"timeUnixNano":"2"}`)),
		otlpKey("", json.RawMessage(`{"attributes":[]}{"name":"s"}`), nil, rec), // no boundary shift
	} {
		if other == h {
			t.Errorf("another record has the same key %q", h)
		}
	}
	long := otlpKey(strings.Repeat("x", ledger.IdempotencyKeyBytesMax), res, scope, rec)
	if len(long) > ledger.IdempotencyKeyBytesMax || long == otlpKey(strings.Repeat("x", ledger.IdempotencyKeyBytesMax-1)+"y") {
		t.Errorf("a long ID: got %q (%d bytes)", long, len(long))
	}
}
