// AgentBill for LangChain.js: a callback handler that puts a budget check
// around every run it is attached to. Import it as 'agentbill/langchain';
// it needs @langchain/core (a peer dependency the core SDK does not need).
//
//   before the run starts   preflight; a refusal throws RefusedError and
//                           the model is never called
//   when the run ends       record the token usage the model(s) reported:
//                           its token total (input + output), or what your
//                           unitsFromUsage makes of it; usage no model
//                           reported is recorded as the hold, marked
//                           metadata usage "missing", never as 0
//   when the run fails      release the reservation
//
// Without estimatedUnits, a run holds the handler's running estimate (the
// rule of agentbill/wrap): the mean of its measured runs, capped by their
// mean prompt plus the call's max output tokens.
//
// A "run" is the outermost run the handler sees: a chat model or LLM
// invoked alone, or a chain (or agent) with every model call inside it
// charged to the chain's one reservation.

import { BaseCallbackHandler } from '@langchain/core/callbacks/base';

import { AgentBillClient, RefusedError } from './index.js';
import { Estimator, USAGE_MISSING, addUsage, fromLangChain, unitsOf } from './usage.js';

/** Bounds the runs tracked at once by one handler (runs in flight, nested runs included). */
export const RUNS_MAX = 10_000;

/**
 * Sums the token usage a model run reported: the messages' usage_metadata
 * (every current chat model), or else llmOutput.tokenUsage (older models).
 * `reported` is false when the model reported nothing.
 */
export function tokenUsageOf(output) {
  const u = { inputTokens: 0, outputTokens: 0, totalTokens: 0, reported: false };
  for (const gens of output?.generations ?? []) {
    for (const g of gens ?? []) {
      const m = g?.message?.usage_metadata;
      if (!m) continue;
      u.inputTokens += m.input_tokens ?? 0;
      u.outputTokens += m.output_tokens ?? 0;
      u.totalTokens += m.total_tokens ?? (m.input_tokens ?? 0) + (m.output_tokens ?? 0);
      u.reported = true;
    }
  }
  if (u.reported) return u;
  const t = output?.llmOutput?.tokenUsage ?? output?.llmOutput?.estimatedTokenUsage;
  if (t) {
    u.inputTokens = t.promptTokens ?? 0;
    u.outputTokens = t.completionTokens ?? 0;
    u.totalTokens = t.totalTokens ?? u.inputTokens + u.outputTokens;
    u.reported = true;
  }
  return u;
}

/**
 * The run's usage in AgentBill's usage shape (agentbill/usage), summed over
 * its generations; null when no model reported any.
 */
export function normalizedUsageOf(output) {
  let u = null;
  for (const gens of output?.generations ?? []) {
    for (const g of gens ?? []) u = addUsage(u, fromLangChain(g?.message?.usage_metadata));
  }
  if (u) return u;
  const t = output?.llmOutput?.tokenUsage ?? output?.llmOutput?.estimatedTokenUsage;
  return t ? fromLangChain({ input_tokens: t.promptTokens, output_tokens: t.completionTokens }) : null;
}

// maxTokensOf is the max output tokens a chat model or LLM was invoked with.
function maxTokensOf(extraParams) {
  const p = extraParams?.invocation_params ?? {};
  return p.max_tokens ?? p.max_completion_tokens ?? p.maxTokens ?? p.maxOutputTokens ?? p.max_output_tokens;
}

/** Preflights, records and releases AgentBill budget around LangChain runs. */
export class AgentBillCallbackHandler extends BaseCallbackHandler {
  name = 'agentbill';

  /**
   * @param {object} options
   * @param {AgentBillClient} [options.client] an AgentBillClient (or give apiKey/baseUrl)
   * @param {string} options.agentId the agent the runs are charged to
   * @param {string} [options.customerId] the customer (default: the API key's)
   * @param {number|string|Function} [options.estimatedUnits] units to reserve, or ({ kind, input, defaultEstimate }) => units;
   *   default: the handler's running estimate
   * @param {Function} [options.unitsFromUsage] (usage) => units to record, where usage is
   *   { inputTokens, outputTokens, totalTokens, reported, llmCalls, estimatedUnits, reservedUnits, usage };
   *   called only when a model reported usage; default: the token total (input + output)
   * @param {string} [options.taskRef] task reference for every run
   * @param {string|number} [options.ttl] reservation lifetime
   * @param {Record<string, string>} [options.scope] every run's scope, e.g. { team: 'research' }
   * @param {number|string} [options.minUnits] accept a partial hold of at least this many units
   * @param {'deny'|'allow'} [options.onUnavailable] the fail policy of the client built from apiKey/baseUrl
   *   (a given client keeps its own): 'allow' lets a run start unchecked when AgentBill is unavailable
   */
  constructor({ client, apiKey, baseUrl, onUnavailable, agentId, customerId, estimatedUnits, unitsFromUsage, taskRef, ttl, scope, minUnits } = {}) {
    // raiseError: a refusal (or an unavailable AgentBill, under the
    // client's onUnavailable 'deny') must stop the run, not be logged and
    // ignored; it also makes LangChain await the
    // handler, so the model waits for the preflight.
    super({ raiseError: true });
    if (!agentId) throw new TypeError('agentId is required');
    if (unitsFromUsage !== undefined && typeof unitsFromUsage !== 'function') {
      throw new TypeError('unitsFromUsage must be a function from the reported token usage to units');
    }
    this.client = client ?? new AgentBillClient({ apiKey, baseUrl, onUnavailable });
    this.agentId = agentId;
    this.customerId = customerId;
    this.estimatedUnits = estimatedUnits;
    this.unitsFromUsage = unitsFromUsage;
    this.taskRef = taskRef;
    this.ttl = ttl;
    this.scope = scope;
    this.minUnits = minUnits;
    this.estimator = new Estimator(); // the running estimate of this handler's runs
    this.roots = new Map(); // root run id -> { reservationId, estimate, usage }
    this.rootOf = new Map(); // run id (root or nested) -> root run id
  }

  async handleChatModelStart(_llm, messages, runId, parentRunId, extraParams) {
    await this.#start(runId, parentRunId, 'chat_model', messages, maxTokensOf(extraParams));
  }

  async handleLLMStart(_llm, prompts, runId, parentRunId, extraParams) {
    await this.#start(runId, parentRunId, 'llm', prompts, maxTokensOf(extraParams));
  }

  async handleChainStart(_chain, inputs, runId, _runType, _tags, _metadata, _runName, parentRunId) {
    await this.#start(runId, parentRunId, 'chain', inputs);
  }

  async handleLLMEnd(output, runId) {
    const root = this.#rootRun(runId);
    if (root) {
      const u = tokenUsageOf(output);
      root.usage.inputTokens += u.inputTokens;
      root.usage.outputTokens += u.outputTokens;
      root.usage.totalTokens += u.totalTokens;
      root.usage.reported ||= u.reported;
      root.usage.llmCalls += 1;
      root.usage.usage = addUsage(root.usage.usage, normalizedUsageOf(output));
    }
    await this.#end(runId);
  }

  async handleChainEnd(_outputs, runId) {
    await this.#end(runId);
  }

  async handleLLMError(_err, runId) {
    await this.#fail(runId);
  }

  async handleChainError(_err, runId) {
    await this.#fail(runId);
  }

  /** Reservations of runs in flight (for tests and diagnostics). */
  get openReservations() {
    return [...this.roots.values()].filter((r) => !r.unchecked).map((r) => r.reservationId);
  }

  async #start(runId, parentRunId, kind, input, maxOutputTokens) {
    const parentRoot = parentRunId === undefined ? undefined : this.rootOf.get(parentRunId);
    if (parentRoot !== undefined) {
      this.#track(runId, parentRoot); // nested: charged to the outer run
      return;
    }
    const defaultEstimate = this.estimator.estimate({ maxOutputTokens, promptText: JSON.stringify(input) ?? '' });
    const estimate = typeof this.estimatedUnits === 'function'
      ? await this.estimatedUnits({ kind, input, defaultEstimate })
      : this.estimatedUnits ?? defaultEstimate;
    const check = await this.client.preflight({
      agentId: this.agentId, customerId: this.customerId, estimatedUnits: estimate, taskRef: this.taskRef, ttl: this.ttl,
      scope: this.scope, minUnits: this.minUnits,
    });
    if (!check.approved) throw new RefusedError(check);
    this.#track(runId, runId);
    this.roots.set(runId, {
      reservationId: check.reservationId,
      unchecked: check.unchecked, // the client's onUnavailable 'allow': no hold, nothing to settle
      estimate,
      reserved: check.reservedUnits,
      usage: { inputTokens: 0, outputTokens: 0, totalTokens: 0, reported: false, llmCalls: 0, usage: null },
    });
  }

  #track(runId, rootId) {
    if (this.rootOf.size >= RUNS_MAX) {
      throw new RangeError(`more than ${RUNS_MAX} LangChain runs in flight on one AgentBillCallbackHandler`);
    }
    this.rootOf.set(runId, rootId);
  }

  #rootRun(runId) {
    const rootId = this.rootOf.get(runId);
    return rootId === undefined ? undefined : this.roots.get(rootId);
  }

  // A nested run's end only forgets it; the root's records the whole run.
  async #end(runId) {
    const root = this.#settle(runId);
    if (!root) return;
    this.estimator.observe(root.usage.usage);
    if (root.unchecked) return;
    const measured = unitsOf(root.usage.usage);
    let units;
    let usage;
    if (!root.usage.reported) {
      units = root.reserved ?? root.estimate; // what was held: never 0 for usage nobody reported
      usage = USAGE_MISSING;
    } else {
      units = this.unitsFromUsage
        ? await this.unitsFromUsage({ ...root.usage, estimatedUnits: root.estimate, reservedUnits: root.reserved })
        : measured ?? root.reserved ?? root.estimate;
      usage = measured === null ? USAGE_MISSING : root.usage.usage;
    }
    await this.client.record({
      agentId: this.agentId, customerId: this.customerId, units, reservationId: root.reservationId, taskRef: this.taskRef,
      metadata: { usage },
    });
  }

  async #fail(runId) {
    const root = this.#settle(runId);
    if (!root || root.unchecked) return;
    await this.client.release({ reservationId: root.reservationId, customerId: this.customerId });
  }

  // #settle forgets runId; for a root run it also forgets its nested runs
  // and returns its reservation, exactly once.
  #settle(runId) {
    const rootId = this.rootOf.get(runId);
    this.rootOf.delete(runId);
    if (rootId !== runId) return undefined;
    const root = this.roots.get(runId);
    this.roots.delete(runId);
    for (const [id, r] of this.rootOf) {
      if (r === runId) this.rootOf.delete(id);
    }
    return root;
  }
}

export { RefusedError };
export default AgentBillCallbackHandler;
