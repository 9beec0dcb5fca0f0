package events

import (
	"reflect"
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

// FuzzAppendJSON: AppendJSON's fast path writes the very text of the
// general formatting (text) for any sign, coefficient and exponent.
func FuzzAppendJSON(f *testing.F) {
	for _, c := range []struct {
		coeff uint64
		exp   int32
		neg   bool
	}{{0, 0, false}, {0, -3, true}, {1, 0, false}, {10, -1, false}, {125, -1, false}, {5, -1, true},
		{1, -18, false}, {1, 15, false}, {1<<64 - 1, 0, false}, {1<<64 - 1, -25, true}, {12300, -2, false},
		{7, 64, false}, {7, -64, false}, {7, 65, false}, {7, -65, false}, {100, -2, false}} {
		f.Add(c.coeff, c.exp, c.neg)
	}
	f.Fuzz(func(t *testing.T, coeff uint64, exp int32, neg bool) {
		if exp > 1000 || exp < -1000 {
			return // apd's text of such an exponent is megabytes of zeros
		}
		var u Units
		u.d.Coeff.SetUint64(coeff)
		u.d.Exponent, u.d.Negative = exp, neg
		if got, want := string(u.AppendJSON([]byte("x"))), "x"+u.text(); got != want {
			t.Fatalf("AppendJSON of %d·10^%d (negative %v) = %q, want %q", coeff, exp, neg, got, want)
		}
		if got := u.String(); got != u.text() {
			t.Fatalf("String of %d·10^%d (negative %v) = %q, want %q", coeff, exp, neg, got, u.text())
		}
	})
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
