"""The provider calls :func:`agentbill.wrap` knows, declared once each.

A client is recognised by its shape (attribute paths), never by importing
the provider's package: ``chat.completions.create`` and
``responses.create`` and their ``parse`` (openai), ``messages.create``,
``messages.parse`` and the ``messages.stream`` manager (anthropic),
``models.generate_content`` and ``models.generate_content_stream``
(google-genai; ``aio.models`` for its async client).

Each :class:`Endpoint` says how to read a call: its largest output
(``max_output``), whether it streams, the usage and id of a whole
response, and a :class:`Fold` that gathers them from a stream's events.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .usage import anthropic_usage, field, gemini_usage, openai_chat_usage, openai_responses_usage

#: The usage fields of Anthropic's ``message_start`` message usage that a
#: ``message_delta`` usage may update (its counts are cumulative).
ANTHROPIC_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "output_tokens_details",
    "service_tier",
)

#: Responses API stream events whose ``.response`` is the whole Response
#: (id, and usage once it ends).
OPENAI_RESPONSE_EVENTS = frozenset((
    "response.created",
    "response.in_progress",
    "response.completed",
    "response.incomplete",
    "response.failed",
))


class Fold:
    """Gathers a stream's response id and usage, event by event."""

    def __init__(self, model: Any):
        self.model = model
        self.response_id: Optional[str] = None
        self.usage: Optional[Dict[str, Any]] = None

    def see(self, event: Any) -> None:
        raise NotImplementedError

    def ended(self) -> None:
        """The stream ended normally: settle on the usage seen so far."""


class OpenAIChatFold(Fold):
    # Every chunk has the id; the last one (include_usage) has the usage.
    def see(self, chunk: Any) -> None:
        self.response_id = field(chunk, "id") or self.response_id
        usage = openai_chat_usage(chunk, self.model)
        if usage is not None:
            self.usage = usage


class OpenAIResponsesFold(Fold):
    def see(self, event: Any) -> None:
        if field(event, "type") not in OPENAI_RESPONSE_EVENTS:
            return
        response = field(event, "response")
        self.response_id = field(response, "id") or self.response_id
        usage = openai_responses_usage(response, self.model)
        if usage is not None:
            self.usage = usage


class AnthropicFold(Fold):
    # message_start carries the Message (id, model, input usage);
    # message_delta the cumulative output usage.
    def __init__(self, model: Any):
        super().__init__(model)
        self._raw: Dict[str, Any] = {}

    def see(self, event: Any) -> None:
        kind = field(event, "type")
        if kind == "message_start":
            message = field(event, "message")
            self.response_id = field(message, "id") or self.response_id
            self.model = field(message, "model") or self.model
            self._merge(field(message, "usage"))
        elif kind == "message_delta" and field(event, "usage") is not None:
            # The usage is final only here: message_start's output count
            # is the output so far, so a stream aborted before this is
            # released, not charged a partial count.
            self._merge(field(event, "usage"))
            self.usage = anthropic_usage(self._raw, self.model)

    def see_final(self, message: Any) -> None:
        """The message an anthropic MessageStream accumulated: its usage
        is final once message_delta set its stop_reason."""
        if message is None or field(message, "stop_reason") is None:
            return
        self.response_id = field(message, "id") or self.response_id
        self.usage = anthropic_usage(field(message, "usage"), field(message, "model") or self.model)

    def _merge(self, u: Any) -> None:
        for name in ANTHROPIC_USAGE_FIELDS:
            v = field(u, name)
            if v is not None:
                self._raw[name] = v


class GeminiFold(Fold):
    # Every chunk is a GenerateContentResponse with the usage so far; the
    # chunk whose candidate has a finish_reason has the total. A stream
    # aborted before it is released, not charged a partial count; one that
    # ends without it is charged the last usage seen.
    def __init__(self, model: Any):
        super().__init__(model)
        self._last: Optional[Dict[str, Any]] = None

    def see(self, chunk: Any) -> None:
        self.response_id = field(chunk, "response_id") or self.response_id
        usage = gemini_usage(chunk, self.model)
        if usage is None:
            return
        self._last = usage
        if any(field(c, "finish_reason") for c in field(chunk, "candidates") or ()):
            self.usage = usage

    def ended(self) -> None:
        if self.usage is None:
            self.usage = self._last


class Endpoint:
    """One provider method: where it is, and how to read its calls."""

    def __init__(self, name: str, path: str, method: str, fold: Callable[[Any], Fold],
                 usage: Callable[[Any, Any], Optional[Dict[str, Any]]], id_field: str,
                 max_output: Callable[[Dict[str, Any]], Any], streams: Optional[bool] = None,
                 prepare: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None, managed: bool = False):
        self.name = name  # as in metadata: "openai.chat.completions.create"
        self.path = path  # the resource, from the client: "chat.completions"
        self.method = method
        self.new_fold = fold
        self.usage = usage
        self.id_field = id_field
        self._max_output = max_output
        self._streams = streams  # None: the call's stream= argument decides
        self._prepare = prepare
        # True: the method returns a stream manager that sends the request
        # on enter (anthropic's messages.stream), not the answer or stream.
        self.managed = managed

    def streaming(self, kwargs: Dict[str, Any]) -> bool:
        if self._streams is not None:
            return self._streams
        return kwargs.get("stream") is True

    def raw(self, kwargs: Dict[str, Any]) -> bool:
        """Whether the call returns the raw HTTP response (see
        RAW_RESPONSE_HEADER), not the parsed answer or its stream."""
        headers = kwargs.get("extra_headers")
        return isinstance(headers, dict) and RAW_RESPONSE_HEADER in headers

    def prepare(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        return self._prepare(kwargs) if self._prepare else kwargs

    def max_output(self, kwargs: Dict[str, Any]) -> Optional[int]:
        v = self._max_output(kwargs)
        if isinstance(v, bool) or not isinstance(v, int):
            return None
        return v

    def response_id(self, response: Any) -> Optional[str]:
        v = field(response, self.id_field)
        return v if isinstance(v, str) and v else None


def _openai_chat_prepare(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """A chat stream reports usage only when asked: ask, unless the caller
    set stream_options. Unset is absent, None, or a falsy sentinel (the
    SDK's own helpers pass NOT_GIVEN / omit)."""
    if kwargs.get("stream") is True and not kwargs.get("stream_options"):
        return dict(kwargs, stream_options={"include_usage": True})
    return kwargs


def _first_int(*values: Any) -> Optional[int]:
    """The first value that is an int (skipping None and the SDKs'
    NOT_GIVEN / omit sentinels)."""
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def _chat_max(kw: Dict[str, Any]) -> Optional[int]:
    return _first_int(kw.get("max_completion_tokens"), kw.get("max_tokens"))


def _responses_max(kw: Dict[str, Any]) -> Any:
    return kw.get("max_output_tokens")


def _anthropic_max(kw: Dict[str, Any]) -> Any:
    return kw.get("max_tokens")


def _gemini_max(kw: Dict[str, Any]) -> Any:
    return field(kw.get("config"), "max_output_tokens")


def _message_usage(r: Any, model: Any) -> Optional[Dict[str, Any]]:
    return anthropic_usage(field(r, "usage"), field(r, "model") or model)


OPENAI_CHAT = Endpoint("openai.chat.completions.create", "chat.completions", "create", OpenAIChatFold,
                       openai_chat_usage, "id", _chat_max, prepare=_openai_chat_prepare)
OPENAI_CHAT_PARSE = Endpoint("openai.chat.completions.parse", "chat.completions", "parse", OpenAIChatFold,
                             openai_chat_usage, "id", _chat_max, streams=False)
OPENAI_RESPONSES = Endpoint("openai.responses.create", "responses", "create", OpenAIResponsesFold,
                            openai_responses_usage, "id", _responses_max)
OPENAI_RESPONSES_PARSE = Endpoint("openai.responses.parse", "responses", "parse", OpenAIResponsesFold,
                                  openai_responses_usage, "id", _responses_max, streams=False)
ANTHROPIC_MESSAGES = Endpoint("anthropic.messages.create", "messages", "create", AnthropicFold,
                              _message_usage, "id", _anthropic_max)
ANTHROPIC_PARSE = Endpoint("anthropic.messages.parse", "messages", "parse", AnthropicFold,
                           _message_usage, "id", _anthropic_max, streams=False)
ANTHROPIC_STREAM = Endpoint("anthropic.messages.stream", "messages", "stream", AnthropicFold,
                            _message_usage, "id", _anthropic_max, streams=True, managed=True)
GEMINI_GENERATE = Endpoint("google.models.generate_content", "models", "generate_content", GeminiFold,
                           gemini_usage, "response_id", _gemini_max, streams=False)
GEMINI_GENERATE_STREAM = Endpoint("google.models.generate_content_stream", "models", "generate_content_stream",
                                  GeminiFold, gemini_usage, "response_id", _gemini_max, streams=True)

#: Every endpoint wrap() looks for on a client.
ENDPOINTS = (OPENAI_CHAT, OPENAI_CHAT_PARSE, OPENAI_RESPONSES, OPENAI_RESPONSES_PARSE, ANTHROPIC_MESSAGES,
             ANTHROPIC_PARSE, ANTHROPIC_STREAM, GEMINI_GENERATE, GEMINI_GENERATE_STREAM)
#: Where google-genai keeps its async client: ``client.aio.models``.
GEMINI_ASYNC_ATTR = "aio"
#: The header the openai and anthropic SDKs add to a call made through
#: ``with_raw_response`` or ``with_streaming_response``: the call then
#: returns the raw HTTP response, whose usage cannot be read without
#: consuming it.
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"
#: The methods that return a copy of a client with other options.
COPY_METHODS = ("with_options", "copy")
