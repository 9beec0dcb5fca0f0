// The gateway's real responses against docs/openapi.json. One
// `agentbill serve --http` (sdk/node's harness: free ports on 127.0.0.1,
// a temp data directory), every route called for success, refusal and each
// error class it can produce; every status, JSON body and required header
// validated with ajv against the document, and every documented response
// produced at least once unless listed in NOT_PRODUCED with the reason.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { Server } from '../../sdk/node/test-support/harness.js';
import { OPENAPI_PATH, compiler, deref, explain, loadOpenAPI } from '../lib/contract.js';

const doc = loadOpenAPI();
const compile = compiler(doc);

// Documented responses a healthy single server cannot be made to give
// from outside: they are checked statically (the schema compiles and
// names its required headers), not live.
const NOT_PRODUCED = {
  500: 'internal: a fault of the service',
  503: 'unavailable: needs a writer that does not answer, or 1,024 requests at once',
};

let server;
const keys = {};
const seen = new Set(); // "METHOD /template STATUS"
const cid = `c_${randomUUID().slice(0, 8)}`; // a customer with a budget
const small = `s_${randomUUID().slice(0, 8)}`; // a customer that runs out
const bound = `b_${randomUUID().slice(0, 8)}`; // the bound key's own customer
const od = `o_${randomUUID().slice(0, 8)}`; // overdraft, scope limits and run caps
const state = {};

before(async () => {
  // No default budget: an unknown customer is not_found, so the 404s of
  // GET /v1/budget, GET /v1/customers/{id} and POST /v1/topup are reachable.
  server = await Server.start('--default-budget', 'none');
  keys.admin = server.createKey('admin').key;
  keys.agent = server.createKey('agent').key;
  keys.auditor = server.createKey('auditor').key;
  keys.bound = server.createKey('agent', bound).key;
});

after(async () => {
  await server?.stop();
});

/** Sends one request; body is an object (sent as JSON) or a string (sent as is). */
async function send(method, url, { key, body, headers = {}, redirect = 'manual', base = server.baseUrl } = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(base + url, { method, headers: h, body: payload, redirect, signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

const mediaType = (res) => (res.headers.get('content-type') ?? '').split(';')[0].trim();

/** Checks a response against a documented response object. */
function checkResponse(where, response, res) {
  const r = deref(doc, response);
  for (const [name, hdr] of Object.entries(r.headers ?? {})) {
    const value = res.headers.get(name);
    if (hdr.required) assert.ok(value !== null, `${where}: header ${name} is required and missing`);
    if (value !== null && hdr.schema) {
      const v = compile(hdr.schema);
      assert.ok(v(value), `${where}: header ${name}: ${JSON.stringify(value)} does not match:\n${explain(v.errors)}`);
    }
  }
  if (!r.content) return;
  const mt = mediaType(res);
  const media = r.content[mt];
  assert.ok(media, `${where}: Content-Type ${mt} is not documented (documented: ${Object.keys(r.content)})`);
  if (mt !== 'application/json') {
    const v = compile(media.schema);
    assert.ok(v(res.text), `${where}: body does not match its ${mt} schema`);
    return;
  }
  let body;
  assert.doesNotThrow(() => { body = JSON.parse(res.text); }, `${where}: body is not JSON: ${res.text.slice(0, 200)}`);
  const v = compile(media.schema);
  assert.ok(v(body), `${where}: body does not match the document:\n${explain(v.errors)}\nbody: ${res.text.slice(0, 2000)}`);
  return body;
}

/**
 * Calls METHOD url (matching the documented path template), expects
 * status, and checks the response against the document. A 200's request
 * body must also match the documented request schema; with
 * schemaRejects, a refused body must not.
 */
async function call(method, template, url, { status, schemaRejects, ...opts }) {
  const res = await send(method, url, opts);
  const where = `${method} ${url} -> ${res.status}`;
  assert.equal(res.status, status, `${where}: got status ${res.status}, want ${status}: ${res.text.slice(0, 500)}`);
  const op = doc.paths[template]?.[method.toLowerCase()];
  assert.ok(op, `${method} ${template} is not in the document`);
  const response = op.responses[String(res.status)];
  assert.ok(response, `${where}: status ${res.status} is not documented for ${method} ${template}`);
  seen.add(`${method} ${template} ${res.status}`);
  const body = checkResponse(where, response, res);
  const reqSchema = op.requestBody && deref(doc, op.requestBody).content['application/json'].schema;
  if (reqSchema && opts.body !== undefined && typeof opts.body !== 'string') {
    const v = compile(reqSchema);
    if (status === 200) assert.ok(v(opts.body), `${where}: the server took a body the document refuses:\n${explain(v.errors)}`);
    if (schemaRejects) assert.ok(!v(opts.body), `${where}: the server refused a body the document accepts`);
  }
  return body;
}

/** A request the path does not serve at all: the gateway's own errors. */
async function callUndocumented(method, url, { status, responseName, allow, ...opts }) {
  const res = await send(method, url, opts);
  const where = `${method} ${url} -> ${res.status}`;
  assert.equal(res.status, status, `${where}: got status ${res.status}, want ${status}: ${res.text}`);
  checkResponse(where, doc.components.responses[responseName], res);
  if (allow) assert.equal(res.headers.get('allow'), allow, `${where}: Allow`);
}

const enc = encodeURIComponent;

test('success and refusal on every /v1 route', async () => {
  await call('PUT', '/v1/budget', '/v1/budget', { status: 200, key: keys.admin, body: {
    customer_id: cid, limit_units: '100', period: 'month', thresholds: [0.5, '0.9'],
    upgrade_url: 'https://example.com/upgrade', agent_limits: { capped: 5 }, idempotency_key: `budget-${cid}`,
  } });
  await call('PUT', '/v1/budget', '/v1/budget', { status: 200, key: keys.admin, body: { customer_id: small, limit_units: 10, period: 'none', thresholds: [0.5] } });
  await call('PUT', '/v1/budget', '/v1/budget', { status: 200, key: keys.admin, body: { customer_id: bound, limit_units: 10, period: 'day' } });
  await call('GET', '/v1/budget', `/v1/budget?customer_id=${cid}`, { status: 200, key: keys.agent });
  await call('GET', '/v1/budget', '/v1/budget', { status: 200, key: keys.bound });

  const ok = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: {
    customer_id: cid, agent_id: 'research', estimated_units: 10, ceiling: '20', task_ref: 't1', task_ceiling: 50,
    ttl: '10m', idempotency_key: `pf-${cid}`, metadata: { run: 1 },
  } });
  assert.equal(ok.approved, true);
  state.reservation = ok.reservation_id;
  const refused = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: cid, agent_id: 'capped', estimated_units: 6 } });
  assert.equal(refused.approved, false);
  assert.equal(refused.reason, 'agent_limit_exceeded');
  const noBudget = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: `none_${cid}`, agent_id: 'a' } });
  assert.equal(noBudget.reason, 'no_budget');
  const short = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: cid, agent_id: 'brief', ttl: '1s' } });
  state.shortReservation = short.reservation_id;
  state.shortAt = Date.now();

  await call('POST', '/v1/extend', '/v1/extend', { status: 200, key: keys.agent, body: { customer_id: cid, reservation_id: state.reservation, ttl: '1h' } });
  const rec = await call('POST', '/v1/events', '/v1/events', { status: 200, key: keys.agent, body: {
    customer_id: cid, event_type: 'research', units: '7.5', reservation_id: state.reservation, task_ref: 't1', metadata: { tokens: 1200 },
  } });
  assert.equal(rec.status, 'recorded');
  await call('POST', '/v1/events', '/v1/events', { status: 200, key: keys.agent, body: { customer_id: cid, agent_id: 'research', success: false } });

  const hold = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: cid, agent_id: 'research', estimated_units: '2.25' } });
  state.released = hold.reservation_id;
  await call('POST', '/v1/release', '/v1/release', { status: 200, key: keys.agent, body: { customer_id: cid, reservation_id: state.released } });
  const again = await call('POST', '/v1/release', '/v1/release', { status: 200, key: keys.agent, body: { customer_id: cid, reservation_id: state.released } });
  assert.equal(again.released_units, 0);

  await call('POST', '/v1/topup', '/v1/topup', { status: 200, key: keys.admin, body: { customer_id: cid, units: 5, note: 'goodwill' } });
  // Credits: one that expires in a moment (grant_expired, in the events
  // test), one with every field, one with none but units.
  state.grantExpiresAt = Date.now() + 1500;
  await call('POST', '/v1/grants', '/v1/grants', { status: 200, key: keys.admin, body: {
    customer_id: cid, units: '2.5', expires_at: new Date(state.grantExpiresAt).toISOString(),
  } });
  const g = await call('POST', '/v1/grants', '/v1/grants', { status: 200, key: keys.admin, body: {
    customer_id: cid, units: 50, priority: 5, source: 'promo', note: 'welcome', effective_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + 86_400_000).toISOString(), idempotency_key: `grant-${cid}`,
  } });
  assert.equal(g.priority, 5);
  await call('POST', '/v1/grants', '/v1/grants', { status: 200, key: keys.admin, body: { customer_id: cid, units: 1 } });
  // Priced usage: a price list, an estimate priced from it, and a record
  // of usage charged its price (and one the list cannot price).
  state.prices = { list: 'default', version: `v-${cid}`, currency: 'USD', models: [{ id: 'm', provider: 'acme', aliases: ['m-1'], rates: { input: '3', output: '15', cache_read: '0.3' }, tiers: [{ above_input_tokens: 200000, rates: { input: '6' } }], service_tiers: { flex: { rates: { input: '1.5', output: '7.5' } } }, request_fee: '0.0001' }] };
  const set = await call('POST', '/v1/prices', '/v1/prices', { status: 200, key: keys.admin, body: state.prices });
  assert.equal(set.changed, true);
  await call('GET', '/v1/prices', '/v1/prices', { status: 200, key: keys.admin });
  await call('GET', '/v1/prices', '/v1/prices?list=default', { status: 200, key: keys.admin });
  const est = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: cid, agent_id: 'priced', usage_estimate: { model: 'm', input_tokens: 1200, max_output_tokens: 400 } } });
  assert.equal(est.max_output_tokens, 400);
  const priced = await call('POST', '/v1/events', '/v1/events', { status: 200, key: keys.agent, body: { customer_id: cid, event_type: 'priced', reservation_id: est.reservation_id, usage: { model: 'm', input_tokens: 1200, output_tokens: 400, cache_read_tokens: 200 } } });
  assert.equal(priced.pricing.version, `v-${cid}`);
  const unpriced = await call('POST', '/v1/events', '/v1/events', { status: 200, key: keys.agent, body: { customer_id: cid, event_type: 'priced', units: '0.01', usage: { model: 'unknown', input_tokens: 1, output_tokens: 1 } } });
  assert.ok(unpriced.unpriced);
  await call('GET', '/v1/customers/{id}', `/v1/customers/${cid}`, { status: 200, key: keys.admin });
  // Overdraft, scope limits and run caps: a partial approval, both new
  // refusals, a record in a scope, and an approval into the overdraft.
  await call('PUT', '/v1/budget', '/v1/budget', { status: 200, key: keys.admin, body: {
    customer_id: od, limit_units: 10, period: 'month', overdraft: 5, rollover: 'all', max_concurrent_runs: 3,
    max_concurrent_runs_per_agent: 1, scope_limits: [{ dimension: 'team', value: 'research', limit: 4, period: 'day' }],
  } });
  const part = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: {
    customer_id: od, agent_id: 'a', estimated_units: 6, min_units: 2, scope: { team: 'research', user: 'alice' },
  } });
  assert.equal(part.partial, true);
  const scoped = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: od, agent_id: 'b', scope: { team: 'research' } } });
  assert.equal(scoped.reason, 'scope_limit_exceeded');
  const busy = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: od, agent_id: 'a' } });
  assert.equal(busy.reason, 'concurrency_limit_exceeded');
  await call('POST', '/v1/events', '/v1/events', { status: 200, key: keys.agent, body: { customer_id: od, event_type: 'c', units: 1, scope: { team: 'other' } } });
  const deep = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: od, agent_id: 'd', estimated_units: 8 } });
  assert.equal(deep.overdraft, true);
  assert.ok(deep.remaining_units < 0);
  await call('GET', '/v1/budget', `/v1/budget?customer_id=${od}`, { status: 200, key: keys.admin });
  await call('GET', '/v1/customers/{id}', `/v1/customers/${od}`, { status: 200, key: keys.admin });
  // Run `small` dry: threshold_crossed, budget_exhausted, then a denial.
  await call('POST', '/v1/events', '/v1/events', { status: 200, key: keys.agent, body: { customer_id: small, event_type: 'a', units: 10 } });
  const dry = await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: small, agent_id: 'a' } });
  assert.equal(dry.reason, 'budget_exhausted');

  await call('GET', '/v1/customers/{id}', `/v1/customers/${cid}`, { status: 200, key: keys.agent });
  await call('GET', '/v1/customers/{id}', `/v1/customers/${small}`, { status: 200, key: keys.auditor });
});

test('the events page holds every event type, each matching its schema', async () => {
  // The 1 s reservation expires; the next command on the customer sweeps it.
  await new Promise((r) => setTimeout(r, Math.max(0, state.shortAt + 1100 - Date.now())));
  await call('GET', '/v1/budget', `/v1/budget?customer_id=${cid}`, { status: 200, key: keys.agent });
  await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: cid, agent_id: 'sweep' } });
  // A top-up gives the exhausted customer budget again: budget_restored.
  await call('POST', '/v1/topup', '/v1/topup', { status: 200, key: keys.admin, body: { customer_id: small, units: 1000 } });
  // The short grant expires; the sweep (every second) or the next command forfeits it.
  await new Promise((r) => setTimeout(r, Math.max(0, state.grantExpiresAt + 1100 - Date.now())));
  await call('POST', '/v1/preflight', '/v1/preflight', { status: 200, key: keys.agent, body: { customer_id: cid, agent_id: 'sweep' } });
  const types = new Set();
  for (const c of [cid, small, od]) {
    const page = await call('GET', '/v1/customers/{id}/events', `/v1/customers/${c}/events?limit=1000`, { status: 200, key: keys.auditor });
    for (const e of page.events) types.add(e.type);
  }
  await call('GET', '/v1/customers/{id}/events', `/v1/customers/${cid}/events`, { status: 200, key: keys.admin });
  // prices_set concerns no customer, so no customer's page holds it.
  const all = deref(doc, doc.components.schemas.Envelope).oneOf.map((r) => deref(doc, r).properties.type.const).filter((t) => t !== 'prices_set');
  assert.deepEqual([...types].sort(), [...all].sort(), 'event types seen in the log vs the document');
});

test('probes, metrics, this document and the dashboard', async () => {
  await call('GET', '/healthz', '/healthz', { status: 200 });
  await call('GET', '/readyz', '/readyz', { status: 200 });
  await call('GET', '/metrics', '/metrics', { status: 200 });
  const served = await call('GET', '/v1/openapi.json', '/v1/openapi.json', { status: 200 });
  assert.deepEqual(served, JSON.parse(fs.readFileSync(OPENAPI_PATH, 'utf8')), 'the binary serves docs/openapi.json');
  await call('GET', '/', '/', { status: 401 });
  const signIn = await send('GET', `/?key=${keys.admin}`);
  assert.equal(signIn.status, 303);
  checkResponse('GET /?key=', doc.paths['/'].get.responses['303'], signIn);
  seen.add('GET / 303');
  const cookie = signIn.headers.get('set-cookie').split(';')[0];
  await call('GET', '/', '/', { status: 200, headers: { Cookie: cookie } });
});

test('methods a path does not serve', async () => {
  for (const [method, path, allow] of [
    ['DELETE', '/v1/budget', 'GET, PUT'], ['GET', '/v1/preflight', 'POST'], ['POST', '/v1/customers/x', 'GET'],
    ['POST', '/healthz', 'GET, HEAD'], ['POST', '/readyz', 'GET, HEAD'], ['POST', '/v1/openapi.json', 'GET, HEAD'],
  ]) {
    await callUndocumented(method, path, { status: 400, responseName: 'InvalidArgument', allow, key: keys.admin });
  }
  seen.add('GET /healthz 400').add('GET /readyz 400').add('GET /v1/openapi.json 400');
  // What the code does on /metrics and unknown paths: the catch-all 404.
  await callUndocumented('POST', '/metrics', { status: 404, responseName: 'NotFound' });
  await callUndocumented('GET', '/v1/nope', { status: 404, responseName: 'NotFound', key: keys.admin });
});

test('invalid_argument (400)', async () => {
  const a = { key: keys.agent, status: 400 };
  await call('POST', '/v1/preflight', '/v1/preflight', { ...a, body: '{"agent_id": ' });
  await call('POST', '/v1/preflight', '/v1/preflight', { ...a, body: { customer_id: cid, agent_id: 'a', estimated_unit: 1 }, schemaRejects: true });
  await call('POST', '/v1/preflight', '/v1/preflight', { ...a, body: { customer_id: cid, agent_id: 'a', estimated_units: -1 }, schemaRejects: true });
  await call('POST', '/v1/preflight', '/v1/preflight', { ...a, body: { customer_id: cid, agent_id: 'a', estimated_units: '1e400' } });
  await call('POST', '/v1/preflight', '/v1/preflight', { ...a, body: JSON.stringify({ agent_id: 'a' }), headers: { 'Content-Type': 'text/plain' } });
  await call('POST', '/v1/events', '/v1/events', { ...a, body: { customer_id: cid, units: 1 }, schemaRejects: true });
  await call('POST', '/v1/events', '/v1/events', { ...a, body: { customer_id: cid, event_type: 'a' }, schemaRejects: true });
  await call('POST', '/v1/release', '/v1/release', { ...a, body: { customer_id: cid }, schemaRejects: true });
  await call('POST', '/v1/extend', '/v1/extend', { ...a, body: { customer_id: cid, reservation_id: 'r' }, schemaRejects: true });
  await call('GET', '/v1/budget', `/v1/budget?customer_id=${'x'.repeat(129)}`, a);
  await call('PUT', '/v1/budget', '/v1/budget', { status: 400, key: keys.admin, body: { customer_id: cid, limit_units: 1, period: 'year' }, schemaRejects: true });
  await call('POST', '/v1/topup', '/v1/topup', { status: 400, key: keys.admin, body: { customer_id: cid, units: 1, colour: 'red' }, schemaRejects: true });
  await call('POST', '/v1/grants', '/v1/grants', { status: 400, key: keys.admin, body: { customer_id: cid, units: -1 }, schemaRejects: true });
  await call('POST', '/v1/grants', '/v1/grants', { status: 400, key: keys.admin, body: { customer_id: cid, units: 1, expires_at: 'tomorrow' }, schemaRejects: true });
  await call('POST', '/v1/grants', '/v1/grants', { status: 400, key: keys.admin, body: { customer_id: cid, units: 1, source: 's'.repeat(33) }, schemaRejects: true });
  await call('POST', '/v1/grants', '/v1/grants', { status: 400, key: keys.admin, body: { customer_id: cid, units: 1, expires_at: '2020-01-01T00:00:00Z' } });
  await call('PUT', '/v1/budget', '/v1/budget', { status: 400, key: keys.admin, body: { customer_id: cid, limit_units: 1, period: 'day', scope_limits: [{ dimension: 'agent', value: 'a', limit: 1 }] }, schemaRejects: true });
  await call('POST', '/v1/preflight', '/v1/preflight', { ...a, body: { customer_id: cid, agent_id: 'a', scope: { a: '1', b: '2', c: '3', d: '4', e: '5' } }, schemaRejects: true });
  await call('GET', '/v1/customers/{id}', `/v1/customers/${enc('bad\u0001id')}`, a);
  await call('GET', '/v1/customers/{id}/events', `/v1/customers/${cid}/events?limit=0`, { status: 400, key: keys.auditor });
  await call('POST', '/v1/prices', '/v1/prices', { status: 400, key: keys.admin, body: { list: 'default', version: 'bad', models: [{ id: 'm', rates: { bogus: 1 } }] }, schemaRejects: true });
  await call('POST', '/v1/prices', '/v1/prices', { status: 400, key: keys.admin, body: { list: 'default', version: 'bad', models: [{ id: 'm', rates: { cache_read: 1 } }] } });
});

test('unauthenticated (401): no key, an unknown key', async () => {
  const none = { status: 401 };
  const unknown = { status: 401, key: `agb_${'A'.repeat(43)}` };
  for (const opts of [none, unknown]) {
    await call('POST', '/v1/preflight', '/v1/preflight', { ...opts, body: { agent_id: 'a' } });
    await call('POST', '/v1/events', '/v1/events', { ...opts, body: { agent_id: 'a', units: 1 } });
    await call('POST', '/v1/release', '/v1/release', { ...opts, body: { reservation_id: 'r' } });
    await call('POST', '/v1/extend', '/v1/extend', { ...opts, body: { reservation_id: 'r', ttl: '1m' } });
    await call('GET', '/v1/budget', '/v1/budget', opts);
    await call('PUT', '/v1/budget', '/v1/budget', { ...opts, body: { limit_units: 1, period: 'day' } });
    await call('POST', '/v1/topup', '/v1/topup', { ...opts, body: { units: 1 } });
    await call('POST', '/v1/grants', '/v1/grants', { ...opts, body: { units: 1 } });
    await call('POST', '/v1/prices', '/v1/prices', { ...opts, body: { list: 'x', version: '1', models: [{ id: 'm', rates: { input: 1 } }] } });
    await call('GET', '/v1/prices', '/v1/prices', opts);
    await call('GET', '/v1/customers/{id}', `/v1/customers/${cid}`, opts);
    await call('GET', '/v1/customers/{id}/events', `/v1/customers/${cid}/events`, opts);
  }
});

test('permission_denied (403): the wrong role, or another customer', async () => {
  const s = { status: 403 };
  await call('PUT', '/v1/budget', '/v1/budget', { ...s, key: keys.agent, body: { customer_id: cid, limit_units: 1, period: 'day' } });
  await call('POST', '/v1/topup', '/v1/topup', { ...s, key: keys.agent, body: { customer_id: cid, units: 1 } });
  await call('POST', '/v1/grants', '/v1/grants', { ...s, key: keys.agent, body: { customer_id: cid, units: 1 } });
  await call('POST', '/v1/grants', '/v1/grants', { ...s, key: keys.auditor, body: { customer_id: cid, units: 1 } });
  await call('POST', '/v1/prices', '/v1/prices', { ...s, key: keys.agent, body: { list: 'x', version: '1', models: [{ id: 'm', rates: { input: 1 } }] } });
  await call('GET', '/v1/prices', '/v1/prices', { ...s, key: keys.auditor });
  await call('GET', '/v1/customers/{id}/events', `/v1/customers/${cid}/events`, { ...s, key: keys.agent });
  await call('POST', '/v1/preflight', '/v1/preflight', { ...s, key: keys.auditor, body: { customer_id: cid, agent_id: 'a' } });
  await call('POST', '/v1/preflight', '/v1/preflight', { ...s, key: keys.bound, body: { customer_id: cid, agent_id: 'a' } });
  await call('POST', '/v1/events', '/v1/events', { ...s, key: keys.bound, body: { customer_id: cid, event_type: 'a', units: 1 } });
  await call('POST', '/v1/release', '/v1/release', { ...s, key: keys.bound, body: { customer_id: cid, reservation_id: 'r' } });
  await call('POST', '/v1/extend', '/v1/extend', { ...s, key: keys.bound, body: { customer_id: cid, reservation_id: 'r', ttl: '1m' } });
  await call('GET', '/v1/budget', `/v1/budget?customer_id=${cid}`, { ...s, key: keys.bound });
  await call('GET', '/v1/customers/{id}', `/v1/customers/${cid}`, { ...s, key: keys.bound });
});

test('not_found (404): unknown customers and reservations', async () => {
  const s = { status: 404, key: keys.agent };
  const nobody = `nobody_${cid}`;
  await call('POST', '/v1/events', '/v1/events', { ...s, body: { customer_id: cid, event_type: 'a', units: 1, reservation_id: 'no-such' } });
  await call('POST', '/v1/release', '/v1/release', { ...s, body: { customer_id: cid, reservation_id: 'no-such' } });
  await call('POST', '/v1/extend', '/v1/extend', { ...s, body: { customer_id: cid, reservation_id: 'no-such', ttl: '1m' } });
  await call('GET', '/v1/budget', `/v1/budget?customer_id=${nobody}`, s);
  await call('GET', '/v1/customers/{id}', `/v1/customers/${nobody}`, s);
  await call('POST', '/v1/topup', '/v1/topup', { status: 404, key: keys.admin, body: { customer_id: nobody, units: 1 } });
  await call('POST', '/v1/grants', '/v1/grants', { status: 404, key: keys.admin, body: { customer_id: nobody, units: 1 } });
  await call('GET', '/v1/prices', '/v1/prices?list=nope', { status: 404, key: keys.admin });
});

test('conflict (409): an idempotency key reused with another body, a closed reservation', async () => {
  const s = { status: 409, key: keys.agent };
  await call('POST', '/v1/preflight', '/v1/preflight', { ...s, body: { customer_id: cid, agent_id: 'research', estimated_units: 11, idempotency_key: `pf-${cid}` } });
  await call('POST', '/v1/events', '/v1/events', { ...s, body: { customer_id: cid, event_type: 'research', units: 1, reservation_id: state.reservation } });
  await call('POST', '/v1/prices', '/v1/prices', { status: 409, key: keys.admin, body: { ...state.prices, models: [{ id: 'm', rates: { input: '4' } }] } });
  await call('POST', '/v1/release', '/v1/release', { ...s, body: { customer_id: cid, reservation_id: state.released, idempotency_key: `pf-${cid}` } });
  await call('POST', '/v1/extend', '/v1/extend', { ...s, body: { customer_id: cid, reservation_id: state.released, ttl: '1m' } });
  await call('PUT', '/v1/budget', '/v1/budget', { status: 409, key: keys.admin, body: { customer_id: cid, limit_units: 1, period: 'day', idempotency_key: `budget-${cid}` } });
  await call('POST', '/v1/topup', '/v1/topup', { status: 409, key: keys.admin, body: { customer_id: cid, units: 1, idempotency_key: `budget-${cid}` } });
  await call('POST', '/v1/grants', '/v1/grants', { status: 409, key: keys.admin, body: { customer_id: cid, units: 51, idempotency_key: `grant-${cid}` } });
});

test('POST /otel/v1/logs: OTLP/HTTP JSON ingest', async () => {
  const path = '/otel/v1/logs';
  const str = (v) => ({ stringValue: v });
  const exportOf = (customer, ...records) => ({ resourceLogs: [{
    resource: { attributes: [{ key: 'customer', value: str(customer) }, { key: 'agent', value: str('coder') }] },
    scopeLogs: [{ scope: { name: 'contract' }, logRecords: records }],
  }] });
  // A GenAI record for a model no price list has: unpriced, so rejected.
  const genAI = { timeUnixNano: '1', attributes: [
    { key: 'gen_ai.request.model', value: str('no-such-model') },
    { key: 'gen_ai.usage.input_tokens', value: { intValue: '10' } },
  ] };
  const other = { timeUnixNano: '1', attributes: [{ key: 'event.name', value: str('user_prompt') }] };
  await call('POST', path, path, { status: 200, key: keys.agent, body: exportOf(cid, other) });
  const partial = await call('POST', path, path, { status: 200, key: keys.agent, body: exportOf(cid, genAI, other) });
  assert.equal(partial.partialSuccess.rejectedLogRecords, '1');
  await call('POST', path, path, { status: 400, key: keys.agent, body: '{"resourceLogs": ' });
  await call('POST', path, path, { status: 401, body: exportOf(cid, other) });
  await call('POST', path, path, { status: 403, key: keys.auditor, body: exportOf(cid, other) });
  await call('POST', path, path, { status: 415, key: keys.agent, body: '\n', headers: { 'Content-Type': 'application/x-protobuf' } });
  await call('POST', path, path, { status: 415, key: keys.agent, body: exportOf(cid, other), headers: { 'Content-Encoding': 'gzip' } });
});

test('rate_limited (429): a key past its rate limit, on every route that documents it', async () => {
  // A server of its own where each key may send one request a 1,000 s:
  // a key's first request takes its token, its second is refused at
  // once, before it is authorized or its body read.
  const limited = await Server.start('--http-rate-limit-per-second', '0.001', '--http-rate-limit-burst', '1');
  try {
    for (const [template, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (!op.responses['429']) continue;
        const key = limited.createKey('admin').key;
        const url = template.replace('{id}', enc(cid));
        await send(method.toUpperCase(), url, { key, base: limited.baseUrl });
        const body = await call(method.toUpperCase(), template, url, { status: 429, key, base: limited.baseUrl });
        assert.equal(body.error.code, 'rate_limited');
      }
    }
  } finally {
    await limited.stop();
  }
});

test('every documented response was produced (or is listed as not producible)', () => {
  const missing = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      for (const status of Object.keys(op.responses)) {
        const key = `${method.toUpperCase()} ${template} ${status}`;
        if (!seen.has(key) && !NOT_PRODUCED[status]) missing.push(key);
      }
    }
  }
  assert.deepEqual(missing, [], 'documented responses no test produced');
  // And what is not produced live still compiles, with its headers declared.
  for (const status of Object.keys(NOT_PRODUCED)) {
    for (const item of Object.values(doc.paths)) {
      for (const op of Object.values(item)) {
        const r = op.responses[status] && deref(doc, op.responses[status]);
        if (!r) continue;
        compile(r.content['application/json'].schema);
        if (status === '503') assert.ok(r.headers?.['Retry-After']?.required, `${op.operationId} 503: Retry-After is required`);
      }
    }
  }
});
