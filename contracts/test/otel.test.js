// POST /otel/v1/logs against the real OpenTelemetry JS logs SDK and its
// OTLP/HTTP JSON exporter (@opentelemetry/exporter-logs-otlp-http): one
// `agentbill serve --http`, a price list and a budget, then Claude Code's
// api_request events and GenAI semantic-convention records emitted,
// batched and exported as an instrumented agent would. The customer must
// be charged exactly the priced amount, once however often the same
// requests are exported, and a bad record must come back to the exporter
// as an OTLP partial success.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { DiagLogLevel, diag } from '@opentelemetry/api';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';

import { Server } from '../../sdk/node/test-support/harness.js';

const cid = `otel_${randomUUID().slice(0, 8)}`;
// Per million tokens. A Claude Code call of 100 input, 1,000 cache read,
// 200 cache creation and 400 output tokens costs
// 100 x 3 + 1,000 x 0.3 + 200 x 3.75 + 400 x 15 = 7,350 per million;
// a GenAI call of 1,200 input and 400 output 1,200 x 3 + 400 x 15 = 9,600.
const priceList = {
  list: 'default', version: 'v1',
  models: [{ id: 'claude-test', rates: { input: '3', output: '15', cache_read: '0.3', cache_write: '3.75' } }],
};
const CLAUDE_CODE_CHARGE = '0.00735';
const BOTH_CHARGE = '0.01695'; // 0.00735 + 0.0096

let server;
let admin;
let agent;
const warnings = []; // what the exporter reports through diag

before(async () => {
  server = await Server.start('--default-budget', 'none');
  admin = server.createKey('admin').key;
  agent = server.createKey('agent').key;
  await send('POST', '/v1/prices', admin, priceList);
  await send('PUT', '/v1/budget', admin, { customer_id: cid, limit_units: '10', period: 'month' });
  diag.setLogger({
    error: (...a) => warnings.push(a.join(' ')), warn: (...a) => warnings.push(a.join(' ')),
    info() {}, debug() {}, verbose() {},
  }, DiagLogLevel.WARN);
});

after(async () => {
  diag.disable();
  await server?.stop();
});

/** Sends a request with a raw fetch and checks its status. */
async function send(method, path, key, body, { headers = {}, status = 200 } = {}) {
  const res = await fetch(server.baseUrl + path, {
    method, body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', ...headers },
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  assert.equal(res.status, status, `${method} ${path}: ${text}`);
  return text;
}

/** The customer's used units, as the ledger writes them (exact text). */
async function used() {
  const res = await fetch(`${server.baseUrl}/v1/customers/${cid}`, {
    headers: { Authorization: `Bearer ${admin}` }, signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return /"used":([0-9.]+)/.exec(text)[1];
}

/** A logger provider exporting to the gateway as Claude Code is told to. */
function provider(resource) {
  const exporter = new OTLPLogExporter({
    url: `${server.baseUrl}/otel/v1/logs`, headers: { Authorization: `Bearer ${agent}` },
  });
  return new LoggerProvider({
    resource: resourceFromAttributes(resource),
    processors: [new BatchLogRecordProcessor({ exporter })],
  });
}

/** Claude Code's api_request event: its counts are strings. */
const apiRequest = (requestId) => ({
  body: 'claude_code.api_request',
  attributes: {
    'event.name': 'api_request', 'session.id': 's-1', model: 'claude-test', request_id: requestId,
    input_tokens: '100', output_tokens: '400', cache_read_tokens: '1000', cache_creation_tokens: '200',
    cost_usd: 0.0123, duration_ms: 850,
  },
});

/** A GenAI semantic-convention record: its counts are numbers (intValue). */
const genAI = (responseId, inputTokens) => ({
  body: 'chat claude-test',
  attributes: {
    'gen_ai.provider.name': 'anthropic', 'gen_ai.request.model': 'claude-test', 'gen_ai.response.id': responseId,
    'gen_ai.usage.input_tokens': inputTokens, 'gen_ai.usage.output_tokens': 400,
  },
});

async function exportRecords(records) {
  const p = provider({ customer: cid, agent: 'claude_code', 'service.name': 'claude-code' });
  const logger = p.getLogger('agent');
  for (const r of records) logger.emit(r);
  await p.forceFlush();
  await p.shutdown();
}

test('Claude Code and GenAI records are charged their price, once', async () => {
  await exportRecords([apiRequest('req_1'), { body: 'claude_code.user_prompt', attributes: { 'event.name': 'user_prompt' } }]);
  assert.equal(await used(), CLAUDE_CODE_CHARGE);
  await exportRecords([genAI('msg_1', 1200)]);
  assert.equal(await used(), BOTH_CHARGE);
  // Emitted again (another export, other timestamps): the same request
  // IDs, so nothing more is charged.
  await exportRecords([apiRequest('req_1'), genAI('msg_1', 1200)]);
  assert.equal(await used(), BOTH_CHARGE);
  assert.deepEqual(warnings, [], 'the exporter reported no problem');
});

test('an api_request named only by the OTLP eventName field is usage too', async () => {
  const before = await used();
  const { attributes } = apiRequest('req_event_name');
  delete attributes['event.name'];
  await exportRecords([{ eventName: 'claude_code.api_request', attributes }]);
  // 0.01695 + 0.00735
  assert.equal(before, BOTH_CHARGE);
  assert.equal(await used(), '0.0243');
});

test('a bad record comes back to the exporter as a partial success', async () => {
  warnings.length = 0;
  await exportRecords([genAI('msg_bad', 1.5), genAI('msg_2', 1200)]);
  const partial = warnings.find((w) => w.includes('Partial Success'));
  assert.ok(partial, `the exporter reported a partial success: ${JSON.stringify(warnings)}`);
  assert.match(partial, /"rejectedLogRecords":"1"/);
  assert.match(partial, /not a whole number/);
  assert.equal(await used(), '0.0339'); // the good one: 0.0243 + 0.0096
});

test('protobuf and gzip exports are 415 with the settings to change', async () => {
  for (const headers of [{ 'Content-Type': 'application/x-protobuf' }, { 'Content-Encoding': 'gzip' }]) {
    const text = await send('POST', '/otel/v1/logs', agent, '{}', { headers, status: 415 });
    assert.match(text, /OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=http\/json/);
  }
});
