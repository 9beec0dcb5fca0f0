"""The usage a model provider reported, in one shape, and the units it costs.

One normalizer per provider reads a response (or a stream's usage event)
of the provider's documented shape into a ``usage`` dict with these keys,
the ledger's priced-usage shape (docs/PROTOCOL.md):

``model``, ``provider``, ``input_tokens``, ``output_tokens``,
``cache_read_tokens``, ``cache_write_tokens``, ``cache_write_1h_tokens``,
``reasoning_tokens``, ``service_tier``.

A field the provider did not report is absent, never 0. What each field
means (so nothing is counted twice):

- ``input_tokens`` is every prompt token, cache reads and writes included.
  OpenAI's ``prompt_tokens``/``input_tokens`` and Gemini's
  ``prompt_token_count`` already include cached tokens; Anthropic's
  ``input_tokens`` does not, so the normalizer adds
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens``.
- ``output_tokens`` is every output token, reasoning included. OpenAI's
  ``completion_tokens``/``output_tokens`` already include reasoning;
  Gemini's ``candidates_token_count`` does not, so the normalizer adds
  ``thoughts_token_count``. Anthropic's ``output_tokens`` includes its
  ``output_tokens_details.thinking_tokens``.
- ``cache_read_tokens``, ``cache_write_tokens`` (all of them),
  ``cache_write_1h_tokens`` (the 1-hour part) and ``reasoning_tokens`` are
  parts of the two totals above, never added to them again.

:func:`units_of` turns a usage into units, in one place: the token
total ``input_tokens + output_tokens``. :func:`record_fields` is the only
place that decides what a record carries: those units (pricing
:data:`PRICING_TOKENS`), or the usage itself in the record's ``usage``
field, for the ledger to charge at list price (:data:`PRICING_LIST`).

Responses are read by attribute (the providers' Python SDKs return typed
objects) or by key (a plain dict of the same JSON).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

#: The metadata key under which a record carries the normalized usage, or
#: the string :data:`USAGE_MISSING` when the provider reported none.
USAGE_METADATA_KEY = "usage"
USAGE_MISSING = "missing"

#: How a wrapped call is charged (``wrap(pricing=)``): its token total as
#: units, or the list price the ledger computes from the usage.
PRICING_TOKENS = "tokens"
PRICING_LIST = "list"
PRICINGS = (PRICING_TOKENS, PRICING_LIST)

PROVIDER_OPENAI = "openai"
PROVIDER_ANTHROPIC = "anthropic"
PROVIDER_GEMINI = "google"

#: The token counts of a usage, all ints.
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``; None when absent (or obj is None)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: Any, name: str) -> Optional[int]:
    """A token count the provider reported: an int, else None (absent)."""
    v = field(obj, name)
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    return v


def _sum(*counts: Optional[int]) -> Optional[int]:
    """The sum of the reported counts; None when none was reported."""
    reported = [c for c in counts if c is not None]
    return sum(reported) if reported else None


def _usage(provider: str, model: Any, **fields: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {"provider": provider}
    if isinstance(model, str) and model:
        out["model"] = model
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


def openai_chat_usage(response: Any, model: Any = None, service_tier: Any = None) -> Optional[Dict[str, Any]]:
    """A Chat Completions ``ChatCompletion`` (or the stream's last chunk,
    sent with ``stream_options={"include_usage": True}``); None if it has no
    ``usage``. ``prompt_tokens`` includes cached tokens and
    ``completion_tokens`` includes reasoning tokens; cached tokens (and
    ``cache_write_tokens``, where reported) are parts of ``prompt_tokens``."""
    u = field(response, "usage")
    if u is None:
        return None
    return _usage(
        PROVIDER_OPENAI, field(response, "model") or model,
        input_tokens=_count(u, "prompt_tokens"),
        output_tokens=_count(u, "completion_tokens"),
        cache_read_tokens=_count(field(u, "prompt_tokens_details"), "cached_tokens"),
        cache_write_tokens=_count(field(u, "prompt_tokens_details"), "cache_write_tokens"),
        reasoning_tokens=_count(field(u, "completion_tokens_details"), "reasoning_tokens"),
        service_tier=field(response, "service_tier") or service_tier,
    )


def openai_responses_usage(response: Any, model: Any = None) -> Optional[Dict[str, Any]]:
    """A Responses API ``Response`` (a stream's ``response.completed``
    event carries one as ``.response``); None if it has no ``usage``.
    ``input_tokens`` includes cached tokens and ``output_tokens`` includes
    reasoning tokens."""
    u = field(response, "usage")
    if u is None:
        return None
    return _usage(
        PROVIDER_OPENAI, field(response, "model") or model,
        input_tokens=_count(u, "input_tokens"),
        output_tokens=_count(u, "output_tokens"),
        cache_read_tokens=_count(field(u, "input_tokens_details"), "cached_tokens"),
        cache_write_tokens=_count(field(u, "input_tokens_details"), "cache_write_tokens"),
        reasoning_tokens=_count(field(u, "output_tokens_details"), "reasoning_tokens"),
        service_tier=field(response, "service_tier"),
    )


def anthropic_usage(u: Any, model: Any = None) -> Optional[Dict[str, Any]]:
    """An Anthropic ``Message.usage`` (or a stream's usage, merged from
    ``message_start`` and ``message_delta``); None if ``u`` is None.
    Anthropic's ``input_tokens`` excludes cache reads and writes, so they
    are added to make ``input_tokens`` every prompt token;
    ``output_tokens_details.thinking_tokens`` is the reasoning part of
    ``output_tokens``."""
    if u is None:
        return None
    read = _count(u, "cache_read_input_tokens")
    write = _count(u, "cache_creation_input_tokens")
    uncached = _count(u, "input_tokens")
    return _usage(
        PROVIDER_ANTHROPIC, model,
        input_tokens=None if uncached is None else _sum(uncached, read, write),
        output_tokens=_count(u, "output_tokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=_count(field(u, "cache_creation"), "ephemeral_1h_input_tokens"),
        reasoning_tokens=_count(field(u, "output_tokens_details"), "thinking_tokens"),
        service_tier=field(u, "service_tier"),
    )


def gemini_usage(response: Any, model: Any = None) -> Optional[Dict[str, Any]]:
    """A google-genai ``GenerateContentResponse`` (each streamed chunk is
    one); None if it has no ``usage_metadata``. ``prompt_token_count``
    includes cached content; ``candidates_token_count`` excludes thoughts,
    so ``thoughts_token_count`` is added to make ``output_tokens`` every
    output token."""
    m = field(response, "usage_metadata")
    if m is None:
        return None
    candidates = _count(m, "candidates_token_count")
    thoughts = _count(m, "thoughts_token_count")
    return _usage(
        PROVIDER_GEMINI, field(response, "model_version") or model,
        input_tokens=_count(m, "prompt_token_count"),
        output_tokens=_sum(candidates, thoughts),
        cache_read_tokens=_count(m, "cached_content_token_count"),
        reasoning_tokens=thoughts,
    )


def measured(usage: Optional[Dict[str, Any]]) -> bool:
    """Whether a usage reports the two totals the units are made of."""
    return usage is not None and "input_tokens" in usage and "output_tokens" in usage


def units_of(usage: Dict[str, Any]) -> int:
    """The units a measured usage costs: its token total. Cache and
    reasoning tokens are already inside input and output (see above)."""
    return usage["input_tokens"] + usage["output_tokens"]


def priceable(usage: Optional[Dict[str, Any]]) -> bool:
    """Whether a usage is what the ledger prices: both totals and the model."""
    return measured(usage) and bool(usage.get("model"))


def record_fields(usage: Optional[Dict[str, Any]], held: Any, pricing: str = PRICING_TOKENS) -> Dict[str, Any]:
    """What a record carries for a call's usage: ``units``, ``usage`` (the
    record's field the ledger prices) and ``metadata``; a None is left out.

    With :data:`PRICING_TOKENS` the units are the token total, and the
    metadata shows the usage in the audit trail. With :data:`PRICING_LIST`
    the usage is sent, without units, so the ledger charges its list price.
    A usage without what the charge needs (both totals; with list pricing
    the model too) is missing: it is recorded as ``held`` (what the
    preflight held, never 0), with metadata ``usage: "missing"``.
    """
    if not (priceable(usage) if pricing == PRICING_LIST else measured(usage)):
        return {"units": held, "usage": None, "metadata": {USAGE_METADATA_KEY: USAGE_MISSING}}
    if pricing == PRICING_LIST:
        return {"units": None, "usage": usage, "metadata": None}
    return {"units": units_of(usage), "usage": None, "metadata": {USAGE_METADATA_KEY: usage}}
