// A Node.js agent that asks AgentBill before it runs, over HTTP.
//
// Run it against `agentbill serve --http 127.0.0.1:8080` with an agent key:
//
//   AGENTBILL_API_KEY=agb_... node examples/node/agent.mjs
//
// AGENTBILL_BASE_URL overrides the gateway's address, AGENTBILL_CUSTOMER
// the customer (default user_123). It exits 3 if a run is refused. In your
// own project, `npm install ./sdk/node` and import from 'agentbill'.

import { AgentBillClient, RefusedError, usage } from '../../sdk/node/index.js';

const customerId = process.env.AGENTBILL_CUSTOMER ?? 'user_123';

// Stands in for a model call: an answer and the tokens it used.
async function runAgent(task) {
  await new Promise((r) => setTimeout(r, 50));
  return { answer: `summary of ${task}`, tokens: 7000 };
}

const client = new AgentBillClient(); // AGENTBILL_API_KEY, AGENTBILL_BASE_URL

// 1. Preflight, run, record: the three steps by hand.
const check = await client.preflight({ customerId, agentId: 'research_agent', estimatedUnits: 10 });
if (!check.approved) {
  console.log(`refused (${check.reason}): ${check.message}`);
  process.exit(3);
}
console.log(`approved: reservation ${check.reservationId}, ${check.remainingUnits} units left`);
const { tokens } = await runAgent('quarterly report');
const rec = await client.record({ customerId, agentId: 'research_agent', units: tokens / 1000, reservationId: check.reservationId });
console.log(`recorded ${rec.chargedUnits} units (${rec.releasedUnits} released); ${rec.remainingUnits} left`);

// 2. The same with the gate: preflight, run, record; release on error.
try {
  const answer = await client.gate({ customerId, agentId: 'research_agent', estimatedUnits: 10 }, async () => {
    const out = await runAgent('competitor pricing');
    return usage(out.tokens / 1000, out.answer);
  });
  console.log(`gated run: ${answer}`);
} catch (err) {
  if (!(err instanceof RefusedError)) throw err;
  console.log(`refused (${err.reason}): ${err.message}`);
  process.exit(3);
}
const b = await client.budget({ customerId });
console.log(`budget: ${b.remainingUnits} of ${b.limitUnits} units left`);
