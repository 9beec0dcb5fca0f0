// The LangChain.js handler under a burst: fifty concurrent runs for one
// customer whose budget fits ten holds. The ledger decides each preflight
// alone, so no more than ten runs may reach the model, and the customer is
// charged for exactly those that ran. Each run is charged its whole hold
// (unitsFromUsage), so a run that ends early frees nothing for an eleventh.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { AgentBillClient, RefusedError } from '../index.js';
import { AgentBillCallbackHandler } from '../langchain.js';
import { Server } from '../test-support/harness.js';
import { UsageChatModel } from '../test-support/usage-chat-model.js';

const RUNS = 50;
const FITS = 10;
const HOLD = 100; // units each run holds

let server;

before(async () => {
  server = await Server.start();
});

after(async () => {
  await server?.stop();
});

test('fifty concurrent runs with a budget for ten: at most ten reach the model', async () => {
  const admin = new AgentBillClient({ apiKey: server.createKey('admin').key, baseUrl: server.baseUrl });
  const cid = `lcc_${randomUUID().slice(0, 12)}`;
  await admin.setBudget({ customerId: cid, limitUnits: FITS * HOLD, period: 'month' });
  const agentKey = server.createKey('agent').key;
  const model = new UsageChatModel({ responses: ['ok'] });

  // Each run has its own handler (one per request, as a server would):
  // the holds are what the ledger must keep within the budget.
  const results = await Promise.allSettled(Array.from({ length: RUNS }, () => model.invoke('go', {
    callbacks: [new AgentBillCallbackHandler({
      apiKey: agentKey, baseUrl: server.baseUrl, agentId: 'lc_agent', customerId: cid,
      estimatedUnits: HOLD, unitsFromUsage: () => HOLD,
    })],
  })));

  const ran = results.filter((r) => r.status === 'fulfilled').length;
  const refused = results.filter((r) => r.status === 'rejected' && r.reason instanceof RefusedError).length;
  assert.ok(ran <= FITS, `${ran} runs got through, more than the ${FITS} the budget holds`);
  assert.equal(ran, FITS, 'the budget holds ten runs, and ten of fifty ran');
  assert.equal(ran + refused, RUNS, 'every other run was refused with RefusedError');
  assert.equal(model.calls, ran, 'the model was called by the runs that were approved only');
  const st = await admin.status(cid);
  assert.equal(st.used, String(ran * HOLD));
  assert.equal(st.reserved, '0');
});
