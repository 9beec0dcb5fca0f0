// verifyWebhook, and REAL deliveries from a running `agentbill serve`
// verified with the independent `standardwebhooks` package.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { Webhook } from 'standardwebhooks';

import { AgentBillClient, signWebhook, verifyWebhook, WebhookVerificationError, WEBHOOK_TOLERANCE_MS } from '../index.js';
import { Server, freePort } from '../test-support/harness.js';

// The Standard Webhooks specification's example.
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const TS = 1614265330;
const BODY = '{"test": 2432232314}';
const SIG = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
const WAIT_MS = 15_000;
const DOWN_MS = 3_000; // "down for a minute", scaled down: serve retries within 400 ms here

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const headers = (over = {}) => ({ 'webhook-id': ID, 'webhook-timestamp': String(TS), 'webhook-signature': SIG, ...over });

test('verifyWebhook: the spec vector, and what it refuses', () => {
  assert.equal(signWebhook(SECRET, ID, TS, BODY), SIG);
  assert.deepEqual(verifyWebhook(BODY, headers(), SECRET, { now: TS * 1000 }), { test: 2432232314 });
  assert.deepEqual(verifyWebhook(Buffer.from(BODY), new Headers(headers({ 'webhook-signature': `v1,bm9wZQ== ${SIG}` })), SECRET,
    { now: TS * 1000 + WEBHOOK_TOLERANCE_MS }), { test: 2432232314 });
  const refusals = [
    [BODY + ' ', headers(), SECRET, TS * 1000, /no v1 signature matches/],
    [BODY, headers(), `whsec_${'QUJD'.repeat(8)}`, TS * 1000, /no v1 signature matches/],
    [BODY, headers(), SECRET, TS * 1000 + WEBHOOK_TOLERANCE_MS + 1000, /outside the tolerance/],
    [BODY, headers(), SECRET, TS * 1000 - WEBHOOK_TOLERANCE_MS - 1000, /outside the tolerance/],
    [BODY, { 'webhook-id': ID, 'webhook-timestamp': String(TS) }, SECRET, TS * 1000, /missing/],
    [BODY, headers(), 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', TS * 1000, /must start with whsec_/],
  ];
  for (const [body, h, secret, now, want] of refusals) {
    assert.throws(() => verifyWebhook(body, h, secret, { now }), (err) => err instanceof WebhookVerificationError && want.test(err.message));
  }
});

/** A receiver on 127.0.0.1: answers `plan` (by request number; 200 after), keeps every accepted request. */
function receiver(port, plan = []) {
  const r = { requests: 0, accepted: [] };
  r.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const n = r.requests++;
      if (n < plan.length) {
        res.writeHead(plan[n]).end();
        return;
      }
      r.accepted.push({ body: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  r.listening = new Promise((resolve) => r.server.listen(port, '127.0.0.1', () => resolve(r.server.address().port)));
  r.close = () => new Promise((resolve) => { r.server.closeAllConnections(); r.server.close(resolve); });
  return r;
}

async function waitAccepted(r, n) {
  const deadline = Date.now() + WAIT_MS;
  while (r.accepted.length < n) {
    if (Date.now() > deadline) throw new Error(`${r.accepted.length} of ${n} accepted (${r.requests} requests)\n${server.output()}`);
    await sleep(20);
  }
  await sleep(500); // a duplicate would come within the backoff cap (400 ms)
}

/** Checks every accepted delivery with standardwebhooks and verifyWebhook; returns the events. */
function verifyAll(r, secret) {
  const wh = new Webhook(secret);
  return r.accepted.map(({ body, headers: h }) => {
    const theirs = wh.verify(body, { 'webhook-id': h['webhook-id'], 'webhook-timestamp': h['webhook-timestamp'], 'webhook-signature': h['webhook-signature'] });
    const ours = verifyWebhook(body, h, secret);
    assert.deepEqual(ours, theirs);
    assert.equal(ours.id, h['webhook-id']);
    return ours;
  });
}

let server;
let client;

before(async () => {
  server = await Server.start('--webhook-backoff-min', '50ms', '--webhook-backoff-max', '400ms');
  client = new AgentBillClient({ apiKey: server.createKey('admin').key, baseUrl: server.baseUrl });
});

after(async () => {
  await server?.stop();
});

async function deny(customerId, n) {
  await client.setBudget({ customerId, limitUnits: 10, period: 'month' });
  for (let i = 0; i < n; i++) {
    const pf = await client.preflight({ agentId: 'a1', customerId, estimatedUnits: 100 });
    assert.equal(pf.approved, false);
  }
}

test('a private URL is refused without --allow-private', async () => {
  assert.throws(() => server.cli('webhooks', 'add', '--url', 'http://127.0.0.1:9/hook'),
    (err) => /127\.0\.0\.1, a loopback address: refused \(pass --allow-private/.test(String(err.stderr)));
});

test('500 twice then 200: each event accepted exactly once, signed as standardwebhooks expects', async () => {
  const r = receiver(0, [500, 500]);
  const port = await r.listening;
  try {
    const ep = JSON.parse(server.cli('webhooks', 'add', '--url', `http://127.0.0.1:${port}/hook`, '--allow-private',
      '--customer', 'node_retry', '--types', 'denied', '--json'));
    await deny('node_retry', 4);
    await waitAccepted(r, 4);
    const evs = verifyAll(r, ep.secret);
    assert.equal(evs.length, 4);
    assert.equal(new Set(evs.map((e) => e.id)).size, 4);
    assert.ok(evs.every((e) => e.type === 'denied' && e.customer_id === 'node_retry'));
    assert.equal(r.requests, 6);
    const [row] = JSON.parse(server.cli('webhooks', 'list', '--json')).filter((x) => x.id === ep.id);
    assert.equal(row.secret, undefined);
    assert.match(row.status.last_error, /HTTP 500/);
    server.cli('webhooks', 'remove', ep.id);
  } finally {
    await r.close();
  }
});

test(`a receiver down for ${DOWN_MS} ms gets everything, in order, when it returns`, async () => {
  const port = await freePort();
  const ep = JSON.parse(server.cli('webhooks', 'add', '--url', `http://127.0.0.1:${port}/hook`, '--allow-private',
    '--customer', 'node_down', '--json'));
  await deny('node_down', 5);
  await sleep(DOWN_MS);
  const [row] = JSON.parse(server.cli('webhooks', 'list', '--json')).filter((x) => x.id === ep.id);
  assert.ok(row.pending >= 5, `pending ${row.pending}`);
  assert.match(row.status.last_error, /refused/);
  const r = receiver(port);
  await r.listening;
  try {
    await waitAccepted(r, 6); // budget_exhausted with the first refusal, and five denied
    const evs = verifyAll(r, ep.secret);
    assert.equal(evs.length, 6);
    const ids = evs.map((e) => e.id);
    assert.deepEqual([...ids].sort(), ids, 'in order (event IDs are UUIDv7, ascending)');
  } finally {
    await r.close();
  }
});

test('webhooks test sends a signed synthetic event', async () => {
  const r = receiver(0);
  const port = await r.listening;
  try {
    const ep = JSON.parse(server.cli('webhooks', 'add', '--url', `http://127.0.0.1:${port}/`, '--allow-private', '--json'));
    // Asynchronously: the receiver runs on this event loop.
    const cli = (...args) => promisify(execFile)(server.bin, [...args, '--nats-url', server.natsUrl],
      { env: { ...process.env, AGENTBILL_DATA: server.data }, timeout: WAIT_MS });
    assert.match((await cli('webhooks', 'test', ep.id)).stdout, /accepted test event test_/);
    const [ev] = verifyAll(r, ep.secret);
    assert.equal(ev.type, 'webhook_test');
    server.cli('webhooks', 'remove', ep.id);
    await assert.rejects(cli('webhooks', 'test', ep.id), (err) => /not_found/.test(err.stderr));
  } finally {
    await r.close();
  }
});
