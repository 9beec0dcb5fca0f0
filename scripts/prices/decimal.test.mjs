// Tests of decimal.mjs: the exact text of genai-prices' JS numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonical, decimalOf, fractionDigits, shift } from './decimal.mjs';

test('decimalOf gives the shortest round-trip text, without exponent', () => {
  for (const [n, want] of [
    [3, '3'], [0.3, '0.3'], [0.1 + 0.2, '0.30000000000000004'], [0, '0'],
    [1e-7, '0.0000001'], [2.5e-8, '0.000000025'], [1.25e-7, '0.000000125'],
    [1e21, '1000000000000000000000'], [1.5e21, '1500000000000000000000'],
    [0.08333333333333334, '0.08333333333333334'],
  ]) {
    assert.equal(decimalOf(n), want, `decimalOf(${n})`);
    assert.equal(Number(decimalOf(n)), n, `${decimalOf(n)} reads back as ${n}`);
  }
});

test('decimalOf refuses what is not a price', () => {
  for (const n of [-1, NaN, Infinity, '3', undefined]) {
    assert.throws(() => decimalOf(n), /not a finite non-negative number/);
  }
});

test('shift moves the point in the text, never through float', () => {
  for (const [s, exp, want] of [
    ['12', -3, '0.012'], ['3', -3, '0.003'], ['1000', -3, '1'], ['0', -3, '0'],
    ['0.0000001', -3, '0.0000000001'], ['1.5', 2, '150'], ['0.012', 3, '12'],
    ['0.30000000000000004', -3, '0.00030000000000000004'], ['7', 0, '7'],
  ]) {
    assert.equal(shift(s, exp), want, `shift(${s}, ${exp})`);
  }
  // Float division would give 0.00030000000000000003 here.
  assert.notEqual(String(0.30000000000000004 / 1000), shift('0.30000000000000004', -3));
  assert.throws(() => shift('1e-7', -3), /not a plain decimal/);
});

test('canonical and fractionDigits', () => {
  assert.equal(canonical('007.500'), '7.5');
  assert.equal(canonical('0.000'), '0');
  assert.equal(canonical('10'), '10');
  assert.equal(fractionDigits('0.012'), 3);
  assert.equal(fractionDigits('12'), 0);
});
