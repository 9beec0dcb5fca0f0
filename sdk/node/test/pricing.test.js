// Priced usage (docs/PROTOCOL.md, "Priced usage") through the Node.js SDK,
// against a real `agentbill serve --http`: price lists, usage estimates,
// and usage records priced by the ledger.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
  AgentBillClient,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  Pricing,
  decimalText,
} from '../index.js';
import { Server } from '../test-support/harness.js';

// The list every customer here is priced with (its name is "default"):
// rates per million tokens, as strings, integers and a bigint.
export const PRICES = {
  list: 'default', version: 'v1', currency: 'USD',
  models: [
    { id: 'm', provider: 'openai', rates: { input: '3', output: 15 } },
    { id: 'm-fee', rates: { input: '3', output: '15' }, request_fee: '0.001' },
    { id: 'm-long', rates: { input: 3n, output: '15' }, tiers: [{ above_input_tokens: 1000, rates: { input: '6', output: '22.5' } }] },
  ],
};

let server;
let admin;
let agent;

before(async () => {
  server = await Server.start();
  admin = new AgentBillClient({ apiKey: server.createKey('admin').key, baseUrl: server.baseUrl });
  agent = new AgentBillClient({ apiKey: server.createKey('agent').key, baseUrl: server.baseUrl });
  await admin.setPrices(PRICES);
});

after(async () => {
  await server?.stop();
});

const name = (prefix) => `${prefix}_${randomUUID().slice(0, 12)}`;

async function customer(limit = 10, budget = {}) {
  const cid = name('cust');
  await admin.setBudget({ customerId: cid, limitUnits: limit, period: 'month', ...budget });
  return cid;
}

async function eventsOf(cid, type) {
  return (await admin.events(cid, { limit: 100 })).events.filter((e) => e.type === type).map((e) => e.data);
}

const oneModelList = (list, version, inputRate) => ({ list, version, models: [{ id: 'm', rates: { input: inputRate, output: '15' } }] });

describe('price lists', () => {
  test('setting the same version again changes nothing', async () => {
    const lst = oneModelList(name('list'), 'v1', '3');
    const first = await admin.setPrices(lst);
    assert.deepEqual([first.list, first.version, first.models, first.changed], [lst.list, 'v1', 1, true]);
    assert.match(first.digest, /^[0-9a-f]{64}$/);
    assert.deepEqual([first.partition, first.partitions], [0, 1]);
    // The same list as JSON text: the same digest, nothing appended.
    const again = await admin.setPrices(JSON.stringify(lst));
    assert.deepEqual([again.changed, again.digest], [false, first.digest]);
  });

  test('a version with other prices is a ConflictError; a new version is set', async () => {
    const lst = oneModelList(name('list'), 'v1', '3');
    await admin.setPrices(lst);
    await assert.rejects(admin.setPrices(oneModelList(lst.list, 'v1', '4')), ConflictError);
    assert.equal((await admin.setPrices(oneModelList(lst.list, 'v2', '4'))).changed, true);
    const { lists: [shown] } = await admin.priceLists({ list: lst.list });
    assert.equal(shown.version, 'v2');
    assert.equal(shown.prices.models[0].rates.input, '4');
  });

  test('a fractional number as a rate is refused before anything is sent', async () => {
    const lst = oneModelList(name('list'), 'v1', 0.1);
    await assert.rejects(admin.setPrices(lst), (err) => err instanceof TypeError && /decimals as strings/.test(err.message));
    await assert.rejects(admin.priceLists({ list: lst.list }), NotFoundError);
    await assert.rejects(admin.setPrices(42), TypeError);
  });

  test('every problem of a list is reported at once', async () => {
    const bad = {
      list: name('list'), version: 'v1',
      models: [
        { id: 'a', rates: { cache_read: '1' } },
        { id: 'b', rates: { input: '1' }, tiers: [{ above_input_tokens: 5, rates: { output: '2' } }] },
      ],
    };
    await assert.rejects(admin.setPrices(bad), (err) => err instanceof InvalidArgumentError
      && err.message.includes('models[0] (a).rates.cache_read') && err.message.includes('models[1] (b).tiers[0]'));
    await assert.rejects(admin.priceLists({ list: bad.list }), NotFoundError);
  });

  test('priceLists shows every list, and one with its exact prices', async () => {
    const every = Object.fromEntries((await admin.priceLists()).lists.map((l) => [l.list, l]));
    assert.deepEqual([every.default.version, every.default.models, every.default.prices], ['v1', PRICES.models.length, null]);
    assert.ok(every.default.setAt);
    const { lists: [one] } = await admin.priceLists({ list: 'default' });
    assert.deepEqual(one.prices.models.map((m) => m.id), PRICES.models.map((m) => m.id));
    assert.equal(one.prices.models[2].tiers[0].rates.output, '22.5'); // exact text, not a float
    assert.equal(one.prices.models[2].tiers[0].above_input_tokens, 1000);
    await assert.rejects(admin.priceLists({ list: name('nope') }), NotFoundError);
  });

  test('an agent key may not set prices', async () => {
    await assert.rejects(agent.setPrices(oneModelList(name('list'), 'v1', '1')), (err) => err.code === 'permission_denied');
  });
});

describe('usage estimates', () => {
  test('a usage estimate is held at its worst case', async () => {
    const cid = await customer();
    const check = await agent.preflight({ agentId: 'bot', customerId: cid, usageEstimate: { model: 'm', inputTokens: 1000, maxOutputTokens: 500 } });
    assert.ok(check.approved, check.message);
    // 1,000 x 3 + 500 x 15 = 10,500 per million.
    assert.equal(check.reservedUnits, '0.0105');
    assert.equal(check.maxOutputTokens, 500);
    assert.ok(check.estimatePricing instanceof Pricing);
    assert.equal(check.estimatePricing.describe(), '1,000 input x 3/M + 500 output x 15/M = 0.0105 (m, list default v1)');
  });

  test('a partial approval covers fewer output tokens', async () => {
    const cid = await customer('0.006');
    // The wire's own keys are accepted too.
    const check = await agent.preflight({
      agentId: 'bot', customerId: cid, usageEstimate: { model: 'm', input_tokens: 1000, max_output_tokens: 500 }, minUnits: '0.004',
    });
    assert.ok(check.partial, check.message);
    assert.equal(check.reservedUnits, '0.006');
    // The 0.003 the prompt costs leaves 0.003 for output at 15 per million.
    assert.equal(check.maxOutputTokens, 200);
  });

  test('a model the list does not price needs estimatedUnits', async () => {
    const cid = await customer();
    const usageEstimate = { model: 'not-a-model', inputTokens: 10, maxOutputTokens: 10 };
    await assert.rejects(agent.preflight({ agentId: 'bot', customerId: cid, usageEstimate }),
      (err) => err instanceof InvalidArgumentError && err.message.includes('not-a-model'));
    const check = await agent.preflight({ agentId: 'bot', customerId: cid, estimatedUnits: 2, usageEstimate });
    assert.deepEqual([check.reservedUnits, check.maxOutputTokens, check.estimatePricing], ['2', null, null]);
  });

  test('bad estimates are refused before anything is sent', async () => {
    const cid = await customer();
    for (const bad of [
      { model: 'm', inputTokens: 1.5, maxOutputTokens: 1 },
      { model: 'm', inputTokens: '1', maxOutputTokens: 1 },
      { model: 'm', inputTokens: 1, maxOutputTokens: 1, outputs: 1 },
      { model: 'm', inputTokens: 1, input_tokens: 2, maxOutputTokens: 1 },
      { inputTokens: 1, maxOutputTokens: 1 },
      'm',
    ]) {
      await assert.rejects(agent.preflight({ agentId: 'bot', customerId: cid, usageEstimate: bad }), TypeError, JSON.stringify(bad));
    }
    assert.equal((await admin.status(cid)).openReservations, 0);
  });
});

describe('usage records', () => {
  test('usage is charged its list price, exactly', async () => {
    const cid = await customer();
    const check = await agent.preflight({ agentId: 'bot', customerId: cid, usageEstimate: { model: 'm', inputTokens: 1000, maxOutputTokens: 500 } });
    const res = await agent.record({ agentId: 'bot', customerId: cid, reservationId: check.reservationId, usage: { model: 'm', input_tokens: 1200, output_tokens: 400 } });
    assert.equal(res.chargedUnits, '0.0096');
    assert.equal(res.unpriced, null);
    assert.deepEqual(res.pricing.lines, [{ kind: 'input', tokens: 1200, rate: '3' }, { kind: 'output', tokens: 400, rate: '15' }]);
    assert.equal(res.pricing.total, '0.0096');
    assert.equal(res.pricing.describe(), '1,200 input x 3/M + 400 output x 15/M = 0.0096 (m, list default v1)');
    assert.equal((await admin.status(cid)).used, '0.0096');
    const [rec] = await eventsOf(cid, 'recorded');
    assert.deepEqual(rec.usage, { model: 'm', input_tokens: 1200, output_tokens: 400 });
  });

  test('describe() names the request fee and the long-context tier, in the words of agentbill audit', async () => {
    const cid = await customer();
    const fee = await agent.record({ agentId: 'bot', customerId: cid, units: 1, usage: { model: 'm-fee', inputTokens: 1000, outputTokens: 0 } });
    // A kind with no tokens is not a line of the charge.
    assert.equal(fee.pricing.describe(), '1,000 input x 3/M + request fee 0.001 = 0.004 (m-fee, list default v1)');
    const long = await agent.record({ agentId: 'bot', customerId: cid, units: 1, usage: { model: 'm-long', inputTokens: 2000, outputTokens: 100 } });
    // Above 1,000 input tokens every token is at the tier's rates.
    assert.equal(long.chargedUnits, '0.01425');
    assert.equal(long.pricing.aboveInputTokens, 1000);
    assert.equal(long.pricing.describe(),
      '2,000 input x 6/M + 100 output x 22.5/M = 0.01425 (long-context rates above 1,000 input tokens; m-long, list default v1)');
    const audit = server.cli('audit', '--customer', cid, '--format', 'json').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(audit.filter((r) => r.type === 'recorded').map((r) => r.reason), [fee.pricing.describe(), long.pricing.describe()]);
  });

  test('a model the list does not price is charged the hold, said unpriced and counted', async () => {
    const cid = await customer();
    const check = await agent.preflight({ agentId: 'bot', customerId: cid, estimatedUnits: '0.5' });
    const res = await agent.record({
      agentId: 'bot', customerId: cid, reservationId: check.reservationId, usage: { model: 'not-a-model', input_tokens: 10, output_tokens: 10 },
    });
    assert.equal(res.chargedUnits, '0.5');
    assert.equal(res.pricing, null);
    assert.match(res.unpriced, /not-a-model/);
    const status = await admin.status(cid);
    assert.deepEqual([status.used, status.unpricedRecords], ['0.5', 1]);
  });

  test('usage without units or a hold is refused; with units it is charged them', async () => {
    const cid = await customer();
    const used = { model: 'not-a-model', input_tokens: 10, output_tokens: 10 };
    await assert.rejects(agent.record({ agentId: 'bot', customerId: cid, usage: used }), InvalidArgumentError);
    const res = await agent.record({ agentId: 'bot', customerId: cid, units: '0.25', usage: used });
    assert.equal(res.chargedUnits, '0.25');
    assert.ok(res.unpriced);
    assert.equal((await admin.status(cid)).unpricedRecords, 1);
  });

  test('counts that contradict each other, or are not integers, are invalid and change nothing', async () => {
    const cid = await customer();
    await assert.rejects(agent.record({
      agentId: 'bot', customerId: cid, units: 1, usage: { model: 'm', input_tokens: 10, output_tokens: 1, cache_read_tokens: 11 },
    }), InvalidArgumentError);
    for (const bad of [{ model: 'm', input_tokens: 1.5 }, { model: 'm', tokens: 1 }, { model: 7 }, { model: 'm', output_tokens: 10n }]) {
      await assert.rejects(agent.record({ agentId: 'bot', customerId: cid, units: 1, usage: bad }), TypeError, String(Object.keys(bad)));
    }
    assert.equal((await admin.status(cid)).used, '0');
  });

  test('units are still required without usage; a failed run releases without them', async () => {
    const cid = await customer();
    await assert.rejects(agent.record({ agentId: 'bot', customerId: cid }), (err) => err instanceof TypeError && /units is required/.test(err.message));
    const check = await agent.preflight({ agentId: 'bot', customerId: cid, estimatedUnits: 3 });
    const res = await agent.record({ agentId: 'bot', customerId: cid, reservationId: check.reservationId, success: false });
    assert.deepEqual([res.status, res.releasedUnits], ['released', '3']);
  });

  test('a budget names its price list', async () => {
    const lst = oneModelList(name('list'), 'v1', '1');
    await assert.rejects(customer(10, { priceList: lst.list }), InvalidArgumentError); // not set yet
    await admin.setPrices(lst);
    const cid = await customer(10, { priceList: lst.list });
    const status = await admin.status(cid);
    assert.deepEqual([status.priceList, status.unpricedRecords], [lst.list, 0]);
    const res = await agent.record({ agentId: 'bot', customerId: cid, units: 0, usage: { model: 'm', input_tokens: 1000, output_tokens: 0 } });
    assert.deepEqual([res.chargedUnits, res.pricing.list], ['0.001', lst.list]);
    assert.equal((await admin.status(await customer())).priceList, null);
  });
});

test('decimalText writes an exact decimal as the ledger does', () => {
  for (const [input, want] of [['3', '3'], ['22.50', '22.5'], ['1e-3', '0.001'], ['1.5E+2', '150'], ['-0.000', '0'], ['007.10', '7.1'], ['-2.5', '-2.5']]) {
    assert.equal(decimalText(input), want, input);
  }
  assert.throws(() => decimalText('x'), TypeError);
});
