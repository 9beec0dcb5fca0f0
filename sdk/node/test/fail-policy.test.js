// The fail policy (onUnavailable) with the service stopped: a closed port
// on 127.0.0.1, and a real `agentbill serve --http` for refusals.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { FakeListChatModel } from '@langchain/core/utils/testing';

import {
  AgentBillClient,
  InvalidArgumentError,
  RefusedError,
  SKIPPED_WARN_INTERVAL_MS,
  UNCHECKED_MESSAGE,
  UnavailableError,
} from '../index.js';
import { AgentBillCallbackHandler } from '../langchain.js';
import { Server, freePort } from '../test-support/harness.js';

let server;
let keys;

before(async () => {
  server = await Server.start();
  keys = { admin: server.createKey('admin').key, agent: server.createKey('agent').key };
});

after(async () => {
  await server?.stop();
});

// stopped is a client of a closed port, with one quick retry; its
// warnings go to the returned array.
async function stopped(onUnavailable) {
  const warnings = [];
  const c = new AgentBillClient({
    apiKey: 'ak_test', baseUrl: `http://127.0.0.1:${await freePort()}`, timeoutMs: 1000, maxRetries: 1,
    logger: { warn: (m) => warnings.push(m) }, ...(onUnavailable ? { onUnavailable } : {}),
  });
  return { c, warnings };
}

test('deny is the default and throws UnavailableError', async () => {
  const { c, warnings } = await stopped();
  assert.equal(c.onUnavailable, 'deny');
  await assert.rejects(c.preflight({ agentId: 'a', customerId: 'u' }), UnavailableError);
  assert.equal(c.skippedChecks, 0);
  assert.deepEqual(warnings, []);
});

test('allow approves unchecked, counts every skip and warns once per interval', async () => {
  const { c, warnings } = await stopped('allow');
  const calls = 3;
  for (let i = 0; i < calls; i++) {
    const check = await c.preflight({ agentId: 'a', customerId: 'u' });
    assert.equal(check.approved, true);
    assert.equal(check.unchecked, true);
    assert.equal(check.reservationId, null);
    assert.equal(check.message, UNCHECKED_MESSAGE);
  }
  assert.equal(c.skippedChecks, calls);
  assert.equal(warnings.length, 1, `one warning per ${SKIPPED_WARN_INTERVAL_MS} ms, got ${warnings}`);
});

test('the warning returns after the interval, and not before', async (t) => {
  const { c, warnings } = await stopped('allow');
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  // [ms to advance, warnings logged so far]
  const steps = [[0, 1], [SKIPPED_WARN_INTERVAL_MS - 1, 1], [1, 2], [1, 2]];
  for (const [advance, want] of steps) {
    t.mock.timers.tick(advance);
    await c.preflight({ agentId: 'a', customerId: 'u' });
    assert.equal(warnings.length, want, `after +${advance} ms`);
  }
});

test('gate follows the policy', async () => {
  let runs = 0;
  const run = async () => { runs++; return 'answer'; };
  const deny = await stopped('deny');
  await assert.rejects(deny.c.gate({ agentId: 'a', customerId: 'u' }, run), UnavailableError);
  assert.equal(runs, 0);
  const allow = await stopped('allow');
  assert.equal(await allow.c.gate({ agentId: 'a', customerId: 'u' }, run), 'answer'); // record skipped
  await assert.rejects(allow.c.gate({ agentId: 'a', customerId: 'u' }, async () => { throw new RangeError('run failed'); }), RangeError);
  assert.equal(runs, 1);
  assert.equal(allow.c.skippedChecks, 2);
});

test('the LangChain handler follows the policy', async () => {
  const baseUrl = `http://127.0.0.1:${await freePort()}`;
  const handler = (onUnavailable) => new AgentBillCallbackHandler({
    client: new AgentBillClient({ apiKey: 'ak_test', baseUrl, maxRetries: 0, onUnavailable, logger: { warn() {} } }),
    agentId: 'a', customerId: 'u', estimatedUnits: 10, unitsFromUsage: (u) => u.totalTokens,
  });
  const model = new FakeListChatModel({ responses: ['hi', 'hi'] });
  await assert.rejects(model.invoke('hello', { callbacks: [handler('deny')] }), UnavailableError);
  const h = handler('allow');
  const reply = await model.invoke('hello', { callbacks: [h] });
  assert.equal(reply.content, 'hi');
  assert.equal(h.client.skippedChecks, 1);
  assert.deepEqual(h.openReservations, []);
});

test('allow keeps refusals and other errors', async () => {
  const cid = `cust_${randomUUID().slice(0, 12)}`;
  await new AgentBillClient({ apiKey: keys.admin, baseUrl: server.baseUrl }).setBudget({ customerId: cid, limitUnits: 5, period: 'month' });
  const c = new AgentBillClient({ apiKey: keys.agent, baseUrl: server.baseUrl, onUnavailable: 'allow' });
  const check = await c.preflight({ agentId: 'a', customerId: cid, estimatedUnits: 10 });
  assert.equal(check.approved, false);
  assert.equal(check.unchecked, false);
  await assert.rejects(c.gate({ agentId: 'a', customerId: cid, estimatedUnits: 10 }, async () => 'ran'), RefusedError);
  await assert.rejects(c.preflight({ agentId: 'a', customerId: cid, ttl: 'forever' }), InvalidArgumentError);
  assert.equal(c.skippedChecks, 0);
});

test('a bad policy is rejected at construction', () => {
  assert.throws(() => new AgentBillClient({ apiKey: 'ak_test', onUnavailable: 'maybe' }), /onUnavailable must be 'deny' or 'allow', got "maybe"/);
});
