// The integration examples under examples/node run against a real
// `agentbill serve --http` and the stand-in model server they start, and
// charge what the stand-in reported.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';

import { REPO } from '../test-support/harness.js';
import { Ledger } from '../test-support/ledger.js';
import { UNITS } from '../test-support/model-server.js';

/** How long one example may run. */
const EXAMPLE_TIMEOUT_MS = 60_000;
const run = promisify(execFile);

let ledger;

before(async () => {
  ledger = await Ledger.start();
});

after(async () => {
  await ledger?.stop();
});

// example runs examples/node/NAME for a new customer with `limit` units and
// returns its output and the units it used.
async function example(name, limit = 10_000) {
  const cid = await ledger.customer('ex', limit);
  let out;
  let code = 0;
  try {
    ({ stdout: out } = await run(process.execPath, [path.join(REPO, 'examples', 'node', name)], {
      env: { ...process.env, AGENTBILL_BASE_URL: ledger.server.baseUrl, AGENTBILL_API_KEY: ledger.agentKey, AGENTBILL_CUSTOMER: cid, MODEL_BASE_URL: '' },
      timeout: EXAMPLE_TIMEOUT_MS,
    }));
  } catch (err) {
    if (err.code !== 3) throw err;
    ({ stdout: out, code } = err);
  }
  const { used, reserved } = await ledger.position(cid);
  return { out, code, used, reserved };
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
