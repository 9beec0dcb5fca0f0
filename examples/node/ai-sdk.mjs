// The Vercel AI SDK with AgentBill's middleware: every model call of
// generateText and streamText is held against the customer's budget before
// it is made, and charged the usage the model reported.
//
// Run it against `agentbill serve --http 127.0.0.1:8080` with an agent key
// (from the repository root, after `npm ci` in sdk/node):
//
//   AGENTBILL_API_KEY=agb_... node examples/node/ai-sdk.mjs
//
// The model is @ai-sdk/openai pointed at MODEL_BASE_URL; left unset, the
// example starts the stand-in model server of sdk/node's tests.
// AGENTBILL_BASE_URL and AGENTBILL_CUSTOMER as for agent.mjs. It exits 3 if
// a call is refused.
//
// In your own project:
//   import { generateText, streamText, wrapLanguageModel } from 'ai';
//   import { agentbillMiddleware } from 'agentbill/ai-sdk';

import { AgentBillClient, RefusedError } from '../../sdk/node/index.js';
import { agentbillMiddleware } from '../../sdk/node/ai-sdk.js';
import { load } from '../../sdk/node/test-support/packages.js';
import { ModelServer } from '../../sdk/node/test-support/model-server.js';

const { generateText, streamText, wrapLanguageModel } = await load('ai');
const { createOpenAI } = await load('@ai-sdk/openai');

const customerId = process.env.AGENTBILL_CUSTOMER ?? 'user_123';
const standIn = process.env.MODEL_BASE_URL ? null : await ModelServer.start();
const modelBase = standIn?.url ?? process.env.MODEL_BASE_URL;
const openai = createOpenAI({ apiKey: 'sk-stand-in', baseURL: `${modelBase}/v1` });

const agentbill = new AgentBillClient(); // AGENTBILL_API_KEY, AGENTBILL_BASE_URL
const model = wrapLanguageModel({
  model: openai.responses('gpt-4.1-mini'),
  middleware: agentbillMiddleware({ agentbill, agentId: 'research_agent', customerId }),
});

try {
  const { text, usage } = await generateText({ model, prompt: 'Summarise the report', maxOutputTokens: 200 });
  console.log(`generateText: ${text} (${usage.totalTokens} tokens)`);
  const result = streamText({ model, prompt: 'And stream it' });
  let streamed = '';
  for await (const t of result.textStream) streamed += t;
  console.log(`streamText: ${streamed} (charged when it finished)`);
} catch (err) {
  if (!(err instanceof RefusedError)) throw err;
  console.log(`refused (${err.reason}): ${err.message}`);
  process.exitCode = 3;
} finally {
  await standIn?.stop();
}
const b = await agentbill.budget({ customerId });
console.log(`budget: ${b.remainingUnits} of ${b.limitUnits} units left`);
