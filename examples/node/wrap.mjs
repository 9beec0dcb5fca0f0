// wrap(): OpenAI, Anthropic and Gemini clients whose every model call is
// held against the customer's budget before it is sent, and charged the
// usage the provider reported after.
//
// Run it against `agentbill serve --http 127.0.0.1:8080` with an agent key
// (from the repository root, after `npm ci` in sdk/node):
//
//   AGENTBILL_API_KEY=agb_... node examples/node/wrap.mjs
//
// The calls go to MODEL_BASE_URL, a server speaking the providers' APIs; left
// unset, the example starts the stand-in model server of sdk/node's tests.
// AGENTBILL_BASE_URL overrides the gateway's address, AGENTBILL_CUSTOMER the
// customer (default user_123). It exits 3 if a call is refused.
//
// In your own project:
//   import OpenAI from 'openai';
//   import { wrap } from 'agentbill/wrap';

import { AgentBillClient, RefusedError } from '../../sdk/node/index.js';
import { wrap } from '../../sdk/node/wrap.js';
import { load } from '../../sdk/node/test-support/packages.js';
import { ModelServer } from '../../sdk/node/test-support/model-server.js';

const { default: OpenAI } = await load('openai');
const { default: Anthropic } = await load('@anthropic-ai/sdk');
const { GoogleGenAI } = await load('@google/genai');

const customerId = process.env.AGENTBILL_CUSTOMER ?? 'user_123';
const standIn = process.env.MODEL_BASE_URL ? null : await ModelServer.start();
const modelBase = standIn?.url ?? process.env.MODEL_BASE_URL;

const agentbill = new AgentBillClient(); // AGENTBILL_API_KEY, AGENTBILL_BASE_URL
const budget = { agentbill, agentId: 'research_agent', customerId, taskRef: 'example-wrap' };

const openai = wrap(new OpenAI({ apiKey: 'sk-stand-in', baseURL: `${modelBase}/v1` }), budget);
const anthropic = wrap(new Anthropic({ apiKey: 'sk-ant-stand-in', baseURL: modelBase }), budget);
const gemini = wrap(new GoogleGenAI({ apiKey: 'stand-in', httpOptions: { baseUrl: modelBase } }), budget);

try {
  const chat = await openai.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'Summarise the report' }], max_completion_tokens: 200 });
  console.log(`openai chat: ${chat.choices[0].message.content} (${chat.usage.total_tokens} tokens)`);

  const stream = await openai.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'And stream it' }], stream: true });
  let streamed = '';
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
  console.log(`openai stream: ${streamed} (charged when it ended)`);

  const msg = await anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 200, messages: [{ role: 'user', content: 'Summarise the report' }] });
  console.log(`anthropic: ${msg.content[0].text}`);

  const gem = await gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Summarise the report', config: { maxOutputTokens: 200 } });
  console.log(`gemini: ${gem.text}`);
} catch (err) {
  if (!(err instanceof RefusedError)) throw err;
  console.log(`refused (${err.reason}): ${err.message}`);
  process.exitCode = 3;
} finally {
  await standIn?.stop();
}
const b = await agentbill.budget({ customerId });
console.log(`budget: ${b.remainingUnits} of ${b.limitUnits} units left`);
