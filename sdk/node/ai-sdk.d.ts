// Type declarations of agentbill/ai-sdk (ai-sdk.js).

import type { LanguageModelMiddleware } from 'ai';
import type { Meter, MeterOptions } from './wrap.js';

export { RefusedError } from './index.js';

export declare const SPECIFICATION_VERSION: 'v4';

/**
 * A language-model middleware for wrapLanguageModel that preflights every
 * model call, records the usage the model reported (a stream when it
 * finishes) and releases the hold on an error or an abort.
 */
export declare function agentbillMiddleware(options: MeterOptions): LanguageModelMiddleware & { meter: Meter };
export default agentbillMiddleware;
