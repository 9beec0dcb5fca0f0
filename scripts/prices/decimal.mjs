// Exact decimal text for JS numbers, without float arithmetic: a price in
// @pydantic/genai-prices is a JS number, and prices/starter.json holds its
// exact decimal string (docs/PROTOCOL.md, "Price lists").

// decimalOf returns the shortest decimal text that reads back as n
// (String(n) is the shortest round-trip form), without an exponent:
// 1e-7 -> "0.0000001", 1.5e21 -> "1500000000000000000000".
export function decimalOf(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
    throw new Error(`not a finite non-negative number: ${n}`);
  }
  const s = String(n);
  const e = s.indexOf('e');
  if (e < 0) return s;
  return shift(s.slice(0, e), Number(s.slice(e + 1)));
}

// shift returns the decimal text s (digits with at most one '.') times
// 10^exp, by moving the point: shift("12", -3) -> "0.012".
export function shift(s, exp) {
  if (!/^\d+(\.\d+)?$/.test(s)) throw new Error(`not a plain decimal: ${s}`);
  const [int, frac = ''] = s.split('.');
  let digits = int + frac;
  let point = int.length + exp; // digits before the point
  if (point <= 0) {
    digits = '0'.repeat(1 - point) + digits;
    point = 1;
  } else if (point > digits.length) {
    digits += '0'.repeat(point - digits.length);
  }
  return canonical(digits.slice(0, point) + '.' + digits.slice(point));
}

// canonical drops leading integer zeros, trailing fractional zeros and a
// bare point: "007.500" -> "7.5", "0.000" -> "0".
export function canonical(s) {
  let [int, frac = ''] = s.split('.');
  int = int.replace(/^0+(?=\d)/, '');
  frac = frac.replace(/0+$/, '');
  return frac ? `${int}.${frac}` : int;
}

// fractionDigits counts the digits after the point of canonical text.
export function fractionDigits(s) {
  const i = s.indexOf('.');
  return i < 0 ? 0 : s.length - i - 1;
}
