// The usage normalizers against each API's documented usage shapes, and
// the one rule from usage to units.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CHARS_PER_TOKEN, Estimator, FIRST_CALL_OUTPUT_TOKENS, addUsage, fromAgents, fromAiSdk, fromAnthropic, fromGemini,
  fromLangChain, fromOpenAIChat, fromOpenAIResponses, unitsOf,
} from '../usage.js';
import { USAGE, UNITS } from '../test-support/model-server.js';

test('each provider maps to the one usage shape, and units are input plus output', () => {
  // [name, normalized, want]
  const cases = [
    ['openai chat', fromOpenAIChat(USAGE.openaiChat, { model: 'gpt', serviceTier: 'flex' }),
      { provider: 'openai', model: 'gpt', input_tokens: 120, output_tokens: 30, cache_read_tokens: 20, reasoning_tokens: 10, service_tier: 'flex' }],
    ['openai responses', fromOpenAIResponses(USAGE.openaiResponses, { model: 'gpt' }),
      { provider: 'openai', model: 'gpt', input_tokens: 100, output_tokens: 40, cache_read_tokens: 0, reasoning_tokens: 15 }],
    ['anthropic: input is uncached + cache reads + cache writes', fromAnthropic({ ...USAGE.anthropic, service_tier: 'priority' }, { model: 'claude' }),
      { provider: 'anthropic', model: 'claude', input_tokens: 65, output_tokens: 25, cache_read_tokens: 10, cache_write_tokens: 5, cache_write_1h_tokens: 2, service_tier: 'priority' }],
    ['gemini: output is candidates + thoughts', fromGemini(USAGE.gemini, { model: 'gemini' }),
      { provider: 'google', model: 'gemini', input_tokens: 80, output_tokens: 27, cache_read_tokens: 8, reasoning_tokens: 7 }],
    ['ai sdk', fromAiSdk({ inputTokens: { total: 9, noCache: 6, cacheRead: 3, cacheWrite: undefined }, outputTokens: { total: 4, text: 3, reasoning: 1 } }, { model: 'm', provider: 'p' }),
      { provider: 'p', model: 'm', input_tokens: 9, output_tokens: 4, cache_read_tokens: 3, reasoning_tokens: 1 }],
    ['openai agents', fromAgents({ requests: 2, inputTokens: 10, outputTokens: 5, totalTokens: 15, inputTokensDetails: [{ cached_tokens: 2 }, { cached_tokens: 1 }], outputTokensDetails: [{ reasoning_tokens: 3 }] }),
      { provider: 'openai', input_tokens: 10, output_tokens: 5, cache_read_tokens: 3, reasoning_tokens: 3 }],
    ['langchain', fromLangChain({ input_tokens: 7, output_tokens: 2, total_tokens: 9, input_token_details: { cache_read: 1 }, output_token_details: { reasoning: 1 } }),
      { input_tokens: 7, output_tokens: 2, cache_read_tokens: 1, reasoning_tokens: 1 }],
  ];
  for (const [name, got, want] of cases) {
    assert.deepEqual(got, want, name);
    assert.equal(unitsOf(got), want.input_tokens + want.output_tokens, name);
  }
  assert.equal(unitsOf(fromGemini(USAGE.gemini)), UNITS.gemini);
  assert.equal(unitsOf(fromAnthropic(USAGE.anthropic)), UNITS.anthropic);
});

test('a count not reported is left out, never 0, and usage without it has no units', () => {
  assert.equal(fromOpenAIChat(undefined), null);
  assert.equal(fromAnthropic({ input_tokens: null, output_tokens: null }), null);
  assert.equal(fromAgents({ requests: 0, inputTokens: 0, outputTokens: 0 }), null);
  assert.equal(fromAgents({ requests: 1, inputTokens: 0, outputTokens: 0 }), null); // the SDK's 0 for "not reported"
  const partial = fromAnthropic({ input_tokens: 10, cache_read_input_tokens: null, output_tokens: undefined });
  assert.deepEqual(partial, { provider: 'anthropic', input_tokens: 10 });
  assert.equal(unitsOf(partial), null);
  assert.deepEqual(fromGemini({ promptTokenCount: 5 }), { provider: 'google', input_tokens: 5 });
});

test('addUsage sums field by field and keeps only what both agree on', () => {
  const a = { provider: 'openai', model: 'x', input_tokens: 1, output_tokens: 2 };
  const b = { provider: 'openai', model: 'y', input_tokens: 3, output_tokens: 4, reasoning_tokens: 1 };
  assert.deepEqual(addUsage(a, b), { provider: 'openai', input_tokens: 4, output_tokens: 6, reasoning_tokens: 1 });
  assert.deepEqual(addUsage(null, b), b);
});

test('the estimate: first call sized from its prompt, then the running mean capped by mean prompt + max output', () => {
  const e = new Estimator();
  assert.equal(e.estimate({ promptText: 'x'.repeat(40) }), 40 / CHARS_PER_TOKEN + FIRST_CALL_OUTPUT_TOKENS);
  assert.equal(e.estimate({ promptText: 'x'.repeat(40), maxOutputTokens: 5 }), 15);
  e.observe({ input_tokens: 100, output_tokens: 50 });
  e.observe({ input_tokens: 200, output_tokens: 51 });
  e.observe({ input_tokens: 5 }); // missing output: not a measurement
  assert.equal(e.calls, 2);
  assert.equal(e.estimate(), 201); // ceil(401 / 2)
  assert.equal(e.estimate({ maxOutputTokens: 10 }), 160); // 150 + 10
  assert.equal(e.estimate({ maxOutputTokens: 1000 }), 201);
});
