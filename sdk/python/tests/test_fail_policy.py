"""The fail policy (on_unavailable=) with the service stopped: a closed
port on 127.0.0.1, and a real `agentbill serve --http` for refusals."""

import logging
import unittest
import uuid

import harness
from agentbill import AgentBillClient, InvalidArgumentError, RefusedError, UnavailableError
from agentbill.client import SKIPPED_WARN_INTERVAL, UNCHECKED_MESSAGE

SERVER = None
ADMIN = AGENT = None


def setUpModule():
    global SERVER, ADMIN, AGENT
    SERVER = harness.Server()
    ADMIN, _ = SERVER.create_key("admin")
    AGENT, _ = SERVER.create_key("agent")


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


def stopped(on_unavailable=None):
    """A client of a closed port, with one quick retry."""
    kwargs = {} if on_unavailable is None else {"on_unavailable": on_unavailable}
    return AgentBillClient(api_key="ak_test", base_url="http://127.0.0.1:%d" % harness.free_port(),
                           timeout=1, max_retries=1, **kwargs)


class FailPolicyTest(unittest.TestCase):
    def test_deny_is_the_default_and_raises_unavailable(self):
        client = stopped()
        with self.assertRaises(UnavailableError):
            client.preflight("a", "u", 1)
        self.assertEqual(client.skipped_checks, 0)

    def test_allow_approves_unchecked_counts_and_warns_once(self):
        client = stopped("allow")
        calls = 3
        with self.assertLogs("agentbill", level="WARNING") as logs:
            for _ in range(calls):
                check = client.preflight("a", "u", 1)
                self.assertTrue(check.approved)
                self.assertTrue(check.unchecked)
                self.assertIsNone(check.reservation_id)
                self.assertEqual(check.message, UNCHECKED_MESSAGE)
        self.assertEqual(client.skipped_checks, calls)
        self.assertEqual(len(logs.records), 1, "one warning per %ss, got %s" % (SKIPPED_WARN_INTERVAL, logs.output))

    def test_the_warning_returns_after_the_interval(self):
        client = stopped("allow")
        now = [1000.0]
        client._clock = lambda: now[0]
        # (seconds to advance, whether this skip warns)
        for advance, warns in ((0, True), (SKIPPED_WARN_INTERVAL - 1, False), (1, True), (1, False)):
            now[0] += advance
            with self.assertLogs("agentbill", level="DEBUG") as logs:
                logging.getLogger("agentbill").debug("marker")  # assertLogs needs one record
                client.preflight("a", "u", 1)
            warned = sum(1 for r in logs.records if r.levelno == logging.WARNING)
            self.assertEqual(warned, int(warns), "after +%ss" % advance)

    def test_gate_follows_the_policy(self):
        ran = []

        def run():
            ran.append(True)
            return "answer"

        with self.assertRaises(UnavailableError):
            stopped().gate("a", 1, "u")(run)()
        self.assertEqual(ran, [])
        client = stopped("allow")
        with self.assertLogs("agentbill", level="WARNING"):
            self.assertEqual(client.gate("a", 1, "u")(run)(), "answer")  # record skipped, no error
            with self.assertRaises(ValueError):  # the run's own error, no release attempted
                client.gate("a", 1, "u")(lambda: int("x"))()
        self.assertEqual(ran, [True])
        self.assertEqual(client.skipped_checks, 2)

    def test_allow_keeps_other_errors(self):
        client = AgentBillClient(api_key=AGENT, base_url=SERVER.base_url, on_unavailable="allow")
        with self.assertRaises(InvalidArgumentError):
            client.preflight("a", "u", -1)
        self.assertEqual(client.skipped_checks, 0)

    def test_allow_keeps_refusals(self):
        cid = "cust_" + uuid.uuid4().hex[:12]
        AgentBillClient(api_key=ADMIN, base_url=SERVER.base_url).set_budget(cid, 5, "month")
        client = AgentBillClient(api_key=AGENT, base_url=SERVER.base_url, on_unavailable="allow")
        check = client.preflight("a", cid, 10)
        self.assertFalse(check.approved)
        self.assertFalse(check.unchecked)
        with self.assertRaises(RefusedError):
            client.gate("a", 10, cid)(lambda: None)()
        self.assertEqual(client.skipped_checks, 0)

    def test_bad_policy_is_rejected(self):
        with self.assertRaisesRegex(ValueError, "maybe"):
            AgentBillClient(api_key="ak_test", on_unavailable="maybe")


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()
