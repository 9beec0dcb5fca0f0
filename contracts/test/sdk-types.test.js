// The SDKs' types agree with docs/openapi.json, for the operations they
// implement: every property of a reply schema is a field of the SDK's
// result type (camelCase in sdk/node/index.d.ts, snake_case in
// sdk/python/agentbill/models.py) and every field of the result type is
// a property, and likewise for request bodies and the SDKs' options
// (index.d.ts) and keyword arguments (client.py). The SDK types are
// hand-written, not generated: this test is what keeps them honest.
// Known gaps are listed in GAPS with the reason; a gap that closes fails
// the test too, so the list stays true.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { REPO, deref, loadOpenAPI } from '../lib/contract.js';

const doc = loadOpenAPI();
const PYTHON_TIMEOUT_MS = 30_000;

// [schema, TypeScript interface, Python dataclass or client method]
const REPLIES = [
  ['PreflightReply', 'PreflightResult', 'PreflightResult'],
  ['RecordReply', 'RecordResult', 'RecordResult'],
  ['ReleaseReply', 'ReleaseResult', 'ReleaseResult'],
  ['ExtendReply', 'ExtendResult', 'ExtendResult'],
  ['BudgetView', 'Budget', 'Budget'],
  ['StatusReply', 'Status', 'Status'],
  ['AgentStatus', 'AgentStatus', 'AgentStatus'],
  ['EventsPage', 'EventsPage', 'EventsPage'],
  ['POST /v1/grants 200', 'GrantResult', 'GrantResult'],
  // Objects inside replies, named by where they are (whatever the
  // document calls their schema): "[]" is an array's item.
  ['StatusReply.grants[]', 'GrantStatus', 'GrantStatus'],
  ['StatusReply.scopes[]', 'ScopeStatus', 'ScopeStatus'],
  ['RecordReply.funded_by[]', 'GrantDraw', 'GrantDraw'],
  ['PreflightReply.scope', 'ScopeRef', 'ScopeRef'],
  // Priced usage: a pricing breakdown and its lines, and the price-list replies.
  ['RecordReply.pricing', 'Pricing', 'Pricing'],
  ['RecordReply.pricing.lines[]', 'PriceLine', 'PriceLine'],
  ['POST /v1/prices 200', 'PricesResult', 'PricesResult'],
  ['GET /v1/prices 200', 'PriceListsResult', 'PriceLists'],
  ['PriceListsReply.lists[]', 'PriceListInfo', 'PriceListInfo'],
];
const REQUESTS = [
  ['PreflightBody', 'PreflightOptions', 'preflight'],
  ['RecordBody', 'RecordOptions', 'record'],
  ['ReleaseRequest', 'ReleaseOptions', 'release'],
  ['ExtendRequest', 'ExtendOptions', 'extend'],
  ['BudgetBody', 'SetBudgetOptions', 'set_budget'],
  ['TopUpRequest', 'TopUpOptions', 'top_up'],
  ['POST /v1/grants body', 'GrantOptions', 'grant'],
  ['BudgetBody.scope_limits[]', 'ScopeLimit', 'ScopeLimit'],
];
// Fields only the SDKs have, by design. unchecked is set by the SDKs'
// fail policy (onUnavailable / on_unavailable 'allow') when the gateway
// could not be reached; the gateway never sends it.
const SDK_ONLY = new Set(['raw', 'unchecked']);
// Known disagreements: "<schema>.<property>" missing from the SDK type,
// with why. Both SDKs share them.
const GAPS = {
  'StatusReply.thresholds': 'the SDKs expose it only through raw',
  'StatusReply.upgrade_url': 'the SDKs expose it only through raw',
  'StatusReply.as_of_seq': 'the SDKs expose it only through raw',
  'RecordBody.event_type': 'the SDKs call it agentId / agent_id (they send it as event_type)',
};

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

/**
 * The object schema of a name: a schema ("StatusReply"), a property path
 * into one ("StatusReply.grants[]"), or an operation's JSON body or reply
 * ("POST /v1/grants body", "POST /v1/grants 200"); null if there is none.
 * A $ref, and an allOf/oneOf/anyOf wrapper (a description, a null
 * branch), are looked through.
 */
function objectSchema(name) {
  const op = name.match(/^(\w+) (\S+) (body|\d{3})$/);
  if (op) {
    const o = doc.paths[op[2]]?.[op[1].toLowerCase()];
    const part = op[3] === 'body' ? deref(doc, o?.requestBody) : deref(doc, o?.responses?.[op[3]]);
    return objectOf(part?.content?.['application/json']?.schema);
  }
  const [base, ...path] = name.split('.');
  let s = doc.components.schemas[base];
  for (const seg of path) {
    const o = objectOf(s);
    const item = seg.endsWith('[]');
    s = o?.properties?.[item ? seg.slice(0, -2) : seg];
    if (item) s = deref(doc, s)?.items;
  }
  return objectOf(s);
}

function objectOf(x) {
  const s = deref(doc, x);
  if (!s) return null;
  if (s.properties) return s;
  for (const branch of [...(s.allOf ?? []), ...(s.oneOf ?? []), ...(s.anyOf ?? [])]) {
    const o = objectOf(branch);
    if (o) return o;
  }
  return null;
}

/** The members of `export interface NAME { ... }` (or of a declared class's fields) in index.d.ts. */
function tsMembers(src, name) {
  const m = src.match(new RegExp(`export (?:interface|declare class) ${name}(?:<[^>]*>)? \\{([\\s\\S]*?)\\n\\}`));
  assert.ok(m, `interface ${name} in index.d.ts`);
  return [...m[1].matchAll(/^\s{2}(\w+)\??:/gm)].map((x) => x[1]);
}

/** Python dataclass fields and client keyword arguments, by name. */
function pythonNames() {
  const script = [
    'import dataclasses, inspect, json, sys',
    'sys.path.insert(0, sys.argv[1])',
    'from agentbill import models',
    'from agentbill.client import AgentBillClient',
    'out = {n: [f.name for f in dataclasses.fields(c)] for n, c in vars(models).items() if dataclasses.is_dataclass(c)}',
    "out.update({'client.' + n: [p for p in inspect.signature(f).parameters if p != 'self'] for n, f in vars(AgentBillClient).items() if callable(f) and not n.startswith('_')})",
    'print(json.dumps(out))',
  ].join('\n');
  return JSON.parse(execFileSync('python3', ['-c', script, path.join(REPO, 'sdk', 'python')], { encoding: 'utf8', timeout: PYTHON_TIMEOUT_MS }));
}

/** Compares schema properties with SDK fields; returns the disagreements. */
function compare(schema, fields, toSdk) {
  const o = objectSchema(schema);
  if (!o) return [`docs/openapi.json has no object schema at ${schema}`];
  const props = Object.keys(o.properties);
  const problems = [];
  for (const p of props) {
    const gap = GAPS[`${schema}.${p}`];
    const has = fields.includes(toSdk(p));
    if (!has && !gap) problems.push(`${schema}.${p}: missing from the SDK type`);
    if (has && gap) problems.push(`${schema}.${p}: listed in GAPS but present; remove it from GAPS`);
  }
  for (const f of fields) {
    if (SDK_ONLY.has(f)) continue;
    if (!props.some((p) => toSdk(p) === f)) {
      problems.push(`${schema}: the SDK's ${f} is not in the schema`);
    }
  }
  return problems;
}

test('index.d.ts: result and option interfaces match the schemas (camelCase)', () => {
  const src = fs.readFileSync(path.join(REPO, 'sdk', 'node', 'index.d.ts'), 'utf8');
  const problems = [];
  for (const [schema, ts] of [...REPLIES, ...REQUESTS]) {
    problems.push(...compare(schema, tsMembers(src, ts), camel).map((p) => `${ts}: ${p}`));
  }
  assert.deepEqual(problems, []);
});

test('models.py and client.py: result classes and keyword arguments match the schemas (snake_case)', () => {
  const py = pythonNames();
  const problems = [];
  for (const [schema, , cls] of REPLIES) {
    assert.ok(py[cls], `dataclass ${cls} in models.py`);
    problems.push(...compare(schema, py[cls], (s) => s).map((p) => `${cls}: ${p}`));
  }
  for (const [schema, , name] of REQUESTS) {
    // A client method's keyword arguments, or a dataclass sent inside a
    // body (ScopeLimit).
    const fields = py[`client.${name}`] ?? py[name];
    assert.ok(fields, `AgentBillClient.${name} or models.${name}`);
    problems.push(...compare(schema, fields, (s) => s).map((p) => `${name}: ${p}`));
  }
  assert.deepEqual(problems, []);
});
