// Type declarations of agentbill/openai-agents (openai-agents.js).

import type { Meter, MeterOptions } from './wrap.js';

export { RefusedError } from './index.js';

export type Per = 'run' | 'model_call';
export declare const PER: readonly Per[];

export interface RunHooksOptions extends MeterOptions {
  /** Hold once per run (default) or once per model call (through modelProvider()). */
  per?: Per;
}

/** Budgets OpenAI Agents SDK runs, or every model call inside them. */
export declare class AgentBillRunHooks {
  constructor(options: RunHooksOptions);
  readonly per: Per;
  readonly meter: Meter;
  /**
   * runner.run(agent, input, options) inside one hold (per 'run'): a refusal
   * throws RefusedError before the run starts; the run's usage is recorded
   * when it ends; a failure, an abort or an interruption releases the hold.
   */
  run<R = any>(runner: { run(agent: any, input: any, options?: any): Promise<R> }, agent: any, input: any, options?: any): Promise<R>;
  /** A model provider whose models hold before each call and record after (per 'model_call'). */
  modelProvider<P extends { getModel(name?: string): any }>(provider: P): { getModel(name?: string): Promise<any> };
  /** The model with getResponse and getStreamedResponse budgeted. */
  model<M extends object>(model: M, name?: string): M;
}
export default AgentBillRunHooks;
