// docs/asyncapi.yaml: it parses with @asyncapi/parser without an
// error-level diagnostic, it shares its payload schemas with
// docs/openapi.json (the gateway passes the writer's replies and the
// log's events through, so one drifting from the other is a bug), and its
// subjects, event types, error codes and refusal reasons are the ones the
// Go source declares.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DiagnosticSeverity, Parser } from '@asyncapi/parser';

import { ASYNCAPI_PATH, REPO, loadAsyncAPI, loadOpenAPI } from '../lib/contract.js';

const asyncapi = loadAsyncAPI();
const openapi = loadOpenAPI();
const schemas = asyncapi.components.schemas;
const goSource = (file) => fs.readFileSync(path.join(REPO, file), 'utf8');
/** The string constants `Name Type = "value"` of a Go const block, by name. */
const goConsts = (src, type) => Object.fromEntries([...src.matchAll(new RegExp(`^\\s*(\\w+)\\s+${type}\\s*=\\s*"([^"]*)"`, 'gm'))].map((m) => [m[1], m[2]]));

test('@asyncapi/parser: no error-level diagnostics', async () => {
  const { document, diagnostics } = await new Parser().parse(fs.readFileSync(ASYNCAPI_PATH, 'utf8'));
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`);
  assert.deepEqual(errors, []);
  assert.ok(document, 'no document');
  assert.equal(document.version(), '3.0.0');
});

test('schemas named in both documents are the same schema', () => {
  const shared = Object.keys(schemas).filter((n) => n in openapi.components.schemas);
  for (const n of ['Units', 'UnitsIn', 'ErrorReply', 'PreflightReply', 'RecordReply', 'ReleaseReply', 'ExtendReply', 'StatusReply', 'Envelope', 'Balance', 'ReleaseRequest', 'ExtendRequest', 'TopUpRequest', 'GrantRequest', 'GrantReply', 'Scope', 'ScopeRef', 'GrantDraw', 'SignedUnits']) {
    assert.ok(shared.includes(n), `${n} is in both documents`);
  }
  for (const n of shared) assert.deepEqual(schemas[n], openapi.components.schemas[n], `schema ${n} differs between asyncapi.yaml and openapi.json`);
});

test('request subjects: every operation of events/subjects.go, admin ones under agentbill.admin.v1', () => {
  const src = goSource('events/subjects.go');
  const ops = Object.values(goConsts(src, 'Op'));
  const admin = [...src.matchAll(/op == (Op\w+)/g)].map((m) => goConsts(src, 'Op')[m[1]]);
  assert.ok(ops.length >= 7 && admin.length >= 2, 'read the ops from the Go source');
  const requestChannels = Object.values(asyncapi.channels).map((c) => c.address).filter((a) => a && /^agentbill\.(admin\.)?v1\./.test(a));
  // Operations with a subject of their own (no customer token: price lists).
  const global = [...src.matchAll(/^\s*\w+Subject\s*=\s*"(agentbill\.[^"]+)"/gm)].map((m) => m[1]);
  assert.ok(global.length >= 2, 'read the subjects without a customer from the Go source');
  const want = ops.filter((op) => !global.includes(`agentbill.admin.v1.${op}`))
    .map((op) => `${admin.includes(op) ? 'agentbill.admin.v1' : 'agentbill.v1'}.${op}.{customer}`).concat(global);
  assert.deepEqual(requestChannels.sort(), want.sort());
});

test('announced events: exactly events.AlertTypes, which projections/writer.go notifyTypes announces', () => {
  const src = goSource('events/events.go');
  const types = goConsts(src, 'Type');
  const writer = goSource('projections/writer.go');
  assert.match(writer, /var notifyTypes = func\(\) map\[events\.Type\]bool \{[^}]*range events\.AlertTypes/, 'notifyTypes in projections/writer.go is built from events.AlertTypes');
  const block = src.match(/var AlertTypes = \[\]Type\{([^}]*)\}/);
  assert.ok(block, 'AlertTypes in events/events.go');
  const notify = [...block[1].matchAll(/\b(Type\w+)/g)].map((m) => types[m[1]]);
  assert.ok(notify.length >= 4 && notify.every(Boolean), 'read the alert types from the Go source');
  const announced = Object.values(asyncapi.channels).map((c) => c.address).filter((a) => a?.startsWith('agentbill.events.'));
  assert.deepEqual(announced.sort(), notify.map((t) => `agentbill.events.{customer}.${t}`).sort());
});

test('event types, error codes and refusal reasons are the Go source\'s', () => {
  const types = Object.values(goConsts(goSource('events/events.go'), 'Type'));
  const variants = schemas.Envelope.oneOf.map((r) => schemas[r.$ref.split('/').pop()].properties.type.const);
  assert.deepEqual(variants.sort(), types.sort(), 'Envelope variants vs events.Types');
  const codes = Object.values(goConsts(goSource('ledger/errors.go'), 'Code'));
  assert.deepEqual([...schemas.ErrorCode.enum].sort(), codes.sort(), 'ErrorCode vs ledger.Code');
  const reasons = [...goSource('ledger/replies.go').matchAll(/^\s*Reason\w+\s*=\s*"([^"]+)"/gm)].map((m) => m[1]);
  assert.deepEqual([...schemas.RefusalReason.enum].sort(), reasons.sort(), 'RefusalReason vs ledger.Reason*');
  const headers = Object.keys(asyncapi.components.messages.Commit.headers.properties);
  for (const [file, re] of [['events/chain.go', /ChainHeader = "([^"]+)"/], ['events/signature.go', /SigHeader = "([^"]+)"/],
    ['projections/elect.go', /TakeoverHeader = "([^"]+)"/], ['projections/integrity.go', /ResetHeader = "([^"]+)"/],
    ['projections/integrity.go', /AdoptHeader = "([^"]+)"/]]) {
    const name = goSource(file).match(re)[1];
    assert.ok(headers.includes(name), `commit header ${name} (${file}) is documented`);
  }
});
