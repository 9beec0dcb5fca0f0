"""agentbill.webhooks.verify: the Standard Webhooks vector, every refusal,
and real deliveries from a running `agentbill serve`."""

import json
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from agentbill import AgentBillClient, WebhookVerificationError, webhooks

# The Standard Webhooks specification's example.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = 1614265330
BODY = b'{"test": 2432232314}'
SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
DELIVERY_TIMEOUT = 15  # seconds


def headers(**over):
    h = {"webhook-id": MSG_ID, "webhook-timestamp": str(TS), "webhook-signature": SIG}
    h.update(over)
    return h


class VerifyTest(unittest.TestCase):
    def test_spec_vector(self):
        self.assertEqual(webhooks.sign(SECRET, MSG_ID, TS, BODY), SIG)
        self.assertEqual(webhooks.verify(BODY, headers(), SECRET, now=TS), {"test": 2432232314})

    def test_any_case_and_several_signatures(self):
        h = {"Webhook-Id": MSG_ID, "WEBHOOK-TIMESTAMP": str(TS), "webhook-signature": "v1,bm9wZQ== " + SIG}
        self.assertEqual(webhooks.verify(BODY.decode(), h, SECRET, now=TS + webhooks.TIMESTAMP_TOLERANCE), {"test": 2432232314})

    def test_refusals(self):
        tol = webhooks.TIMESTAMP_TOLERANCE
        cases = {
            "body changed": (BODY + b" ", headers(), SECRET, TS, "no v1 signature matches"),
            "other secret": (BODY, headers(), "whsec_" + "QUJD" * 8, TS, "no v1 signature matches"),
            "too old": (BODY, headers(), SECRET, TS + tol + 1, "outside the tolerance"),
            "from the future": (BODY, headers(), SECRET, TS - tol - 1, "outside the tolerance"),
            "no signature": (BODY, {"webhook-id": MSG_ID, "webhook-timestamp": str(TS)}, SECRET, TS, "missing"),
            "bad timestamp": (BODY, headers(**{"webhook-timestamp": "soon"}), SECRET, TS, "not Unix seconds"),
            "not a secret": (BODY, headers(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", TS, "must start with whsec_"),
        }
        for name, (body, h, secret, now, want) in cases.items():
            with self.subTest(name):
                with self.assertRaisesRegex(WebhookVerificationError, want):
                    webhooks.verify(body, h, secret, now=now)


class Receiver(ThreadingHTTPServer):
    """A receiver on 127.0.0.1 that answers 500 twice, then verifies and
    accepts every delivery."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.secret = None
        self.lock = threading.Lock()
        self.requests = 0
        self.accepted = []
        self.errors = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        srv = self.server
        with srv.lock:
            srv.requests += 1
            if srv.requests <= 2:
                self.send_response(500)
                self.end_headers()
                return
            try:
                event = webhooks.verify(body, self.headers, srv.secret)
                srv.accepted.append((self.headers["webhook-id"], event))
            except WebhookVerificationError as e:
                srv.errors.append(str(e))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class RealDeliveryTest(unittest.TestCase):
    def setUp(self):
        self.server = harness.Server("--webhook-backoff-min", "50ms", "--webhook-backoff-max", "400ms")
        self.addCleanup(self.server.stop)
        self.receiver = Receiver()
        threading.Thread(target=self.receiver.serve_forever, daemon=True).start()
        self.addCleanup(self.receiver.shutdown)

    def test_deliveries_verify_once_each(self):
        url = "http://127.0.0.1:%d/hook" % self.receiver.server_address[1]
        with self.assertRaisesRegex(RuntimeError, "loopback address: refused"):
            self.server.cli("webhooks", "add", "--url", url)
        ep = json.loads(self.server.cli("webhooks", "add", "--url", url, "--allow-private", "--types", "denied", "--json"))
        self.receiver.secret = ep["secret"]
        admin, _ = self.server.create_key("admin")
        client = AgentBillClient(api_key=admin, base_url=self.server.base_url)
        client.set_budget("py_webhooks", 10, "month")
        for _ in range(3):
            self.assertFalse(client.preflight("a1", "py_webhooks", 100).approved)
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while time.monotonic() < deadline:
            with self.receiver.lock:
                if len(self.receiver.accepted) >= 3:
                    break
            time.sleep(0.05)
        time.sleep(0.5)  # a duplicate would come within the backoff cap
        with self.receiver.lock:
            self.assertEqual(self.receiver.errors, [])
            ids = [i for i, _ in self.receiver.accepted]
            self.assertEqual(len(ids), 3, self.receiver.accepted)
            self.assertEqual(len(set(ids)), 3)
            for i, event in self.receiver.accepted:
                self.assertEqual(event["id"], i)
                self.assertEqual(event["type"], "denied")
                self.assertEqual(event["customer_id"], "py_webhooks")


if __name__ == "__main__":
    unittest.main()
