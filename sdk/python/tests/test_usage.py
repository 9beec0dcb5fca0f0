"""The per-provider usage normalizers (agentbill.usage), on the providers'
documented response shapes: as typed objects (what the Python SDKs return)
and as plain JSON dicts."""

import unittest

import harness  # noqa: F401  (puts the SDK on sys.path)
from standins import obj
from agentbill.usage import (
    PRICING_LIST,
    USAGE_MISSING,
    anthropic_usage,
    gemini_usage,
    openai_chat_usage,
    openai_responses_usage,
    record_fields,
    units_of,
)

CHAT = {
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4.1-2025-04-14", "service_tier": "flex",
    "choices": [],
    "usage": {"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
              "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 100, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 200, "audio_tokens": 0}},
}
RESPONSE = {
    "id": "resp_1", "object": "response", "model": "o4-mini", "status": "completed", "service_tier": "priority",
    "usage": {"input_tokens": 900, "output_tokens": 500, "total_tokens": 1400,
              "input_tokens_details": {"cached_tokens": 100},
              "output_tokens_details": {"reasoning_tokens": 450}},
}
MESSAGE = {
    "id": "msg_1", "type": "message", "model": "claude-opus-4-1",
    "usage": {"input_tokens": 50, "output_tokens": 70, "cache_read_input_tokens": 2000,
              "cache_creation_input_tokens": 300,
              "cache_creation": {"ephemeral_1h_input_tokens": 100, "ephemeral_5m_input_tokens": 200},
              "output_tokens_details": {"thinking_tokens": 20}, "service_tier": "standard"},
}
GEMINI = {
    "response_id": "r1", "model_version": "gemini-2.5-pro",
    "usage_metadata": {"prompt_token_count": 800, "cached_content_token_count": 500,
                       "candidates_token_count": 120, "thoughts_token_count": 380, "total_token_count": 1300},
}


class NormalizersTest(unittest.TestCase):
    def both(self, fn, doc, want):
        """The typed object and the plain dict normalize alike."""
        for shape in (obj(doc), doc):
            self.assertEqual(fn(shape), want)

    def test_openai_chat(self):
        self.both(openai_chat_usage, CHAT, {
            "provider": "openai", "model": "gpt-4.1-2025-04-14", "input_tokens": 1000, "output_tokens": 300,
            "cache_read_tokens": 600, "cache_write_tokens": 100, "reasoning_tokens": 200, "service_tier": "flex"})

    def test_openai_responses(self):
        self.both(openai_responses_usage, RESPONSE, {
            "provider": "openai", "model": "o4-mini", "input_tokens": 900, "output_tokens": 500,
            "cache_read_tokens": 100, "reasoning_tokens": 450, "service_tier": "priority"})

    def test_anthropic_adds_cache_reads_and_writes_to_input(self):
        self.both(lambda m: anthropic_usage(m["usage"] if isinstance(m, dict) else m.usage, "claude-opus-4-1"),
                  MESSAGE, {
                      "provider": "anthropic", "model": "claude-opus-4-1", "input_tokens": 2350,
                      "output_tokens": 70, "cache_read_tokens": 2000, "cache_write_tokens": 300,
                      "cache_write_1h_tokens": 100, "reasoning_tokens": 20, "service_tier": "standard"})

    def test_gemini_adds_thoughts_to_output(self):
        self.both(gemini_usage, GEMINI, {
            "provider": "google", "model": "gemini-2.5-pro", "input_tokens": 800, "output_tokens": 500,
            "cache_read_tokens": 500, "reasoning_tokens": 380})

    def test_absent_fields_stay_absent(self):
        # (normalizer, a response with only the required counts, the usage)
        cases = (
            (openai_chat_usage, {"usage": {"prompt_tokens": 5, "completion_tokens": 7}},
             {"provider": "openai", "input_tokens": 5, "output_tokens": 7}),
            (openai_responses_usage, {"usage": {"input_tokens": 5, "output_tokens": 7}},
             {"provider": "openai", "input_tokens": 5, "output_tokens": 7}),
            (lambda r: anthropic_usage(r["usage"]), {"usage": {"input_tokens": 5, "output_tokens": 7,
                                                               "cache_read_input_tokens": None}},
             {"provider": "anthropic", "input_tokens": 5, "output_tokens": 7}),
            (gemini_usage, {"usage_metadata": {"prompt_token_count": 5, "candidates_token_count": 7}},
             {"provider": "google", "input_tokens": 5, "output_tokens": 7}),
            (gemini_usage, {"usage_metadata": {"prompt_token_count": 5}},
             {"provider": "google", "input_tokens": 5}),
        )
        for fn, doc, want in cases:
            with self.subTest(want=want):
                self.assertEqual(fn(doc), want)

    def test_no_usage_is_none(self):
        self.assertIsNone(openai_chat_usage({"id": "x", "usage": None}))
        self.assertIsNone(openai_responses_usage(obj({"id": "x", "usage": None})))
        self.assertIsNone(anthropic_usage(None))
        self.assertIsNone(gemini_usage({"response_id": "x"}))


class UnitsTest(unittest.TestCase):
    def test_units_are_input_plus_output(self):
        # Cache and reasoning tokens are inside the totals: never added twice.
        self.assertEqual(units_of(openai_chat_usage(CHAT)), 1300)
        self.assertEqual(units_of(anthropic_usage(MESSAGE["usage"])), 2420)
        self.assertEqual(units_of(gemini_usage(GEMINI)), 1300)

    def test_record_fields(self):
        usage = openai_responses_usage(RESPONSE)
        self.assertEqual(record_fields(usage, 77), {"units": 1400, "usage": None, "metadata": {"usage": usage}})
        for missing in (None, {"provider": "google", "input_tokens": 5}):
            self.assertEqual(record_fields(missing, 77),
                             {"units": 77, "usage": None, "metadata": {"usage": USAGE_MISSING}})

    def test_record_fields_with_list_pricing_send_the_usage_not_units(self):
        usage = openai_responses_usage(RESPONSE)
        self.assertEqual(record_fields(usage, 77, PRICING_LIST), {"units": None, "usage": usage, "metadata": None})
        # Without the model the ledger cannot price it: missing, charged the hold.
        no_model = {"provider": "openai", "input_tokens": 5, "output_tokens": 1}
        for missing in (None, {"provider": "google", "input_tokens": 5}, no_model):
            self.assertEqual(record_fields(missing, 77, PRICING_LIST),
                             {"units": 77, "usage": None, "metadata": {"usage": USAGE_MISSING}})


if __name__ == "__main__":
    unittest.main()
