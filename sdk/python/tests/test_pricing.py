"""Priced usage (docs/PROTOCOL.md, "Priced usage") through the Python SDK,
against a real `agentbill serve --http`: price lists, usage estimates,
usage records priced by the ledger, and wrap(pricing="list") with the
stand-in provider clients of tests/standins.py."""

import copy
import json
import math
import unittest
import uuid
from decimal import Decimal

import harness
from standins import Model
from test_wrap import EXPECTED_USAGE, TOKENS, MAX_OUT, make, run
from agentbill import (
    AgentBillClient,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    UsageEstimate,
    UsageReport,
    wrap,
)
from agentbill.usage import USAGE_MISSING
from agentbill.wrap import FIRST_CALL_OUTPUT_TOKENS, PROMPT_BYTES_PER_TOKEN

SERVER = None
ADMIN = AGENT = None
MILLION = Decimal(1_000_000)

# The list every customer here is priced with (its name is "default"):
# rates per million tokens, written as strings, ints and Decimals.
PRICES = {
    "list": "default", "version": "v1", "currency": "USD",
    "models": [
        {"id": "m", "provider": "openai", "rates": {"input": "3", "output": 15}},
        {"id": "m-fee", "rates": {"input": "3", "output": "15"}, "request_fee": Decimal("0.001")},
        {"id": "m-long", "rates": {"input": "3", "output": "15"},
         "tiers": [{"above_input_tokens": 1000, "rates": {"input": "6", "output": "22.5"}}]},
        {"id": "gpt-4.1-mini", "provider": "openai",
         "rates": {"input": "0.4", "output": "1.6", "cache_read": "0.1"}},
        {"id": "claude-sonnet-4-5", "provider": "anthropic",
         "rates": {"input": "3", "output": "15", "cache_read": "0.3", "cache_write": "3.75",
                   "cache_write_1h": "6"}},
        {"id": "gemini-2.5-flash", "provider": "google", "aliases": ["gemini-2.5-flash-001"],
         "rates": {"input": "0.3", "output": "2.5", "cache_read": "0.03"}},
    ],
}

# What wrap(pricing="list") charges for tests/standins' TOKENS (120 prompt
# tokens, 30 of them read from cache and 20 written, 5 of those for an
# hour; 40 output, 10 of them reasoning), worked out by hand from PRICES.
# Reasoning is charged at the output rate, which it is part of.
WRAP_CHARGE = {
    # (120 - 30) x 0.4 + 30 x 0.1 + 40 x 1.6 = 36 + 3 + 64 = 103 per million
    "openai.chat": Decimal("0.000103"),
    "openai.responses": Decimal("0.000103"),
    # (120 - 30 - 20) x 3 + 30 x 0.3 + 15 x 3.75 + 5 x 6 + 40 x 15
    # = 210 + 9 + 56.25 + 30 + 600 = 905.25 per million
    "anthropic.messages": Decimal("0.00090525"),
    # (120 - 30) x 0.3 + 30 x 0.03 + 40 x 2.5 = 27 + 0.9 + 100 = 127.9 per million
    "gemini": Decimal("0.0001279"),
}


def setUpModule():
    global SERVER, ADMIN, AGENT
    SERVER = harness.Server()
    ADMIN, _ = SERVER.create_key("admin")
    AGENT, _ = SERVER.create_key("agent")
    AgentBillClient(api_key=ADMIN, base_url=SERVER.base_url).set_prices(PRICES)


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


def name(prefix):
    return prefix + "_" + uuid.uuid4().hex[:12]


def one_model_list(list_name, version, input_rate):
    return {"list": list_name, "version": version,
            "models": [{"id": "m", "rates": {"input": input_rate, "output": "15"}}]}


class Base(unittest.TestCase):
    def setUp(self):
        self.admin = AgentBillClient(api_key=ADMIN, base_url=SERVER.base_url)
        self.client = AgentBillClient(api_key=AGENT, base_url=SERVER.base_url)

    def customer(self, limit=10, **budget):
        cid = name("cust")
        self.admin.set_budget(cid, limit, "month", **budget)
        return cid

    def events(self, cid, kind):
        return [e["data"] for e in self.admin.events(cid, limit=100).events if e["type"] == kind]


class PriceLists(Base):
    def test_setting_the_same_version_again_changes_nothing(self):
        lst = one_model_list(name("list"), "v1", "3")
        first = self.admin.set_prices(lst)
        self.assertEqual((first.list, first.version, first.models, first.changed), (lst["list"], "v1", 1, True))
        self.assertEqual(len(first.digest), 64)
        self.assertEqual((first.partition, first.partitions), (0, 1))
        # The same list as JSON text and bytes: the same digest, nothing new.
        for again in (json.dumps(lst), json.dumps(lst).encode("utf-8")):
            res = self.admin.set_prices(again)
            self.assertEqual((res.changed, res.digest), (False, first.digest))

    def test_a_version_with_other_prices_is_a_conflict(self):
        lst = one_model_list(name("list"), "v1", "3")
        self.admin.set_prices(lst)
        with self.assertRaises(ConflictError):
            self.admin.set_prices(one_model_list(lst["list"], "v1", "4"))
        self.assertTrue(self.admin.set_prices(one_model_list(lst["list"], "v2", "4")).changed)
        [shown] = self.admin.price_lists(lst["list"]).lists
        self.assertEqual(shown.version, "v2")
        self.assertEqual(shown.prices["models"][0]["rates"]["input"], 4)

    def test_a_float_rate_is_refused_before_anything_is_sent(self):
        lst = one_model_list(name("list"), "v1", 0.1)
        with self.assertRaises(TypeError):
            self.admin.set_prices(lst)
        with self.assertRaises(NotFoundError):
            self.admin.price_lists(lst["list"])

    def test_every_problem_of_a_list_is_reported_at_once(self):
        bad = {"list": name("list"), "version": "v1",
               "models": [{"id": "a", "rates": {"cache_read": "1"}},
                          {"id": "b", "rates": {"input": "1"},
                           "tiers": [{"above_input_tokens": 5, "rates": {"output": "2"}}]}]}
        with self.assertRaises(InvalidArgumentError) as ctx:
            self.admin.set_prices(bad)
        self.assertIn("models[0] (a).rates.cache_read", str(ctx.exception))
        self.assertIn("models[1] (b).tiers[0]", str(ctx.exception))
        with self.assertRaises(NotFoundError):
            self.admin.price_lists(bad["list"])

    def test_price_lists_shows_every_list_and_one_with_its_prices(self):
        every = {x.list: x for x in self.admin.price_lists().lists}
        self.assertEqual((every["default"].version, every["default"].models), ("v1", len(PRICES["models"])))
        self.assertIsNone(every["default"].prices)
        self.assertTrue(every["default"].set_at)
        [one] = self.admin.price_lists("default").lists
        self.assertEqual([m["id"] for m in one.prices["models"]], [m["id"] for m in PRICES["models"]])
        self.assertEqual(one.prices["models"][3]["rates"]["input"], Decimal("0.4"))  # exact, not a float
        with self.assertRaises(NotFoundError):
            self.admin.price_lists(name("nope"))


class Estimates(Base):
    def test_a_usage_estimate_is_held_at_its_worst_case(self):
        cid = self.customer()
        check = self.client.preflight("bot", cid, usage_estimate=UsageEstimate("m", 1000, 500))
        self.assertTrue(check.approved, check.message)
        # 1,000 x 3 + 500 x 15 = 10,500 per million.
        self.assertEqual(check.reserved_units, Decimal("0.0105"))
        self.assertEqual(check.max_output_tokens, 500)
        self.assertEqual(check.estimate_pricing.describe(),
                         "1,000 input x 3/M + 500 output x 15/M = 0.0105 (m, list default v1)")

    def test_a_partial_approval_covers_fewer_output_tokens(self):
        cid = self.customer("0.006")
        check = self.client.preflight("bot", cid, usage_estimate={"model": "m", "input_tokens": 1000,
                                                                  "max_output_tokens": 500}, min_units="0.004")
        self.assertTrue(check.partial, check.message)
        self.assertEqual(check.reserved_units, Decimal("0.006"))
        # The 0.003 the prompt costs leaves 0.003 for output at 15 per million.
        self.assertEqual(check.max_output_tokens, 200)

    def test_a_model_the_list_does_not_price_needs_estimated_units(self):
        cid = self.customer()
        est = UsageEstimate("not-a-model", 10, 10)
        with self.assertRaises(InvalidArgumentError) as ctx:
            self.client.preflight("bot", cid, usage_estimate=est)
        self.assertIn("not-a-model", str(ctx.exception))
        check = self.client.preflight("bot", cid, 2, usage_estimate=est)
        self.assertEqual((check.reserved_units, check.max_output_tokens, check.estimate_pricing),
                         (Decimal(2), None, None))

    def test_bad_estimates_are_refused_before_anything_is_sent(self):
        cid = self.customer()
        for bad, err in [({"model": "m", "input_tokens": 1.5, "max_output_tokens": 1}, TypeError),
                         ({"model": "m", "input_tokens": True, "max_output_tokens": 1}, TypeError),
                         ({"model": "m", "input_tokens": 1, "max_output_tokens": 1, "outputs": 1}, ValueError),
                         ({"input_tokens": 1, "max_output_tokens": 1}, ValueError),
                         ("m", TypeError)]:
            with self.subTest(bad=bad), self.assertRaises(err):
                self.client.preflight("bot", cid, usage_estimate=bad)
        self.assertEqual(self.admin.status(cid).open_reservations, 0)


class Records(Base):
    def test_usage_is_charged_its_list_price(self):
        cid = self.customer()
        check = self.client.preflight("bot", cid, usage_estimate=UsageEstimate("m", 1000, 500))
        res = self.client.record("bot", customer_id=cid, reservation_id=check.reservation_id,
                                 usage=UsageReport("m", input_tokens=1200, output_tokens=400))
        self.assertEqual(res.charged_units, Decimal("0.0096"))
        self.assertIsNone(res.unpriced)
        self.assertEqual(res.pricing.describe(), "1,200 input x 3/M + 400 output x 15/M = 0.0096 (m, list default v1)")
        self.assertEqual(self.admin.status(cid).used, Decimal("0.0096"))
        [rec] = self.events(cid, "recorded")
        self.assertEqual(rec["usage"], {"model": "m", "input_tokens": 1200, "output_tokens": 400})

    def test_describe_names_the_fee_and_the_long_context_tier(self):
        cid = self.customer()
        fee = self.client.record("bot", customer_id=cid, usage={"model": "m-fee", "input_tokens": 1000,
                                                                "output_tokens": 0}, units=1)
        # A kind with no tokens is not a line of the charge.
        self.assertEqual(fee.pricing.describe(), "1,000 input x 3/M + request fee 0.001 = 0.004 "
                                                 "(m-fee, list default v1)")
        long = self.client.record("bot", customer_id=cid, usage={"model": "m-long", "input_tokens": 2000,
                                                                 "output_tokens": 100}, units=1)
        # Above 1,000 input tokens every token is at the tier's rates.
        self.assertEqual(long.charged_units, Decimal("0.01425"))
        self.assertEqual(long.pricing.describe(), "2,000 input x 6/M + 100 output x 22.5/M = 0.01425 "
                                                  "(long-context rates above 1,000 input tokens; m-long, list default v1)")
        # The same words as `agentbill audit`, which writes the server's own.
        audit = [json.loads(line) for line in SERVER.cli("audit", "--customer", cid, "--format", "json").splitlines()]
        self.assertEqual([r["reason"] for r in audit if r["type"] == "recorded"],
                         [fee.pricing.describe(), long.pricing.describe()])

    def test_a_model_the_list_does_not_price_is_charged_the_hold_and_counted(self):
        cid = self.customer()
        check = self.client.preflight("bot", cid, "0.5")
        res = self.client.record("bot", customer_id=cid, reservation_id=check.reservation_id,
                                 usage={"model": "not-a-model", "input_tokens": 10, "output_tokens": 10})
        self.assertEqual(res.charged_units, Decimal("0.5"))
        self.assertIsNone(res.pricing)
        self.assertIn("not-a-model", res.unpriced)
        status = self.admin.status(cid)
        self.assertEqual((status.used, status.unpriced_records), (Decimal("0.5"), 1))

    def test_usage_without_units_or_hold_is_refused_and_with_units_charged_them(self):
        cid = self.customer()
        usage = {"model": "not-a-model", "input_tokens": 10, "output_tokens": 10}
        with self.assertRaises(InvalidArgumentError):
            self.client.record("bot", customer_id=cid, usage=usage)
        res = self.client.record("bot", "0.25", cid, usage=usage)
        self.assertEqual(res.charged_units, Decimal("0.25"))
        self.assertTrue(res.unpriced)
        self.assertEqual(self.admin.status(cid).unpriced_records, 1)

    def test_counts_that_contradict_each_other_are_invalid(self):
        cid = self.customer()
        with self.assertRaises(InvalidArgumentError):
            self.client.record("bot", 1, cid, usage={"model": "m", "input_tokens": 10, "output_tokens": 1,
                                                     "cache_read_tokens": 11})
        for bad, err in [({"model": "m", "input_tokens": 1.0}, TypeError),
                         ({"model": "m", "tokens": 1}, ValueError),
                         ({"model": 7}, TypeError)]:
            with self.subTest(bad=bad), self.assertRaises(err):
                self.client.record("bot", 1, cid, usage=bad)
        self.assertEqual(self.admin.status(cid).used, 0)

    def test_units_are_still_required_without_usage(self):
        cid = self.customer()
        with self.assertRaisesRegex(TypeError, "units is required"):
            self.client.record("bot", customer_id=cid)
        check = self.client.preflight("bot", cid, 3)
        res = self.client.record("bot", customer_id=cid, reservation_id=check.reservation_id, success=False)
        self.assertEqual((res.status, res.released_units), ("released", Decimal(3)))

    def test_a_budget_names_its_price_list(self):
        lst = one_model_list(name("list"), "v1", "1")
        with self.assertRaises(InvalidArgumentError):
            self.customer(price_list=lst["list"])  # not set yet
        self.admin.set_prices(lst)
        cid = self.customer(price_list=lst["list"])
        status = self.admin.status(cid)
        self.assertEqual((status.price_list, status.unpriced_records), (lst["list"], 0))
        res = self.client.record("bot", customer_id=cid, units=0,
                                 usage={"model": "m", "input_tokens": 1000, "output_tokens": 0})
        self.assertEqual((res.charged_units, res.pricing.list), (Decimal("0.001"), lst["list"]))
        self.assertIsNone(self.admin.status(self.customer()).price_list)


class WrapListPricing(Base):
    def wrapped(self, case, model, cid, aio=False, **opts):
        return wrap(make(case, model, aio), agent_id="wrapped_agent", customer_id=cid, agentbill=self.client,
                    pricing="list", **opts)

    def test_a_call_is_charged_the_list_price_of_its_usage(self):
        for case in WRAP_CHARGE:
            for aio in (False, True):
                for stream in (False, True):
                    with self.subTest(call=case, aio=aio, stream=stream):
                        cid, model = self.customer(), Model(TOKENS)
                        self.assertTrue(run(case, self.wrapped(case, model, cid, aio), aio, stream))
                        [held] = self.events(cid, "reserved")
                        self.assertEqual(held["max_output_tokens"], MAX_OUT)
                        self.assertEqual(held["pricing"]["lines"][-1], {"kind": "output", "tokens": MAX_OUT,
                                                                        "rate": held["pricing"]["lines"][-1]["rate"]})
                        [rec] = self.events(cid, "recorded")
                        self.assertEqual(rec["usage"], EXPECTED_USAGE[case])
                        self.assertNotIn("metadata", rec)
                        self.assertEqual(Decimal(str(rec["units"])), WRAP_CHARGE[case])
                        status = self.admin.status(cid)
                        self.assertEqual((status.used, status.reserved, status.unpriced_records),
                                         (WRAP_CHARGE[case], 0, 0))

    def test_the_first_estimate_is_the_prompt_and_the_max_output(self):
        cid = self.customer()
        client = self.wrapped("openai.chat", Model(TOKENS), cid)
        messages = [{"role": "user", "content": "x" * 400}]
        client.chat.completions.create(model="m", messages=messages)  # no max: FIRST_CALL_OUTPUT_TOKENS
        client.chat.completions.create(model="m", messages=messages)  # the measured means: 120 in, 40 out
        client.chat.completions.create(model="m", messages=messages, max_completion_tokens=7)
        lines = [[(ln["kind"], ln["tokens"]) for ln in e["pricing"]["lines"]] for e in self.events(cid, "reserved")]
        prompt = math.ceil(len(json.dumps({"messages": messages}, separators=(",", ":"))) / PROMPT_BYTES_PER_TOKEN)
        self.assertEqual(lines, [[("input", prompt), ("output", FIRST_CALL_OUTPUT_TOKENS)],
                                 [("input", TOKENS.prompt), ("output", TOKENS.output)],
                                 [("input", TOKENS.prompt), ("output", 7)]])

    def test_missing_usage_is_charged_the_hold_never_zero(self):
        cid, model = self.customer(), Model(TOKENS, report_usage=False)
        self.wrapped("anthropic.messages", model, cid).messages.create(
            model="claude-sonnet-4-5", max_tokens=MAX_OUT, messages=[{"role": "user", "content": "hi"}])
        [held] = self.events(cid, "reserved")
        [rec] = self.events(cid, "recorded")
        self.assertGreater(Decimal(str(held["units"])), 0)
        self.assertEqual((rec["units"], rec["metadata"]), (held["units"], {"usage": USAGE_MISSING}))
        self.assertNotIn("usage", rec)
        self.assertEqual(self.admin.status(cid).used, Decimal(str(held["units"])))

    def test_a_model_the_list_does_not_price_is_not_sent_unless_estimate_holds_units(self):
        cid, model = self.customer(), Model(TOKENS)
        unknown = copy.deepcopy(EXPECTED_USAGE["openai.chat"])
        unknown["model"] = "gpt-unknown"
        client = self.wrapped("openai.chat", model, cid)
        with self.assertRaises(InvalidArgumentError):
            client.chat.completions.create(model="gpt-unknown", messages=[], max_completion_tokens=MAX_OUT)
        self.assertEqual(model.requests, [])
        client = self.wrapped("openai.chat", model, cid, estimate="0.01")
        client.chat.completions.create(model="gpt-unknown", messages=[], max_completion_tokens=MAX_OUT)
        [rec] = self.events(cid, "recorded")
        self.assertEqual((Decimal(str(rec["units"])), rec["usage"]), (Decimal("0.01"), unknown))
        self.assertIn("gpt-unknown", rec["unpriced"])
        self.assertEqual(self.admin.status(cid).unpriced_records, 1)

    def test_pricing_must_be_tokens_or_list(self):
        with self.assertRaises(ValueError):
            wrap(make("openai.chat", Model(TOKENS), False), agent_id="a", agentbill=self.client, pricing="cost")


if __name__ == "__main__":
    unittest.main()
