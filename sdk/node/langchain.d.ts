// Type declarations of 'agentbill/langchain' (langchain.js). Needs the
// optional peer dependency @langchain/core.

import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import type { LLMResult } from '@langchain/core/outputs';

import type { AgentBillClient, OnUnavailable, Scope, Units, UnitsInput } from './index.js';

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
  /** Units to reserve before each run, or a function of the run's input. */
  estimatedUnits: UnitsInput | ((run: { kind: 'chat_model' | 'llm' | 'chain'; input: unknown }) => UnitsInput | Promise<UnitsInput>);
  /** Maps a finished run's token usage to the units recorded. */
  unitsFromUsage: (usage: RunUsage) => UnitsInput | Promise<UnitsInput>;
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
}

/** Sums the usage a model run reported (usage_metadata, else llmOutput.tokenUsage). */
export declare function tokenUsageOf(output: LLMResult): TokenUsage;

export default AgentBillCallbackHandler;
