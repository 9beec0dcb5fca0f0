// The LangChain.js callback handler against a real `agentbill serve --http`,
// with @langchain/core's fake chat model.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { RunnableLambda } from '@langchain/core/runnables';
import { FakeListChatModel } from '@langchain/core/utils/testing';

import { AgentBillClient, RefusedError } from '../index.js';
import { AgentBillCallbackHandler, tokenUsageOf } from '../langchain.js';
import { FIRST_CALL_OUTPUT_TOKENS } from '../usage.js';
import { Server } from '../test-support/harness.js';
import { USAGE, UsageChatModel } from '../test-support/usage-chat-model.js';

let server;
let admin;
let agentKey;

before(async () => {
  server = await Server.start();
  admin = new AgentBillClient({ apiKey: server.createKey('admin').key, baseUrl: server.baseUrl });
  agentKey = server.createKey('agent').key;
});

after(async () => {
  await server?.stop();
});

async function customerWithBudget(limit) {
  const cid = `lc_${randomUUID().slice(0, 12)}`;
  await admin.setBudget({ customerId: cid, limitUnits: limit, period: 'month' });
  return cid;
}

function handler(customerId, seen = [], extra = {}) {
  return new AgentBillCallbackHandler({
    apiKey: agentKey,
    baseUrl: server.baseUrl,
    agentId: 'lc_agent',
    customerId,
    estimatedUnits: 100,
    unitsFromUsage: (u) => {
      seen.push(u);
      return u.totalTokens;
    },
    ...extra,
  });
}

test('an approved run records the token usage the model reported', async () => {
  const cid = await customerWithBudget(1000);
  const seen = [];
  const h = handler(cid, seen);
  const model = new UsageChatModel({ responses: ['hello back'] });

  const reply = await model.invoke('hello', { callbacks: [h] });

  assert.equal(reply.content, 'hello back');
  assert.equal(model.calls, 1);
  assert.deepEqual(seen, [{
    inputTokens: 30, outputTokens: 12, totalTokens: 42, reported: true, llmCalls: 1, estimatedUnits: 100, reservedUnits: '100',
    usage: { input_tokens: 30, output_tokens: 12 },
  }]);
  const st = await admin.status(cid);
  assert.equal(st.used, '42');
  assert.equal(st.reserved, '0');
  assert.deepEqual(h.openReservations, []);
});

test('minUnits and scope: a partial hold is what unitsFromUsage is told', async () => {
  const cid = await customerWithBudget(50);
  const seen = [];
  const model = new UsageChatModel({ responses: ['short'] });

  await model.invoke('hello', { callbacks: [handler(cid, seen, { minUnits: 10, scope: { team: 'research' } })] });

  assert.equal(seen.length, 1);
  assert.equal(seen[0].estimatedUnits, 100);
  assert.equal(seen[0].reservedUnits, '50');
  const st = await admin.status(cid);
  assert.equal(st.used, '42');
  assert.equal(st.reserved, '0');
});

test('a chain is one reservation charged with every model call inside it', async () => {
  const cid = await customerWithBudget(1000);
  const seen = [];
  const model = new UsageChatModel({ responses: ['one', 'two'] });
  const chain = RunnableLambda.from(async (input, config) => {
    const first = await model.invoke(input, config);
    return model.invoke(`${input} ${first.content}`, config);
  });

  const reply = await chain.invoke('go', { callbacks: [handler(cid, seen)] });

  assert.equal(reply.content, 'two');
  assert.equal(seen.length, 1);
  assert.equal(seen[0].llmCalls, 2);
  assert.equal(seen[0].totalTokens, 84);
  const st = await admin.status(cid);
  assert.equal(st.used, '84');
  assert.equal(st.reserved, '0');
  assert.equal(st.openReservations, 0);
});

test('a refused run never calls the model and throws RefusedError', async () => {
  const cid = await customerWithBudget(10);
  const model = new UsageChatModel({ responses: ['never'] });
  const h = handler(cid);

  await assert.rejects(model.invoke('hello', { callbacks: [h] }), (err) => {
    assert.ok(err instanceof RefusedError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.reason, 'budget_exhausted');
    assert.equal(err.remainingUnits, '10');
    return true;
  });
  assert.equal(model.calls, 0);
  const st = await admin.status(cid);
  assert.equal(st.used, '0');
  assert.equal(st.reserved, '0');
});

test('a failing run releases its reservation', async () => {
  const cid = await customerWithBudget(1000);
  const h = handler(cid);
  const model = new UsageChatModel({ responses: ['unused'] });

  await assert.rejects(model.invoke('hello', { callbacks: [h], thrownErrorString: 'model exploded' }), /model exploded/);

  assert.deepEqual(h.openReservations, []);
  const st = await admin.status(cid);
  assert.equal(st.used, '0');
  assert.equal(st.reserved, '0');
  assert.equal(st.remaining, '1000');
});

test('tokenUsageOf reads usage_metadata, or else llmOutput.tokenUsage', () => {
  assert.deepEqual(tokenUsageOf({ generations: [[{ message: { usage_metadata: USAGE } }]] }),
    { inputTokens: 30, outputTokens: 12, totalTokens: 42, reported: true });
  assert.deepEqual(tokenUsageOf({ generations: [[{ text: 'x' }]], llmOutput: { tokenUsage: { promptTokens: 3, completionTokens: 4, totalTokens: 7 } } }),
    { inputTokens: 3, outputTokens: 4, totalTokens: 7, reported: true });
  assert.deepEqual(tokenUsageOf({ generations: [[{ text: 'x' }]] }),
    { inputTokens: 0, outputTokens: 0, totalTokens: 0, reported: false });
});

test('the handler needs an agent; a usage mapping, if given, is a function', () => {
  const client = new AgentBillClient({ apiKey: agentKey, baseUrl: server.baseUrl });
  assert.throws(() => new AgentBillCallbackHandler({ client, estimatedUnits: 1, unitsFromUsage: () => 1 }), /agentId/);
  assert.throws(() => new AgentBillCallbackHandler({ client, agentId: 'a', estimatedUnits: 1, unitsFromUsage: 42 }), /unitsFromUsage must be a function/);
});

async function lastRecorded(cid) {
  const { events } = await admin.events(cid);
  return events.filter((e) => e.type === 'recorded').at(-1);
}

test('by default a run is charged its token total, with the usage in the record', async () => {
  const cid = await customerWithBudget(1000);
  const h = new AgentBillCallbackHandler({ client: new AgentBillClient({ apiKey: agentKey, baseUrl: server.baseUrl }), agentId: 'lc_agent', customerId: cid, estimatedUnits: 100 });
  await new UsageChatModel({ responses: ['hi'] }).invoke('hello', { callbacks: [h] });
  const rec = await lastRecorded(cid);
  assert.equal(rec.data.units, '42');
  assert.deepEqual(rec.data.metadata.usage, { input_tokens: 30, output_tokens: 12 }); // token counts come back as numbers
});

test('usage no model reported is charged as the hold, marked missing, never 0', async () => {
  const cid = await customerWithBudget(1000);
  const seen = [];
  const model = new FakeListChatModel({ responses: ['no usage here'] }); // reports no token usage
  await model.invoke('hello', { callbacks: [handler(cid, seen)] });
  assert.deepEqual(seen, [], 'unitsFromUsage is not asked about usage nobody reported');
  const rec = await lastRecorded(cid);
  assert.equal(rec.data.units, '100');
  assert.equal(rec.data.metadata.usage, 'missing');
});

test('without estimatedUnits a run holds the running estimate', async () => {
  const cid = await customerWithBudget(100_000);
  const client = new AgentBillClient({ apiKey: agentKey, baseUrl: server.baseUrl });
  const h = new AgentBillCallbackHandler({ client, agentId: 'lc_agent', customerId: cid });
  const model = new UsageChatModel({ responses: ['a', 'b'] });
  await model.invoke('hello', { callbacks: [h] });
  await model.invoke('hello', { callbacks: [h] });
  const { events } = await admin.events(cid);
  const held = events.filter((e) => e.type === 'reserved').map((e) => Number(e.data.units));
  assert.ok(held[0] > FIRST_CALL_OUTPUT_TOKENS, `the first run holds its prompt plus ${FIRST_CALL_OUTPUT_TOKENS} output tokens, held ${held[0]}`);
  assert.equal(held[1], 42, 'then the mean of measured runs');
  assert.equal((await admin.status(cid)).used, '84');
});
