// AgentBill: preflight budgets for AI agents. The client of an AgentBill
// HTTP gateway (`agentbill serve --http`), for Node.js 20+, with no
// runtime dependencies (it uses the built-in fetch).
//
//   import { AgentBillClient } from 'agentbill';
//   const client = new AgentBillClient({ apiKey: 'agb_...' });
//   const check = await client.preflight({ customerId: 'user_123', agentId: 'research_agent', estimatedUnits: 10 });
//   if (!check.approved) throw new Error(`Blocked: ${check.reason}`);
//
// Amounts are exact. Pass a number (an integer up to 2^53, or a finite
// decimal that JavaScript writes as you meant it, like 0.5), a string
// holding a decimal ('12.25'), or a bigint. Amounts in replies are strings
// holding the exact decimal ('92.75'), never floats.

import { randomUUID } from 'node:crypto';

export const VERSION = '0.1.0';
/** Where requests go unless told otherwise (option, then AGENTBILL_BASE_URL). */
export const DEFAULT_BASE_URL = 'http://127.0.0.1:8080';
/** Milliseconds one HTTP attempt may take. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/**
 * Retries after the first attempt, for 503 and for no answer at all. Every
 * mutating request carries an idempotency key and a retry sends the same
 * one, so a retry is never charged twice.
 */
export const DEFAULT_MAX_RETRIES = 3;
/** Bounds of the wait between attempts (ms; doubled each retry, with jitter). */
export const BACKOFF_MIN_MS = 50;
export const BACKOFF_MAX_MS = 2_000;
/**
 * The fail policies (`onUnavailable`): what a preflight does when the
 * service is still unavailable after the retries. 'deny' throws
 * UnavailableError; 'allow' returns an unchecked approval.
 */
export const ON_UNAVAILABLE = Object.freeze(['deny', 'allow']);
/**
 * Milliseconds between two "budget check skipped" warnings at most, so an
 * outage under load does not flood the log (skippedChecks counts every skip).
 */
export const SKIPPED_WARN_INTERVAL_MS = 60_000;
/** The message of an unchecked approval. */
export const UNCHECKED_MESSAGE = "budget check skipped: AgentBill was unavailable (onUnavailable 'allow')";
/**
 * The largest reply body the client reads, in bytes. A longer reply is
 * abandoned as soon as its bytes pass this bound, with an AgentBillError.
 */
export const RESPONSE_BYTES_MAX = 8 * 1024 * 1024;

// Reply fields that are counts, not amounts: they come back as numbers.
const INTEGER_FIELDS = new Set([
  'open_reservations', 'scanned_commits', 'last_seq', 'as_of_seq', 'v',
  'priority', 'max_concurrent_runs', 'max_concurrent_runs_per_agent',
  'retry_after_ms', 'burst',
  // Priced usage: token counts, and the counts of price list replies.
  'max_output_tokens', 'unpriced_records', 'tokens', 'above_input_tokens', 'partition', 'partitions',
  'input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'cache_write_1h_tokens',
  'reasoning_tokens',
  'models', // a count in price list replies; inside a list it is an array, left as it is
]);

/** The string fields of a record's usage and a preflight's usage estimate. */
export const USAGE_NAMES = Object.freeze(['model', 'provider', 'service_tier']);
/** The token counts of a record's usage (docs/PROTOCOL.md, "Priced usage"). */
export const USAGE_COUNTS = Object.freeze([
  'input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'cache_write_1h_tokens', 'reasoning_tokens',
]);
/** The token counts of a preflight's usage estimate. */
export const ESTIMATE_COUNTS = Object.freeze(['input_tokens', 'max_output_tokens']);

/**
 * Why a preflight can be refused (docs/PROTOCOL.md, "Refusal reasons"), in
 * the order the ledger checks them; no_budget needs no check.
 */
export const REFUSAL_REASONS = Object.freeze([
  'ceiling_exceeded',
  'task_ceiling_exceeded',
  'agent_limit_exceeded',
  'scope_limit_exceeded', // a scope limit of the run's scope; the reply's scope names it
  'concurrency_limit_exceeded', // the customer's or the agent's open runs are at their cap
  'budget_exhausted',
  'no_budget',
  'rate_limited', // checked first: faster than the customer's rate limit; wait retryAfterMs
]);

// Errors.

/** The base class of every AgentBill error: `code` and HTTP `status`. */
export class AgentBillError extends Error {
  constructor(message, { code = 'internal', status = null, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}
/** 400: malformed or out of bounds; nothing changed. */
export class InvalidArgumentError extends AgentBillError {}
/** 401: the API key is missing, unknown or revoked. */
export class AuthenticationError extends AgentBillError {}
/** 403: the key's role or customer does not allow this. */
export class PermissionDeniedError extends AgentBillError {}
/** 404: no such customer, reservation or path. */
export class NotFoundError extends AgentBillError {}
/** 409: an idempotency key reused with a different request, or a reservation already settled. */
export class ConflictError extends AgentBillError {}
/** 503, or no answer at all, after the retries. */
export class UnavailableError extends AgentBillError {}
/** 500: a bug on the server side. */
export class InternalError extends AgentBillError {}
/**
 * 429: the API key sent requests faster than the gateway's per-key rate
 * limit; nothing was done. `retryAfterMs` is the Retry-After header (or
 * null). Not retried by the client.
 */
export class RateLimitedError extends AgentBillError {
  retryAfterMs = null;
}

/** A gated run was refused by its preflight and never started. */
export class RefusedError extends AgentBillError {
  constructor(preflight) {
    super(preflight.message, { code: 'refused', status: 200 });
    this.reason = preflight.reason;
    this.remainingUnits = preflight.remainingUnits;
    this.upgradeUrl = preflight.upgradeUrl;
    this.scope = preflight.scope ?? null; // the scope limit that refused (scope_limit_exceeded)
    this.retryAfterMs = preflight.retryAfterMs ?? null; // rate_limited: wait this long before the next preflight
    this.preflight = preflight;
  }
}

const ERRORS = {
  invalid_argument: InvalidArgumentError,
  unauthenticated: AuthenticationError,
  permission_denied: PermissionDeniedError,
  not_found: NotFoundError,
  conflict: ConflictError,
  unavailable: UnavailableError,
  rate_limited: RateLimitedError,
  internal: InternalError,
};

function errorFor(code, message, status, cause) {
  const Cls = ERRORS[code] ?? AgentBillError;
  return new Cls(message, { code, status, cause });
}

// Amounts.

/** What a gated function returns to report the units its run used. */
export class Usage {
  constructor(units, result) {
    this.units = units;
    this.result = result;
  }
}

/** `return usage(7, answer)`: record 7 units, hand `answer` to the caller. */
export function usage(units, result) {
  return new Usage(units, result);
}

function amount(name, v) {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`${name} must be finite, not ${v}`);
    if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
      throw new RangeError(`${name} ${v} is beyond 2^53 and not exact as a number: pass it as a string`);
    }
    return v; // JSON.stringify writes the shortest text that reads back as v
  }
  throw new TypeError(`${name} must be a number, a string holding a decimal, or a bigint, not ${typeof v}`);
}

// parseExact parses a reply keeping every number as its text, so amounts
// stay exact; counts (INTEGER_FIELDS) are turned back into numbers.
export function parseExact(text) {
  let out = '';
  let last = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34) { // a string: skip it whole
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 92) i += 2;
        else if (d === 34) { i++; break; } else i++;
      }
    } else if (c === 45 || (c >= 48 && c <= 57)) { // a number
      let j = i + 1;
      while (j < n && /[0-9eE+.-]/.test(text[j])) j++;
      out += text.slice(last, i) + '"' + text.slice(i, j) + '"';
      last = j;
      i = j;
    } else {
      i++;
    }
  }
  return JSON.parse(out + text.slice(last), (k, v) => (
    INTEGER_FIELDS.has(k) && typeof v === 'string' ? Number(v) : v));
}

function ttlText(ttl) {
  if (ttl === undefined || ttl === null || typeof ttl === 'string') return ttl ?? undefined;
  if (typeof ttl === 'number' && Number.isFinite(ttl)) return `${Math.round(ttl)}ms`;
  throw new TypeError("ttl must be a Go duration string like '15m' or milliseconds");
}

function compact(o) {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));
}

function opt(name, v, f) {
  return v === undefined || v === null ? undefined : f(name, v);
}

// timeText is a time sent to the gateway: an RFC 3339 string as given, or
// a Date in UTC.
function timeText(name, v) {
  if (typeof v === 'string') return v;
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new RangeError(`${name} is an invalid Date`);
    return v.toISOString();
  }
  throw new TypeError(`${name} must be an RFC 3339 string or a Date, not ${typeof v}`);
}

// integer is a count sent to the gateway (not an amount).
function integer(name, v) {
  if (!Number.isSafeInteger(v)) throw new TypeError(`${name} must be an integer, not ${typeof v === 'number' ? v : typeof v}`);
  return v;
}

// scopeOf is a run's scope: { dimension: value }, e.g. { team: 'research' }.
// The server checks the names and the bound (at most 4 dimensions).
function scopeOf(name, v) {
  if (typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${name} must be an object of dimension to value, like { team: 'research' }`);
  return { ...v };
}

// scopeLimits are a budget's scope limits: [{ dimension, value, limit, period? }].
function scopeLimits(name, v) {
  if (!Array.isArray(v)) throw new TypeError(`${name} must be an array of { dimension, value, limit, period }`);
  return v.map((l) => {
    if (typeof l !== 'object' || l === null) throw new TypeError(`${name} items must be objects of { dimension, value, limit, period }`);
    return compact({ dimension: l.dimension, value: l.value, limit: amount(`${name} limit`, l.limit), period: l.period });
  });
}

// rateLimitOf is a budget's rate limit: { perSecond, burst? }. The server
// checks the bounds.
function rateLimitOf(name, v) {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TypeError(`${name} must be an object of { perSecond, burst }`);
  return compact({ per_second: amount(`${name} perSecond`, v.perSecond), burst: opt(`${name} burst`, v.burst, integer) });
}

// rollover is a rollover policy: 'none', 'all', or a cap (an amount).
function rollover(name, v) {
  return v === 'none' || v === 'all' ? v : amount(name, v);
}

// Priced usage.

const snake = (k) => k.replace(/[A-Z0-9]+/g, (c) => `_${c.toLowerCase()}`);

// tokenObject is a usage or usage estimate as sent: an object whose keys
// are the wire's (input_tokens, as the usage normalizers write them) or
// their camelCase (inputTokens). Names are strings, counts integers (never
// a fraction or a string); an undefined or null is left out, never sent as
// 0. The server checks the bounds and that the counts agree.
function tokenObject(name, v, counts) {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new TypeError(`${name} must be an object like { model, ${counts.map((c) => camelOf(c)).join(', ')} }`);
  }
  const known = [...USAGE_NAMES, ...counts];
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    const wire = known.includes(k) ? k : snake(k);
    if (!known.includes(wire)) throw new TypeError(`${name}: unknown key ${k} (known: ${known.map(camelOf).join(', ')})`);
    if (x === undefined || x === null) continue;
    if (wire in out) throw new TypeError(`${name}: ${k} is given twice (as ${wire} and ${camelOf(wire)})`);
    if (counts.includes(wire) && !Number.isSafeInteger(x)) {
      throw new TypeError(`${name}.${k} must be an integer (a token count), not ${typeof x === 'number' ? x : typeof x}`);
    }
    if (USAGE_NAMES.includes(wire) && typeof x !== 'string') throw new TypeError(`${name}.${k} must be a string, not ${typeof x}`);
    out[wire] = x;
  }
  if (!out.model) throw new TypeError(`${name}.model is required`);
  return out;
}

function camelOf(k) {
  return k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

const usageOf = (name, v) => tokenObject(name, v, USAGE_COUNTS);
const usageEstimateOf = (name, v) => tokenObject(name, v, ESTIMATE_COUNTS);

// priceListText is a price list as sent: a JSON string as it is, or an
// object whose decimals are strings ('0.3'), integers or bigints. A number
// with a fractional part is refused: 0.1 as a JavaScript number is not
// 0.1, and a rate must be exact.
function priceListText(list) {
  if (typeof list === 'string') return list;
  if (typeof list !== 'object' || list === null || Array.isArray(list)) {
    throw new TypeError('a price list must be an object or a JSON string');
  }
  return JSON.stringify(list, function exact(k, v) {
    if (typeof v === 'bigint') return v.toString();
    if (typeof v !== 'number') return v;
    const where = k === '' ? 'price list' : `price list ${k}`;
    if (!Number.isSafeInteger(v)) {
      throw new TypeError(`${where}: ${v} is not an exact integer; send decimals as strings ('0.3'), never as fractional numbers`);
    }
    return v;
  });
}

// decimalText is an exact decimal (a reply's text) as the ledger writes it
// (events.Units.String): reduced, never in exponent form, "0" for zero.
export function decimalText(v) {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(String(v).trim());
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new TypeError(`not a decimal: ${JSON.stringify(v)}`);
  const [, sign, whole, frac = '', exp = '0'] = m;
  let digits = whole + frac;
  let point = whole.length + Number(exp); // digits before the point
  if (point < 0) {
    digits = '0'.repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits += '0'.repeat(point - digits.length);
  const int = digits.slice(0, point).replace(/^0+/, '') || '0';
  const fr = digits.slice(point).replace(/0+$/, '');
  const text = fr ? `${int}.${fr}` : int;
  return text === '0' ? '0' : `${sign === '-' ? '-' : ''}${text}`;
}

/** A count with comma separators, as the ledger writes it: 1,200. */
function thousands(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * How usage was priced (RecordResult.pricing) or an estimate
 * (PreflightResult.estimatePricing): the price list and version used, the
 * kinds charged at their rates per million tokens, the request fee and the
 * total (exact decimal strings). aboveInputTokens is the long-context tier
 * the prompt crossed (null: none).
 */
export class Pricing {
  constructor(d) {
    this.list = d.list ?? '';
    this.version = d.version ?? '';
    this.model = d.model ?? '';
    this.provider = d.provider || null;
    this.serviceTier = d.service_tier || null;
    this.aboveInputTokens = d.above_input_tokens || null;
    this.lines = (d.lines ?? []).map((l) => ({ kind: l.kind, tokens: l.tokens, rate: l.rate }));
    this.requestFee = d.request_fee ?? null;
    this.total = d.total ?? '0';
  }

  /**
   * The charge as `agentbill audit` writes it (events.Pricing.Describe):
   * "1,200 input x 3/M + 400 output x 15/M = 0.0096 (m, list default v1)".
   */
  describe() {
    const parts = this.lines.map((l) => `${thousands(l.tokens)} ${l.kind.replaceAll('_', ' ')} x ${decimalText(l.rate)}/M`);
    if (this.requestFee !== null && decimalText(this.requestFee) !== '0') parts.push(`request fee ${decimalText(this.requestFee)}`);
    if (parts.length === 0) parts.push('0 tokens');
    const how = [];
    if (this.aboveInputTokens) how.push(`long-context rates above ${thousands(this.aboveInputTokens)} input tokens`);
    if (this.serviceTier) how.push(`service tier ${this.serviceTier}`);
    how.push(`${this.model}, list ${this.list} ${this.version}`);
    return `${parts.join(' + ')} = ${decimalText(this.total)} (${how.join('; ')})`;
  }
}

const pricingOf = (d) => (d ? new Pricing(d) : null);

const pricesResult = (d) => ({
  list: d.list,
  version: d.version,
  digest: d.digest,
  models: d.models,
  changed: d.changed === true,
  partition: d.partition,
  partitions: d.partitions,
  raw: d,
});

const priceListsResult = (d) => ({
  lists: (d.lists ?? []).map((l) => ({
    list: l.list, version: l.version, digest: l.digest, models: l.models, setAt: l.set_at ?? null, prices: l.prices ?? null,
  })),
  raw: d,
});

// Replies, in JavaScript naming.

// Amounts of replies are exact decimal strings; remaining amounts are
// signed ('-2.5' for a customer in its overdraft).
const preflightResult = (d) => ({
  approved: d.approved === true,
  reason: d.reason ?? null,
  message: d.message ?? '',
  reservationId: d.reservation_id ?? null,
  reservedUnits: d.reserved_units ?? null,
  remainingUnits: d.remaining_units ?? null,
  expiresAt: d.expires_at ?? null,
  upgradeUrl: d.upgrade_url ?? null,
  partial: d.partial === true,
  overdraft: d.overdraft === true,
  scope: d.scope ? { dimension: d.scope.dimension, value: d.scope.value } : null,
  retryAfterMs: d.retry_after_ms ?? null,
  maxOutputTokens: d.max_output_tokens ?? null,
  estimatePricing: pricingOf(d.estimate_pricing),
  unchecked: false,
  raw: d,
});

const recordResult = (d) => ({
  status: d.status,
  eventId: d.event_id ?? null,
  reservationId: d.reservation_id ?? null,
  chargedUnits: d.charged_units ?? null,
  releasedUnits: d.released_units ?? null,
  overageUnits: d.overage_units ?? null,
  remainingUnits: d.remaining_units ?? null,
  exhausted: d.exhausted === true,
  fundedBy: (d.funded_by ?? []).map((g) => ({ grantId: g.grant_id, units: g.units })),
  pricing: pricingOf(d.pricing),
  unpriced: d.unpriced || null,
  raw: d,
});

const releaseResult = (d) => ({
  status: d.status,
  releasedUnits: d.released_units ?? null,
  remainingUnits: d.remaining_units ?? null,
  raw: d,
});

const budgetResult = (d) => ({
  customerId: d.customer_id,
  limitUnits: d.limit_units,
  topUpUnits: d.top_up_units,
  usedUnits: d.used_units,
  reservedUnits: d.reserved_units,
  remainingUnits: d.remaining_units,
  isBlocked: d.is_blocked === true,
  period: d.period,
  periodEnd: d.period_end ?? null,
  grantsRemainingUnits: d.grants_remaining_units ?? '0',
  overdraftUnits: d.overdraft_units ?? null,
  raw: d,
});

const grantResult = (d) => ({
  grantId: d.grant_id,
  units: d.units,
  priority: d.priority,
  source: d.source,
  effectiveAt: d.effective_at ?? null,
  expiresAt: d.expires_at ?? null,
  remainingUnits: d.remaining_units,
  raw: d,
});

const grantStatus = (g) => ({
  grantId: g.grant_id,
  units: g.units,
  remaining: g.remaining,
  priority: g.priority,
  source: g.source,
  effectiveAt: g.effective_at ?? null,
  expiresAt: g.expires_at ?? null,
});

const scopeStatus = (s) => ({
  dimension: s.dimension,
  value: s.value,
  limit: s.limit,
  period: s.period,
  periodStart: s.period_start ?? null,
  used: s.used,
  reserved: s.reserved,
  remaining: s.remaining,
});

const statusResult = (d) => ({
  customerId: d.customer_id,
  limit: d.limit,
  topUps: d.top_ups,
  used: d.used,
  reserved: d.reserved,
  remaining: d.remaining,
  period: d.period,
  periodStart: d.period_start ?? null,
  periodEnd: d.period_end ?? null,
  openReservations: d.open_reservations ?? 0,
  exhausted: d.exhausted === true,
  agents: Object.fromEntries(Object.entries(d.agents ?? {}).map(([name, a]) => [
    name, { used: a.used, reserved: a.reserved, limit: a.limit ?? null },
  ])),
  grants: (d.grants ?? []).map(grantStatus),
  grantsRemaining: d.grants_remaining ?? '0',
  grantsUsed: d.grants_used ?? '0',
  scopes: (d.scopes ?? []).map(scopeStatus),
  overdraft: d.overdraft ?? null,
  rollover: d.rollover || null,
  maxConcurrentRuns: d.max_concurrent_runs ?? null,
  maxConcurrentRunsPerAgent: d.max_concurrent_runs_per_agent ?? null,
  rateLimit: d.rate_limit ? { perSecond: d.rate_limit.per_second, burst: d.rate_limit.burst ?? 0 } : null,
  priceList: d.price_list || null,
  unpricedRecords: d.unpriced_records ?? 0,
  raw: d,
});

// readBounded reads res's body as UTF-8 text, counting bytes as they
// arrive and giving up once more than RESPONSE_BYTES_MAX have come.
async function readBounded(res) {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > RESPONSE_BYTES_MAX) {
      reader.cancel().catch(() => {});
      throw new AgentBillError(`reply larger than ${RESPONSE_BYTES_MAX} bytes`, { status: res.status });
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks, size));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A client of an AgentBill HTTP gateway. Safe to share. A customerId left
 * out is the key's own customer if the key is bound to one, else "default".
 */
export class AgentBillClient {
  #warnedAt;

  constructor({
    apiKey, baseUrl, timeoutMs = DEFAULT_TIMEOUT_MS, maxRetries = DEFAULT_MAX_RETRIES, fetch: fetchImpl,
    onUnavailable = 'deny', logger = console,
  } = {}) {
    if (!ON_UNAVAILABLE.includes(onUnavailable)) {
      throw new TypeError(`onUnavailable must be 'deny' or 'allow', got ${JSON.stringify(onUnavailable)}`);
    }
    this.onUnavailable = onUnavailable;
    this.logger = logger;
    /** Preflights approved unchecked under onUnavailable 'allow'. */
    this.skippedChecks = 0;
    this.#warnedAt = null; // Date.now() of the last warning
    this.apiKey = apiKey ?? process.env.AGENTBILL_API_KEY;
    if (!this.apiKey) throw new TypeError('an API key is required: pass apiKey or set AGENTBILL_API_KEY');
    this.baseUrl = (baseUrl ?? process.env.AGENTBILL_BASE_URL ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.timeoutMs = timeoutMs;
    this.maxRetries = Math.max(0, Math.floor(maxRetries));
    this.fetch = fetchImpl ?? globalThis.fetch;
  }

  /**
   * Asks to reserve estimatedUnits (default 1). A refusal is not an error:
   * check `approved`. `scope` ({ team: 'research' }) must fit every scope
   * limit of the values it names; with `minUnits`, an estimate that does
   * not fit holds the most that does (`partial` is then true).
   *
   * `usageEstimate` ({ model, inputTokens, maxOutputTokens, provider?,
   * serviceTier? }) asks the ledger to price the hold from the customer's
   * price list at its worst case, instead of estimatedUnits; the approval
   * then says `maxOutputTokens` (the output tokens the hold covers: set
   * the model call's own cap to it) and `estimatePricing`. A model the
   * list does not price is InvalidArgumentError, unless estimatedUnits is
   * given too (it is then held instead).
   */
  async preflight({
    agentId, customerId, estimatedUnits, ceiling, taskRef, taskCeiling, ttl, idempotencyKey, metadata, scope, minUnits,
    usageEstimate,
  } = {}) {
    const body = compact({
      agent_id: agentId,
      customer_id: customerId,
      estimated_units: opt('estimatedUnits', estimatedUnits, amount),
      ceiling: opt('ceiling', ceiling, amount),
      task_ref: taskRef,
      task_ceiling: opt('taskCeiling', taskCeiling, amount),
      ttl: ttlText(ttl),
      idempotency_key: idempotencyKey ?? randomUUID(),
      metadata,
      scope: opt('scope', scope, scopeOf),
      min_units: opt('minUnits', minUnits, amount),
      usage_estimate: opt('usageEstimate', usageEstimate, usageEstimateOf),
    });
    try {
      return preflightResult(await this.request('POST', '/v1/preflight', body));
    } catch (err) {
      if (this.onUnavailable !== 'allow' || !(err instanceof UnavailableError)) throw err;
      return this.#unchecked(err);
    }
  }

  // #unchecked is the approval of a check skipped under onUnavailable 'allow'.
  #unchecked(err) {
    this.skippedChecks++;
    const now = Date.now();
    if (this.#warnedAt === null || now - this.#warnedAt >= SKIPPED_WARN_INTERVAL_MS) {
      this.#warnedAt = now;
      this.logger.warn(`agentbill: budget check skipped, service unavailable (onUnavailable 'allow'; ${this.skippedChecks} skipped so far): ${err.message}`);
    }
    return {
      approved: true, reason: null, message: UNCHECKED_MESSAGE, reservationId: null, reservedUnits: null,
      remainingUnits: null, expiresAt: null, upgradeUrl: null, partial: false, overdraft: false, scope: null,
      retryAfterMs: null, maxOutputTokens: null, estimatePricing: null, unchecked: true, raw: {},
    };
  }

  /**
   * Records what a run used, settling reservationId (or the agent's oldest
   * hold). `scope` is the run's scope when it settles no hold (a hold keeps
   * its preflight's). `fundedBy` says what credit grants paid.
   *
   * `usage` (the TokenUsage shape of agentbill/usage: { model,
   * input_tokens, output_tokens, ... }, or the same keys in camelCase) is
   * the model usage to charge at the customer's price list, instead of
   * units: `pricing` then says how it was priced. Usage the list cannot
   * price is charged units if given, else the hold, and `unpriced` says
   * why; never a silent 0.
   */
  async record({ agentId, units, customerId, reservationId, success = true, taskRef, idempotencyKey, metadata, scope, usage: used } = {}) {
    const usageBody = opt('usage', used, usageOf);
    if ((units === undefined || units === null) && success !== false && usageBody === undefined) {
      throw new TypeError('units is required, unless usage is given (the ledger prices it) or success is false');
    }
    const body = compact({
      customer_id: customerId,
      event_type: agentId,
      // A failed run releases its hold, and usage is priced by the ledger:
      // then units may be left out.
      units: opt('units', units, amount),
      usage: usageBody,
      reservation_id: reservationId,
      success: Boolean(success),
      task_ref: taskRef,
      idempotency_key: idempotencyKey ?? randomUUID(),
      metadata,
      scope: opt('scope', scope, scopeOf),
    });
    return recordResult(await this.request('POST', '/v1/events', body));
  }

  /** Gives a reservation's hold back without charging. */
  async release({ reservationId, customerId, idempotencyKey } = {}) {
    const body = compact({ customer_id: customerId, reservation_id: reservationId, idempotency_key: idempotencyKey ?? randomUUID() });
    return releaseResult(await this.request('POST', '/v1/release', body));
  }

  /** Pushes a reservation's deadline to now + ttl ('1h', or milliseconds). */
  async extend({ reservationId, ttl, customerId, idempotencyKey } = {}) {
    const body = compact({ customer_id: customerId, reservation_id: reservationId, ttl: ttlText(ttl), idempotency_key: idempotencyKey ?? randomUUID() });
    const d = await this.request('POST', '/v1/extend', body);
    return { reservationId: d.reservation_id, expiresAt: d.expires_at, raw: d };
  }

  /** The customer's full position. */
  async status(customerId) {
    const id = typeof customerId === 'object' && customerId !== null ? customerId.customerId : customerId;
    if (!id) throw new TypeError('customerId is required');
    return statusResult(await this.request('GET', `/v1/customers/${encodeURIComponent(id)}`));
  }

  /** The customer's budget in the REST API's shape. */
  async budget({ customerId } = {}) {
    const q = customerId ? `?customer_id=${encodeURIComponent(customerId)}` : '';
    return budgetResult(await this.request('GET', `/v1/budget${q}`));
  }

  /** The customer's newest events from the log (auditor or admin keys). */
  async events(customerId, { limit } = {}) {
    if (!customerId) throw new TypeError('customerId is required');
    const q = limit === undefined ? '' : `?limit=${encodeURIComponent(String(limit))}`;
    const d = await this.request('GET', `/v1/customers/${encodeURIComponent(customerId)}/events${q}`);
    return { customerId: d.customer_id, events: d.events ?? [], scannedCommits: d.scanned_commits, lastSeq: d.last_seq, truncated: d.truncated === true, raw: d };
  }

  /**
   * Sets a customer's budget per period (day, week, month, none), replacing
   * the whole budget. Admin keys only. `rollover` ('none', 'all' or a cap),
   * `overdraft`, `scopeLimits` ([{ dimension, value, limit, period? }]),
   * `maxConcurrentRuns` and `maxConcurrentRunsPerAgent` (0: no cap),
   * `rateLimit` ({ perSecond, burst }: the customer's own preflight rate;
   * perSecond 0 without burst: no limit; left out: the server's default),
   * `priceList` (the price list the customer's usage is priced with; it
   * must be set already; default: the list named "default").
   */
  async setBudget({
    customerId, limitUnits, period, thresholds, upgradeUrl, agentLimits, idempotencyKey,
    rollover: rolloverPolicy, overdraft, scopeLimits: limits, maxConcurrentRuns, maxConcurrentRunsPerAgent,
    rateLimit, priceList,
  } = {}) {
    const body = compact({
      customer_id: customerId,
      limit_units: amount('limitUnits', limitUnits),
      period,
      thresholds: thresholds?.map((t) => amount('thresholds', t)),
      upgrade_url: upgradeUrl,
      agent_limits: agentLimits && Object.fromEntries(Object.entries(agentLimits).map(([a, u]) => [a, amount('agentLimits', u)])),
      idempotency_key: idempotencyKey ?? randomUUID(),
      rollover: opt('rollover', rolloverPolicy, rollover),
      overdraft: opt('overdraft', overdraft, amount),
      scope_limits: opt('scopeLimits', limits, scopeLimits),
      // 0 is no cap, as is leaving it out.
      max_concurrent_runs: opt('maxConcurrentRuns', maxConcurrentRuns, integer) || undefined,
      max_concurrent_runs_per_agent: opt('maxConcurrentRunsPerAgent', maxConcurrentRunsPerAgent, integer) || undefined,
      rate_limit: opt('rateLimit', rateLimit, rateLimitOf),
      price_list: priceList,
    });
    return budgetResult(await this.request('PUT', '/v1/budget', body));
  }

  /**
   * Sets a named, versioned price list (admin, a key bound to no
   * customer): an object (decimals as strings, integers or bigints; a
   * fractional number is refused: send '0.3', not 0.3) or its JSON text.
   * A version names one set of prices forever: setting it again with the
   * same prices changes nothing (`changed` false); with other prices it is
   * ConflictError. Every problem of a list is reported at once
   * (InvalidArgumentError).
   */
  async setPrices(list) {
    return pricesResult(await this.request('POST', '/v1/prices', priceListText(list)));
  }

  /**
   * The price lists set (admin, a key bound to no customer): each one's
   * list, version, digest, models (a count) and setAt; with `list`, only
   * that list, with its `prices` (amounts as exact strings; NotFoundError
   * if it is not set).
   */
  async priceLists({ list } = {}) {
    const q = list === undefined || list === null ? '' : `?list=${encodeURIComponent(list)}`;
    return priceListsResult(await this.request('GET', `/v1/prices${q}`));
  }

  /** Adds units to the customer's current period. Admin keys only. */
  async topUp({ customerId, units, note, idempotencyKey } = {}) {
    const body = compact({ customer_id: customerId, units: amount('units', units), note, idempotency_key: idempotencyKey ?? randomUUID() });
    return budgetResult(await this.request('POST', '/v1/topup', body));
  }

  /**
   * Grants the customer credits: used after the period's allowance, kept
   * across periods until used up or expired (topUp raises this period
   * only). Admin keys only. expiresAt (default never) and effectiveAt
   * (default now) are Dates or RFC 3339 strings; grants are drawn by
   * priority (0..1000000, lower first, default 100), then earliest expiry.
   */
  async grant({ customerId, units, expiresAt, effectiveAt, priority, source, note, idempotencyKey } = {}) {
    const body = compact({
      customer_id: customerId,
      units: amount('units', units),
      expires_at: opt('expiresAt', expiresAt, timeText),
      effective_at: opt('effectiveAt', effectiveAt, timeText),
      priority: opt('priority', priority, integer),
      source,
      note,
      idempotency_key: idempotencyKey ?? randomUUID(),
    });
    return grantResult(await this.request('POST', '/v1/grants', body));
  }

  /**
   * Runs fn only if its preflight is approved, then records what it used.
   * fn gets `{ reservationId, preflight }` (on a partial approval,
   * preflight.reservedUnits is what it may spend). The units recorded are
   * those of a returned Usage (`return usage(7, answer)`; the caller gets
   * answer), else `options.unitsFrom(result)`, else what the preflight
   * held: the estimate, or less on a partial approval. `scope` and
   * `minUnits` are the preflight's; the hold keeps the scope. If fn
   * throws, the hold is released and the error rethrown. A refusal throws
   * RefusedError and fn never runs. When the service is unavailable the
   * client's onUnavailable decides: 'deny' throws UnavailableError and fn
   * never runs; 'allow' runs fn unchecked and records nothing (there is no
   * reservation, and the service is down).
   */
  async gate(options, fn) {
    const { agentId, customerId, estimatedUnits, taskRef, ttl, unitsFrom, scope, minUnits } = options ?? {};
    const check = await this.preflight({ agentId, customerId, estimatedUnits, taskRef, ttl, scope, minUnits });
    if (!check.approved) throw new RefusedError(check);
    let out;
    try {
      out = await fn({ reservationId: check.reservationId, preflight: check });
    } catch (err) {
      if (check.unchecked) throw err; // no hold to release
      try {
        await this.release({ reservationId: check.reservationId, customerId });
      } catch (relErr) {
        // The hold still expires by its TTL; keep the run's own error.
        if (err && typeof err === 'object') err.agentbillReleaseError = relErr;
      }
      throw err;
    }
    let units;
    let result;
    if (out instanceof Usage) {
      ({ units, result } = out);
    } else if (unitsFrom) {
      units = unitsFrom(out);
      result = out;
    } else if (check.partial) {
      units = check.reservedUnits; // the hold, not the estimate that did not fit
      result = out;
    } else {
      units = estimatedUnits ?? 1;
      result = out;
    }
    if (check.unchecked) return result; // nothing to settle; skippedChecks counts the run
    try {
      await this.record({ agentId, units, customerId, reservationId: check.reservationId, taskRef });
    } catch (err) {
      err.result = result; // the run happened; do not lose its result
      throw err;
    }
    return result;
  }

  /** Sends one request, retrying 503 and no answer with the same body. */
  async request(method, path, body) {
    const headers = { Authorization: `Bearer ${this.apiKey}`, Accept: 'application/json', 'User-Agent': `agentbill-node/${VERSION}` };
    // A string body is JSON text already (a price list given as text).
    const data = body === undefined || typeof body === 'string' ? body : JSON.stringify(body);
    if (data !== undefined) headers['Content-Type'] = 'application/json';
    let backoff = BACKOFF_MIN_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(method, this.baseUrl + path, headers, data);
      } catch (err) {
        if (!(err instanceof UnavailableError) || attempt >= this.maxRetries) throw err;
      }
      await sleep(backoff * (0.5 + Math.random() / 2));
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }

  async #once(method, url, headers, data) {
    let res;
    let text;
    try {
      res = await this.fetch(url, { method, headers, body: data, signal: AbortSignal.timeout(this.timeoutMs) });
      text = await readBounded(res);
    } catch (err) {
      if (err instanceof AgentBillError) throw err;
      throw new UnavailableError(`no answer from ${this.baseUrl}: ${err?.cause?.code ?? err?.message ?? err}`, { code: 'unavailable', cause: err });
    }
    let parsed;
    try {
      parsed = parseExact(text);
    } catch {
      parsed = undefined;
    }
    if (res.ok) {
      if (parsed === null || typeof parsed !== 'object') throw new AgentBillError('malformed reply: not a JSON object', { status: res.status });
      return parsed;
    }
    const e = parsed?.error;
    if (e && typeof e.code === 'string') {
      const err = errorFor(e.code, String(e.message ?? ''), res.status);
      const secs = res.headers.get('retry-after');
      if (err instanceof RateLimitedError && /^[0-9]+$/.test(secs ?? '')) err.retryAfterMs = Number(secs) * 1000;
      throw err;
    }
    // Not the gateway's JSON (a proxy's page, say): classify by status.
    const code = [502, 503, 504].includes(res.status) ? 'unavailable' : 'internal';
    throw errorFor(code, `HTTP ${res.status} from the server`, res.status);
  }
}

export {
  verifyWebhook,
  signWebhook,
  WebhookVerificationError,
  WEBHOOK_SECRET_PREFIX,
  WEBHOOK_TOLERANCE_MS,
} from './webhooks.js';

export default AgentBillClient;
