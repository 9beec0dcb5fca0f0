"""Credit grants, scopes, partial approvals, overdraft, run caps and rate limits
(docs/PROTOCOL.md), with the Python SDK against a real `agentbill serve
--http`.

Some tests need gateway surfaces another branch adds (POST /v1/grants, the
new PUT /v1/budget fields, scope on POST /v1/events). They skip while
docs/openapi.json does not document them, and run as soon as it does
(harness.gateway_has).
"""

import datetime
import json
import threading
import unittest
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from agentbill import (
    REFUSAL_REASONS,
    AgentBillClient,
    GrantDraw,
    GrantResult,
    GrantStatus,
    InvalidArgumentError,
    PermissionDeniedError,
    PreflightResult,
    RateLimit,
    RecordResult,
    RefusedError,
    ScopeLimit,
    ScopeRef,
    ScopeStatus,
    Status,
)
from agentbill.client import _loads

SERVER = None
ADMIN = AGENT = None

HAS_GRANTS = harness.gateway_has(path="/v1/grants")
HAS_BUDGET_RULES = all(harness.gateway_has(schema="BudgetBody", field=f) for f in (
    "rollover", "overdraft", "scope_limits", "max_concurrent_runs", "max_concurrent_runs_per_agent"))
HAS_RECORD_SCOPE = harness.gateway_has(schema="RecordBody", field="scope")

needs_grants = unittest.skipUnless(
    HAS_GRANTS, "POST /v1/grants is not in docs/openapi.json yet (the gateway's grant route comes from another branch)")
needs_budget_rules = unittest.skipUnless(
    HAS_BUDGET_RULES, "PUT /v1/budget's rollover, overdraft, scope_limits and run caps are not in docs/openapi.json yet")
needs_record_scope = unittest.skipUnless(
    HAS_RECORD_SCOPE, "POST /v1/events's scope is not in docs/openapi.json yet")

#: A grant's expiry in the tests: far enough that none expires while they run.
GRANT_LIFETIME = datetime.timedelta(days=30)


def setUpModule():
    global SERVER, ADMIN, AGENT
    SERVER = harness.Server()
    ADMIN, _ = SERVER.create_key("admin")
    AGENT, _ = SERVER.create_key("agent")


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


def in_a_month():
    return datetime.datetime.now(datetime.timezone.utc) + GRANT_LIFETIME


class Base(unittest.TestCase):
    def setUp(self):
        self.admin = AgentBillClient(api_key=ADMIN, base_url=SERVER.base_url)
        self.client = AgentBillClient(api_key=AGENT, base_url=SERVER.base_url)
        self.cid = "cust_" + uuid.uuid4().hex[:12]

    def budget(self, limit, **kwargs):
        return self.admin.set_budget(self.cid, limit, "month", **kwargs)


class PartialApprovals(Base):
    """min_units and scope go through POST /v1/preflight as it is."""

    def test_min_units_holds_what_fits(self):
        self.budget(10)
        check = self.client.preflight("a", self.cid, 15, min_units=5)
        self.assertTrue(check.approved)
        self.assertTrue(check.partial)
        self.assertFalse(check.overdraft)
        self.assertEqual((check.reserved_units, check.remaining_units), (Decimal(10), Decimal(0)))
        self.assertIn("of the 15 units requested", check.message)
        whole = self.client.preflight("a", self.cid, 1)
        self.assertEqual((whole.approved, whole.partial, whole.reason), (False, False, "budget_exhausted"))

    def test_a_whole_approval_is_not_partial(self):
        self.budget(10)
        check = self.client.preflight("a", self.cid, 4, min_units=1)
        self.assertEqual((check.approved, check.partial, check.reserved_units), (True, False, Decimal(4)))

    def test_min_units_that_does_not_fit_is_refused(self):
        self.budget(10)
        self.client.preflight("a", self.cid, 4)
        check = self.client.preflight("a", self.cid, 20, min_units=Decimal("6.5"))
        self.assertEqual((check.approved, check.reason), (False, "budget_exhausted"))
        self.assertEqual(self.client.status(self.cid).reserved, Decimal(4))

    def test_min_units_above_the_estimate_is_invalid(self):
        self.budget(10)
        with self.assertRaisesRegex(InvalidArgumentError, "min_units"):
            self.client.preflight("a", self.cid, 2, min_units=3)

    def test_scope_reaches_the_ledger(self):
        self.budget(10)
        check = self.client.preflight("a", self.cid, 1, scope={"team": "research", "user": "alice"})
        self.assertTrue(check.approved)
        self.assertIsNone(check.scope)
        # The ledger's own rules on scopes: "agent" is reserved, at most 4.
        for bad in ({"agent": "a"}, {"Team": "x"}, {"d%d" % i: "v" for i in range(5)}):
            with self.assertRaises(InvalidArgumentError, msg=repr(bad)):
                self.client.preflight("a", self.cid, 1, scope=bad)

    def test_gate_records_the_partial_hold(self):
        self.budget(10)
        seen = []

        @self.client.gate(agent_id="a", estimated_units=15, customer_id=self.cid, min_units=5,
                          scope={"team": "research"})
        def run():
            seen.append(1)
            return "done"

        self.assertEqual(run(), "done")
        st = self.client.status(self.cid)
        self.assertEqual((st.used, st.reserved, st.remaining), (Decimal(10), Decimal(0), Decimal(0)))
        with self.assertRaises(RefusedError) as ctx:
            run()
        self.assertEqual(ctx.exception.reason, "budget_exhausted")
        self.assertIsNone(ctx.exception.scope)
        self.assertEqual(seen, [1])

    def test_status_without_grants_or_scopes(self):
        self.budget(10)
        st = self.client.status(self.cid)
        self.assertEqual((st.grants, st.scopes, st.grants_remaining), ([], [], Decimal(0)))
        self.assertIsNone(st.overdraft)
        self.assertIsNone(st.rollover)
        self.assertIsNone(st.max_concurrent_runs)
        self.assertIsNone(st.max_concurrent_runs_per_agent)
        self.assertIn("grants_remaining", st.raw)


class Grants(Base):
    """POST /v1/grants (needs the gateway's grant route)."""

    @needs_grants
    def test_grant_shows_in_status_and_funds_usage(self):
        self.budget(10)
        g = self.admin.grant(self.cid, "5.5", expires_at=in_a_month(), priority=10, source="promo", note="welcome")
        self.assertIsInstance(g, GrantResult)
        self.assertTrue(g.grant_id)
        self.assertEqual((g.units, g.priority, g.source, g.remaining_units), (Decimal("5.5"), 10, "promo", Decimal("15.5")))
        self.assertTrue(g.effective_at)
        self.assertTrue(g.expires_at)
        st = self.client.status(self.cid)
        self.assertEqual(st.remaining, Decimal("15.5"))
        self.assertEqual(st.grants_remaining, Decimal("5.5"))
        self.assertEqual([(x.grant_id, x.units, x.remaining, x.priority, x.source) for x in st.grants],
                         [(g.grant_id, Decimal("5.5"), Decimal("5.5"), 10, "promo")])

        # The period's allowance pays first, then the grant.
        check = self.client.preflight("a", self.cid, 12)
        rec = self.client.record("a", 12, self.cid, check.reservation_id)
        self.assertEqual(rec.funded_by, [GrantDraw(grant_id=g.grant_id, units=Decimal(2))])
        self.assertEqual(rec.remaining_units, Decimal("3.5"))
        st = self.client.status(self.cid)
        self.assertEqual((st.grants_remaining, st.grants[0].remaining), (Decimal("3.5"), Decimal("3.5")))

    @needs_grants
    def test_grants_are_drawn_by_priority(self):
        self.budget(0)
        late = self.admin.grant(self.cid, 5, source="purchase")  # priority 100, never expires
        early = self.admin.grant(self.cid, 5, priority=1, expires_at=in_a_month().isoformat())
        st = self.client.status(self.cid)
        self.assertEqual([x.grant_id for x in st.grants], [early.grant_id, late.grant_id])
        self.assertIsNone(st.grants[1].expires_at)
        self.assertEqual(late.source, "purchase")
        self.assertEqual(late.priority, 100)
        rec = self.client.record("a", 7, self.cid)
        self.assertEqual(rec.funded_by, [GrantDraw(early.grant_id, Decimal(5)), GrantDraw(late.grant_id, Decimal(2))])

    @needs_grants
    def test_grant_retry_is_one_grant(self):
        self.budget(10)
        a = self.admin.grant(self.cid, 3, idempotency_key="grant-" + self.cid)
        b = self.admin.grant(self.cid, 3, idempotency_key="grant-" + self.cid)
        self.assertEqual(a.grant_id, b.grant_id)
        self.assertEqual(len(self.client.status(self.cid).grants), 1)

    @needs_grants
    def test_grant_errors(self):
        self.budget(10)
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        for kwargs in ({"units": 0}, {"units": 1, "expires_at": past}, {"units": 1, "priority": 1_000_001},
                       {"units": 1, "source": "s" * 33}):
            with self.assertRaises(InvalidArgumentError, msg=repr(kwargs)):
                self.admin.grant(self.cid, **kwargs)
        with self.assertRaises(PermissionDeniedError):
            self.client.grant(self.cid, 1)
        self.assertEqual(self.client.status(self.cid).grants, [])


class BudgetRules(Base):
    """Overdraft, scope limits, run caps and rollover (need the new
    PUT /v1/budget fields)."""

    @needs_budget_rules
    def test_overdraft_takes_remaining_below_zero(self):
        self.budget(10, overdraft=5)
        check = self.client.preflight("a", self.cid, 12)
        self.assertEqual((check.approved, check.overdraft, check.remaining_units), (True, True, Decimal(-2)))
        st = self.client.status(self.cid)
        self.assertEqual((st.remaining, st.overdraft, st.exhausted), (Decimal(-2), Decimal(5), False))
        refused = self.client.preflight("a", self.cid, 4)
        self.assertEqual((refused.approved, refused.reason, refused.remaining_units),
                         (False, "budget_exhausted", Decimal(-2)))
        rec = self.client.record("a", 15, self.cid, check.reservation_id)
        self.assertEqual((rec.remaining_units, rec.exhausted), (Decimal(-5), True))
        self.assertEqual((self.client.status(self.cid).remaining, self.client.status(self.cid).exhausted),
                         (Decimal(-5), True))

    @needs_budget_rules
    def test_scope_limit_refuses_with_its_scope(self):
        self.budget(100, scope_limits=[ScopeLimit("team", "research", 5),
                                       {"dimension": "user", "value": "alice", "limit": "2.5", "period": "day"}])
        ok = self.client.preflight("a", self.cid, 4, scope={"team": "research"})
        self.assertTrue(ok.approved)
        no = self.client.preflight("a", self.cid, 2, scope={"team": "research"})
        self.assertEqual((no.approved, no.reason, no.scope), (False, "scope_limit_exceeded", ScopeRef("team", "research")))
        partial = self.client.preflight("a", self.cid, 2, scope={"team": "research"}, min_units=1)
        self.assertEqual((partial.approved, partial.partial, partial.reserved_units), (True, True, Decimal(1)))
        st = self.client.status(self.cid)
        self.assertEqual([(s.dimension, s.value, s.limit, s.period, s.reserved, s.remaining) for s in st.scopes], [
            ("team", "research", Decimal(5), "month", Decimal(5), Decimal(0)),
            ("user", "alice", Decimal("2.5"), "day", Decimal(0), Decimal("2.5")),
        ])
        self.assertIsInstance(st.scopes[0], ScopeStatus)

        @self.client.gate(agent_id="a", estimated_units=1, customer_id=self.cid, scope={"team": "research"})
        def run():
            self.fail("a refused run ran")

        with self.assertRaises(RefusedError) as ctx:
            run()
        self.assertEqual((ctx.exception.reason, ctx.exception.scope), ("scope_limit_exceeded", ScopeRef("team", "research")))

    @needs_budget_rules
    def test_run_caps(self):
        self.budget(100, max_concurrent_runs=2, max_concurrent_runs_per_agent=1)
        st = self.client.status(self.cid)
        self.assertEqual((st.max_concurrent_runs, st.max_concurrent_runs_per_agent), (2, 1))
        first = self.client.preflight("a", self.cid, 1)
        self.assertTrue(first.approved)
        same_agent = self.client.preflight("a", self.cid, 1)
        self.assertEqual((same_agent.approved, same_agent.reason), (False, "concurrency_limit_exceeded"))
        self.assertTrue(self.client.preflight("b", self.cid, 1).approved)
        third = self.client.preflight("c", self.cid, 1)
        self.assertEqual(third.reason, "concurrency_limit_exceeded")
        self.client.release(first.reservation_id, self.cid)
        self.assertTrue(self.client.preflight("c", self.cid, 1).approved)

    @needs_budget_rules
    def test_rollover_policy_reads_back(self):
        self.budget(10, rollover="all")
        self.assertEqual(self.client.status(self.cid).rollover, "all")
        self.budget(10, rollover=Decimal("2.50"))
        self.assertEqual(self.client.status(self.cid).rollover, Decimal("2.5"))
        self.budget(10, rollover="none")
        self.assertIsNone(self.client.status(self.cid).rollover)
        with self.assertRaises(InvalidArgumentError):
            self.admin.set_budget(self.cid, 10, "none", rollover="all")

    @needs_budget_rules
    @needs_record_scope
    def test_record_without_a_hold_counts_its_scope(self):
        self.budget(100, scope_limits=[ScopeLimit("team", "research", 5)])
        rec = self.client.record("a", 3, self.cid, scope={"team": "research"})
        self.assertEqual(rec.status, "recorded")
        st = self.client.status(self.cid)
        self.assertEqual((st.scopes[0].used, st.scopes[0].remaining), (Decimal(3), Decimal(2)))


class RateLimits(Base):
    """A budget's rate_limit (docs/PROTOCOL.md, "Rate limits") refuses the
    preflights past its burst with rate_limited and retry_after_ms."""

    def test_past_the_burst_is_rate_limited_with_retry_after_ms(self):
        # One token a 1,000 s: none comes back while the test runs.
        self.budget(100, rate_limit={"per_second": "0.001", "burst": 2})
        self.assertEqual(self.client.status(self.cid).rate_limit, RateLimit(per_second=Decimal("0.001"), burst=2))
        first = self.client.preflight("a", customer_id=self.cid)
        self.assertTrue(first.approved)
        self.assertTrue(self.client.preflight("a", customer_id=self.cid).approved)
        third = self.client.preflight("a", customer_id=self.cid)
        self.assertEqual((third.approved, third.reason), (False, "rate_limited"))
        self.assertIsInstance(third.retry_after_ms, int)
        self.assertTrue(990_000 < third.retry_after_ms <= 1_000_000, third.retry_after_ms)

        @self.client.gate("a", customer_id=self.cid)
        def run():
            self.fail("ran")

        with self.assertRaises(RefusedError) as cm:
            run()
        self.assertEqual(cm.exception.reason, "rate_limited")
        self.assertGreater(cm.exception.retry_after_ms, 0)
        # Records are never limited.
        rec = self.client.record("a", 1, customer_id=self.cid, reservation_id=first.reservation_id)
        self.assertEqual(rec.status, "recorded")
        self.assertIn("rate_limited", REFUSAL_REASONS)

    def test_zero_lifts_the_limit_and_a_bad_rate_is_invalid(self):
        self.budget(100, rate_limit=RateLimit(per_second=Decimal(0)))
        self.assertEqual(self.client.status(self.cid).rate_limit, RateLimit(per_second=Decimal(0), burst=0))
        with self.assertRaisesRegex(InvalidArgumentError, "burst 0 is outside"):
            self.budget(100, rate_limit={"per_second": 10, "burst": 0})
        with self.assertRaises(TypeError):
            self.budget(100, rate_limit=5)


class Replies(unittest.TestCase):
    """Replies as the gateway writes them (JSON numbers, negative in
    overdraft) parse exactly, with no server."""

    def test_negative_remaining_parses_exactly(self):
        p = PreflightResult.from_json(_loads(
            b'{"approved":true,"message":"m","reservation_id":"r","reserved_units":12,'
            b'"remaining_units":-2.000000000000000001,"overdraft":true}'))
        self.assertEqual((p.remaining_units, p.overdraft, p.partial), (Decimal("-2.000000000000000001"), True, False))
        r = RecordResult.from_json(_loads(
            b'{"status":"recorded","charged_units":7,"released_units":0,"overage_units":0,'
            b'"remaining_units":-0.5,"exhausted":true,"funded_by":[{"grant_id":"g1","units":0.25}]}'))
        self.assertEqual(r.remaining_units, Decimal("-0.5"))
        self.assertEqual(r.funded_by, [GrantDraw("g1", Decimal("0.25"))])
        self.assertEqual(RecordResult.from_json({"status": "recorded"}).funded_by, [])

    def test_refusal_names_its_scope(self):
        p = PreflightResult.from_json(_loads(
            b'{"approved":false,"reason":"scope_limit_exceeded","message":"m","reserved_units":0,'
            b'"remaining_units":40,"scope":{"dimension":"team","value":"research"}}'))
        self.assertEqual(p.scope, ScopeRef("team", "research"))
        err = RefusedError(p)
        self.assertEqual((err.reason, err.scope), ("scope_limit_exceeded", ScopeRef("team", "research")))
        for reason in ("scope_limit_exceeded", "concurrency_limit_exceeded"):
            self.assertIn(reason, REFUSAL_REASONS)

    def test_status_with_grants_and_scopes(self):
        st = Status.from_json(_loads(json.dumps({
            "customer_id": "c", "limit": 10, "top_ups": 0, "used": 14, "reserved": 0, "remaining": -1.5,
            "period": "month", "period_start": "2026-03-01T00:00:00Z", "period_end": "2026-04-01T00:00:00Z",
            "open_reservations": 0, "exhausted": False, "agents": {},
            "grants": [{"grant_id": "g1", "units": 5, "remaining": 0.5, "priority": 1, "source": "rollover",
                        "effective_at": "2026-03-01T00:00:00Z", "expires_at": "2026-04-01T00:00:00Z"}],
            "grants_remaining": 0.5,
            "scopes": [{"dimension": "team", "value": "<b>r&d</b>", "limit": 3, "period": "day",
                        "period_start": "2026-03-14T00:00:00Z", "used": 4, "reserved": 0, "remaining": -1}],
            "overdraft": 2, "rollover": "all", "max_concurrent_runs": 3, "max_concurrent_runs_per_agent": 1,
        }).encode()))
        self.assertEqual(st.remaining, Decimal("-1.5"))
        self.assertEqual(st.grants, [GrantStatus("g1", Decimal(5), Decimal("0.5"), 1, "rollover",
                                                 "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")])
        self.assertEqual(st.grants_remaining, Decimal("0.5"))
        self.assertEqual(st.scopes, [ScopeStatus("team", "<b>r&d</b>", Decimal(3), "day", "2026-03-14T00:00:00Z",
                                                 Decimal(4), Decimal(0), Decimal(-1))])
        self.assertEqual((st.overdraft, st.rollover, st.max_concurrent_runs, st.max_concurrent_runs_per_agent),
                         (Decimal(2), "all", 3, 1))
        self.assertEqual(Status.from_json({"rollover": "12.5"}).rollover, Decimal("12.5"))

    def test_grant_reply(self):
        g = GrantResult.from_json(_loads(
            b'{"grant_id":"g1","units":100,"priority":100,"source":"purchase",'
            b'"effective_at":"2026-03-14T09:00:00Z","remaining_units":-3}'))
        self.assertEqual((g.units, g.priority, g.expires_at, g.remaining_units), (Decimal(100), 100, None, Decimal(-3)))


class Requests(unittest.TestCase):
    """What the new calls send, checked against a stub on 127.0.0.1."""

    def setUp(self):
        self.seen = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                seen.append((self.command, self.path, json.loads(self.rfile.read(n)) if n else None))
                data = b'{"grant_id":"g","units":1,"priority":100,"source":"purchase","remaining_units":1}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PUT = _answer

            def log_message(self, *args):
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        self.client = AgentBillClient(api_key="agb_x", base_url="http://127.0.0.1:%d" % srv.server_address[1])

    def test_grant_body(self):
        at = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
        self.client.grant("c1", Decimal("2.50"), expires_at=at, effective_at="2026-04-01T00:00:00Z",
                          priority=0, source="promo", note="n", idempotency_key="k")
        self.client.grant(None, 7)
        (m1, p1, b1), (_, _, b2) = self.seen
        self.assertEqual((m1, p1), ("POST", "/v1/grants"))
        self.assertEqual(b1, {"customer_id": "c1", "units": "2.50", "expires_at": "2026-05-01T10:00:00Z",
                              "effective_at": "2026-04-01T00:00:00Z", "priority": 0, "source": "promo",
                              "note": "n", "idempotency_key": "k"})
        self.assertEqual(set(b2), {"units", "idempotency_key"})

    def test_budget_preflight_and_record_bodies(self):
        self.client.set_budget("c1", 10, "month", rollover=Decimal("5"), overdraft="2.5",
                               scope_limits=[ScopeLimit("team", "r", 3), {"dimension": "user", "value": "u",
                                                                          "limit": Decimal("1.5"), "period": "day"}],
                               max_concurrent_runs=4, max_concurrent_runs_per_agent=0, idempotency_key="k")
        self.client.preflight("a", "c1", 10, min_units=Decimal("0.5"), scope={"team": "r"}, idempotency_key="k")
        self.client.record("a", 1, "c1", scope={"team": "r"}, idempotency_key="k")
        (_, _, budget), (_, _, pf), (_, path, rec) = self.seen
        self.assertEqual(budget, {"customer_id": "c1", "limit_units": 10, "period": "month", "idempotency_key": "k",
                                  "rollover": "5", "overdraft": "2.5",
                                  "scope_limits": [{"dimension": "team", "value": "r", "limit": 3},
                                                   {"dimension": "user", "value": "u", "limit": "1.5",
                                                    "period": "day"}],
                                  "max_concurrent_runs": 4})
        self.assertEqual((pf["min_units"], pf["scope"]), ("0.5", {"team": "r"}))
        self.assertEqual((path, rec["scope"]), ("/v1/events", {"team": "r"}))

    def test_bad_arguments_fail_before_sending(self):
        naive = datetime.datetime(2026, 5, 1)
        for call in (lambda: self.client.grant("c", 0.5),
                     lambda: self.client.grant("c", 1, expires_at=naive),
                     lambda: self.client.grant("c", 1, expires_at=1700000000),
                     lambda: self.client.grant("c", 1, priority=True),
                     lambda: self.client.grant("c", 1, priority=1.0),
                     lambda: self.client.preflight("a", "c", 1, min_units=0.5),
                     lambda: self.client.preflight("a", "c", 1, scope=["team"]),
                     lambda: self.client.set_budget("c", 1, "month", overdraft=0.5),
                     lambda: self.client.set_budget("c", 1, "month", rollover=0.5),
                     lambda: self.client.set_budget("c", 1, "month", scope_limits=[("team", "r", 1)]),
                     lambda: self.client.set_budget("c", 1, "month", scope_limits=[{"dimension": "t"}]),
                     lambda: self.client.gate("a", min_units=0.5)):
            with self.assertRaises((TypeError, ValueError)):
                call()
        self.assertEqual(self.seen, [])


if __name__ == "__main__":
    unittest.main()
