// The OpenAI Agents SDK with AgentBill: a run holds budget before it starts
// and is charged the usage of every model call in it when it ends.
//
// Run it against `agentbill serve --http 127.0.0.1:8080` with an agent key
// (from the repository root, after `npm ci` in sdk/node):
//
//   AGENTBILL_API_KEY=agb_... node examples/node/openai-agents.mjs
//
// The agent's model is OpenAI's Responses API at MODEL_BASE_URL; left unset,
// the example starts the stand-in model server of sdk/node's tests.
// AGENTBILL_BASE_URL and AGENTBILL_CUSTOMER as for agent.mjs. It exits 3 if
// the run is refused.
//
// In your own project:
//   import { Agent, Runner } from '@openai/agents';
//   import { AgentBillRunHooks } from 'agentbill/openai-agents';

import { AgentBillClient, RefusedError } from '../../sdk/node/index.js';
import { AgentBillRunHooks } from '../../sdk/node/openai-agents.js';
import { load } from '../../sdk/node/test-support/packages.js';
import { ModelServer } from '../../sdk/node/test-support/model-server.js';

const { Agent, OpenAIProvider, Runner, setTracingDisabled } = await load('@openai/agents');
const { default: OpenAI } = await load('openai');

setTracingDisabled(true);
const customerId = process.env.AGENTBILL_CUSTOMER ?? 'user_123';
const standIn = process.env.MODEL_BASE_URL ? null : await ModelServer.start();
const modelBase = standIn?.url ?? process.env.MODEL_BASE_URL;
const openai = new OpenAI({ apiKey: 'sk-stand-in', baseURL: `${modelBase}/v1` });

const agentbill = new AgentBillClient(); // AGENTBILL_API_KEY, AGENTBILL_BASE_URL
const runner = new Runner({ modelProvider: new OpenAIProvider({ openAIClient: openai }) });
const agent = new Agent({ name: 'researcher', instructions: 'Answer in one sentence.', model: 'gpt-4.1-mini' });

// One hold per run; per: 'model_call' with runner's modelProvider set to
// budget.modelProvider(provider) holds before each model call instead.
const budget = new AgentBillRunHooks({ agentbill, agentId: 'research_agent', customerId });

try {
  const result = await budget.run(runner, agent, 'Summarise the report');
  console.log(`run: ${result.finalOutput} (${result.state.usage.totalTokens} tokens)`);
} catch (err) {
  if (!(err instanceof RefusedError)) throw err;
  console.log(`refused (${err.reason}): ${err.message}`);
  process.exitCode = 3;
} finally {
  await standIn?.stop();
}
const b = await agentbill.budget({ customerId });
console.log(`budget: ${b.remainingUnits} of ${b.limitUnits} units left`);
