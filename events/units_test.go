package events_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/agentbill/agentbill/events"
)

// mustUnits parses an amount for a test, failing the test if it is bad.
func mustUnits(t *testing.T, s string) events.Units {
	t.Helper()
	u, err := events.ParseUnits(s)
	if err != nil {
		t.Fatalf("ParseUnits(%q): %v", s, err)
	}
	return u
}

// Amounts every parser accepts, with their canonical text.
var acceptedUnits = []struct{ in, want string }{
	{"0", "0"},
	{"10", "10"},
	{"0.5", "0.5"},
	{"1e3", "1000"},
	{"1E+2", "100"},
	{"1e2", "100"},
	{"1e-2", "0.01"},
	{"1.5e1", "15"},
	{"100e-2", "1"},
	{"123.456", "123.456"},
	{"1.50", "1.5"},
	{"0.000", "0"},
	{"0e5", "0"},
	{"0e-30", "0"},
	{"0.0e+0", "0"},
	{"1000000000000000", "1000000000000000"}, // 10^15, the request bound
	{"1e15", "1000000000000000"},
	{"0.1e16", "1000000000000000"},
	{"0.000000000000000001", "0.000000000000000001"}, // 18 fractional digits
	{"1e-18", "0.000000000000000001"},
	{"999999999999999.999999999999999999", "999999999999999.999999999999999999"},
	{"0.10000000000000000000", "0.1"}, // trailing zeros are not significant
	{"0.0000000000000000010", "0.000000000000000001"},
	{"0.1" + strings.Repeat("0", 61), "0.1"}, // 64 bytes of text: the limit
}

// Texts no parser accepts.
var rejectedUnits = []struct{ name, in string }{
	{"negative", "-1"},
	{"negative fraction", "-0.5"},
	{"negative zero", "-0"},
	{"negative zero fraction", "-0.0"},
	{"NaN", "NaN"},
	{"nan", "nan"},
	{"sNaN", "sNaN"},
	{"Infinity", "Infinity"},
	{"-Infinity", "-Infinity"},
	{"inf", "inf"},
	{"Inf", "Inf"},
	{"leading plus", "+1"},
	{"leading zero", "01"},
	{"double zero", "00"},
	{"leading zero fraction", "00.5"},
	{"bare fraction", ".5"},
	{"bare point", "1."},
	{"hex", "0x10"},
	{"huge exponent", "1e999999"},
	{"five digit exponent", "1e00001"},
	{"empty exponent", "1e"},
	{"signed empty exponent", "1e+"},
	{"exponent only", "e5"},
	{"19 fractional digits", "0.1234567890123456789"},
	{"1e-19", "1e-19"},
	{"19th digit after zeros", "0.0000000000000000001"},
	{"19 fractional digits with integer", "1.0000000000000000001"},
	{"empty", ""},
	{"leading space", " 1"},
	{"trailing space", "1 "},
	{"tab", "\t1"},
	{"newline", "1\n"},
	{"inner space", "1 000"},
	{"underscore", "1_000"},
	{"comma", "1,5"},
	{"two points", "1.2.3"},
	{"fullwidth digit", "\uff11"},
	{"letters", "ten"},
	{"null", "null"},
	{"long text", "0.1" + strings.Repeat("0", 62)}, // 65 bytes
	{"very long text", strings.Repeat("1", 10_000)},
	{"above log bound", "1e31"},
	{"far above log bound", "1" + strings.Repeat("0", 40)},
}

func TestParseUnitsAccepts(t *testing.T) {
	for _, tt := range acceptedUnits {
		t.Run(tt.in, func(t *testing.T) {
			u, err := events.ParseUnits(tt.in)
			if err != nil {
				t.Fatalf("ParseUnits(%q): %v", tt.in, err)
			}
			if got := u.String(); got != tt.want {
				t.Errorf("ParseUnits(%q).String() = %q, want %q", tt.in, got, tt.want)
			}
			if err := u.CheckRequestBound(); err != nil {
				t.Errorf("CheckRequestBound(%s): %v", u, err)
			}
		})
	}
}

func TestParseUnitsRejects(t *testing.T) {
	rejected := append(rejectedUnits[:len(rejectedUnits):len(rejectedUnits)],
		// Valid in the log, but above what a request may carry (10^15).
		struct{ name, in string }{"1e16", "1e16"},
		struct{ name, in string }{"just above 10^15", "1000000000000000.000000000000000001"},
		struct{ name, in string }{"10^15 + 1", "1000000000000001"},
		struct{ name, in string }{"1e30", "1e30"},
		// A JSON string is for UnmarshalJSON; ParseUnits takes the text.
		struct{ name, in string }{"quoted", `"1"`},
	)
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			u, err := events.ParseUnits(tt.in)
			if err == nil {
				t.Fatalf("ParseUnits(%q) = %s, want an error", tt.in, u)
			}
			if !errors.Is(err, events.ErrInvalidUnits) {
				t.Errorf("ParseUnits(%q) error %v does not wrap ErrInvalidUnits", tt.in, err)
			}
			if len(err.Error()) > 200 {
				t.Errorf("ParseUnits error is %d bytes long, want the input truncated: %.80s...", len(err.Error()), err)
			}
		})
	}
}

func TestUnmarshalJSONAccepts(t *testing.T) {
	type tc struct{ name, in, want string }
	var tests []tc
	for _, a := range acceptedUnits {
		tests = append(tests,
			tc{"number " + a.in, a.in, a.want},
			tc{"string " + a.in, strconv.Quote(a.in), a.want})
	}
	tests = append(tests,
		// The log bound (10^30) is wider than the request bound (10^15):
		// running totals read back from the log may exceed 10^15.
		tc{"above request bound", "1000000000000001", "1000000000000001"},
		tc{"1e16", "1e16", "10000000000000000"},
		tc{"1e30 log bound", "1e30", "1" + strings.Repeat("0", 30)},
		tc{"1e30 as string", `"1e30"`, "1" + strings.Repeat("0", 30)},
		tc{"escaped string", `"\u0031.5"`, "1.5"},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u events.Units
			if err := u.UnmarshalJSON([]byte(tt.in)); err != nil {
				t.Fatalf("UnmarshalJSON(%s): %v", tt.in, err)
			}
			if got := u.String(); got != tt.want {
				t.Errorf("UnmarshalJSON(%s).String() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnmarshalJSONRejects(t *testing.T) {
	type tc struct{ name, in string }
	var tests []tc
	for _, r := range rejectedUnits {
		tests = append(tests, tc{"number " + r.name, r.in})
		if r.in != "" && !strings.ContainsAny(r.in, "\"\n\t") {
			tests = append(tests, tc{"string " + r.name, `"` + r.in + `"`})
		}
	}
	tests = append(tests,
		tc{"empty string", `""`},
		tc{"null", "null"},
		tc{"null in a string", `"null"`},
		tc{"true", "true"},
		tc{"object", "{}"},
		tc{"array", "[1]"},
		tc{"unterminated string", `"1`},
		tc{"space inside string", `" 1"`},
		tc{"nested quotes", `"\"1\""`},
		tc{"1e31 as string", `"1e31"`},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := mustUnits(t, "7")
			err := u.UnmarshalJSON([]byte(tt.in))
			if err == nil {
				t.Fatalf("UnmarshalJSON(%q) = %s, want an error", tt.in, u)
			}
			if !errors.Is(err, events.ErrInvalidUnits) {
				t.Errorf("UnmarshalJSON(%q) error %v does not wrap ErrInvalidUnits", tt.in, err)
			}
			if got, want := u.String(), "7"; got != want {
				t.Errorf("after a failed UnmarshalJSON the value is %s, want it unchanged (%s)", got, want)
			}
		})
	}
}

// TestUnmarshalJSONInStruct decodes amounts the way requests and events do,
// through encoding/json, where a JSON null must not become 0 silently.
func TestUnmarshalJSONInStruct(t *testing.T) {
	type body struct {
		Value events.Units  `json:"value"`
		Ptr   *events.Units `json:"ptr"`
	}
	tests := []struct {
		name      string
		in        string
		wantErr   bool
		wantValue string
		wantPtr   string // "" for nil
	}{
		{"numbers", `{"value": 1.50, "ptr": 2e2}`, false, "1.5", "200"},
		{"strings", `{"value": "0.1", "ptr": "3"}`, false, "0.1", "3"},
		{"absent", `{}`, false, "0", ""},
		{"null pointer is absent", `{"ptr": null}`, false, "0", ""},
		{"null value", `{"value": null}`, true, "", ""},
		{"negative", `{"value": -1}`, true, "", ""},
		{"float64 would round", `{"value": 0.1000000000000000055511151231257827}`, true, "", ""},
		{"exact where float64 is not", `{"value": 9007199254740993}`, false, "9007199254740993", ""},
		{"bool", `{"value": true}`, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b body
			err := json.Unmarshal([]byte(tt.in), &b)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("json.Unmarshal(%s) = %+v, want an error", tt.in, b)
				}
				return
			}
			if err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", tt.in, err)
			}
			if got := b.Value.String(); got != tt.wantValue {
				t.Errorf("value = %s, want %s", got, tt.wantValue)
			}
			got := ""
			if b.Ptr != nil {
				got = b.Ptr.String()
			}
			if got != tt.wantPtr {
				t.Errorf("ptr = %q, want %q", got, tt.wantPtr)
			}
		})
	}
}

func TestCheckRequestBound(t *testing.T) {
	tests := []struct {
		in     string
		wantOK bool
	}{
		{"0", true},
		{"1000000000000000", true},
		{"999999999999999.999999999999999999", true},
		{"1000000000000000.000000000000000001", false},
		{"1e16", false},
		{"1e30", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var u events.Units
			if err := u.UnmarshalJSON([]byte(tt.in)); err != nil {
				t.Fatalf("UnmarshalJSON(%s): %v", tt.in, err)
			}
			err := u.CheckRequestBound()
			if got := err == nil; got != tt.wantOK {
				t.Errorf("CheckRequestBound(%s) = %v, want ok %v", tt.in, err, tt.wantOK)
			}
			if err != nil && !errors.Is(err, events.ErrInvalidUnits) {
				t.Errorf("CheckRequestBound error %v does not wrap ErrInvalidUnits", err)
			}
		})
	}
}

func TestUnitsMarshalJSON(t *testing.T) {
	tests := []struct {
		in   events.Units
		want string
	}{
		{events.Zero, "0"},
		{events.Units{}, "0"},
		{events.NewUnits(15, -1), "1.5"},
		{events.NewUnits(1500, -3), "1.5"},
		{events.NewUnits(1, 2), "100"},
		{events.NewUnits(0, -5), "0"},
		{events.NewUnits(1, -18), "0.000000000000000001"},
		{events.NewUnits(3, 0).Sub(events.NewUnits(5, 0)), "-2"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if got := string(b); got != tt.want {
				t.Errorf("json.Marshal = %s, want %s", got, tt.want)
			}
			if got := string(tt.in.AppendJSON([]byte("x"))); got != "x"+tt.want {
				t.Errorf("AppendJSON = %s, want x%s", got, tt.want)
			}
		})
	}
}

// TestUnitsJSONRoundTrip checks that every accepted amount survives
// encoding and decoding unchanged.
func TestUnitsJSONRoundTrip(t *testing.T) {
	for _, a := range acceptedUnits {
		u := mustUnits(t, a.in)
		b, err := json.Marshal(map[string]events.Units{"u": u})
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", u, err)
		}
		var back map[string]events.Units
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", b, err)
		}
		if got := back["u"]; got.Cmp(u) != 0 || got.String() != u.String() {
			t.Errorf("round trip of %q: got %s, want %s", a.in, got, u)
		}
	}
}

func TestUnitsArithmeticIsExact(t *testing.T) {
	p := func(s string) events.Units { return mustUnits(t, s) }
	tests := []struct {
		name string
		got  events.Units
		want string
	}{
		{"0.1+0.2", p("0.1").Add(p("0.2")), "0.3"},
		{"0.5+0.5", p("0.5").Add(p("0.5")), "1"},
		{"1-0.9", p("1").Sub(p("0.9")), "0.1"},
		{"1-3", p("1").Sub(p("3")), "-2"},
		{"0.3-0.1-0.2", p("0.3").Sub(p("0.1")).Sub(p("0.2")), "0"},
		{"0.8*100", p("0.8").Mul(p("100")), "80"},
		{"0.5*0.5", p("0.5").Mul(p("0.5")), "0.25"},
		{"10^15 + 10^-18", p("1e15").Add(p("1e-18")), "1000000000000000.000000000000000001"},
		{"10^15 * 10^15", p("1e15").Mul(p("1e15")), "1" + strings.Repeat("0", 30)},
		{"fraction * largest request", p("0.123456789012345678").Mul(p("999999999999999.999999999999999999")),
			"123456789012345.677999999999999999876543210987654322"},
		{"999999999999999+1", p("999999999999999").Add(p("1")), "1000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.got.String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if got, want := p("0.1").Add(p("0.2")).Cmp(p("0.3")), 0; got != want {
		t.Errorf("Cmp(0.1+0.2, 0.3) = %d, want %d", got, want)
	}
}

// TestUnitsManySmallAdditions adds 10^-18 a hundred thousand times: an
// inexact representation would drift.
func TestUnitsManySmallAdditions(t *testing.T) {
	tiny := mustUnits(t, "0.000000000000000001")
	sum := events.Zero
	for i := 0; i < 100_000; i++ {
		sum = sum.Add(tiny)
	}
	if got, want := sum.String(), "0.0000000000001"; got != want {
		t.Errorf("sum = %s, want %s", got, want)
	}
}

func TestUnitsCompareAndHelpers(t *testing.T) {
	p := func(s string) events.Units { return mustUnits(t, s) }
	neg := p("1").Sub(p("2.5"))
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"Cmp less", strconv.Itoa(p("1").Cmp(p("1.5"))), "-1"},
		{"Cmp equal across scales", strconv.Itoa(p("1.50").Cmp(p("1.5"))), "0"},
		{"Cmp greater", strconv.Itoa(p("2").Cmp(p("1.999999999999999999"))), "1"},
		{"Sign zero", strconv.Itoa(events.Zero.Sign()), "0"},
		{"Sign positive", strconv.Itoa(p("0.000000000000000001").Sign()), "1"},
		{"Sign negative", strconv.Itoa(neg.Sign()), "-1"},
		{"IsZero zero value", strconv.FormatBool(events.Units{}.IsZero()), "true"},
		{"IsZero 0.000", strconv.FormatBool(p("0.000").IsZero()), "true"},
		{"IsZero 1", strconv.FormatBool(p("1").IsZero()), "false"},
		{"Max", p("1").Max(p("2")).String(), "2"},
		{"Max reversed", p("2").Max(p("1")).String(), "2"},
		{"Min", p("1").Min(p("2")).String(), "1"},
		{"Min reversed", p("2").Min(p("1")).String(), "1"},
		{"NonNegative of negative", neg.NonNegative().String(), "0"},
		{"NonNegative of positive", p("3").NonNegative().String(), "3"},
		{"negative String", neg.String(), "-1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
}

// TestUnitsValuesDoNotAlias checks that operations return new values and
// never change their operands.
func TestUnitsValuesDoNotAlias(t *testing.T) {
	a := mustUnits(t, "1.5")
	b := mustUnits(t, "2")
	c := a
	_ = a.Add(b)
	_ = a.Sub(b)
	_ = a.Mul(b)
	if got, want := a.String(), "1.5"; got != want {
		t.Errorf("a = %s after arithmetic, want %s", got, want)
	}
	if got, want := c.String(), "1.5"; got != want {
		t.Errorf("copy = %s, want %s", got, want)
	}
	if got, want := b.String(), "2"; got != want {
		t.Errorf("b = %s after arithmetic, want %s", got, want)
	}
}

func TestMustParseUnitsPanicsOnBadInput(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("MustParseUnits(%q) did not panic", "-1")
		}
	}()
	events.MustParseUnits("-1")
}
