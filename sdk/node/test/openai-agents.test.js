// The OpenAI Agents SDK hooks with the real @openai/agents, its OpenAI
// provider pointed at the stand-in model server's Responses API, against a
// real `agentbill serve --http`.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Agent, OpenAIProvider, Runner, setTracingDisabled, tool } from '@openai/agents';
import OpenAI from 'openai';

import { RefusedError } from '../index.js';
import { AgentBillRunHooks } from '../openai-agents.js';
import { USAGE_MISSING } from '../usage.js';
import { Ledger } from '../test-support/ledger.js';
import { ModelServer, UNITS } from '../test-support/model-server.js';

const ESTIMATE = 200;

let ledger;
let models;

before(async () => {
  setTracingDisabled(true); // no trace export leaves the machine
  ledger = await Ledger.start();
  models = await ModelServer.start();
});

after(async () => {
  await models?.stop();
  await ledger?.stop();
});

const customerWithBudget = (limit) => ledger.customer('oa', limit);
const position = (cid) => ledger.position(cid);
const settled = (cid) => ledger.settled(cid);

function provider() {
  return new OpenAIProvider({ openAIClient: new OpenAI({ apiKey: 'sk-test', baseURL: `${models.url}/v1`, maxRetries: 0 }) });
}

const agent = (extra = {}) => new Agent({ name: 'researcher', instructions: 'Be brief.', model: 'gpt-test', ...extra });

function hooks(customerId, per) {
  return new AgentBillRunHooks({
    per, agentbill: ledger.agent(), agentId: 'oa_agent', customerId, estimate: ESTIMATE,
  });
}

// setup is [hooks, runner] for one way of holding.
function setup(cid, per) {
  const h = hooks(cid, per);
  const modelProvider = per === 'model_call' ? h.modelProvider(provider()) : provider();
  return [h, new Runner({ modelProvider, tracingDisabled: true })];
}

for (const per of ['run', 'model_call']) {
  describe(`openai-agents, per ${per}`, () => {
    test('an approved run is charged the usage the model reported', async () => {
      const cid = await customerWithBudget(1000);
      const [h, runner] = setup(cid, per);
      const result = await h.run(runner, agent(), 'hi');
      assert.equal(result.finalOutput, 'hello from the stand-in');
      assert.deepEqual(await position(cid), { used: String(UNITS.openaiResponses), reserved: '0', open: 0 });
    });

    test('a streamed run is charged when it ends', async () => {
      const cid = await customerWithBudget(1000);
      const [h, runner] = setup(cid, per);
      const result = await h.run(runner, agent(), 'hi', { stream: true });
      for await (const _ of result) { /* drain */ }
      await result.completed;
      assert.deepEqual(await settled(cid), { used: String(UNITS.openaiResponses), reserved: '0', open: 0 });
    });

    test('a refused run never reaches the model server', async () => {
      const cid = await customerWithBudget(ESTIMATE - 1);
      const [h, runner] = setup(cid, per);
      const before = models.requests.openaiResponses;
      await assert.rejects(h.run(runner, agent(), 'hi'), (err) => err instanceof RefusedError);
      assert.equal(models.requests.openaiResponses, before);
      assert.deepEqual(await position(cid), { used: '0', reserved: '0', open: 0 });
    });

    test('a failed run releases the hold', async () => {
      const cid = await customerWithBudget(1000);
      const [h, runner] = setup(cid, per);
      await models.with({ failure: 'http500' }, () => assert.rejects(h.run(runner, agent(), 'hi')));
      assert.deepEqual(await position(cid), { used: '0', reserved: '0', open: 0 });
    });

    test('a streamed run cut mid-way releases the hold', async () => {
      const cid = await customerWithBudget(1000);
      const [h, runner] = setup(cid, per);
      await models.with({ failure: 'abort' }, async () => {
        const result = await h.run(runner, agent(), 'hi', { stream: true });
        try {
          for await (const _ of result) { /* drain */ }
          await result.completed;
        } catch {
          // the cut surfaces as the stream's error
        }
      });
      assert.deepEqual(await settled(cid), { used: '0', reserved: '0', open: 0 });
    });

    test('fifty concurrent runs with a budget for ten let at most ten through', async () => {
      const cid = await customerWithBudget(10 * ESTIMATE);
      const [h, runner] = setup(cid, per);
      const before = models.requests.openaiResponses;
      const results = await models.with({ delayMs: 50 }, () => Promise.allSettled(Array.from({ length: 50 }, () => h.run(runner, agent(), 'hi'))));
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      const seen = models.requests.openaiResponses - before;
      assert.ok(seen <= 10, `the model server saw ${seen} requests`);
      assert.ok(ok <= 10, `${ok} runs succeeded`);
      assert.equal(results.filter((r) => r.reason instanceof RefusedError).length, 50 - ok);
      assert.equal((await position(cid)).used, String(ok * UNITS.openaiResponses));
    });
  });
}

test('a run stopped at an interruption releases its hold; the resumed run is charged the whole run once', async () => {
  const cid = await customerWithBudget(1000);
  const [h, runner] = setup(cid, 'run');
  const lookup = tool({
    name: 'lookup', description: 'Looks something up.', needsApproval: true,
    parameters: { type: 'object', properties: {}, required: [], additionalProperties: false }, strict: true,
    execute: async () => 'found it',
  });
  await models.with({ toolCall: 'lookup' }, async () => {
    const a = agent({ tools: [lookup] });
    const first = await h.run(runner, a, 'look it up');
    assert.equal(first.interruptions.length, 1);
    assert.deepEqual(await position(cid), { used: '0', reserved: '0', open: 0 });
    first.state.approve(first.interruptions[0]);
    const resumed = await h.run(runner, a, first.state);
    assert.equal(resumed.finalOutput, 'hello from the stand-in');
  });
  assert.deepEqual(await position(cid), { used: String(2 * UNITS.openaiResponses), reserved: '0', open: 0 });
});

test('a run whose model reported no usage is charged the estimate, marked missing', async () => {
  const cid = await customerWithBudget(1000);
  const [h, runner] = setup(cid, 'run');
  await models.with({ omitUsage: true }, () => h.run(runner, agent(), 'hi'));
  const rec = await ledger.lastRecorded(cid);
  assert.equal(rec.data.units, String(ESTIMATE));
  assert.equal(rec.data.metadata.usage, USAGE_MISSING);
});

test('per must be run or model_call', () => {
  assert.throws(() => new AgentBillRunHooks({ per: 'turn', agentId: 'a', apiKey: 'k' }), /per must be 'run' or 'model_call'/);
});

describe("openai-agents, pricing 'list'", () => {
  before(async () => {
    await ledger.admin.setPrices({
      list: 'default', version: 'oa-v1',
      models: [{ id: 'gpt-test', provider: 'openai', rates: { input: '0.4', output: '1.6', cache_read: '0.1' } }],
    });
  });

  for (const per of ['run', 'model_call']) {
    test(`per ${per}: held at a priced estimate, charged the list price of the usage`, async () => {
      const cid = await customerWithBudget(1);
      const h = new AgentBillRunHooks({ per, agentbill: ledger.agent(), agentId: 'oa_agent', customerId: cid, pricing: 'list' });
      const modelProvider = per === 'model_call' ? h.modelProvider(provider()) : provider();
      await h.run(new Runner({ modelProvider, tracingDisabled: true }), agent(), 'hi');
      const { events } = await ledger.admin.events(cid, { limit: 50 });
      assert.ok(events.find((e) => e.type === 'reserved').data.pricing, 'the hold was priced from a usage estimate');
      const rec = events.find((e) => e.type === 'recorded').data;
      // The stand-in's Responses usage: 100 input x 0.4 + 40 output x 1.6 = 104 per million.
      assert.deepEqual([rec.units, rec.usage.model, rec.unpriced], ['0.000104', 'gpt-test', undefined]);
      assert.deepEqual(await settled(cid), { used: '0.000104', reserved: '0', open: 0 });
    });
  }
});
