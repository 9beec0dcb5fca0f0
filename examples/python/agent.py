"""A Python agent that asks AgentBill before it runs, over HTTP.

Run it against `agentbill serve --http 127.0.0.1:8080` with an agent key:

    AGENTBILL_API_KEY=agb_... PYTHONPATH=sdk/python python3 examples/python/agent.py

(or `pip install ./sdk/python` and drop PYTHONPATH). AGENTBILL_BASE_URL
overrides the gateway's address, AGENTBILL_CUSTOMER the customer
(default user_123). It exits 3 if a run is refused.
"""

import os
import sys
import time

from agentbill import AgentBillClient, RefusedError, Usage

CUSTOMER = os.environ.get("AGENTBILL_CUSTOMER", "user_123")


def run_agent(task):
    """Stands in for a model call: returns an answer and the tokens used."""
    time.sleep(0.05)
    return "summary of %r" % task, 7_000


def main():
    client = AgentBillClient()  # AGENTBILL_API_KEY, AGENTBILL_BASE_URL

    # 1. Preflight, run, record: the three steps by hand.
    check = client.preflight(agent_id="research_agent", customer_id=CUSTOMER, estimated_units=10)
    if not check.approved:
        print("refused (%s): %s" % (check.reason, check.message))
        return 3
    print("approved: reservation %s, %s units left" % (check.reservation_id, check.remaining_units))
    answer, tokens = run_agent("quarterly report")
    rec = client.record(agent_id="research_agent", units=tokens // 1000, customer_id=CUSTOMER,
                        reservation_id=check.reservation_id)
    print("recorded %s units (%s released); %s left" % (rec.charged_units, rec.released_units, rec.remaining_units))

    # 2. The same with the gate: preflight, run, record; release on error.
    @client.gate(agent_id="research_agent", estimated_units=10, customer_id=CUSTOMER)
    def research(task):
        answer, tokens = run_agent(task)
        return Usage(units=tokens // 1000, result=answer)

    try:
        print("gated run: %s" % research("competitor pricing"))
    except RefusedError as refused:
        print("refused (%s): %s" % (refused.reason, refused.message))
        return 3
    b = client.budget(CUSTOMER)
    print("budget: %s of %s units left" % (b.remaining_units, b.limit_units))
    return 0


if __name__ == "__main__":
    sys.exit(main())
