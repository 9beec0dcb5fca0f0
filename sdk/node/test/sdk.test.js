// The Node.js SDK against a real `agentbill serve --http`.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  AgentBillClient,
  AgentBillError,
  AuthenticationError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitedError,
  RefusedError,
  RESPONSE_BYTES_MAX,
  UnavailableError,
  usage,
} from '../index.js';
import { REPO, SDK_DIR, Server, freePort } from '../test-support/harness.js';

const CONCURRENT_RUNS = 50;
const EXEC_TIMEOUT_MS = 60_000;

let server;
let keys;

before(async () => {
  server = await Server.start();
  keys = {
    admin: server.createKey('admin').key,
    agent: server.createKey('agent').key,
    auditor: server.createKey('auditor').key,
  };
});

after(async () => {
  await server?.stop();
});

const customer = () => `cust_${randomUUID().slice(0, 12)}`;
const client = (key = keys.agent) => new AgentBillClient({ apiKey: key, baseUrl: server.baseUrl });
const budget = (cid, limit) => client(keys.admin).setBudget({ customerId: cid, limitUnits: limit, period: 'month' });

test('the README example runs as written', async () => {
  process.env.AGENTBILL_BASE_URL = server.baseUrl;
  try {
    const before = await client(keys.admin).status('user_123');
    const runAgent = async (task) => `done: ${task}`;
    const task = 'summarise';

    const agentbill = new AgentBillClient({ apiKey: keys.agent });
    const check = await agentbill.preflight({ customerId: 'user_123', agentId: 'research_agent', estimatedUnits: 10 });
    if (!check.approved) throw new Error(`Blocked: ${check.reason}`);
    const result = await runAgent(task);
    await agentbill.record({ customerId: 'user_123', agentId: 'research_agent', units: 10 });

    assert.equal(result, 'done: summarise');
    const st = await client(keys.admin).status('user_123');
    assert.equal(Number(st.used) - Number(before.used), 10);
    assert.equal(st.reserved, '0');
  } finally {
    delete process.env.AGENTBILL_BASE_URL;
  }
});

test('approve', async () => {
  const cid = customer();
  await budget(cid, 100);
  const check = await client().preflight({ customerId: cid, agentId: 'a', estimatedUnits: 10 });
  assert.equal(check.approved, true);
  assert.equal(check.reason, null);
  assert.ok(check.reservationId);
  assert.equal(check.reservedUnits, '10');
  assert.equal(check.remainingUnits, '90');
  assert.match(check.message, /90 units left/);
});

test('refuse with a reason', async () => {
  const cid = customer();
  await budget(cid, 5);
  const check = await client().preflight({ customerId: cid, agentId: 'a', estimatedUnits: 10 });
  assert.equal(check.approved, false);
  assert.equal(check.reason, 'budget_exhausted');
  assert.match(check.message, /5 units left.*10 requested/);
  assert.equal(check.reservationId, null);
});

test('the estimate defaults to 1', async () => {
  const cid = customer();
  await budget(cid, 3);
  const check = await client().preflight({ customerId: cid, agentId: 'a' });
  assert.equal(check.reservedUnits, '1');
});

test('record settles the reservation', async () => {
  const cid = customer();
  await budget(cid, 100);
  const c = client();
  const check = await c.preflight({ customerId: cid, agentId: 'a', estimatedUnits: 10 });
  const rec = await c.record({ customerId: cid, agentId: 'a', units: '7.25', reservationId: check.reservationId });
  assert.equal(rec.status, 'recorded');
  assert.equal(rec.chargedUnits, '7.25');
  assert.equal(rec.releasedUnits, '2.75');
  assert.equal(rec.remainingUnits, '92.75');
  const b = await c.budget({ customerId: cid });
  assert.deepEqual([b.usedUnits, b.reservedUnits, b.remainingUnits, b.isBlocked], ['7.25', '0', '92.75', false]);
});

test('counts in a status come back as numbers, amounts as strings', async () => {
  const cid = customer();
  await budget(cid, 100);
  await client().preflight({ customerId: cid, agentId: 'a', estimatedUnits: 10 });
  const st = await client(keys.admin).status(cid);
  assert.equal(st.openReservations, 1);
  assert.equal(typeof st.raw.as_of_seq, 'number');
  assert.ok(Number.isSafeInteger(st.raw.as_of_seq) && st.raw.as_of_seq > 0);
  assert.equal(st.reserved, '10');
});

test('release, failed record, extend, idempotent retry', async () => {
  const cid = customer();
  await budget(cid, 100);
  const c = client();
  let check = await c.preflight({ customerId: cid, agentId: 'a', estimatedUnits: 10, ttl: '30s' });
  const ext = await c.extend({ customerId: cid, reservationId: check.reservationId, ttl: '1h' });
  assert.ok(ext.expiresAt > check.expiresAt);
  const rel = await c.release({ customerId: cid, reservationId: check.reservationId });
  assert.deepEqual([rel.status, rel.releasedUnits], ['released', '10']);
  check = await c.preflight({ customerId: cid, agentId: 'a', estimatedUnits: 4 });
  const rec = await c.record({ customerId: cid, agentId: 'a', units: 4, reservationId: check.reservationId, success: false });
  assert.equal(rec.status, 'released');
  check = await c.preflight({ customerId: cid, agentId: 'a', estimatedUnits: 4 });
  assert.equal((await c.record({ customerId: cid, agentId: 'a', reservationId: check.reservationId, success: false })).status, 'released');
  const a = await c.preflight({ customerId: cid, agentId: 'a', estimatedUnits: 10, idempotencyKey: 'same' });
  const b = await c.preflight({ customerId: cid, agentId: 'a', estimatedUnits: 10, idempotencyKey: 'same' });
  assert.equal(a.reservationId, b.reservationId);
  const st = await c.status(cid);
  assert.deepEqual([st.used, st.reserved, st.openReservations], ['0', '10', 1]);
});

test('amounts are exact', async () => {
  const cid = customer();
  await budget(cid, '1000000000000000');
  const c = client();
  let rec = await c.record({ customerId: cid, agentId: 'a', units: '0.000000000000000001' });
  assert.equal(rec.chargedUnits, '0.000000000000000001');
  assert.equal(rec.remainingUnits, '999999999999999.999999999999999999');
  rec = await c.record({ customerId: cid, agentId: 'a', units: 0.1 });
  assert.equal(rec.chargedUnits, '0.1');
  rec = await c.record({ customerId: cid, agentId: 'a', units: 5n });
  assert.equal(rec.chargedUnits, '5');
  await assert.rejects(c.record({ customerId: cid, agentId: 'a', units: 2 ** 53 + 2 }), RangeError);
  await assert.rejects(c.record({ customerId: cid, agentId: 'a', units: NaN }), RangeError);
  await assert.rejects(c.record({ customerId: cid, agentId: 'a', units: {} }), TypeError);
  for (const bad of [-1, '-0.5', '1e400', 'abc', '0.0000000000000000001']) {
    await assert.rejects(c.preflight({ customerId: cid, agentId: 'a', estimatedUnits: bad }), (err) => {
      assert.ok(err instanceof InvalidArgumentError, `${bad}: ${err}`);
      assert.equal(err.status, 400);
      return true;
    });
  }
});

test('gate: success records the reported units', async () => {
  const cid = customer();
  await budget(cid, 100);
  const c = client();
  const out = await c.gate({ customerId: cid, agentId: 'a', estimatedUnits: 10 }, async ({ reservationId }) => {
    assert.ok(reservationId);
    return usage(4, 'GO');
  });
  assert.equal(out, 'GO');
  const plain = await c.gate({ customerId: cid, agentId: 'a', estimatedUnits: 3 }, () => 1);
  assert.equal(plain, 1);
  const tokens = await c.gate({ customerId: cid, agentId: 'a', estimatedUnits: 10, unitsFrom: (r) => r.tokens / 1000 }, async () => ({ tokens: 2000 }));
  assert.deepEqual(tokens, { tokens: 2000 });
  const st = await c.status(cid);
  assert.deepEqual([st.used, st.reserved], ['9', '0']);
});

test('gate: an error releases the hold', async () => {
  const cid = customer();
  await budget(cid, 100);
  const c = client();
  let calls = 0;
  await assert.rejects(c.gate({ customerId: cid, agentId: 'a', estimatedUnits: 10 }, async () => {
    calls++;
    throw new Error('model crashed');
  }), /model crashed/);
  assert.equal(calls, 1);
  const st = await c.status(cid);
  assert.deepEqual([st.used, st.reserved, st.openReservations], ['0', '0', 0]);
});

test('gate: a refusal throws and never runs', async () => {
  const cid = customer();
  await budget(cid, 5);
  let calls = 0;
  await assert.rejects(client().gate({ customerId: cid, agentId: 'a', estimatedUnits: 10 }, () => { calls++; }), (err) => {
    assert.ok(err instanceof RefusedError);
    assert.equal(err.reason, 'budget_exhausted');
    assert.equal(err.remainingUnits, '5');
    assert.match(err.message, /10 requested/);
    return true;
  });
  assert.equal(calls, 0);
});

test('fifty concurrent gated runs never overspend', async () => {
  const cid = customer();
  await budget(cid, 100);
  const c = client();
  const results = await Promise.allSettled(Array.from({ length: CONCURRENT_RUNS }, (_, i) =>
    c.gate({ customerId: cid, agentId: 'a', estimatedUnits: 3 }, async () => i)));
  const approved = results.filter((r) => r.status === 'fulfilled').length;
  const others = results.filter((r) => r.status === 'rejected' && !(r.reason instanceof RefusedError));
  assert.deepEqual(others, []);
  const st = await c.status(cid);
  assert.ok(Number(st.used) + Number(st.reserved) <= 100);
  assert.equal(st.used, String(3 * approved));
  assert.equal(approved, 33); // floor(100 / 3): every hold is settled in full
});

test('a bad key is 401', async () => {
  await assert.rejects(client(`agb_${'A'.repeat(43)}`).preflight({ customerId: customer(), agentId: 'a' }), (err) => {
    assert.ok(err instanceof AuthenticationError);
    assert.equal(err.status, 401);
    return true;
  });
  await assert.rejects(client('nope').budget(), AuthenticationError);
});

test('an agent key on an admin endpoint is 403', async () => {
  const cid = customer();
  await assert.rejects(client().setBudget({ customerId: cid, limitUnits: 100, period: 'month' }), (err) => {
    assert.ok(err instanceof PermissionDeniedError);
    assert.equal(err.status, 403);
    return true;
  });
  await assert.rejects(client().topUp({ customerId: cid, units: 1 }), PermissionDeniedError);
  await assert.rejects(client().events(cid), PermissionDeniedError);
});

test('a customer-bound key on another customer is 403', async () => {
  const cid = customer();
  await budget(cid, 100);
  const bound = client(server.createKey('agent', cid).key);
  assert.equal((await bound.preflight({ agentId: 'a' })).approved, true); // its own, by default
  assert.equal((await bound.budget()).customerId, cid);
  const other = customer();
  for (const call of [
    () => bound.preflight({ customerId: other, agentId: 'a' }),
    () => bound.record({ customerId: other, agentId: 'a', units: 1 }),
    () => bound.status(other),
    () => bound.budget({ customerId: other }),
  ]) {
    await assert.rejects(call(), PermissionDeniedError);
  }
});

test('a revoked key fails at once', async () => {
  const cid = customer();
  await budget(cid, 10);
  const { key, id } = server.createKey('agent');
  const c = client(key);
  assert.equal((await c.preflight({ customerId: cid, agentId: 'a' })).approved, true);
  server.revoke(id);
  await assert.rejects(c.preflight({ customerId: cid, agentId: 'a' }), (err) => {
    assert.ok(err instanceof AuthenticationError);
    assert.match(err.message, /revoked/);
    return true;
  });
});

test('an auditor reads the event log', async () => {
  const cid = customer();
  await budget(cid, 100);
  await client().preflight({ customerId: cid, agentId: 'a', estimatedUnits: 2 });
  const page = await client(keys.auditor).events(cid, { limit: 10 });
  assert.deepEqual(page.events.map((e) => e.type), ['budget_set', 'reserved']);
  assert.equal(page.events[1].data.units, '2');
  assert.equal(page.events[1].v, 1);
  assert.equal(page.truncated, false);
  await assert.rejects(client(keys.auditor).setBudget({ customerId: cid, limitUnits: 1, period: 'day' }), PermissionDeniedError);
  // IDs outside the plain subject alphabet travel escaped in the path.
  assert.equal((await client(keys.admin).status('org/7 team')).customerId, 'org/7 team');
});

test('not found', async () => {
  const s = await Server.start('--default-budget', 'none');
  try {
    const c = new AgentBillClient({ apiKey: s.createKey('admin').key, baseUrl: s.baseUrl });
    await assert.rejects(c.status('nobody'), NotFoundError);
  } finally {
    await s.stop();
  }
});

test('a key past the gateway\'s rate limit gets RateLimitedError, not retried', async () => {
  // Each key may send one request a 1,000 s.
  const s = await Server.start('--http-rate-limit-per-second', '0.001', '--http-rate-limit-burst', '1');
  try {
    const c = new AgentBillClient({ apiKey: s.createKey('admin').key, baseUrl: s.baseUrl, maxRetries: 3 });
    await c.setBudget({ customerId: 'u', limitUnits: 10, period: 'month' });
    await assert.rejects(c.status('u'), (err) => {
      assert.ok(err instanceof RateLimitedError, `${err}`);
      assert.deepEqual([err.code, err.status], ['rate_limited', 429]);
      assert.ok(err.retryAfterMs >= 999_000 && err.retryAfterMs <= 1_000_000, `retryAfterMs ${err.retryAfterMs}`);
      return true;
    });
  } finally {
    await s.stop();
  }
});

// A stub on 127.0.0.1 that answers 503 `fails` times, then approves.
async function stub(fails) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      seen.push(JSON.parse(body));
      const ok = seen.length > fails;
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'application/json' });
      res.end(ok
        ? '{"approved":true,"message":"ok","reservation_id":"r1","reserved_units":1,"remaining_units":9.50}'
        : '{"error":{"code":"unavailable","message":"writer restarting"}}');
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}`, seen, close: () => new Promise((r) => srv.close(r)) };
}

test('503 is retried with the same idempotency key', async () => {
  const s = await stub(2);
  try {
    const check = await new AgentBillClient({ apiKey: 'agb_x', baseUrl: s.url }).preflight({ customerId: 'c', agentId: 'a' });
    assert.equal(check.approved, true);
    assert.equal(check.remainingUnits, '9.50');
    assert.equal(s.seen.length, 3);
    assert.equal(new Set(s.seen.map((b) => b.idempotency_key)).size, 1);
  } finally {
    await s.close();
  }
});

test('retries are bounded, and no answer is unavailable', async () => {
  const s = await stub(100);
  try {
    await assert.rejects(new AgentBillClient({ apiKey: 'agb_x', baseUrl: s.url, maxRetries: 2 }).preflight({ agentId: 'a' }), UnavailableError);
    assert.equal(s.seen.length, 3);
  } finally {
    await s.close();
  }
  const port = await freePort(); // nothing listens there
  await assert.rejects(new AgentBillClient({ apiKey: 'agb_x', baseUrl: `http://127.0.0.1:${port}`, maxRetries: 1 }).preflight({ agentId: 'a' }), (err) => {
    assert.ok(err instanceof UnavailableError);
    assert.equal(err.status, null);
    return true;
  });
});

test('the Node example agent runs', () => {
  const out = execFileSync(process.execPath, [path.join(REPO, 'examples', 'node', 'agent.mjs')], {
    env: { ...process.env, AGENTBILL_BASE_URL: server.baseUrl, AGENTBILL_API_KEY: keys.agent },
    encoding: 'utf8',
    timeout: EXEC_TIMEOUT_MS,
  });
  assert.match(out, /approved/);
});

test('npm install ./sdk/node works', (t) => {
  try {
    execFileSync('npm', ['--version'], { stdio: 'ignore' });
  } catch {
    t.skip('npm is not installed');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentbill-npm-'));
  try {
    fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"probe","version":"1.0.0","private":true,"type":"module"}');
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', '--install-links', SDK_DIR], { cwd: dir, stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    const out = execFileSync(process.execPath, ['--input-type=module', '-e',
      "import { AgentBillClient, VERSION } from 'agentbill'; console.log(VERSION, typeof AgentBillClient);"], { cwd: dir, encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
    assert.equal(out.trim(), '0.1.0 function');
    assert.ok(fs.existsSync(path.join(dir, 'node_modules', 'agentbill', 'index.d.ts')));
    // The integrations import no provider or framework package: they load
    // with none installed (the optional peers are not).
    const entries = execFileSync(process.execPath, ['--input-type=module', '-e',
      "import { wrap } from 'agentbill/wrap'; import { agentbillMiddleware } from 'agentbill/ai-sdk';"
      + " import { AgentBillRunHooks } from 'agentbill/openai-agents'; import { unitsOf } from 'agentbill/usage';"
      + " console.log([wrap, agentbillMiddleware, AgentBillRunHooks, unitsOf].map((f) => typeof f).join(' '));"],
    { cwd: dir, encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
    assert.equal(entries.trim(), 'function function function function');
    assert.ok(!fs.existsSync(path.join(dir, 'node_modules', 'openai')), 'an optional peer was installed');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// A stub on 127.0.0.1 that answers every request 200 with body (a Buffer),
// then ends the reply, or holds it open if hold is set.
async function replyStub(body, { hold = false } = {}) {
  const open = new Set();
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (hold) {
        open.add(res);
        res.write(body);
      } else {
        res.end(body);
      }
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    close: () => new Promise((r) => {
      for (const res of open) res.destroy();
      srv.closeAllConnections();
      srv.close(r);
    }),
  };
}

// A JSON object of exactly n bytes whose string is made of `fill` (an
// ASCII or multi-byte character), padded with ASCII.
function jsonOfBytes(n, fill) {
  const head = '{"s":"';
  const tail = '"}';
  const w = Buffer.byteLength(fill);
  const room = n - head.length - tail.length;
  const s = fill.repeat(Math.floor(room / w)) + 'x'.repeat(room % w);
  const buf = Buffer.from(head + s + tail);
  assert.equal(buf.length, n);
  return buf;
}

const tooLarge = (err) => {
  assert.ok(err instanceof AgentBillError && !(err instanceof UnavailableError), `${err}`);
  assert.match(err.message, /reply larger than \d+ bytes/);
  return true;
};

test('a reply of RESPONSE_BYTES_MAX bytes is read; one byte more is refused', async () => {
  let s = await replyStub(jsonOfBytes(RESPONSE_BYTES_MAX, 'x'));
  try {
    const d = await new AgentBillClient({ apiKey: 'agb_x', baseUrl: s.url, maxRetries: 0 }).request('GET', '/v1/budget');
    assert.equal(d.s.length, RESPONSE_BYTES_MAX - 8);
  } finally {
    await s.close();
  }
  s = await replyStub(jsonOfBytes(RESPONSE_BYTES_MAX + 1, 'x'));
  try {
    await assert.rejects(new AgentBillClient({ apiKey: 'agb_x', baseUrl: s.url, maxRetries: 0 }).request('GET', '/v1/budget'), tooLarge);
  } finally {
    await s.close();
  }
});

test('the reply bound counts bytes, not characters', async () => {
  // Two-byte characters: fewer than RESPONSE_BYTES_MAX UTF-16 units, but
  // more than RESPONSE_BYTES_MAX bytes.
  const body = jsonOfBytes(RESPONSE_BYTES_MAX + 1, '\u00e9');
  assert.ok(body.toString('utf8').length < RESPONSE_BYTES_MAX);
  const s = await replyStub(body);
  try {
    await assert.rejects(new AgentBillClient({ apiKey: 'agb_x', baseUrl: s.url, maxRetries: 0 }).request('GET', '/v1/budget'), tooLarge);
  } finally {
    await s.close();
  }
});

test('reading stops once the reply passes the bound', async () => {
  // The stub never ends its reply: only a bound checked while reading
  // returns before the timeout.
  const s = await replyStub(Buffer.alloc(RESPONSE_BYTES_MAX + 1, 0x20), { hold: true });
  try {
    await assert.rejects(new AgentBillClient({ apiKey: 'agb_x', baseUrl: s.url, maxRetries: 0, timeoutMs: 30_000 }).request('GET', '/v1/budget'), tooLarge);
  } finally {
    await s.close();
  }
});
