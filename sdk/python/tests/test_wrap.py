"""agentbill.wrap against a real `agentbill serve --http`, with stand-in
provider clients (tests/standins.py: the provider packages cannot be
installed here) that count the requests reaching their model."""

import asyncio
import concurrent.futures
import gc
import json
import logging
import math
import os
import subprocess
import sys
import unittest
import uuid

import harness
import standins
from standins import Anthropic, AsyncAnthropic, AsyncOpenAI, GenAIClient, Model, OpenAI, ProviderError, Tokens
from agentbill import AgentBillClient, RefusedError, UnavailableError, wrap
from agentbill.usage import USAGE_MISSING
from agentbill.wrap import PROMPT_BYTES_PER_TOKEN

SERVER = None
ADMIN = AGENT = None
MAX_OUT = 64  # every call's max output tokens
TOKENS = Tokens(prompt=120, output=40, cached=30, reasoning=10, cache_write=20, cache_write_1h=5)
CONCURRENT_CALLS = 50
CALLS_THAT_FIT = 10
MODEL_DELAY = 0.05  # seconds per stand-in call, so concurrent calls overlap
BUDGET_PLENTY = 1_000_000
EXAMPLE_TIMEOUT = 60  # seconds


def setUpModule():
    global SERVER, ADMIN, AGENT
    SERVER = harness.Server()
    ADMIN, _ = SERVER.create_key("admin")
    AGENT, _ = SERVER.create_key("agent")


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


# How each provider call is made: (sync client, async client, call).

def chat(c, stream, aio):
    kw = {"stream": True} if stream else {}
    return c.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "Say hello"}],
                                     max_completion_tokens=MAX_OUT, **kw)


def responses(c, stream, aio):
    kw = {"stream": True} if stream else {}
    return c.responses.create(model="gpt-4.1-mini", input="Say hello", max_output_tokens=MAX_OUT, **kw)


def messages(c, stream, aio):
    kw = {"stream": True} if stream else {}
    return c.messages.create(model="claude-sonnet-4-5", max_tokens=MAX_OUT,
                             messages=[{"role": "user", "content": "Say hello"}], **kw)


def gemini(c, stream, aio):
    models = c.aio.models if aio else c.models
    fn = models.generate_content_stream if stream else models.generate_content
    return fn(model="gemini-2.5-flash", contents="Say hello", config={"max_output_tokens": MAX_OUT})


CASES = {
    "openai.chat": (OpenAI, AsyncOpenAI, chat),
    "openai.responses": (OpenAI, AsyncOpenAI, responses),
    "anthropic.messages": (Anthropic, AsyncAnthropic, messages),
    "gemini": (GenAIClient, GenAIClient, gemini),
}

# The usage each provider's documented response normalizes to.
OPENAI_USAGE = {"provider": "openai", "model": "gpt-4.1-mini", "input_tokens": 120, "output_tokens": 40,
                "cache_read_tokens": 30, "reasoning_tokens": 10, "service_tier": "default"}
EXPECTED_USAGE = {
    "openai.chat": OPENAI_USAGE,
    "openai.responses": OPENAI_USAGE,
    "anthropic.messages": {"provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 120,
                           "output_tokens": 40, "cache_read_tokens": 30, "cache_write_tokens": 20,
                           "cache_write_1h_tokens": 5, "reasoning_tokens": 10, "service_tier": "standard"},
    "gemini": {"provider": "google", "model": "gemini-2.5-flash-001", "input_tokens": 120, "output_tokens": 40,
               "cache_read_tokens": 30, "reasoning_tokens": 10},
}

# The record's idempotency key is the provider's response id.
RESPONSE_ID_PREFIX = {"openai.chat": "chatcmpl-", "openai.responses": "resp-", "anthropic.messages": "msg-",
                      "gemini": "gemini-"}

COMBOS = [(name, aio, stream) for name in CASES for aio in (False, True) for stream in (False, True)]


def make(name, model, aio):
    sync_cls, async_cls, _ = CASES[name]
    return (async_cls if aio else sync_cls)(model)


def run(name, client, aio, stream):
    """Makes the call and reads it to the end; returns the answer or the
    stream's events."""
    call = CASES[name][2]
    if not aio:
        out = call(client, stream, aio)
        return list(out) if stream else out

    async def go():
        out = await call(client, stream, aio)
        return [e async for e in out] if stream else out
    return asyncio.run(go())


def stopped(on_unavailable=None):
    kwargs = {} if on_unavailable is None else {"on_unavailable": on_unavailable}
    return AgentBillClient(api_key="ak_test", base_url="http://127.0.0.1:%d" % harness.free_port(),
                           timeout=1, max_retries=0, **kwargs)


class Base(unittest.TestCase):
    def setUp(self):
        self.admin = AgentBillClient(api_key=ADMIN, base_url=SERVER.base_url)
        self.agentbill = AgentBillClient(api_key=AGENT, base_url=SERVER.base_url)

    def customer(self, limit=BUDGET_PLENTY):
        cid = "cust_" + uuid.uuid4().hex[:12]
        self.admin.set_budget(cid, limit, "month")
        return cid

    def wrapped(self, name, model, aio, cid, **opts):
        return wrap(make(name, model, aio), agent_id="wrapped_agent", customer_id=cid,
                    agentbill=self.agentbill, **opts)

    def events(self, cid, kind):
        return [e["data"] for e in self.admin.events(cid, limit=100).events if e["type"] == kind]

    def assert_no_hold(self, cid, used=0):
        s = self.admin.status(cid)
        self.assertEqual((s.used, s.reserved, s.open_reservations), (used, 0, 0))


class Charged(Base):
    def test_an_approved_call_is_charged_the_reported_usage(self):
        for name, aio, stream in COMBOS:
            with self.subTest(call=name, aio=aio, stream=stream):
                cid, model = self.customer(), Model(TOKENS)
                out = run(name, self.wrapped(name, model, aio, cid), aio, stream)
                self.assertTrue(out)
                self.assertEqual(len(model.requests), 1)
                self.assert_no_hold(cid, used=TOKENS.total)
                [rec] = self.events(cid, "recorded")
                self.assertEqual(rec["metadata"]["usage"], EXPECTED_USAGE[name])
                self.assertEqual(rec["units"], TOKENS.total)
                self.assertTrue(rec["idempotency_key"].startswith(RESPONSE_ID_PREFIX[name]), rec["idempotency_key"])

    def test_a_chat_stream_asks_for_its_usage(self):
        cid, model = self.customer(), Model(TOKENS)
        run("openai.chat", self.wrapped("openai.chat", model, False, cid), False, True)
        self.assertEqual(model.requests[0][1]["stream_options"], {"include_usage": True})

    def test_the_sdk_stream_helper_goes_through_the_wrapper(self):
        cid, model = self.customer(), Model(TOKENS)
        client = self.wrapped("openai.chat", model, False, cid)
        with client.chat.completions.stream(model="gpt-4.1-mini", messages=[], max_tokens=MAX_OUT) as s:
            self.assertTrue(list(s))
        self.assertEqual(model.requests[0][1]["stream_options"], {"include_usage": True})
        [held] = self.events(cid, "reserved")
        self.assertEqual(held["units"], MAX_OUT + 4)  # max_tokens, past NOT_GIVEN; '{"messages":[]}' is 4 tokens
        self.assert_no_hold(cid, used=TOKENS.total)

    def test_a_raw_response_is_recorded_as_missing_usage(self):
        for stream in (False, True):
            with self.subTest(stream=stream):
                cid, model = self.customer(), Model(TOKENS)
                client = self.wrapped("openai.chat", model, False, cid)
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-4.1-mini", messages=[], max_completion_tokens=MAX_OUT, stream=stream)
                self.assertEqual(raw.status_code, 200)
                [held] = self.events(cid, "reserved")
                [rec] = self.events(cid, "recorded")
                self.assertEqual((rec["units"], rec["metadata"]), (held["units"], {"usage": USAGE_MISSING}))
                self.assert_no_hold(cid, used=held["units"])

    def test_the_default_estimate_is_the_mean_capped_by_prompt_plus_max_output(self):
        cid, model = self.customer(), Model(TOKENS)
        client = self.wrapped("openai.chat", model, False, cid)
        for max_out in (MAX_OUT, MAX_OUT, 1):
            client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}],
                                           max_completion_tokens=max_out)
        held = [int(e["units"]) for e in self.events(cid, "reserved")]
        # First the prompt's JSON size in tokens plus the max output.
        prompt = json.dumps({"messages": [{"role": "user", "content": "hi"}]}, separators=(",", ":"))
        self.assertEqual(held[0], math.ceil(len(prompt) / PROMPT_BYTES_PER_TOKEN) + MAX_OUT)
        # Then the mean of the measured calls (160), capped by the mean
        # prompt (120) plus the call's max output (1).
        self.assertEqual(held[1:], [TOKENS.total, TOKENS.prompt + 1])

    def test_estimate_overrides(self):
        cid = self.customer()
        fixed = self.wrapped("anthropic.messages", Model(TOKENS), False, cid, estimate=500)
        by_call = self.wrapped("anthropic.messages", Model(TOKENS), False, cid,
                               estimate=lambda kw: kw["max_tokens"] * 3)
        run("anthropic.messages", fixed, False, False)
        run("anthropic.messages", by_call, False, False)
        self.assertEqual([e["units"] for e in self.events(cid, "reserved")], [500, MAX_OUT * 3])


class Refused(Base):
    def test_a_refused_call_never_reaches_the_model(self):
        for name, aio, stream in COMBOS:
            with self.subTest(call=name, aio=aio, stream=stream):
                cid, model = self.customer(limit=10), Model(TOKENS)
                with self.assertRaises(RefusedError) as ctx:
                    run(name, self.wrapped(name, model, aio, cid), aio, stream)
                self.assertEqual(ctx.exception.reason, "budget_exhausted")
                self.assertEqual(model.requests, [])
                self.assert_no_hold(cid)


class Released(Base):
    def test_a_provider_error_releases_the_hold(self):
        for name, aio, stream in COMBOS:
            with self.subTest(call=name, aio=aio, stream=stream):
                cid, model = self.customer(), Model(TOKENS, fail=True)
                with self.assertRaises(ProviderError):
                    run(name, self.wrapped(name, model, aio, cid), aio, stream)
                self.assertEqual(len(model.requests), 1)
                self.assert_no_hold(cid)
                self.assertEqual(len(self.events(cid, "released")), 1)

    def test_a_stream_that_fails_before_its_usage_is_released(self):
        for name, aio, stream in COMBOS:
            if not stream:
                continue
            with self.subTest(call=name, aio=aio):
                cid, model = self.customer(), Model(TOKENS, fail_mid_stream=True)
                with self.assertRaises(ProviderError):
                    run(name, self.wrapped(name, model, aio, cid), aio, stream)
                self.assert_no_hold(cid)

    def test_a_stream_closed_early_is_released(self):
        for name, aio, stream in COMBOS:
            if not stream:
                continue
            with self.subTest(call=name, aio=aio):
                cid, model = self.customer(), Model(TOKENS)
                client = self.wrapped(name, model, aio, cid)
                call = CASES[name][2]
                if aio:
                    async def go():
                        s = await call(client, True, True)
                        await s.__anext__()
                        await s.close()
                    asyncio.run(go())
                else:
                    with call(client, True, False) as s:
                        next(s)
                self.assert_no_hold(cid)

    def test_a_started_stream_dropped_unfinished_is_released(self):
        cid = self.customer()
        client = self.wrapped("openai.responses", Model(TOKENS), False, cid)
        s = responses(client, True, False)
        next(s)
        del s
        gc.collect()  # the stream's generator is closed when collected
        self.assert_no_hold(cid)

    def test_a_stream_closed_before_reading_is_released(self):
        cid = self.customer()
        client = self.wrapped("openai.chat", Model(TOKENS), False, cid)
        chat(client, True, False).close()
        self.assert_no_hold(cid)


def anthropic_stream(client, aio, read):
    """Streams with anthropic's messages.stream manager; ``read(stream)``
    reads it (sync) or is awaited (async)."""
    kw = dict(model="claude-sonnet-4-5", max_tokens=MAX_OUT, messages=[{"role": "user", "content": "Say hello"}])
    if not aio:
        with client.messages.stream(**kw) as s:
            return read(s)

    async def go():
        async with client.messages.stream(**kw) as s:
            return await read(s)
    return asyncio.run(go())


async def _first_event(s):
    async for e in s:
        return e


async def _all_events(s):
    return [e async for e in s]


class Helpers(Base):
    """The SDKs' helpers that post on their own: parse() and anthropic's
    messages.stream manager."""

    def test_parse_is_charged_and_refused_like_create(self):
        calls = (("openai.chat", lambda c: c.chat.completions.parse),
                 ("openai.responses", lambda c: c.responses.parse),
                 ("anthropic.messages", lambda c: c.messages.parse))
        for (name, method), aio in ((c, aio) for c in calls for aio in (False, True)):
            with self.subTest(call=name, aio=aio):
                cid, model = self.customer(), Model(TOKENS)
                client = self.wrapped(name, model, aio, cid)
                out = method(client)(model="gpt-4.1-mini" if name != "anthropic.messages" else "claude-sonnet-4-5",
                                     messages=[], max_tokens=MAX_OUT)
                if aio:
                    out = asyncio.run(out)
                self.assertTrue(out.id)
                self.assert_no_hold(cid, used=TOKENS.total)
                refused_cid = self.customer(limit=10)
                client = self.wrapped(name, model, aio, refused_cid)
                with self.assertRaises(RefusedError):
                    out = method(client)(model="m", messages=[], max_tokens=MAX_OUT)
                    if aio:
                        asyncio.run(out)
                self.assertEqual(len(model.requests), 1)

    def test_the_anthropic_stream_manager_is_charged_when_read(self):
        want = {k: v for k, v in EXPECTED_USAGE["anthropic.messages"].items() if k != "reasoning_tokens"}
        for aio in (False, True):
            # (how the stream is read)
            readers = ((lambda s: list(s), _all_events),
                       (lambda s: s.get_final_message(), lambda s: s.get_final_message()))
            for sync_read, async_read in readers:
                with self.subTest(aio=aio):
                    cid, model = self.customer(), Model(TOKENS)
                    anthropic_stream(self.wrapped("anthropic.messages", model, aio, cid), aio,
                                     async_read if aio else sync_read)
                    self.assertEqual(len(model.requests), 1)
                    self.assert_no_hold(cid, used=TOKENS.total)
                    # The SDK's accumulated message keeps no thinking count
                    # from message_delta: reasoning_tokens is absent, not 0.
                    [rec] = self.events(cid, "recorded")
                    self.assertEqual(rec["metadata"]["usage"], want)

    def test_the_anthropic_stream_manager_refused_left_early_or_failed(self):
        for aio in (False, True):
            with self.subTest(aio=aio, case="refused"):
                cid, model = self.customer(limit=10), Model(TOKENS)
                with self.assertRaises(RefusedError):
                    anthropic_stream(self.wrapped("anthropic.messages", model, aio, cid), aio, list)
                self.assertEqual(model.requests, [])
            with self.subTest(aio=aio, case="left early"):
                cid = self.customer()
                anthropic_stream(self.wrapped("anthropic.messages", Model(TOKENS), aio, cid), aio,
                                 _first_event if aio else next)
                self.assert_no_hold(cid)
            with self.subTest(aio=aio, case="failed"):
                cid = self.customer()
                with self.assertRaises(ProviderError):
                    anthropic_stream(self.wrapped("anthropic.messages", Model(TOKENS, fail_mid_stream=True), aio,
                                                  cid), aio, _all_events if aio else list)
                self.assert_no_hold(cid)


class Missing(Base):
    def test_missing_usage_is_recorded_as_the_hold_and_marked(self):
        for name, aio, stream in COMBOS:
            with self.subTest(call=name, aio=aio, stream=stream):
                cid, model = self.customer(), Model(TOKENS, report_usage=False)
                run(name, self.wrapped(name, model, aio, cid), aio, stream)
                [held] = self.events(cid, "reserved")
                [rec] = self.events(cid, "recorded")
                self.assertEqual(rec["metadata"], {"usage": USAGE_MISSING})
                self.assertEqual(rec["units"], held["units"])
                self.assertGreater(int(rec["units"]), 0)

    def test_a_chat_stream_without_include_usage_is_missing(self):
        cid = self.customer()
        client = self.wrapped("openai.chat", Model(TOKENS), False, cid)
        list(client.chat.completions.create(model="gpt-4.1-mini", messages=[], stream=True,
                                            stream_options={"include_usage": False}))
        [rec] = self.events(cid, "recorded")
        self.assertEqual(rec["metadata"], {"usage": USAGE_MISSING})


class RecordFails(Base):
    def test_a_failed_record_returns_the_answer_and_warns(self):
        # The model answers twice with one id: the second record reuses the
        # first's idempotency key for another reservation, a conflict.
        cid, model = self.customer(), Model(TOKENS, response_id="chatcmpl-same")
        client = self.wrapped("openai.chat", model, False, cid)
        chat(client, False, False)
        with self.assertLogs("agentbill", level="WARNING") as logs:
            answer = chat(client, False, False)
        self.assertEqual(answer.choices[0].message.content, "Hello")
        self.assertIn("recording", logs.output[0])
        s = self.admin.status(cid)
        self.assertEqual((s.used, s.open_reservations), (TOKENS.total, 1))  # the hold stays


class Concurrent(Base):
    def budget_for_ten(self):
        return self.customer(limit=CALLS_THAT_FIT * TOKENS.total)

    def check(self, cid, model, outcomes):
        approved = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, RefusedError)]
        self.assertEqual((len(approved), len(refused)), (CALLS_THAT_FIT, CONCURRENT_CALLS - CALLS_THAT_FIT),
                         [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, RefusedError)])
        self.assertEqual(len(model.requests), CALLS_THAT_FIT)
        self.assert_no_hold(cid, used=CALLS_THAT_FIT * TOKENS.total)

    def test_fifty_threads_never_let_more_than_ten_through(self):
        cid, model = self.budget_for_ten(), Model(TOKENS, delay=MODEL_DELAY)
        client = self.wrapped("openai.chat", model, False, cid, estimate=TOKENS.total)

        def one(_):
            try:
                return chat(client, False, False)
            except RefusedError as err:
                return err
        with concurrent.futures.ThreadPoolExecutor(CONCURRENT_CALLS) as pool:
            outcomes = list(pool.map(one, range(CONCURRENT_CALLS)))
        self.check(cid, model, outcomes)

    def test_fifty_async_calls_never_let_more_than_ten_through(self):
        for name in ("anthropic.messages", "gemini"):
            with self.subTest(call=name):
                cid, model = self.budget_for_ten(), Model(TOKENS, delay=MODEL_DELAY)
                client = self.wrapped(name, model, True, cid, estimate=TOKENS.total)

                async def go():
                    return await asyncio.gather(*[self.read(name, client) for _ in range(CONCURRENT_CALLS)],
                                                return_exceptions=True)
                self.check(cid, model, asyncio.run(go()))

    @staticmethod
    async def read(name, client):
        s = await CASES[name][2](client, True, True)
        return [e async for e in s]


class FailPolicy(Base):
    def test_deny_sends_nothing(self):
        for aio in (False, True):
            with self.subTest(aio=aio):
                model = Model(TOKENS)
                client = wrap(make("openai.chat", model, aio), agent_id="a", customer_id="u", agentbill=stopped())
                with self.assertRaises(UnavailableError):
                    run("openai.chat", client, aio, False)
                self.assertEqual(model.requests, [])

    def test_allow_calls_the_model_unchecked(self):
        for aio, stream in ((False, False), (True, True)):
            with self.subTest(aio=aio, stream=stream):
                model, agentbill = Model(TOKENS), stopped("allow")
                client = wrap(make("gemini", model, aio), agent_id="a", customer_id="u", agentbill=agentbill)
                with self.assertLogs("agentbill", level="WARNING"):
                    self.assertTrue(run("gemini", client, aio, stream))
                self.assertEqual(len(model.requests), 1)
                self.assertEqual(agentbill.skipped_checks, 1)


class SameClient(Base):
    def test_the_wrapped_client_is_the_same_object_and_copies_stay_wrapped(self):
        cid, model = self.customer(limit=10), Model(TOKENS)
        raw = OpenAI(model)
        client = self.wrapped_raw(raw, cid)
        self.assertIs(client, raw)
        self.assertEqual(client.api_key, "sk-standin")
        self.assertEqual(client.models.list().data[0].id, "standin-model")  # untouched, not preflighted
        for copy in (client.with_options(timeout=5), client.copy(), client.with_options(timeout=5).with_options()):
            self.assertIsNot(copy, client)
            with self.assertRaises(RefusedError):
                chat(copy, False, False)
        self.assertEqual(model.requests, [])

    def test_copies_share_the_job(self):
        cid, model = self.customer(), Model(TOKENS)
        client = self.wrapped_raw(AsyncAnthropic(model), cid)
        run("anthropic.messages", client.with_options(api_key="other"), True, False)
        self.assertEqual(client._agentbill_job.measured_calls, 1)
        self.assert_no_hold(cid, used=TOKENS.total)

    def wrapped_raw(self, raw, cid):
        return wrap(raw, agent_id="wrapped_agent", customer_id=cid, agentbill=self.agentbill)

    def test_bad_wraps(self):
        client = wrap(OpenAI(Model(TOKENS)), agent_id="a", agentbill=self.agentbill)
        with self.assertRaisesRegex(ValueError, "already wrapped"):
            wrap(client, agent_id="a", agentbill=self.agentbill)
        with self.assertRaisesRegex(TypeError, "knows no model call"):
            wrap(object(), agent_id="a", agentbill=self.agentbill)
        with self.assertRaisesRegex(ValueError, "agent_id"):
            wrap(OpenAI(Model(TOKENS)), agent_id="", agentbill=self.agentbill)
        with self.assertRaisesRegex(TypeError, "float"):
            wrap(OpenAI(Model(TOKENS)), agent_id="a", estimate=1.5, agentbill=self.agentbill)


class Example(Base):
    def test_wrap_example_charges_each_call(self):
        cid = self.customer(limit=1000)
        env = dict(os.environ, AGENTBILL_BASE_URL=SERVER.base_url, AGENTBILL_API_KEY=AGENT,
                   AGENTBILL_CUSTOMER=cid, PYTHONPATH=harness.SDK_DIR)
        res = subprocess.run([sys.executable, os.path.join(harness.REPO, "examples", "python", "wrap_openai.py")],
                             env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("model requests: 3; budget: 850 of 1000 units left", res.stdout)
        self.assert_no_hold(cid, used=150)


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()
