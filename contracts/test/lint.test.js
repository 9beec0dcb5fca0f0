// docs/openapi.json passes Redocly's lint (recommended rules, redocly.yaml)
// with no error and no warning; the few problems it ignores are listed
// with their reasons in .redocly.lint-ignore.yaml.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { CONTRACTS_DIR, OPENAPI_PATH } from '../lib/contract.js';

const LINT_TIMEOUT_MS = 60_000;

test('redocly lint: no errors, no warnings', async () => {
  const bin = path.join(CONTRACTS_DIR, 'node_modules', '.bin', 'redocly');
  let stdout;
  try {
    ({ stdout } = await promisify(execFile)(bin, ['lint', path.relative(CONTRACTS_DIR, OPENAPI_PATH), '--format=json'], {
      cwd: CONTRACTS_DIR, timeout: LINT_TIMEOUT_MS, maxBuffer: 16 << 20,
      // No telemetry or update check: the test runs offline.
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    }));
  } catch (err) {
    stdout = err.stdout; // lint exits 1 on errors; the report says which
    if (!stdout) throw err;
  }
  const report = JSON.parse(stdout);
  const problems = report.problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location?.map((l) => l.pointer).join(', ')}`);
  assert.deepEqual(problems, [], 'redocly lint problems');
  assert.equal(report.totals.errors, 0);
  assert.equal(report.totals.warnings, 0);
});
