package events

import (
	"encoding/binary"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParseUnits: every amount ParseUnits accepts is non-negative, at most
// 10^15, has at most 18 fractional digits, and its canonical text parses
// back to the same value and the same text. The fast decoder's plainUnits
// accepts only text parseTotal accepts, with the very same value.
func FuzzParseUnits(f *testing.F) {
	for _, s := range []string{"0", "1", "12.5", "0.000000000000000001", "1e15", "1000000000000000",
		"-0", "-1", "1e999999", "1e-999999", "NaN", "Infinity", "0x10", "+1", "01", "1.", ".5", "1e", "",
		"123456789012345678901234567890", "1E+3", "9.99999999999999999e14", strings.Repeat("9", 64),
		"100", "0.0", "0.50", "10.000", "999999999999999999", "9999999999999999999", "0.00000000000000001",
		"00", "0.", "1.5.5", "1 ", "1000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if fast, ok := plainUnits([]byte(s)); ok {
			want, err := parseTotal(s)
			if err != nil {
				t.Fatalf("plainUnits(%q) = %s, but parseTotal refuses it: %v", s, fast, err)
			}
			if !reflect.DeepEqual(fast, want) {
				t.Fatalf("plainUnits(%q) = %#v, parseTotal = %#v", s, fast.d, want.d)
			}
		}
		u, err := ParseUnits(s)
		if err != nil {
			return
		}
		if u.Sign() < 0 {
			t.Fatalf("ParseUnits(%q) = %s, negative", s, u)
		}
		if u.Cmp(NewUnits(1, UnitsMaxExponent)) > 0 {
			t.Fatalf("ParseUnits(%q) = %s, above 10^%d", s, u, UnitsMaxExponent)
		}
		text := u.String()
		if _, frac, ok := strings.Cut(text, "."); ok && len(frac) > UnitsFractionDigitsMax {
			t.Fatalf("ParseUnits(%q) = %s, more than %d fractional digits", s, text, UnitsFractionDigitsMax)
		}
		back, err := ParseUnits(text)
		if err != nil {
			t.Fatalf("ParseUnits(%q) = %s, which does not parse: %v", s, text, err)
		}
		if back.Cmp(u) != 0 || back.String() != text {
			t.Fatalf("round trip of %q: %s then %s", s, text, back)
		}
	})
}

// FuzzUnmarshalUnits: Units and Signed read what their general path
// (generalUnits, generalSigned: the text through strconv and parseTotal,
// as before plainUnits took the plain amounts) reads, to the very value,
// and refuse what it refuses.
func FuzzUnmarshalUnits(f *testing.F) {
	for _, s := range []string{"0", "7", "10", "993", "12.5", "0.50", "-3", "-0", "-10.25", "--1", "-", `"12"`, `"-4"`,
		"null", "1e3", "-1e3", "01", "-01", "1.", "999999999999999999", "-999999999999999999", "9999999999999999999",
		"0.000000000000000001", "-0.000000000000000001", " 1", "1 ", "", `"00`, `"-4`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var u Units
		err := u.UnmarshalJSON([]byte(s))
		want, wantErr := generalUnits(s)
		if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(u, want) {
			t.Fatalf("Units.UnmarshalJSON(%q) = %#v, %v; the general path %#v, %v", s, u.d, err, want.d, wantErr)
		}
		var sg Signed
		err = sg.UnmarshalJSON([]byte(s))
		wantS, wantErr := generalSigned(s)
		if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(sg, wantS) {
			t.Fatalf("Signed.UnmarshalJSON(%q) = %#v, %v; the general path %#v, %v", s, sg.d, err, wantS.d, wantErr)
		}
	})
}

// generalUnits is Units.UnmarshalJSON without its plainUnits path.
func generalUnits(s string) (Units, error) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		uq, err := strconv.Unquote(s)
		if err != nil {
			return Units{}, err
		}
		s = uq
	}
	if s == "null" {
		return Units{}, ErrInvalidUnits
	}
	return parseTotal(s)
}

// generalSigned is Signed.UnmarshalJSON without its plainUnits path.
func generalSigned(b string) (Signed, error) {
	t := b
	quoted := len(t) >= 2 && t[0] == '"'
	if quoted {
		t = t[1 : len(t)-1]
	}
	if len(t) == 0 || t[0] != '-' {
		u, err := generalUnits(b)
		return Signed{u}, err
	}
	if quoted {
		t = `"` + t[1:] + `"`
	} else {
		t = t[1:]
	}
	u, err := generalUnits(t)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Zero.Sub(u)}, nil
}

// TestUnmarshalPlainUnitsAllocatesNothing: the amounts replies and
// requests nearly always carry are read without an allocation.
func TestUnmarshalPlainUnitsAllocatesNothing(t *testing.T) {
	for _, s := range []string{"7", "993", "12.5", "0"} {
		var u Units
		if n := testing.AllocsPerRun(100, func() { _ = u.UnmarshalJSON([]byte(s)) }); n != 0 {
			t.Errorf("Units.UnmarshalJSON(%s): %v allocations, want 0", s, n)
		}
	}
}

// FuzzAppendJSON: AppendJSON's fast path writes the very text of the
// general formatting (text) for any sign, coefficient and exponent.
func FuzzAppendJSON(f *testing.F) {
	for _, c := range []struct {
		hi, coeff uint64
		exp       int32
		neg       bool
	}{{0, 0, 0, false}, {0, 0, -3, true}, {0, 1, 0, false}, {0, 10, -1, false}, {0, 125, -1, false}, {0, 5, -1, true},
		{0, 1, -18, false}, {0, 1, 15, false}, {0, 1<<64 - 1, 0, false}, {0, 1<<64 - 1, -25, true}, {0, 12300, -2, false},
		{0, 7, 64, false}, {0, 7, -64, false}, {0, 7, 65, false}, {0, 7, -65, false}, {0, 100, -2, false},
		// Past 64 bits: 2^64, 10^20 (trailing zeros across the words),
		// 2^128-1 (39 digits), a priced amount of 18 fractional digits.
		{1, 0, 0, false}, {5, 7766279631452241920, -20, false}, {1<<64 - 1, 1<<64 - 1, 0, true},
		{1<<64 - 1, 1<<64 - 1, -38, false}, {54, 3875820019684212736, -18, false}} {
		f.Add(c.hi, c.coeff, c.exp, c.neg)
	}
	f.Fuzz(func(t *testing.T, hi, coeff uint64, exp int32, neg bool) {
		if exp > 1000 || exp < -1000 {
			return // apd's text of such an exponent is megabytes of zeros
		}
		var u Units
		var words [16]byte
		binary.BigEndian.PutUint64(words[:8], hi)
		binary.BigEndian.PutUint64(words[8:], coeff)
		u.d.Coeff.SetBytes(words[:])
		u.d.Exponent, u.d.Negative = exp, neg
		if got, want := string(u.AppendJSON([]byte("x"))), "x"+u.text(); got != want {
			t.Fatalf("AppendJSON of (%d·2^64+%d)·10^%d (negative %v) = %q, want %q", hi, coeff, exp, neg, got, want)
		}
		if got := u.String(); got != u.text() {
			t.Fatalf("String of (%d·2^64+%d)·10^%d (negative %v) = %q, want %q", hi, coeff, exp, neg, got, u.text())
		}
	})
}

// TestAppendJSONAllocatesNothing: an amount whose coefficient fits 128
// bits, as a priced amount's does, is written without an allocation.
func TestAppendJSONAllocatesNothing(t *testing.T) {
	priced, err := ParseUnits("123.456789012345678901") // 21 digits: past 64 bits
	if err != nil {
		t.Fatal(err)
	}
	if priced.d.Coeff.IsUint64() {
		t.Fatal("the test amount's coefficient fits 64 bits; it must not")
	}
	for _, u := range []Units{NewUnits(12345, -2), priced, priced.Add(priced)} {
		buf := make([]byte, 0, 64)
		if n := testing.AllocsPerRun(100, func() { buf = u.AppendJSON(buf[:0]) }); n != 0 {
			t.Errorf("AppendJSON of %s: %v allocations, want 0", u.text(), n)
		}
		if got := string(u.AppendJSON(nil)); got != u.text() {
			t.Errorf("AppendJSON = %q, want %q", got, u.text())
		}
	}
}

// FuzzToken: a valid customer ID's token never holds '.', '*', '>' or white
// space, parses back to the ID, and is the only token that does (tokens
// ParseToken accepts are canonical).
func FuzzToken(f *testing.F) {
	for _, s := range []string{"user_123", "acme.prod", "a*", "a>", "a b", "~", "~abc", "日本語", "émoji🙂",
		strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("é", 64), "\x00", "\xff", "tab\t",
		"~dXNlcl8xMjM", "~YS5i", "~YS5i=", "", "-", "_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateCustomerID(s) == nil {
			tok := Token(s)
			if strings.ContainsAny(tok, ".*>") || strings.IndexFunc(tok, unicode.IsSpace) >= 0 || !utf8.ValidString(tok) {
				t.Fatalf("Token(%q) = %q holds a subject metacharacter", s, tok)
			}
			if len(tok) > tokenEncoding.EncodedLen(CustomerIDBytesMax)+1 {
				t.Fatalf("Token(%q) is %d bytes", s, len(tok))
			}
			id, err := ParseToken(tok)
			if err != nil || id != s {
				t.Fatalf("ParseToken(Token(%q)) = %q, %v", s, id, err)
			}
		}
		// Read as a token: whatever ParseToken accepts is a valid ID whose
		// one token is exactly this one.
		id, err := ParseToken(s)
		if err != nil {
			return
		}
		if err := ValidateCustomerID(id); err != nil {
			t.Fatalf("ParseToken(%q) = %q, an invalid ID: %v", s, id, err)
		}
		if tok := Token(id); tok != s {
			t.Fatalf("ParseToken(%q) = %q, whose token is %q: two spellings of one customer", s, id, tok)
		}
	})
}

// FuzzUnitsAddSub: where addSmall, the int64 path of Add and Sub, takes
// two amounts, it gives exactly what the shared context's general path
// gives: the same value, exponent and sign, so the same text.
func FuzzUnitsAddSub(f *testing.F) {
	for _, c := range [][4]int64{{325, -2, 25, -1}, {5, 0, -5, 0}, {-7, -3, 7, -3}, {1, 15, 1, -18}, {99999999999999999, 0, 1, 0},
		{100000000000000000, 0, 100000000000000000, 0}, {1, 17, 1, 0}, {0, 3, 12, -2}, {-1, 0, 0, -1}, {123456789, -18, 987654321, -9}} {
		f.Add(c[0], int32(c[1]), c[2], int32(c[3]))
	}
	f.Fuzz(func(t *testing.T, a int64, ea int32, b int64, eb int32) {
		if ea < -40 || ea > 40 || eb < -40 || eb > 40 {
			t.Skip() // amounts and totals stay far inside these
		}
		u, v := NewUnits(a, ea), NewUnits(b, eb)
		for _, sub := range []bool{false, true} {
			got, ok := addSmall(&u.d, &v.d, sub)
			if !ok {
				continue
			}
			var want Units
			op := arith.Add
			if sub {
				op = arith.Sub
			}
			if _, err := op(&want.d, &u.d, &v.d); err != nil {
				t.Fatalf("addSmall(%s, %s, sub %v) took amounts the general path refuses: %v", u, v, sub, err)
			}
			if got.d.Cmp(&want.d) != 0 || got.d.Exponent != want.d.Exponent || got.d.Negative != want.d.Negative ||
				got.d.String() != want.d.String() || got.String() != want.String() {
				t.Fatalf("addSmall(%s, %s, sub %v) = %s (exp %d, neg %v); the general path %s (exp %d, neg %v)", u, v, sub,
					got.d.String(), got.d.Exponent, got.d.Negative, want.d.String(), want.d.Exponent, want.d.Negative)
			}
		}
	})
}
