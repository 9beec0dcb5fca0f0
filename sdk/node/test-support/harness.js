// Starts a real `agentbill serve --http` for the SDK tests. The binary is
// $AGENTBILL_BIN (scripts/test.sh builds bin/agentbill once and exports
// it), or built here with `go build`. Everything listens on 127.0.0.1 on
// free ports, and every wait is bounded.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SDK_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(SDK_DIR, '..', '..');

const BUILD_TIMEOUT_MS = 300_000; // a cold Go build cache compiles nats-server
const READY_TIMEOUT_MS = 30_000;
const CLI_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 50;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function binary(tmp) {
  const env = process.env.AGENTBILL_BIN;
  if (env && fs.existsSync(env)) return env;
  const out = path.join(tmp, 'agentbill');
  execFileSync('go', ['build', '-o', out, './cmd/agentbill'], { cwd: REPO, stdio: 'inherit', timeout: BUILD_TIMEOUT_MS });
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether docs/openapi.json documents the route `path`, or the property
 * `field` of the schema `schema`. Tests of a gateway surface another branch
 * adds skip while the contract does not have it yet, and run (so must
 * pass) as soon as it does: a skip never hides a documented route.
 */
export function gatewayHas({ path: route, schema, field } = {}) {
  const doc = JSON.parse(fs.readFileSync(path.join(REPO, 'docs', 'openapi.json'), 'utf8'));
  if (route !== undefined && !(route in (doc.paths ?? {}))) return false;
  if (schema !== undefined && !(field in (doc.components?.schemas?.[schema]?.properties ?? {}))) return false;
  return true;
}

/** One `agentbill serve --http` process with its own data directory. */
export class Server {
  static async start(...extra) {
    const s = new Server();
    s.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agentbill-node-'));
    s.bin = binary(s.tmp);
    const natsPort = await freePort();
    const httpPort = await freePort();
    s.natsUrl = `nats://127.0.0.1:${natsPort}`;
    s.baseUrl = `http://127.0.0.1:${httpPort}`;
    s.data = path.join(s.tmp, 'data');
    s.logPath = path.join(s.tmp, 'serve.log');
    const log = fs.openSync(s.logPath, 'w');
    s.proc = spawn(s.bin, ['serve', '--data', s.data, '--nats-listen', `127.0.0.1:${natsPort}`,
      '--http', `127.0.0.1:${httpPort}`, ...extra], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    s.exited = new Promise((resolve) => s.proc.once('exit', resolve));
    try {
      await s.waitReady();
    } catch (err) {
      await s.stop();
      throw err;
    }
    return s;
  }

  async waitReady() {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`agentbill serve exited ${this.proc.exitCode}:\n${this.output()}`);
      try {
        const res = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(POLL_MS);
    }
    throw new Error(`agentbill serve did not answer within ${READY_TIMEOUT_MS} ms:\n${this.output()}`);
  }

  output() {
    return fs.readFileSync(this.logPath, 'utf8');
  }

  /** Runs `agentbill ARGS` as the local admin: serve's data directory holds its credential. */
  cli(...args) {
    return execFileSync(this.bin, [...args, '--nats-url', this.natsUrl], {
      encoding: 'utf8', timeout: CLI_TIMEOUT_MS, env: { ...process.env, AGENTBILL_DATA: this.data },
    });
  }

  /** Returns { key, id } of a new key. */
  createKey(role, customer) {
    const args = ['keys', 'create', '--role', role, '--json'];
    if (customer) args.push('--customer', customer);
    return JSON.parse(this.cli(...args));
  }

  revoke(id) {
    this.cli('keys', 'revoke', id);
  }

  async stop() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
