// The budget around one model call, shared by every integration (wrap,
// the AI SDK middleware, the OpenAI Agents hooks): a preflight holds the
// call's estimate before it goes out, and the hold is then settled exactly
// once, by a record of the usage the provider reported or by a release.

import { AgentBillClient, RefusedError } from './index.js';
import { Estimator, PRICINGS, PRICING_LIST, PRICING_TOKENS, USAGE_MISSING, recordFields } from './usage.js';

/** The longest provider response id used as a record's idempotency key (docs/PROTOCOL.md, IdempotencyKeyBytesMax). */
export const IDEMPOTENCY_KEY_BYTES_MAX = 128;

// keyOf is the record's idempotency key: the provider's response id, so a
// retried record of one answer is never charged twice; undefined (the
// client makes one up) when there is no usable id.
function keyOf(responseId) {
  if (typeof responseId !== 'string' || responseId === '') return undefined;
  return Buffer.byteLength(responseId) <= IDEMPOTENCY_KEY_BYTES_MAX ? responseId : undefined;
}

function compact(o) {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));
}

/**
 * Holds and settles budget for the calls of one job. Options: `agentbill`
 * (an AgentBillClient; or apiKey, baseUrl, onUnavailable to build one),
 * `agentId` (required), `customerId`, `taskRef`, `taskCeiling`, `ttl`,
 * `scope`, `estimate` (units, or (ctx) => units), `pricing`, `logger`
 * (default the client's). When AgentBill is unavailable the client's
 * onUnavailable decides: 'deny' (default) throws UnavailableError, 'allow'
 * lets the call go out unchecked.
 *
 * `pricing` is how a call is charged: 'tokens' (default) its token total
 * as units; 'list' the list price of the customer's price list, computed
 * by the ledger. A call is then preflighted with a usage estimate (its
 * model, its prompt, its max output tokens; see Estimator.usageEstimate)
 * unless `estimate` gives units, and recorded with the usage the provider
 * reported and no units. A call whose usage is missing is charged its
 * hold, never 0. A model the list does not price is refused by the
 * preflight (InvalidArgumentError, the call never goes out) unless
 * `estimate` holds units; its record is then charged the hold, unpriced.
 */
export class Meter {
  constructor({
    agentbill, apiKey, baseUrl, onUnavailable, agentId, customerId, taskRef, taskCeiling, ttl, scope, estimate, logger,
    pricing = PRICING_TOKENS,
  } = {}) {
    if (!agentId) throw new TypeError('agentId is required');
    if (!PRICINGS.includes(pricing)) throw new TypeError(`pricing must be one of ${PRICINGS.map((p) => `'${p}'`).join(', ')}, got ${JSON.stringify(pricing)}`);
    if (estimate !== undefined && typeof estimate !== 'function' && !['number', 'string', 'bigint'].includes(typeof estimate)) {
      throw new TypeError('estimate must be units (a number, decimal string or bigint) or a function (ctx) => units');
    }
    this.client = agentbill ?? new AgentBillClient({ apiKey, baseUrl, onUnavailable, logger });
    this.agentId = agentId;
    this.customerId = customerId;
    this.taskRef = taskRef;
    this.taskCeiling = taskCeiling;
    this.ttl = ttl;
    this.scope = scope;
    this.estimateOption = estimate;
    this.pricing = pricing;
    this.logger = logger ?? this.client.logger ?? console;
    this.estimator = new Estimator();
  }

  /**
   * Preflights one call and returns its Hold; a refusal throws
   * RefusedError (the call must not go out). `call` describes it:
   * { provider, operation, model, maxOutputTokens, promptText, params }.
   */
  async hold(call) {
    const priced = this.pricing === PRICING_LIST && this.estimateOption === undefined;
    const usageEstimate = priced ? this.estimator.usageEstimate(call) : undefined;
    const estimate = priced ? undefined : await this.#units(call);
    const check = await this.client.preflight({
      agentId: this.agentId, customerId: this.customerId, estimatedUnits: estimate, usageEstimate, taskRef: this.taskRef,
      taskCeiling: this.taskCeiling, ttl: this.ttl, scope: this.scope,
      metadata: compact({ provider: call.provider, operation: call.operation, model: call.model }),
    });
    if (!check.approved) throw new RefusedError(check);
    // What a call with missing usage is charged: what the preflight held.
    return new Hold(this, call, check, estimate ?? check.reservedUnits);
  }

  // #units is the units a call holds: the estimate option, else the job's running estimate.
  async #units(call) {
    const defaultEstimate = this.estimator.estimate(call);
    return typeof this.estimateOption === 'function'
      ? this.estimateOption({ ...call, defaultEstimate })
      : this.estimateOption ?? defaultEstimate;
  }

  /**
   * Holds for `call`, then sends it: `await send()`. If send throws (no
   * answer: nothing to charge), the hold is released and the error
   * rethrown. Returns { hold, res }; settling the hold is the caller's.
   */
  async send(call, send) {
    const hold = await this.hold(call);
    try {
      return { hold, res: await send() };
    } catch (err) {
      await hold.release();
      throw err;
    }
  }
}

/** One call's hold: settle() records the usage, release() gives it back; the first of them wins. */
export class Hold {
  #done = false;

  constructor(meter, call, check, estimate) {
    this.meter = meter;
    this.call = call;
    this.check = check;
    this.estimate = estimate;
  }

  get reservationId() {
    return this.check.reservationId;
  }

  /** Whether settle() or release() already ran. */
  get done() {
    return this.#done;
  }

  /**
   * Records the usage the provider reported (null: none) and settles the
   * hold: its token total as units, or with pricing 'list' the usage itself
   * (recordFields). Usage that was not reported is recorded as the hold's
   * estimate, with metadata usage "missing", never as 0. A failed record is logged,
   * not thrown: the call's answer is already in hand, and the hold stays
   * until it expires. Returns the record's result, or null.
   */
  async settle({ usage = null, responseId, model } = {}) {
    if (this.#done) return null;
    this.#done = true;
    const m = this.meter;
    m.estimator.observe(usage);
    if (this.check.unchecked) return null; // onUnavailable 'allow': no hold, nothing to settle
    const fields = recordFields(usage, this.estimate, m.pricing);
    const missing = fields.metadataUsage === USAGE_MISSING;
    const metadata = compact({
      provider: this.call.provider,
      operation: this.call.operation,
      model: usage?.model ?? model ?? this.call.model,
      usage: fields.metadataUsage,
      usage_reported: missing ? usage : undefined, // what little was reported, for the audit
    });
    try {
      return await m.client.record({
        agentId: m.agentId, customerId: m.customerId, units: fields.units, usage: fields.usage, reservationId: this.reservationId,
        taskRef: m.taskRef, idempotencyKey: keyOf(responseId), metadata,
      });
    } catch (err) {
      m.logger.warn(`agentbill: recording ${this.call.operation} failed; the answer is returned and hold ${this.reservationId} stays until it expires: ${err.message}`);
      return null;
    }
  }

  /** Gives the hold back (the call failed or was aborted before its end). Errors are logged: the hold then expires. */
  async release() {
    if (this.#done) return null;
    this.#done = true;
    if (this.check.unchecked) return null;
    try {
      return await this.meter.client.release({ reservationId: this.reservationId, customerId: this.meter.customerId });
    } catch (err) {
      this.meter.logger.warn(`agentbill: releasing hold ${this.reservationId} failed; it stays until it expires: ${err.message}`);
      return null;
    }
  }
}

/**
 * Passes the items of `source` (an async iterable) through, showing each
 * to observe(item). When the iteration ends, onEnd() runs; when it throws or
 * the consumer stops early, onAbort() runs; then the error (if any) goes on.
 */
export async function* metered(source, observe, { onEnd, onAbort }) {
  let ended = false;
  try {
    for await (const item of source) {
      observe(item);
      yield item;
    }
    ended = true;
    await onEnd();
  } finally {
    if (!ended) await onAbort();
  }
}
