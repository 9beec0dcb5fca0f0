// The AI SDK middleware with the real `ai` package (generateText,
// generateObject, streamText) and its ai/test mock models, against a real
// `agentbill serve --http`.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { createOpenAI } from '@ai-sdk/openai';
import { generateObject, generateText, jsonSchema, streamText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV4, simulateReadableStream } from 'ai/test';

import { RefusedError } from '../index.js';
import { agentbillMiddleware } from '../ai-sdk.js';
import { USAGE_MISSING } from '../usage.js';
import { Ledger } from '../test-support/ledger.js';
import { ModelServer, UNITS as MODEL_UNITS } from '../test-support/model-server.js';

const ESTIMATE = 100;
const USAGE = {
  inputTokens: { total: 30, noCache: 25, cacheRead: 5, cacheWrite: undefined },
  outputTokens: { total: 12, text: 10, reasoning: 2 },
};
const UNITS = '42';

let ledger;

before(async () => {
  ledger = await Ledger.start();
});

after(async () => {
  await ledger?.stop();
});

const customerWithBudget = (limit) => ledger.customer('ai', limit);
const position = (cid) => ledger.position(cid);
const settled = (cid) => ledger.settled(cid);

function generateResult(text, usage = USAGE) {
  return {
    content: [{ type: 'text', text }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [],
    response: { id: `gen-${randomUUID()}`, modelId: 'mock-model', timestamp: new Date(0) },
  };
}

function streamParts(text) {
  return [
    { type: 'stream-start', warnings: [] },
    { type: 'response-metadata', id: `gen-${randomUUID()}`, modelId: 'mock-model', timestamp: new Date(0) },
    { type: 'text-start', id: 't' },
    ...text.split(' ').map((w) => ({ type: 'text-delta', id: 't', delta: `${w} ` })),
    { type: 'text-end', id: 't' },
    { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: USAGE },
  ];
}

// model is a mock model wrapped in the middleware; calls counts the calls
// that reached the mock.
function model(customerId, { generate, stream } = {}) {
  const calls = { n: 0 };
  const mock = new MockLanguageModelV4({
    doGenerate: async () => {
      calls.n++;
      return generate ? generate() : generateResult('hello back');
    },
    doStream: async () => {
      calls.n++;
      return { stream: stream ? stream() : simulateReadableStream({ chunks: streamParts('hello from the stream') }) };
    },
  });
  const middleware = agentbillMiddleware({
    agentbill: ledger.agent(), agentId: 'ai_agent', customerId, estimate: ESTIMATE,
  });
  return { model: wrapLanguageModel({ model: mock, middleware }), calls, middleware };
}

test('generateText is charged the usage the model reported', async () => {
  const cid = await customerWithBudget(1000);
  const { model: m } = model(cid);
  const { text } = await generateText({ model: m, prompt: 'hi', maxRetries: 0 });
  assert.equal(text, 'hello back');
  assert.deepEqual(await position(cid), { used: UNITS, reserved: '0', open: 0 });
  const rec = await ledger.lastRecorded(cid);
  assert.equal(rec.data.metadata.usage.cache_read_tokens, 5); // token counts come back as numbers
  assert.equal(rec.data.metadata.usage.reasoning_tokens, 2);
});

test('generateObject is charged too', async () => {
  const cid = await customerWithBudget(1000);
  const { model: m } = model(cid, { generate: () => generateResult('{"city":"Paris"}') });
  const { object } = await generateObject({
    model: m, prompt: 'where?', maxRetries: 0,
    schema: jsonSchema({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
  });
  assert.deepEqual(object, { city: 'Paris' });
  assert.deepEqual(await position(cid), { used: UNITS, reserved: '0', open: 0 });
});

test('streamText is charged when the stream finishes', async () => {
  const cid = await customerWithBudget(1000);
  const { model: m } = model(cid);
  const result = streamText({ model: m, prompt: 'hi', maxRetries: 0 });
  let text = '';
  for await (const t of result.textStream) text += t;
  assert.equal(text.trim(), 'hello from the stream');
  assert.deepEqual(await settled(cid), { used: UNITS, reserved: '0', open: 0 });
});

test('a refused call never reaches the model', async () => {
  const cid = await customerWithBudget(ESTIMATE - 1);
  const { model: m, calls } = model(cid);
  await assert.rejects(generateText({ model: m, prompt: 'hi', maxRetries: 0 }), (err) => err instanceof RefusedError);
  assert.equal(calls.n, 0);
  assert.deepEqual(await position(cid), { used: '0', reserved: '0', open: 0 });
});

test('a model error releases the hold', async () => {
  const cid = await customerWithBudget(1000);
  const { model: m, calls } = model(cid, { generate: () => { throw new Error('model exploded'); } });
  await assert.rejects(generateText({ model: m, prompt: 'hi', maxRetries: 0 }), /model exploded/);
  assert.equal(calls.n, 1);
  assert.deepEqual(await position(cid), { used: '0', reserved: '0', open: 0 });
});

test('a stream that errors releases the hold', async () => {
  const cid = await customerWithBudget(1000);
  const parts = streamParts('never finished');
  const { model: m } = model(cid, {
    stream: () => new ReadableStream({
      start(ctrl) {
        ctrl.enqueue(parts[0]);
        ctrl.error(new Error('connection lost'));
      },
    }),
  });
  const errors = [];
  const result = streamText({ model: m, prompt: 'hi', maxRetries: 0, onError: ({ error }) => errors.push(error) });
  try {
    for await (const _ of result.textStream) { /* drain */ }
  } catch (err) {
    errors.push(err); // streamText may rethrow it as well as report it
  }
  assert.match(String(errors[0]?.message ?? errors[0]), /connection lost/);
  assert.deepEqual(await settled(cid), { used: '0', reserved: '0', open: 0 });
});

test('an aborted stream releases the hold', async () => {
  const cid = await customerWithBudget(1000);
  const { model: m } = model(cid, {
    stream: () => simulateReadableStream({ chunks: streamParts('a slow answer that is cut short'), chunkDelayInMs: 100 }),
  });
  const abort = new AbortController();
  const result = streamText({ model: m, prompt: 'hi', maxRetries: 0, abortSignal: abort.signal, onError() {} });
  try {
    for await (const _ of result.textStream) abort.abort();
  } catch {
    // an aborted stream may end with the abort's error
  }
  assert.deepEqual(await settled(cid), { used: '0', reserved: '0', open: 0 });
});

test('fifty concurrent calls with a budget for ten let at most ten through', async () => {
  const cid = await customerWithBudget(10 * ESTIMATE);
  const { model: m, calls } = model(cid, {
    generate: async () => {
      await new Promise((r) => setTimeout(r, 50));
      return generateResult('ok');
    },
  });
  const results = await Promise.allSettled(Array.from({ length: 50 }, () => generateText({ model: m, prompt: 'hi', maxRetries: 0 })));
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  assert.ok(calls.n <= 10, `the model was called ${calls.n} times`);
  assert.ok(ok <= 10, `${ok} calls succeeded`);
  assert.equal(results.filter((r) => r.reason instanceof RefusedError).length, 50 - ok);
  assert.equal((await position(cid)).used, String(ok * 42));
});

test('usage the model did not report is charged as the estimate, marked missing', async () => {
  const cid = await customerWithBudget(1000);
  const none = { inputTokens: { total: undefined }, outputTokens: { total: undefined } };
  const { model: m } = model(cid, { generate: () => generateResult('hi', none) });
  await generateText({ model: m, prompt: 'hi', maxRetries: 0 });
  const rec = await ledger.lastRecorded(cid);
  assert.equal(rec.data.units, String(ESTIMATE));
  assert.equal(rec.data.metadata.usage, USAGE_MISSING);
});

test('with @ai-sdk/openai against the stand-in: a generate and a stream are charged the provider-reported usage', async () => {
  const models = await ModelServer.start();
  try {
    const cid = await customerWithBudget(1000);
    const openai = createOpenAI({ apiKey: 'sk-test', baseURL: `${models.url}/v1` });
    const middleware = agentbillMiddleware({
      agentbill: ledger.agent(), agentId: 'ai_agent', customerId: cid, estimate: ESTIMATE,
    });
    const chat = wrapLanguageModel({ model: openai.chat('gpt-test'), middleware });
    const { text } = await generateText({ model: chat, prompt: 'hi', maxRetries: 0 });
    assert.equal(text, 'hello from the stand-in');
    const responses = wrapLanguageModel({ model: openai.responses('gpt-test'), middleware });
    const result = streamText({ model: responses, prompt: 'hi', maxRetries: 0 });
    let streamed = '';
    for await (const t of result.textStream) streamed += t;
    assert.equal(streamed, 'hello from the stand-in');
    assert.deepEqual(await settled(cid), { used: String(MODEL_UNITS.openaiChat + MODEL_UNITS.openaiResponses), reserved: '0', open: 0 });
    assert.equal(models.total, 2);
  } finally {
    await models.stop();
  }
});

test("pricing 'list': the middleware holds a priced estimate and is charged the list price of the usage", async () => {
  // The mock's modelId is mock-model-id, its responses say mock-model; with no
  // provider in the list, any provider's usage matches it.
  await ledger.admin.setPrices({ list: 'default', version: 'ai-v1', models: [{ id: 'mock-model', aliases: ['mock-model-id'], rates: { input: '3', output: '15', cache_read: '0.3' } }] });
  const cid = await customerWithBudget(1);
  const mock = new MockLanguageModelV4({ doGenerate: async () => generateResult('hello back') });
  const middleware = agentbillMiddleware({ agentbill: ledger.agent(), agentId: 'ai_agent', customerId: cid, pricing: 'list' });
  await generateText({ model: wrapLanguageModel({ model: mock, middleware }), prompt: 'hi', maxOutputTokens: 50, maxRetries: 0 });
  const { events } = await ledger.admin.events(cid, { limit: 50 });
  const held = events.find((e) => e.type === 'reserved').data;
  assert.equal(held.max_output_tokens, 50);
  const rec = events.find((e) => e.type === 'recorded').data;
  // (30 - 5) x 3 + 5 x 0.3 + 12 x 15 = 75 + 1.5 + 180 = 256.5 per million.
  assert.deepEqual([rec.units, rec.usage.model, rec.unpriced], ['0.0002565', 'mock-model', undefined]);
  assert.deepEqual(await position(cid), { used: '0.0002565', reserved: '0', open: 0 });
});
