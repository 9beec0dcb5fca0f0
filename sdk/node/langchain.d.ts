// Type declarations of 'agentbill/langchain' (langchain.js). Needs the
// optional peer dependency @langchain/core.

import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import type { LLMResult } from '@langchain/core/outputs';

import type { AgentBillClient, OnUnavailable, Scope, Units, UnitsInput } from './index.js';
import type { Estimator, TokenUsage as NormalizedUsage } from './usage.js';

export { RefusedError } from './index.js';

/** Bounds the runs tracked at once by one handler. */
export declare const RUNS_MAX: number;

/** Token usage a model run reported. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  /** false when the model reported no usage at all. */
  reported: boolean;
}

/** What unitsFromUsage receives: a whole run's usage (every model call in it). */
export interface RunUsage extends TokenUsage {
  llmCalls: number;
  /** The units the run's preflight asked for. */
  estimatedUnits: UnitsInput;
  /** The units it holds: the estimate, or less on a partial approval (minUnits). */
  reservedUnits: Units;
  /** The run's usage in AgentBill's usage shape (agentbill/usage); null when no model reported any. */
  usage: NormalizedUsage | null;
}

export interface AgentBillCallbackHandlerOptions {
  /** An AgentBillClient; or give apiKey and baseUrl (or their environment variables). */
  client?: AgentBillClient;
  apiKey?: string;
  baseUrl?: string;
  /** The fail policy of the client built from apiKey/baseUrl (a given client keeps its own). */
  onUnavailable?: OnUnavailable;
  /** The agent every run is charged to. */
  agentId: string;
  /** The customer (default: the API key's own, else "default"). */
  customerId?: string;
  /**
   * Units to reserve before each run, or a function of the run's input.
   * Default: the running estimate (mean of measured runs, capped by mean
   * prompt plus the call's max output tokens).
   */
  estimatedUnits?: UnitsInput | ((run: { kind: 'chat_model' | 'llm' | 'chain'; input: unknown; defaultEstimate: number }) => UnitsInput | Promise<UnitsInput>);
  /**
   * Maps a finished run's reported token usage to the units recorded
   * (called only when a model reported usage). Default: input + output
   * tokens. Usage nobody reported is recorded as the hold, marked missing.
   */
  unitsFromUsage?: (usage: RunUsage) => UnitsInput | Promise<UnitsInput>;
  taskRef?: string;
  ttl?: string | number;
  /** Every run's scope, e.g. { team: 'research' }: its scope limits must fit too. */
  scope?: Scope;
  /** Accept a partial hold of at least this many units when the estimate does not fit. */
  minUnits?: UnitsInput;
}

/**
 * Preflights before the outermost run starts (RefusedError stops it before
 * the model is called), records the reported token usage when it ends, and
 * releases the reservation when it fails.
 */
export declare class AgentBillCallbackHandler extends BaseCallbackHandler {
  name: string;
  constructor(options: AgentBillCallbackHandlerOptions);
  /** Reservations of runs in flight. */
  readonly openReservations: string[];
  /** The handler's running estimate. */
  readonly estimator: Estimator;
}

/** Sums the usage a model run reported (usage_metadata, else llmOutput.tokenUsage). */
export declare function tokenUsageOf(output: LLMResult): TokenUsage;
/** The usage a model run reported in AgentBill's usage shape; null when none. */
export declare function normalizedUsageOf(output: LLMResult): NormalizedUsage | null;

export default AgentBillCallbackHandler;
