// AgentBill for the Vercel AI SDK (ai 7.x): a language-model middleware
// for wrapLanguageModel. It imports nothing from `ai`.
//
//   import { wrapLanguageModel, generateText } from 'ai';
//   import { agentbillMiddleware } from 'agentbill/ai-sdk';
//   const model = wrapLanguageModel({ model: openai('gpt-4.1'), middleware: agentbillMiddleware({ agentId: 'research_agent' }) });
//
// Every model call (each step of generateText, generateObject, streamText)
// is preflighted before it is made; a refusal throws RefusedError and the
// model is not called. A generate is recorded with the usage the model
// reported; a stream when it finishes; a failed call, or a stream that
// errors or is aborted, releases its hold.

import { Meter, metered } from './meter.js';
import { fromAiSdk } from './usage.js';

/** The middleware specification this implements (LanguageModelV4Middleware). */
export const SPECIFICATION_VERSION = 'v4';

function describe(operation, params, model) {
  return {
    provider: model?.provider,
    operation,
    model: model?.modelId,
    maxOutputTokens: params?.maxOutputTokens,
    promptText: JSON.stringify(params?.prompt ?? ''),
  };
}

const usageOf = (usage, model, modelId) => fromAiSdk(usage, { model: modelId ?? model?.modelId, provider: model?.provider });

/**
 * A middleware that budgets every call of the model it wraps. Options as
 * wrap()'s: agentId (required), customerId, taskRef, taskCeiling, ttl,
 * scope, estimate, pricing ('tokens' or 'list', see Meter), agentbill (or
 * apiKey, baseUrl, onUnavailable), logger.
 * `meter` on the result is its Meter (the job's estimate lives there).
 */
export function agentbillMiddleware(options = {}) {
  const meter = new Meter(options);
  return {
    specificationVersion: SPECIFICATION_VERSION,
    meter,

    async wrapGenerate({ doGenerate, params, model }) {
      const { hold, res } = await meter.send(describe('generate', params, model), doGenerate);
      await hold.settle({ usage: usageOf(res.usage, model, res.response?.modelId), responseId: res.response?.id });
      return res;
    },

    async wrapStream({ doStream, params, model }) {
      const { hold, res } = await meter.send(describe('stream', params, model), doStream);
      const seen = { finish: null, id: undefined, modelId: undefined };
      const observe = (part) => {
        if (part?.type === 'response-metadata') {
          seen.id = part.id ?? seen.id;
          seen.modelId = part.modelId ?? seen.modelId;
        } else if (part?.type === 'finish') {
          seen.finish = part;
        }
      };
      // A stream that ends without its finish part (the model errored
      // inside it) was not completed: release, as for an error.
      const onEnd = () => (seen.finish
        ? hold.settle({ usage: usageOf(seen.finish.usage, model, seen.modelId), responseId: seen.id })
        : hold.release());
      const stream = ReadableStream.from(metered(res.stream, observe, { onEnd, onAbort: () => hold.release() }));
      return { ...res, stream };
    },
  };
}

export { RefusedError } from './index.js';
export default agentbillMiddleware;
