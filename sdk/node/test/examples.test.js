// The integration examples under examples/node run against a real
// `agentbill serve --http` and the stand-in model server they start, and
// charge what the stand-in reported.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';

import { AgentBillClient } from '../index.js';
import { REPO, Server } from '../test-support/harness.js';
import { UNITS } from '../test-support/model-server.js';

/** How long one example may run. */
const EXAMPLE_TIMEOUT_MS = 60_000;
const run = promisify(execFile);

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

// example runs examples/node/NAME for a new customer with `limit` units and
// returns its output and the units it used.
async function example(name, limit = 10_000) {
  const cid = `ex_${randomUUID().slice(0, 12)}`;
  await admin.setBudget({ customerId: cid, limitUnits: limit, period: 'month' });
  let out;
  let code = 0;
  try {
    ({ stdout: out } = await run(process.execPath, [path.join(REPO, 'examples', 'node', name)], {
      env: { ...process.env, AGENTBILL_BASE_URL: server.baseUrl, AGENTBILL_API_KEY: agentKey, AGENTBILL_CUSTOMER: cid, MODEL_BASE_URL: '' },
      timeout: EXAMPLE_TIMEOUT_MS,
    }));
  } catch (err) {
    if (err.code !== 3) throw err;
    ({ stdout: out, code } = err);
  }
  const st = await admin.status(cid);
  return { out, code, used: st.used, reserved: st.reserved };
}

test('wrap.mjs charges each provider call its reported usage', async () => {
  const { out, used, reserved } = await example('wrap.mjs');
  assert.match(out, /openai chat: hello from the stand-in/);
  assert.match(out, /gemini: hello from the stand-in/);
  assert.equal(used, String(2 * UNITS.openaiChat + UNITS.anthropic + UNITS.gemini));
  assert.equal(reserved, '0');
});

test('wrap.mjs exits 3 when refused', async () => {
  const { out, code, used } = await example('wrap.mjs', 10);
  assert.equal(code, 3);
  assert.match(out, /refused \(budget_exhausted\)/);
  assert.equal(used, '0');
});

test('ai-sdk.mjs charges generateText and streamText', async () => {
  const { out, used, reserved } = await example('ai-sdk.mjs');
  assert.match(out, /streamText: hello from the stand-in/);
  assert.equal(used, String(2 * UNITS.openaiResponses));
  assert.equal(reserved, '0');
});

test('openai-agents.mjs charges the run', async () => {
  const { out, used, reserved } = await example('openai-agents.mjs');
  assert.match(out, /run: hello from the stand-in/);
  assert.equal(used, String(UNITS.openaiResponses));
  assert.equal(reserved, '0');
});
