// Loads docs/openapi.json and docs/asyncapi.yaml and compiles their
// schemas with ajv (JSON Schema 2020-12, the dialect of OpenAPI 3.1),
// independently of the tools that lint them.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import yaml from 'js-yaml';

export const CONTRACTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(CONTRACTS_DIR, '..');
export const OPENAPI_PATH = path.join(REPO, 'docs', 'openapi.json');
export const ASYNCAPI_PATH = path.join(REPO, 'docs', 'asyncapi.yaml');

export const loadOpenAPI = () => JSON.parse(fs.readFileSync(OPENAPI_PATH, 'utf8'));
export const loadAsyncAPI = () => yaml.load(fs.readFileSync(ASYNCAPI_PATH, 'utf8'));

const SCHEMAS_ID = 'agentbill:openapi';

// ajv has no notion of OpenAPI's components: each '#/components/schemas/X'
// becomes '<SCHEMAS_ID>#/$defs/X' in a schema holding them all.
function rewriteRefs(x) {
  if (Array.isArray(x)) return x.map(rewriteRefs);
  if (x === null || typeof x !== 'object') return x;
  const out = {};
  for (const [k, v] of Object.entries(x)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')
      ? `${SCHEMAS_ID}#/$defs/${v.slice('#/components/schemas/'.length)}`
      : rewriteRefs(v);
  }
  return out;
}

/**
 * An ajv instance holding doc's component schemas. Strict, so an unknown
 * (misspelt) keyword fails; strictTypes off, since variants such as
 * {properties: {approved: {const: true}}} rightly leave the type to the
 * schema they refine.
 */
export function compiler(doc) {
  const ajv = new Ajv2020({ strict: true, strictTypes: false, strictRequired: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: SCHEMAS_ID, $defs: rewriteRefs(doc.components.schemas) });
  const cache = new Map();
  return (schema) => {
    const key = JSON.stringify(schema);
    if (!cache.has(key)) cache.set(key, ajv.compile(rewriteRefs(schema)));
    return cache.get(key);
  };
}

/** Resolves a local '#/...' $ref of doc (one level), or returns x. */
export function deref(doc, x) {
  if (!x || !x.$ref) return x;
  return x.$ref.slice(2).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((node, key) => node[key], doc);
}

/** Formats ajv errors for a failure message. */
export const explain = (errors) => (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`).join('\n');
