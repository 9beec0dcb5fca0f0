package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/cockroachdb/apd/v3"
)

// Bounds on amounts accepted from outside. Internal sums (a customer's used
// units over a period) may grow past UnitsMax; the arithmetic context below
// has room for that and traps any rounding.
const (
	// UnitsMaxExponent: the largest amount a request may carry is 10^15.
	UnitsMaxExponent = 15
	// UnitsFractionDigitsMax is the finest resolution an amount may have.
	UnitsFractionDigitsMax = 18
	// unitsTextMax bounds the text we are willing to parse as an amount.
	unitsTextMax = 64
	// unitsPrecision is the number of significant digits the shared context
	// keeps: 10^15 with 18 fractional digits needs 34, and sums of many such
	// amounts need a few more. 60 digits cannot be exhausted by any sequence
	// of bounded amounts this service could ever log.
	unitsPrecision = 60
)

// ErrInvalidUnits is the sentinel wrapped by every amount parsing error.
var ErrInvalidUnits = errors.New("invalid amount")

// arith is the one decimal context for all money arithmetic. Inexact results
// trap: an amount that would be rounded is a bug, never a silent loss.
var arith = func() *apd.Context {
	c := apd.BaseContext.WithPrecision(unitsPrecision)
	c.Traps = apd.DefaultTraps | apd.Inexact | apd.Rounded
	return c
}()

// totalMaxExponent bounds running totals read back from the log (10^30):
// far above anything bounded requests can sum to, far below unitsPrecision.
const totalMaxExponent = 30

var (
	unitsMax = apd.New(1, UnitsMaxExponent)
	totalMax = apd.New(1, totalMaxExponent)
)

// Units is an exact, non-negative-by-construction-at-the-edge decimal amount.
// The zero value is 0. Values are immutable: every operation returns a new
// Units, so copies never alias.
type Units struct{ d apd.Decimal }

// Zero is 0 units.
var Zero Units

// NewUnits returns coeff * 10^exp.
func NewUnits(coeff int64, exp int32) Units {
	var u Units
	u.d.SetFinite(coeff, exp)
	return u
}

// ParseUnits parses an amount from its decimal text, exactly. It accepts the
// JSON number grammar only (no NaN, Infinity, hex or leading '+') and
// enforces the request bounds: non-negative, at most 10^15, at most 18
// fractional digits. "-0" is rejected as negative.
func ParseUnits(s string) (Units, error) {
	u, err := parseTotal(s)
	if err != nil {
		return Units{}, err
	}
	if err := u.CheckRequestBound(); err != nil {
		return Units{}, err
	}
	return u, nil
}

// CheckRequestBound reports whether u is an amount a request may carry
// (at most 10^15).
func (u Units) CheckRequestBound() error {
	if u.d.Cmp(unitsMax) > 0 {
		return fmt.Errorf("%w: %s is above the maximum of 10^%d", ErrInvalidUnits, u, UnitsMaxExponent)
	}
	return nil
}

// parseTotal parses a non-negative exact amount with at most 18 fractional
// digits and at most totalMax in magnitude: the bounds of any amount in the
// log, running totals included.
func parseTotal(s string) (Units, error) {
	if err := checkNumberText(s); err != nil {
		return Units{}, err
	}
	var u Units
	if _, _, err := u.d.SetString(s); err != nil {
		return Units{}, fmt.Errorf("%w: %q is not a number", ErrInvalidUnits, s)
	}
	if u.d.Negative {
		return Units{}, fmt.Errorf("%w: %s is negative", ErrInvalidUnits, s)
	}
	u.d.Reduce(&u.d)
	if u.d.Cmp(totalMax) > 0 {
		return Units{}, fmt.Errorf("%w: %s is above the maximum total of 10^%d", ErrInvalidUnits, s, totalMaxExponent)
	}
	if -u.d.Exponent > UnitsFractionDigitsMax {
		return Units{}, fmt.Errorf("%w: %s has more than %d fractional digits", ErrInvalidUnits, s, UnitsFractionDigitsMax)
	}
	if u.d.IsZero() {
		u.d = apd.Decimal{} // canonical zero, exponent 0
	}
	return u, nil
}

// checkNumberText accepts exactly RFC 8259's number grammar, bounded in
// length, so that apd never sees "NaN", "Inf" or other spellings it would
// otherwise accept.
func checkNumberText(s string) error {
	bad := func() error { return fmt.Errorf("%w: %q is not a decimal number", ErrInvalidUnits, truncate(s)) }
	if len(s) == 0 || len(s) > unitsTextMax {
		return bad()
	}
	i := 0
	if s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == start || (s[start] == '0' && i-start > 1) {
		return bad()
	}
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == fs {
			return bad()
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		es := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		// Exponents beyond a few digits can only produce values outside the
		// bounds; refuse them before apd spends time on them.
		if i == es || i-es > 4 {
			return bad()
		}
	}
	if i != len(s) {
		return bad()
	}
	return nil
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// MustParseUnits parses s or panics; for constants and tests.
func MustParseUnits(s string) Units {
	u, err := ParseUnits(s)
	if err != nil {
		panic(err)
	}
	return u
}

// must stops the process on an arithmetic condition: rounding money is
// never acceptable, and carrying on with a wrong balance is worse than
// stopping (the log is intact; a restart replays it).
func must(_ apd.Condition, err error) {
	if err != nil {
		panic(fmt.Sprintf("agentbill: exact decimal arithmetic failed: %v", err))
	}
}

// Add returns u + v.
func (u Units) Add(v Units) Units {
	switch {
	case v.IsZero(): // the common case of an unused top-up, overdraft or grant: no arithmetic
		return u
	case u.IsZero():
		return v
	}
	if r, ok := addSmall(&u.d, &v.d, false); ok {
		return r
	}
	var r Units
	must(arith.Add(&r.d, &u.d, &v.d))
	return r
}

// Sub returns u - v (which may be negative).
func (u Units) Sub(v Units) Units {
	if v.IsZero() {
		return u
	}
	if r, ok := addSmall(&u.d, &v.d, true); ok {
		return r
	}
	var r Units
	must(arith.Sub(&r.d, &u.d, &v.d))
	return r
}

// smallCoeffMax bounds the coefficients addSmall takes, once aligned: the
// sum or difference of two of them fits an int64 with room to spare.
const smallCoeffMax = 1e17

// addSmall returns x + y (x - y with sub) in int64 arithmetic when both
// are finite and their coefficients, aligned to the smaller exponent,
// are at most smallCoeffMax: most amounts a request carries and most
// balances. ok is false otherwise (arith then decides). The result is
// exactly arith's (apd's Context.add): the smaller exponent, the signed
// sum, a zero sum positive; at most 18 digits, so never rounded.
func addSmall(x, y *apd.Decimal, sub bool) (r Units, ok bool) {
	if x.Form != apd.Finite || y.Form != apd.Finite || !x.Coeff.IsUint64() || !y.Coeff.IsUint64() {
		return r, false
	}
	a, b := x.Coeff.Uint64(), y.Coeff.Uint64()
	ea, eb := x.Exponent, y.Exponent
	if a > smallCoeffMax || b > smallCoeffMax {
		return r, false
	}
	for ; ea > eb; ea-- {
		if a > smallCoeffMax/10 {
			return r, false
		}
		a *= 10
	}
	for ; eb > ea; eb-- {
		if b > smallCoeffMax/10 {
			return r, false
		}
		b *= 10
	}
	i, j := int64(a), int64(b)
	if x.Negative {
		i = -i
	}
	if y.Negative != sub {
		j = -j
	}
	r.d.SetFinite(i+j, ea)
	return r, true
}

// Mul returns u * v.
func (u Units) Mul(v Units) Units {
	var r Units
	must(arith.Mul(&r.d, &u.d, &v.d))
	return r
}

// Cmp compares u and v: -1, 0 or +1.
func (u Units) Cmp(v Units) int { return u.d.Cmp(&v.d) }

// Sign returns -1, 0 or +1.
func (u Units) Sign() int { return u.d.Sign() }

// IsZero reports whether u == 0.
func (u Units) IsZero() bool { return u.d.IsZero() }

// Max returns the larger of u and v.
func (u Units) Max(v Units) Units {
	if u.Cmp(v) >= 0 {
		return u
	}
	return v
}

// Min returns the smaller of u and v.
func (u Units) Min(v Units) Units {
	if u.Cmp(v) <= 0 {
		return u
	}
	return v
}

// NonNegative returns u, or 0 if u is negative.
func (u Units) NonNegative() Units {
	if u.Sign() < 0 {
		return Zero
	}
	return u
}

// String returns the canonical decimal text: no exponent, no trailing
// fractional zeros ("10", "0.5", "-3").
func (u Units) String() string {
	var buf [unitsAppendBufferBytes]byte
	return string(u.AppendJSON(buf[:0]))
}

// unitsAppendBufferBytes holds the text of an amount whose coefficient
// fits 64 bits (20 digits) with a sign, a point and the zeros of a small
// exponent; a longer text (up to 39 digits of a 128-bit coefficient)
// grows past it.
const unitsAppendBufferBytes = 48

// text is String's definition, for any amount (AppendJSON's slow path).
func (u Units) text() string {
	var r apd.Decimal
	r.Reduce(&u.d)
	if r.IsZero() {
		return "0"
	}
	return r.Text('f')
}

// AppendJSON appends u as a JSON number in canonical form: String's text,
// without its allocations for a coefficient that fits 128 bits: every
// amount a request carries, and any amount below 3·10^20 at 18 fractional
// digits, as priced ones are (their coefficients pass 64 bits from 19
// units on). FuzzAppendJSON checks it against String.
func (u Units) AppendJSON(b []byte) []byte {
	hi, lo, ok := u.coeff128()
	if !ok || u.d.Exponent < -unitsAppendExponentMax || u.d.Exponent > unitsAppendExponentMax {
		return append(b, u.text()...)
	}
	exp := u.d.Exponent
	if hi == 0 && lo == 0 {
		return append(b, '0')
	}
	for { // drop trailing zeros
		if hi == 0 { // the common case, without a division instruction
			for lo%10 == 0 {
				lo /= 10
				exp++
			}
			break
		}
		qhi, qlo, r := divUint128(hi, lo, 10)
		if r != 0 {
			break
		}
		hi, lo = qhi, qlo
		exp++
	}
	if u.d.Negative {
		b = append(b, '-')
	}
	var digits [unitsUint128Digits]byte
	text := appendUint128(digits[:0], hi, lo)
	switch {
	case exp >= 0:
		b = append(b, text...)
		for range exp {
			b = append(b, '0')
		}
	case int(-exp) < len(text):
		point := len(text) + int(exp)
		b = append(b, text[:point]...)
		b = append(b, '.')
		b = append(b, text[point:]...)
	default:
		b = append(b, '0', '.')
		for range int(-exp) - len(text) {
			b = append(b, '0')
		}
		b = append(b, text...)
	}
	return b
}

// coeff128 returns u's coefficient as two 64-bit words, and false when u
// is not finite or its coefficient is wider than 128 bits.
func (u *Units) coeff128() (hi, lo uint64, ok bool) {
	c := &u.d.Coeff
	switch {
	case u.d.Form != apd.Finite:
		return 0, 0, false
	case c.IsUint64(): // every plain amount: one check, as before
		return 0, c.Uint64(), true
	case c.Sign() < 0 || c.BitLen() > 128:
		return 0, 0, false
	}
	var buf [16]byte
	c.FillBytes(buf[:])
	return binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:]), true
}

// unitsUint128Digits is the number of decimal digits of the largest
// 128-bit number.
const unitsUint128Digits = 39

// divUint128 divides hi·2^64+lo by d (d > 0).
func divUint128(hi, lo, d uint64) (qhi, qlo, r uint64) {
	qhi, r = hi/d, hi%d
	qlo, r = bits.Div64(r, lo, d) // r < d, so the quotient fits 64 bits
	return qhi, qlo, r
}

// appendUint128 appends the decimal text of hi·2^64+lo.
func appendUint128(b []byte, hi, lo uint64) []byte {
	if hi == 0 {
		return strconv.AppendUint(b, lo, 10)
	}
	// Split off 19 digits at a time until the rest fits 64 bits: 2^128 has
	// 39 digits, so two splits at most.
	const chunk = 10_000_000_000_000_000_000 // 10^19 < 2^64
	var low [2]uint64
	n := 0
	for hi != 0 {
		hi, lo, low[n] = divUint128(hi, lo, chunk)
		n++
	}
	b = strconv.AppendUint(b, lo, 10)
	for i := n - 1; i >= 0; i-- {
		var d [19]byte
		t := strconv.AppendUint(d[:0], low[i], 10)
		for range len(d) - len(t) {
			b = append(b, '0')
		}
		b = append(b, t...)
	}
	return b
}

// unitsAppendExponentMax bounds the exponents AppendJSON writes itself;
// past it, text writes it (no amount of this service comes near).
const unitsAppendExponentMax = 64

// MarshalJSON writes u as a JSON number in canonical form.
func (u Units) MarshalJSON() ([]byte, error) { return u.AppendJSON(nil), nil }

// UnmarshalJSON reads a JSON number or a JSON string holding a decimal,
// exactly, never through float64. It enforces the bounds of any amount in
// the log (non-negative, 18 fractional digits, 10^30); request decoding adds
// the 10^15 bound with CheckRequestBound.
func (u *Units) UnmarshalJSON(b []byte) error {
	if v, ok := plainUnits(b); ok { // parseTotal's value, without allocating (FuzzParseUnits)
		*u = v
		return nil
	}
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		uq, err := strconv.Unquote(s)
		if err != nil {
			return fmt.Errorf("%w: bad string", ErrInvalidUnits)
		}
		s = uq
	}
	if s == "null" {
		return fmt.Errorf("%w: null", ErrInvalidUnits)
	}
	v, err := parseTotal(s)
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// Signed is an amount that may be negative: a reply's remaining units in
// overdraft (docs/PROTOCOL.md, "Overdraft"). Log amounts are Units, which
// are never negative.
type Signed struct{ Units }

// SignedOf returns u as a Signed.
func SignedOf(u Units) Signed { return Signed{u} }

// UnmarshalJSON reads what Units reads, or its negation with a leading '-'.
func (s *Signed) UnmarshalJSON(b []byte) error {
	t := string(b)
	quoted := len(t) >= 2 && t[0] == '"'
	if quoted {
		t = t[1 : len(t)-1]
	}
	neg := len(t) > 0 && t[0] == '-'
	if !neg {
		return s.Units.UnmarshalJSON(b)
	}
	if quoted {
		t = `"` + t[1:] + `"`
	} else {
		t = t[1:]
	}
	var u Units
	if err := u.UnmarshalJSON([]byte(t)); err != nil {
		return err
	}
	s.Units = Zero.Sub(u)
	return nil
}

// Shift returns u * 10^exp, exactly (a change of exponent, no rounding):
// a rate per million tokens is rate.Shift(-6) per token.
func (u Units) Shift(exp int32) Units {
	var r Units
	r.d.Set(&u.d)
	r.d.Exponent += exp
	return r
}

// FractionDigits returns how many digits u has after the decimal point in
// its canonical form ("0.50" has 1, "100" has 0).
func (u Units) FractionDigits() int {
	var r apd.Decimal
	r.Reduce(&u.d)
	if r.Exponent >= 0 {
		return 0
	}
	return int(-r.Exponent)
}

// FloorDiv returns the largest integer n with n * v <= u, for u >= 0 and
// v > 0, and whether it fits an int64.
func (u Units) FloorDiv(v Units) (int64, bool) {
	if v.Sign() <= 0 || u.Sign() < 0 {
		return 0, false
	}
	var q apd.Decimal
	c := apd.BaseContext.WithPrecision(unitsPrecision)
	if _, err := c.QuoInteger(&q, &u.d, &v.d); err != nil {
		return 0, false
	}
	n, err := q.Int64()
	return n, err == nil
}
