"""The Python SDK against a real `agentbill serve --http`."""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from agentbill import (
    AgentBillClient,
    AuthenticationError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RefusedError,
    UnavailableError,
    Usage,
)

SERVER = None
ADMIN = AGENT = AUDITOR = None
CONCURRENT_RUNS = 50
EXAMPLE_TIMEOUT = 60  # seconds


def setUpModule():
    global SERVER, ADMIN, AGENT, AUDITOR
    SERVER = harness.Server()
    ADMIN, _ = SERVER.create_key("admin")
    AGENT, _ = SERVER.create_key("agent")
    AUDITOR, _ = SERVER.create_key("auditor")


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


def customer():
    """A fresh customer per test, so tests never share a budget."""
    return "cust_" + uuid.uuid4().hex[:12]


class Base(unittest.TestCase):
    def setUp(self):
        self.admin = AgentBillClient(api_key=ADMIN, base_url=SERVER.base_url)
        self.client = AgentBillClient(api_key=AGENT, base_url=SERVER.base_url)
        self.cid = customer()

    def budget(self, limit, cid=None):
        return self.admin.set_budget(cid or self.cid, limit, "month")


class SeedExample(Base):
    def test_seed_example_runs_unchanged(self):
        # The README's example, as written; the base URL comes from
        # AGENTBILL_BASE_URL and user_123 has the default budget.
        ran = []

        def run_agent(task):
            ran.append(task)
            return "done"

        task = "summarise"
        used_before = self.admin.status("user_123").used
        env = dict(os.environ)
        os.environ["AGENTBILL_BASE_URL"] = SERVER.base_url
        try:
            client = AgentBillClient(api_key=AGENT)
            check = client.preflight(agent_id="research_agent", customer_id="user_123", estimated_units=10)
            if not check.approved:
                raise Exception(f"Blocked: {check.reason}")
            result = run_agent(task)
            client.record(agent_id="research_agent", units=10, customer_id="user_123")
        finally:
            os.environ.clear()
            os.environ.update(env)
        self.assertEqual(result, "done")
        st = self.admin.status("user_123")
        self.assertEqual(st.used - used_before, Decimal(10))
        self.assertEqual(st.reserved, Decimal(0))


class Preflight(Base):
    def test_approve(self):
        self.budget(100)
        check = self.client.preflight(agent_id="a", customer_id=self.cid, estimated_units=10)
        self.assertTrue(check.approved)
        self.assertIsNone(check.reason)
        self.assertTrue(check.reservation_id)
        self.assertEqual(check.reserved_units, Decimal(10))
        self.assertEqual(check.remaining_units, Decimal(90))
        self.assertIn("90 units left", check.message)

    def test_refuse_with_reason(self):
        self.budget(5)
        check = self.client.preflight(agent_id="a", customer_id=self.cid, estimated_units=10)
        self.assertFalse(check.approved)
        self.assertEqual(check.reason, "budget_exhausted")
        self.assertIn("5 units left", check.message)
        self.assertIn("10 requested", check.message)
        self.assertIsNone(check.reservation_id)

    def test_default_estimate_is_one(self):
        self.budget(3)
        check = self.client.preflight(agent_id="a", customer_id=self.cid)
        self.assertEqual(check.reserved_units, Decimal(1))

    def test_record_settles(self):
        self.budget(100)
        check = self.client.preflight(agent_id="a", customer_id=self.cid, estimated_units=10)
        rec = self.client.record(agent_id="a", units=Decimal("7.25"), customer_id=self.cid,
                                 reservation_id=check.reservation_id)
        self.assertEqual(rec.status, "recorded")
        self.assertEqual(rec.charged_units, Decimal("7.25"))
        self.assertEqual(rec.released_units, Decimal("2.75"))
        self.assertEqual(rec.remaining_units, Decimal("92.75"))
        b = self.client.budget(self.cid)
        self.assertEqual((b.used_units, b.reserved_units, b.remaining_units, b.is_blocked),
                         (Decimal("7.25"), Decimal(0), Decimal("92.75"), False))

    def test_release_and_failed_record(self):
        self.budget(100)
        check = self.client.preflight(agent_id="a", customer_id=self.cid, estimated_units=10)
        rel = self.client.release(check.reservation_id, self.cid)
        self.assertEqual((rel.status, rel.released_units), ("released", Decimal(10)))
        check = self.client.preflight(agent_id="a", customer_id=self.cid, estimated_units=4)
        rec = self.client.record("a", 4, self.cid, check.reservation_id, success=False)
        self.assertEqual(rec.status, "released")
        check = self.client.preflight(agent_id="a", customer_id=self.cid, estimated_units=4)
        rec = self.client.record("a", None, self.cid, check.reservation_id, success=False)
        self.assertEqual(rec.status, "released")
        with self.assertRaises(TypeError):
            self.client.record("a", None, self.cid)
        self.assertEqual(self.client.status(self.cid).used, Decimal(0))

    def test_extend(self):
        self.budget(100)
        check = self.client.preflight(agent_id="a", customer_id=self.cid, ttl="30s")
        ext = self.client.extend(check.reservation_id, 3600, self.cid)
        self.assertEqual(ext.reservation_id, check.reservation_id)
        self.assertGreater(ext.expires_at, check.expires_at)

    def test_idempotent_retry(self):
        self.budget(100)
        a = self.client.preflight("a", self.cid, 10, idempotency_key="same")
        b = self.client.preflight("a", self.cid, 10, idempotency_key="same")
        self.assertEqual(a.reservation_id, b.reservation_id)
        self.assertEqual(self.client.status(self.cid).reserved, Decimal(10))


class Amounts(Base):
    def test_exact_decimals(self):
        self.budget("1000000000000000")
        tiny = Decimal("0.000000000000000001")
        rec = self.client.record("a", tiny, self.cid)
        self.assertEqual(rec.charged_units, tiny)
        self.assertEqual(rec.remaining_units, Decimal("999999999999999.999999999999999999"))
        rec = self.client.record("a", "0.5", self.cid)
        self.assertEqual(rec.charged_units, Decimal("0.5"))

    def test_float_and_bool_are_refused(self):
        with self.assertRaises(TypeError) as ctx:
            self.client.record("a", 0.1, self.cid)
        self.assertIn("Decimal", str(ctx.exception))
        with self.assertRaises(TypeError):
            self.client.preflight("a", self.cid, True)
        with self.assertRaises(ValueError):
            self.client.preflight("a", self.cid, Decimal("NaN"))

    def test_server_rejects_bad_amounts(self):
        self.budget(10)
        for bad in (-1, "-0.5", "1e400", "abc", 10 ** 16, "0.0000000000000000001"):
            with self.assertRaises(InvalidArgumentError, msg=repr(bad)) as ctx:
                self.client.preflight("a", self.cid, bad)
            self.assertEqual(ctx.exception.status, 400)
        self.assertEqual(self.client.status(self.cid).reserved, Decimal(0))


class Gate(Base):
    def test_success_records_reported_units(self):
        self.budget(100)

        @self.client.gate(agent_id="a", estimated_units=10, customer_id=self.cid)
        def run(task):
            return Usage(units=4, result=task.upper())

        self.assertEqual(run("go"), "GO")
        st = self.client.status(self.cid)
        self.assertEqual((st.used, st.reserved), (Decimal(4), Decimal(0)))

    def test_success_records_the_estimate_or_units_from(self):
        self.budget(100)

        @self.client.gate(agent_id="a", estimated_units=3, customer_id=self.cid)
        def plain():
            return 1

        @self.client.gate(agent_id="a", estimated_units=10, customer_id=self.cid,
                          units_from=lambda r: r["tokens"] // 1000)
        def tokens():
            return {"tokens": 6000}

        plain()
        self.assertEqual(tokens(), {"tokens": 6000})
        self.assertEqual(self.client.status(self.cid).used, Decimal(9))

    def test_error_releases(self):
        self.budget(100)
        calls = []

        @self.client.gate(agent_id="a", estimated_units=10, customer_id=self.cid)
        def run():
            calls.append(1)
            raise ValueError("model crashed")

        with self.assertRaisesRegex(ValueError, "model crashed"):
            run()
        self.assertEqual(calls, [1])
        st = self.client.status(self.cid)
        self.assertEqual((st.used, st.reserved, st.open_reservations), (Decimal(0), Decimal(0), 0))

    def test_refusal_raises_and_never_runs(self):
        self.budget(5)
        calls = []

        @self.client.gate(agent_id="a", estimated_units=10, customer_id=self.cid)
        def run():
            calls.append(1)

        with self.assertRaises(RefusedError) as ctx:
            run()
        self.assertEqual(ctx.exception.reason, "budget_exhausted")
        self.assertIn("10 requested", ctx.exception.message)
        self.assertEqual(ctx.exception.remaining_units, Decimal(5))
        self.assertEqual(calls, [])

    def test_async(self):
        self.budget(100)

        @self.client.gate(agent_id="a", estimated_units=10, customer_id=self.cid)
        async def run():
            await asyncio.sleep(0)
            return Usage(2, "async ok")

        @self.client.gate(agent_id="a", estimated_units=10, customer_id=self.cid)
        async def fail():
            raise RuntimeError("nope")

        self.assertEqual(asyncio.run(run()), "async ok")
        with self.assertRaises(RuntimeError):
            asyncio.run(fail())
        st = self.client.status(self.cid)
        self.assertEqual((st.used, st.reserved), (Decimal(2), Decimal(0)))

    def test_fifty_concurrent_runs_never_overspend(self):
        self.budget(100)
        approved, refused, errors = [], [], []
        lock = threading.Lock()
        start = threading.Barrier(CONCURRENT_RUNS)

        @self.client.gate(agent_id="a", estimated_units=3, customer_id=self.cid)
        def run(i):
            return i

        def worker(i):
            start.wait(timeout=30)
            try:
                run(i)
                with lock:
                    approved.append(i)
            except RefusedError:
                with lock:
                    refused.append(i)
            except Exception as exc:  # pragma: no cover - reported below
                with lock:
                    errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONCURRENT_RUNS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertEqual(len(approved) + len(refused), CONCURRENT_RUNS)
        st = self.client.status(self.cid)
        self.assertLessEqual(st.used + st.reserved, Decimal(100))
        self.assertEqual(st.used, Decimal(3) * len(approved))
        self.assertEqual(len(approved), 33)  # floor(100 / 3): every hold is settled in full


class Auth(Base):
    def test_bad_key_is_401(self):
        bad = AgentBillClient(api_key="agb_" + "A" * 43, base_url=SERVER.base_url)
        with self.assertRaises(AuthenticationError) as ctx:
            bad.preflight("a", self.cid, 1)
        self.assertEqual(ctx.exception.status, 401)
        with self.assertRaises(AuthenticationError):
            AgentBillClient(api_key="not-a-key", base_url=SERVER.base_url).budget()

    def test_agent_key_on_admin_endpoint_is_403(self):
        with self.assertRaises(PermissionDeniedError) as ctx:
            self.client.set_budget(self.cid, 100, "month")
        self.assertEqual(ctx.exception.status, 403)
        with self.assertRaises(PermissionDeniedError):
            self.client.top_up(self.cid, 5)
        with self.assertRaises(PermissionDeniedError):
            self.client.events(self.cid)

    def test_customer_bound_key_on_another_customer_is_403(self):
        self.budget(100)
        key, _ = SERVER.create_key("agent", customer=self.cid)
        bound = AgentBillClient(api_key=key, base_url=SERVER.base_url)
        self.assertTrue(bound.preflight("a", estimated_units=1).approved)  # its own, by default
        self.assertEqual(bound.budget().customer_id, self.cid)
        other = customer()
        for call in (lambda: bound.preflight("a", other, 1),
                     lambda: bound.record("a", 1, other),
                     lambda: bound.status(other),
                     lambda: bound.budget(other)):
            with self.assertRaises(PermissionDeniedError):
                call()

    def test_revoked_key_fails_at_once(self):
        key, key_id = SERVER.create_key("agent")
        c = AgentBillClient(api_key=key, base_url=SERVER.base_url)
        self.budget(10)
        self.assertTrue(c.preflight("a", self.cid, 1).approved)
        SERVER.revoke(key_id)
        with self.assertRaises(AuthenticationError) as ctx:
            c.preflight("a", self.cid, 1)
        self.assertIn("revoked", ctx.exception.message)

    def test_auditor_reads_events(self):
        self.budget(100)
        self.client.preflight("a", self.cid, 2)
        page = AgentBillClient(api_key=AUDITOR, base_url=SERVER.base_url).events(self.cid, limit=10)
        self.assertEqual([e["type"] for e in page.events], ["budget_set", "reserved"])
        self.assertFalse(page.truncated)

    def test_not_found(self):
        srv = harness.Server("--default-budget", "none")
        try:
            key, _ = srv.create_key("admin")
            with self.assertRaises(NotFoundError):
                AgentBillClient(api_key=key, base_url=srv.base_url).status("nobody")
        finally:
            srv.stop()

    def test_rate_limited_key(self):
        # Each key may send one request a 1,000 s.
        srv = harness.Server("--http-rate-limit-per-second", "0.001", "--http-rate-limit-burst", "1")
        try:
            key, _ = srv.create_key("admin")
            c = AgentBillClient(api_key=key, base_url=srv.base_url, max_retries=3)
            c.set_budget("u", 10, "month")
            with self.assertRaises(RateLimitedError) as cm:
                c.status("u")
            self.assertEqual((cm.exception.code, cm.exception.status), ("rate_limited", 429))
            self.assertTrue(999_000 <= cm.exception.retry_after_ms <= 1_000_000, cm.exception.retry_after_ms)
        finally:
            srv.stop()

    def test_missing_key(self):
        env = dict(os.environ)
        os.environ.pop("AGENTBILL_API_KEY", None)
        try:
            with self.assertRaises(ValueError):
                AgentBillClient(base_url=SERVER.base_url)
        finally:
            os.environ.clear()
            os.environ.update(env)


class Retries(unittest.TestCase):
    """Retry behaviour against a stub on 127.0.0.1 that answers 503 first."""

    def serve_stub(self, fails, status=503):
        seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen.append(body)
                if len(seen) <= fails:
                    payload = {"error": {"code": "unavailable", "message": "writer restarting"}}
                    code = status
                else:
                    payload = {"approved": True, "message": "ok", "reservation_id": "r1",
                               "reserved_units": 1, "remaining_units": "9.5"}
                    code = 200
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        return "http://127.0.0.1:%d" % srv.server_address[1], seen

    def test_503_is_retried_with_the_same_key(self):
        url, seen = self.serve_stub(fails=2)
        check = AgentBillClient(api_key="agb_x", base_url=url).preflight("a", "c", 1)
        self.assertTrue(check.approved)
        self.assertEqual(check.remaining_units, Decimal("9.5"))
        self.assertEqual(len(seen), 3)
        keys = {b["idempotency_key"] for b in seen}
        self.assertEqual(len(keys), 1)

    def test_retries_are_bounded(self):
        url, seen = self.serve_stub(fails=100)
        with self.assertRaises(UnavailableError):
            AgentBillClient(api_key="agb_x", base_url=url, max_retries=2).preflight("a", "c", 1)
        self.assertEqual(len(seen), 3)

    def test_no_answer_is_unavailable(self):
        port = harness.free_port()  # nothing listens there
        c = AgentBillClient(api_key="agb_x", base_url="http://127.0.0.1:%d" % port, max_retries=1)
        with self.assertRaises(UnavailableError) as ctx:
            c.preflight("a", "c", 1)
        self.assertIsNone(ctx.exception.status)


class Example(unittest.TestCase):
    def test_python_example_agent(self):
        env = dict(os.environ, AGENTBILL_BASE_URL=SERVER.base_url, AGENTBILL_API_KEY=AGENT,
                   PYTHONPATH=harness.SDK_DIR)
        res = subprocess.run([sys.executable, os.path.join(harness.REPO, "examples", "python", "agent.py")],
                             env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("approved", res.stdout)


class Packaging(unittest.TestCase):
    def test_pip_install(self):
        """`pip install ./sdk/python` works with no package index."""
        if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
            self.skipTest("pip is not installed")
        with tempfile.TemporaryDirectory() as target:
            res = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-index", "--quiet", "--disable-pip-version-check",
                 "--target", target, harness.SDK_DIR],
                capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            check = subprocess.run(
                [sys.executable, "-c", "import agentbill, sys; print(agentbill.__version__, agentbill.__file__)"],
                cwd=target, env=dict(os.environ, PYTHONPATH=target), capture_output=True, text=True,
                timeout=EXAMPLE_TIMEOUT)
            self.assertEqual(check.returncode, 0, check.stderr)
            self.assertTrue(check.stdout.startswith("0.1.0 " + target), check.stdout)
            self.assertTrue(os.path.exists(os.path.join(target, "agentbill", "py.typed")))


if __name__ == "__main__":
    unittest.main()
