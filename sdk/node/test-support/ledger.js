// Ledger is what the integration tests share: one `agentbill serve --http`
// (harness.js), an admin client, an agent key, and the questions the tests
// ask of a customer's position.

import { randomUUID } from 'node:crypto';

import { AgentBillClient } from '../index.js';
import { Server } from './harness.js';

/** How long settled() waits for a customer's open holds to close. */
export const SETTLE_WAIT_MS = 5_000;
const POLL_MS = 50;

export class Ledger {
  static async start() {
    const l = new Ledger();
    l.server = await Server.start();
    l.admin = new AgentBillClient({ apiKey: l.server.createKey('admin').key, baseUrl: l.server.baseUrl });
    l.agentKey = l.server.createKey('agent').key;
    return l;
  }

  async stop() {
    await this.server?.stop();
  }

  /** A new AgentBillClient of the agent key (options: logger, ...). */
  agent(options = {}) {
    return new AgentBillClient({ apiKey: this.agentKey, baseUrl: this.server.baseUrl, ...options });
  }

  /** A new customer, named PREFIX_<random>, with a monthly budget of `limit` units. */
  async customer(prefix, limit) {
    const cid = `${prefix}_${randomUUID().slice(0, 12)}`;
    await this.admin.setBudget({ customerId: cid, limitUnits: limit, period: 'month' });
    return cid;
  }

  /** The customer's { used, reserved, open } (amounts as exact strings). */
  async position(cid) {
    const st = await this.admin.status(cid);
    return { used: st.used, reserved: st.reserved, open: st.openReservations };
  }

  /** position() once the customer has no open hold, or after SETTLE_WAIT_MS (streams settle after their consumer is done). */
  async settled(cid) {
    const deadline = Date.now() + SETTLE_WAIT_MS;
    for (;;) {
      const pos = await this.position(cid);
      if (pos.open === 0 || Date.now() > deadline) return pos;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** The customer's newest `recorded` event. */
  async lastRecorded(cid) {
    const { events } = await this.admin.events(cid, { limit: 50 });
    return events.filter((e) => e.type === 'recorded').at(-1);
  }
}
