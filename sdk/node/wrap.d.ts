// Type declarations of agentbill/wrap (wrap.js, meter.js).

import type { AgentBillClient, OnUnavailable, PreflightResult, RecordResult, ReleaseResult, Scope, UnitsInput } from './index.js';
import type { Estimator, PricingMode, TokenUsage } from './usage.js';

export { RefusedError } from './index.js';

/** What the estimate function is told about a call. */
export interface CallInfo {
  provider?: string;
  /** e.g. 'chat.completions.create', 'messages.create', 'generate', 'run'. */
  operation: string;
  model?: string;
  maxOutputTokens?: number;
  promptText?: string;
  /** The estimate AgentBill would use: the job's running mean, capped by mean prompt + maxOutputTokens. */
  defaultEstimate: number;
}

/** Options of wrap(), the AI SDK middleware and the OpenAI Agents hooks. */
export interface MeterOptions {
  /** The agent the calls are charged to. */
  agentId: string;
  /** Default: the API key's customer. */
  customerId?: string;
  taskRef?: string;
  /** A ceiling on the whole task's units (needs taskRef). */
  taskCeiling?: UnitsInput;
  /** How long each hold lasts: a Go duration ('15m') or milliseconds. */
  ttl?: string | number;
  scope?: Scope;
  /** Units to hold per call, or a function of the call; default: the job's running estimate. */
  estimate?: UnitsInput | ((call: CallInfo) => UnitsInput | Promise<UnitsInput>);
  /**
   * How a call is charged: 'tokens' (default) its token total as units;
   * 'list' the list price of the customer's price list, computed by the
   * ledger: each call is preflighted with a usage estimate (its model, its
   * prompt, its max output tokens) unless `estimate` gives units, and
   * recorded with its usage and no units; missing usage is charged the hold.
   */
  pricing?: PricingMode;
  /** An AgentBillClient; or apiKey, baseUrl and onUnavailable to build one. */
  agentbill?: AgentBillClient;
  apiKey?: string;
  baseUrl?: string;
  /** When AgentBill is unreachable: 'deny' (default) throws UnavailableError, 'allow' sends the call unchecked. */
  onUnavailable?: OnUnavailable;
  /** Where warnings go (a failed record or release); default the client's logger. */
  logger?: { warn(message: string): void };
}

/** The hold of one call; settle() or release(), whichever comes first, closes it. */
export declare class Hold {
  readonly reservationId: string | null;
  readonly estimate: UnitsInput;
  readonly check: PreflightResult;
  readonly done: boolean;
  settle(result?: { usage?: TokenUsage | null; responseId?: string; model?: string }): Promise<RecordResult | null>;
  release(): Promise<ReleaseResult | null>;
}

/** Holds and settles budget for the calls of one job. */
export declare class Meter {
  constructor(options: MeterOptions);
  readonly client: AgentBillClient;
  readonly estimator: Estimator;
  readonly pricing: PricingMode;
  hold(call: Omit<CallInfo, 'defaultEstimate'>): Promise<Hold>;
}

/** The budgeted methods, by provider. */
export declare const TARGETS: ReadonlyArray<{ provider: string; path: string[]; method: string }>;
/** Marks a wrapped client; its value is the client's Meter. */
export declare const WRAPPED: unique symbol;
export declare const IDEMPOTENCY_KEY_BYTES_MAX: number;

/**
 * Budgets an OpenAI, Anthropic or Google Gemini client in place and returns
 * it: chat.completions.create, responses.create, messages.create,
 * models.generateContent and models.generateContentStream are preflighted
 * and recorded. Throws RefusedError (the request is never sent) on refusal.
 */
export declare function wrap<T extends object>(client: T, options: MeterOptions): T;
export default wrap;
