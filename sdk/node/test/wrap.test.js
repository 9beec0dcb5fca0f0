// wrap() around the real provider packages (openai, @anthropic-ai/sdk,
// @google/genai), pointed at the stand-in model server, against a real
// `agentbill serve --http`.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';

import { AgentBillClient, InvalidArgumentError, RefusedError, UnavailableError } from '../index.js';
import { CHARS_PER_TOKEN, FIRST_CALL_OUTPUT_TOKENS, USAGE_MISSING, fromOpenAIChat } from '../usage.js';
import { WRAPPED, wrap } from '../wrap.js';
import { freePort } from '../test-support/harness.js';
import { Ledger } from '../test-support/ledger.js';
import { ModelServer, UNITS, USAGE } from '../test-support/model-server.js';

let ledger;
let models;

before(async () => {
  ledger = await Ledger.start();
  models = await ModelServer.start();
});

after(async () => {
  await models?.stop();
  await ledger?.stop();
});

const customerWithBudget = (limit) => ledger.customer('wrap', limit);
const position = (cid) => ledger.position(cid);

// Provider clients retry nothing, so a failure reaches the wrapper once.
const PROVIDERS = {
  openaiChat: {
    client: () => new OpenAI({ apiKey: 'sk-test', baseURL: `${models.url}/v1`, maxRetries: 0 }),
    call: (c, stream) => c.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 64, stream }),
    text: (r) => r.choices[0].message.content,
  },
  openaiResponses: {
    client: () => new OpenAI({ apiKey: 'sk-test', baseURL: `${models.url}/v1`, maxRetries: 0 }),
    call: (c, stream) => c.responses.create({ model: 'gpt-test', input: 'hi', max_output_tokens: 64, stream }),
    text: (r) => r.output_text,
  },
  anthropic: {
    client: () => new Anthropic({ apiKey: 'sk-ant-test', baseURL: models.url, maxRetries: 0 }),
    call: (c, stream) => c.messages.create({ model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], stream }),
    text: (r) => r.content[0].text,
  },
  gemini: {
    client: () => new GoogleGenAI({ apiKey: 'g-test', httpOptions: { baseUrl: models.url } }),
    call: (c, stream) => (stream ? c.models.generateContentStream : c.models.generateContent)(
      { model: 'gemini-test', contents: 'hi', config: { maxOutputTokens: 64 } },
    ),
    text: (r) => r.text,
  },
};

function wrapped(api, customerId, extra = {}) {
  const warnings = [];
  const client = wrap(PROVIDERS[api].client(), {
    agentbill: ledger.agent({ logger: { warn: (m) => warnings.push(m) } }),
    agentId: 'wrap_agent', customerId, estimate: 200, ...extra,
  });
  return { client, warnings };
}

async function drain(stream) {
  const items = [];
  for await (const item of stream) items.push(item);
  return items;
}


for (const api of Object.keys(PROVIDERS)) {
  const p = PROVIDERS[api];
  describe(`wrap: ${api}`, () => {
    test('an approved call is charged the usage the provider reported, keyed by its response id', async () => {
      const cid = await customerWithBudget(1000);
      const { client } = wrapped(api, cid);
      const res = await p.call(client, false);
      assert.match(p.text(res), /hello/);
      assert.deepEqual(await position(cid), { used: String(UNITS[api]), reserved: '0', open: 0 });
      const rec = await ledger.lastRecorded(cid);
      assert.equal(rec.data.units, String(UNITS[api]));
      assert.equal(rec.data.metadata.usage.input_tokens + rec.data.metadata.usage.output_tokens, UNITS[api]); // token counts come back as numbers
      assert.equal(rec.idempotency_key ?? rec.data.idempotency_key, res.id ?? res.responseId);
    });

    test('a stream is charged when it ends', async () => {
      const cid = await customerWithBudget(1000);
      const { client } = wrapped(api, cid);
      const stream = await p.call(client, true);
      assert.equal((await position(cid)).reserved, '200', 'held while the stream runs');
      const items = await drain(stream);
      assert.ok(items.length > 1);
      assert.deepEqual(await position(cid), { used: String(UNITS[api]), reserved: '0', open: 0 });
    });

    test('a refused call never reaches the model server', async () => {
      const cid = await customerWithBudget(100);
      const { client } = wrapped(api, cid);
      const before = models.requests[api];
      await assert.rejects(p.call(client, false), (err) => err instanceof RefusedError && err.reason === 'budget_exhausted');
      assert.equal(models.requests[api], before);
      assert.deepEqual(await position(cid), { used: '0', reserved: '0', open: 0 });
    });

    test('a provider error releases the hold', async () => {
      const cid = await customerWithBudget(1000);
      const { client } = wrapped(api, cid);
      await models.with({ failure: 'http500' }, () => assert.rejects(p.call(client, false)));
      assert.deepEqual(await position(cid), { used: '0', reserved: '0', open: 0 });
    });

    test('a stream cut mid-way releases the hold', async () => {
      const cid = await customerWithBudget(1000);
      const { client } = wrapped(api, cid);
      await models.with({ failure: 'abort' }, () => assert.rejects(async () => drain(await p.call(client, true))));
      assert.deepEqual(await position(cid), { used: '0', reserved: '0', open: 0 });
    });

    test('fifty concurrent calls with a budget for ten let at most ten through', async () => {
      const cid = await customerWithBudget(2000); // ten estimates of 200
      const { client } = wrapped(api, cid);
      const before = models.requests[api];
      const results = await models.with({ delayMs: 50 }, () => Promise.allSettled(Array.from({ length: 50 }, () => p.call(client, false))));
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      const refused = results.filter((r) => r.reason instanceof RefusedError).length;
      assert.ok(models.requests[api] - before <= 10, `the model server saw ${models.requests[api] - before} requests`);
      assert.ok(ok <= 10, `${ok} calls succeeded`);
      assert.equal(ok + refused, 50, 'every other call is refused');
      const pos = await position(cid);
      assert.equal(pos.used, String(ok * UNITS[api]));
      assert.equal(pos.reserved, '0');
    });

    test('usage the provider did not report is recorded as the estimate, marked missing', async () => {
      const cid = await customerWithBudget(1000);
      const { client } = wrapped(api, cid);
      await models.with({ omitUsage: true }, () => p.call(client, false));
      const rec = await ledger.lastRecorded(cid);
      assert.equal(rec.data.units, '200');
      assert.equal(rec.data.metadata.usage, USAGE_MISSING);
    });
  });
}

test('a failed record returns the answer with a warning, and the hold stays', async () => {
  const cid = await customerWithBudget(1000);
  const key = ledger.server.createKey('agent');
  const warnings = [];
  const client = wrap(PROVIDERS.openaiChat.client(), {
    agentbill: new AgentBillClient({ apiKey: key.key, baseUrl: ledger.server.baseUrl, logger: { warn: (m) => warnings.push(m) } }),
    agentId: 'wrap_agent', customerId: cid, estimate: 200,
  });
  // The key is revoked while the model answers: the preflight got through,
  // the record is refused (401).
  const before = models.requests.openaiChat;
  const res = await models.with({ delayMs: 300 }, async () => {
    const call = PROVIDERS.openaiChat.call(client, false);
    while (models.requests.openaiChat === before) await new Promise((r) => setTimeout(r, 10));
    ledger.server.revoke(key.id);
    return call;
  });
  assert.equal(res.choices[0].message.content, 'hello from the stand-in');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /recording chat\.completions\.create failed; the answer is returned and hold \S+ stays until it expires/);
  assert.deepEqual(await position(cid), { used: '0', reserved: '200', open: 1 });
});

test('the default estimate is the running mean, capped by mean prompt plus max output', async () => {
  const cid = await customerWithBudget(100_000);
  const { client } = wrapped('openaiChat', cid, { estimate: undefined });
  const messages = [{ role: 'user', content: 'hi' }];
  const call = (maxTokens) => client.chat.completions.create({ model: 'gpt-test', messages, max_completion_tokens: maxTokens });
  await call(64); // the first call: its prompt text / 4 + 64
  await call(64); // the mean, 150, under the cap 120 + 64
  await call(5); // capped: mean prompt 120 + 5
  const { events } = await ledger.admin.events(cid);
  const held = events.filter((e) => e.type === 'reserved').map((e) => e.data.units);
  const promptTokens = Math.ceil(JSON.stringify([messages]).length / CHARS_PER_TOKEN);
  assert.deepEqual(held, [String(promptTokens + 64), '150', '125']);
});

test("the SDKs' own helpers built on create() go through the budget", async () => {
  const cid = await customerWithBudget(10_000);
  const { client: openai } = wrapped('openaiChat', cid);
  const { client: anthropic } = wrapped('anthropic', cid);
  const messages = [{ role: 'user', content: 'hi' }];
  const want = 'hello from the stand-in';
  // [helper, its answer's text, units charged]
  const helpers = [
    ['create().withResponse()', async () => {
      const { data, response } = await openai.chat.completions.create({ model: 'gpt-test', messages }).withResponse();
      assert.equal(response.status, 200);
      return data.choices[0].message.content;
    }, UNITS.openaiChat],
    ['chat.completions.parse', async () => (await openai.chat.completions.parse({ model: 'gpt-test', messages })).choices[0].message.content, UNITS.openaiChat],
    ['chat.completions.stream', async () => (await openai.chat.completions.stream({ model: 'gpt-test', messages }).finalChatCompletion()).choices[0].message.content, UNITS.openaiChat],
    ['responses.parse', async () => (await openai.responses.parse({ model: 'gpt-test', input: 'hi' })).output_text, UNITS.openaiResponses],
    ['responses.stream', async () => (await openai.responses.stream({ model: 'gpt-test', input: 'hi' }).finalResponse()).output_text, UNITS.openaiResponses],
    ['messages.stream', async () => (await anthropic.messages.stream({ model: 'claude-test', max_tokens: 64, messages }).finalMessage()).content[0].text, UNITS.anthropic],
  ];
  let used = 0;
  for (const [name, call, units] of helpers) {
    assert.equal(await call(), want, name);
    used += units;
    assert.deepEqual(await ledger.settled(cid), { used: String(used), reserved: '0', open: 0 }, name);
  }
});

test('copies made with withOptions stay wrapped; everything else is untouched', async () => {
  const cid = await customerWithBudget(1000);
  const { client } = wrapped('openaiChat', cid);
  const copy = client.withOptions({ timeout: 5000 });
  assert.notEqual(copy, client);
  assert.equal(copy[WRAPPED], client[WRAPPED]);
  await PROVIDERS.openaiChat.call(copy, false);
  assert.equal((await position(cid)).used, '150');
  assert.equal(typeof client.models.list, 'function');
  assert.throws(() => wrap(client, { agentId: 'a' }), /already wrapped/);
  assert.throws(() => wrap({}, { agentId: 'a' }), /not an OpenAI, Anthropic or Google Gemini client/);
  assert.throws(() => wrap(new OpenAI({ apiKey: 'x' }), { agentbill: client[WRAPPED].client }), /agentId is required/);
});

test('AgentBill unreachable: deny (default) sends nothing, allow sends unchecked', async () => {
  const baseUrl = `http://127.0.0.1:${await freePort()}`;
  const make = (onUnavailable) => wrap(PROVIDERS.anthropic.client(), {
    apiKey: 'ak_test', baseUrl, onUnavailable, agentId: 'a', customerId: 'u', logger: { warn() {} },
  });
  const before = models.requests.anthropic;
  await assert.rejects(PROVIDERS.anthropic.call(make(undefined), false), UnavailableError);
  assert.equal(models.requests.anthropic, before);
  const res = await PROVIDERS.anthropic.call(make('allow'), false);
  assert.equal(res.content[0].text, 'hello from the stand-in');
  assert.equal(models.requests.anthropic, before + 1);
});

// pricing 'list': the ledger charges the list price of the usage each
// stand-in API reports (model-server.js USAGE), priced from this list.
const PRICES = {
  list: 'default', version: 'v1',
  models: [
    { id: 'gpt-test', provider: 'openai', rates: { input: '0.4', output: '1.6', cache_read: '0.1' } },
    { id: 'claude-test', provider: 'anthropic', rates: { input: '3', output: '15', cache_read: '0.3', cache_write: '3.75', cache_write_1h: '6' } },
    { id: 'gemini-test', provider: 'google', rates: { input: '0.3', output: '2.5', cache_read: '0.03' } },
  ],
};
// Worked out by hand from USAGE and PRICES (per million tokens).
const LIST_CHARGE = {
  // (120 - 20) x 0.4 + 20 x 0.1 + 30 x 1.6 = 40 + 2 + 48 = 90
  openaiChat: '0.00009',
  // 100 x 0.4 + 40 x 1.6 = 40 + 64 = 104
  openaiResponses: '0.000104',
  // (65 - 10 - 5) x 3 + 10 x 0.3 + (5 - 2) x 3.75 + 2 x 6 + 25 x 15 = 150 + 3 + 11.25 + 12 + 375 = 551.25
  anthropic: '0.00055125',
  // (80 - 8) x 0.3 + 8 x 0.03 + 27 x 2.5 = 21.6 + 0.24 + 67.5 = 89.34
  gemini: '0.00008934',
};

describe('wrap: pricing list', () => {
  before(async () => {
    await ledger.admin.setPrices(PRICES);
  });

  const listWrapped = (api, cid, extra = {}) => wrapped(api, cid, { estimate: undefined, pricing: 'list', ...extra }).client;
  const eventsOf = async (cid, type) => (await ledger.admin.events(cid, { limit: 50 })).events.filter((e) => e.type === type).map((e) => e.data);

  for (const api of Object.keys(PROVIDERS)) {
    for (const stream of [false, true]) {
      test(`${api}${stream ? ' stream' : ''}: a call is held at its priced estimate and charged the list price of its usage`, async () => {
        const cid = await customerWithBudget(1);
        const res = await PROVIDERS[api].call(listWrapped(api, cid), stream);
        if (stream) await drain(res);
        const st = await ledger.admin.status(cid);
        assert.deepEqual([st.used, st.reserved, st.openReservations, st.unpricedRecords], [LIST_CHARGE[api], '0', 0, 0]);
        const [held] = await eventsOf(cid, 'reserved');
        assert.equal(held.max_output_tokens, 64); // the call's own max
        assert.deepEqual(held.pricing.lines.at(-1), { kind: 'output', tokens: 64, rate: held.pricing.lines.at(-1).rate });
        const [rec] = await eventsOf(cid, 'recorded');
        assert.equal(rec.units, LIST_CHARGE[api]);
        assert.equal(rec.pricing.total, LIST_CHARGE[api]);
        assert.equal(rec.usage.model, PRICES.models.find((m) => m.provider === rec.usage.provider).id);
        assert.equal(rec.unpriced, undefined);
        assert.equal(rec.metadata.usage, undefined, 'the usage is the record\'s own field, not metadata');
      });
    }
  }

  test('the first estimate is the prompt and FIRST_CALL_OUTPUT_TOKENS; later ones the measured means', async () => {
    const cid = await customerWithBudget(1);
    const client = listWrapped('openaiChat', cid);
    const messages = [{ role: 'user', content: 'x'.repeat(400) }];
    await client.chat.completions.create({ model: 'gpt-test', messages }); // no max: FIRST_CALL_OUTPUT_TOKENS
    await client.chat.completions.create({ model: 'gpt-test', messages }); // the measured means: 120 in, 30 out
    await client.chat.completions.create({ model: 'gpt-test', messages, max_completion_tokens: 7 });
    const lines = (await eventsOf(cid, 'reserved')).map((e) => e.pricing.lines.map((l) => [l.kind, l.tokens]));
    const prompt = Math.ceil(JSON.stringify([messages]).length / CHARS_PER_TOKEN);
    const used = fromOpenAIChat(USAGE.openaiChat);
    assert.deepEqual(lines, [
      [['input', prompt], ['output', FIRST_CALL_OUTPUT_TOKENS]],
      [['input', used.input_tokens], ['output', used.output_tokens]],
      [['input', used.input_tokens], ['output', 7]],
    ]);
  });

  test('missing usage is charged the hold, never 0', async () => {
    const cid = await customerWithBudget(1);
    await models.with({ omitUsage: true }, () => PROVIDERS.anthropic.call(listWrapped('anthropic', cid), false));
    const [held] = await eventsOf(cid, 'reserved');
    const [rec] = await eventsOf(cid, 'recorded');
    assert.ok(Number(held.units) > 0);
    assert.deepEqual([rec.units, rec.metadata.usage, rec.usage], [held.units, USAGE_MISSING, undefined]);
    assert.equal((await ledger.admin.status(cid)).used, held.units);
  });

  test('a model the list does not price is never sent, unless estimate holds units; then it is charged the hold, unpriced', async () => {
    const cid = await customerWithBudget(1);
    const call = (client) => client.chat.completions.create({ model: 'gpt-unknown', messages: [], max_completion_tokens: 64 });
    const before = models.requests.openaiChat;
    await assert.rejects(call(listWrapped('openaiChat', cid)), (err) => err instanceof InvalidArgumentError && /gpt-unknown/.test(err.message));
    assert.equal(models.requests.openaiChat, before);
    await call(listWrapped('openaiChat', cid, { estimate: '0.01' }));
    const [rec] = await eventsOf(cid, 'recorded');
    assert.deepEqual([rec.units, rec.usage.model], ['0.01', 'gpt-unknown']);
    assert.match(rec.unpriced, /gpt-unknown/);
    assert.equal((await ledger.admin.status(cid)).unpricedRecords, 1);
  });

  test('pricing must be tokens or list', () => {
    assert.throws(() => wrap(PROVIDERS.openaiChat.client(), { agentId: 'a', agentbill: ledger.agent(), pricing: 'cost' }), /pricing must be one of 'tokens', 'list'/);
  });
});
