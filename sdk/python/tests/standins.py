"""Stand-ins for the OpenAI, Anthropic and google-genai Python clients.

The provider packages cannot be installed in the test environment (no
PyPI), so agentbill.wrap is tested against these: clients with the same
attribute paths and calling conventions (keyword arguments, ``stream=``,
async twins, ``with_options`` copies), whose methods return objects of the
providers' documented response shapes (the JSON of each API, read by
attribute as the real SDKs' typed objects are). The shapes follow the
providers' API references and the type definitions of their Node SDKs
(openai 7.60.0, @anthropic-ai/sdk 1.16.0, @google/genai 3.3.0), which the
Python SDKs mirror in snake_case.

Every client of one :class:`Model` counts the requests that reached it,
so a test can show that a refused call never did.
"""

import asyncio
import copy
import functools
import itertools
import threading
import time
import types


def obj(value):
    """The documented JSON as a typed-looking object: dicts become
    attribute objects (an absent optional field reads as missing)."""
    if isinstance(value, dict):
        return types.SimpleNamespace(**{k: obj(v) for k, v in value.items()})
    if isinstance(value, list):
        return [obj(v) for v in value]
    return value


class ProviderError(Exception):
    """What a provider SDK raises for an API error (say a 500)."""


class Tokens:
    """The tokens one call uses, in the ledger's terms: ``prompt`` is every
    prompt token (cached ones included), ``output`` every output token
    (reasoning included); the others are parts of them."""

    def __init__(self, prompt, output, cached=0, reasoning=0, cache_write=0, cache_write_1h=0):
        self.prompt, self.output = prompt, output
        self.cached, self.reasoning = cached, reasoning
        self.cache_write, self.cache_write_1h = cache_write, cache_write_1h

    @property
    def total(self):
        return self.prompt + self.output


class Model:
    """The model server behind the stand-in clients: how it answers, and
    how many requests reached it.

    ``fail``: raise ProviderError before any response. ``report_usage``:
    include usage in answers. ``fail_mid_stream``: a stream raises after
    its first event, before its usage. ``delay``: seconds each call takes
    (for concurrency tests). ``response_id``: a fixed id for every answer.
    """

    STREAM_PARTS = ("Hel", "lo")

    def __init__(self, tokens, fail=False, report_usage=True, fail_mid_stream=False, delay=0.0,
                 response_id=None):
        self.tokens = tokens
        self.fail = fail
        self.report_usage = report_usage
        self.fail_mid_stream = fail_mid_stream
        self.delay = delay
        self.response_id = response_id
        self.requests = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def receive(self, api, kwargs):
        """Counts a request; raises if the model is set to fail."""
        with self._lock:
            self.requests.append((api, kwargs))
            n = next(self._ids)
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise ProviderError("500 internal server error from the model")
        return self.response_id or "%s-%d-%d" % (api, id(self), n)

    def stream(self, events, usage_event):
        """The events of a stream, then its usage event (if reported)."""
        for i, event in enumerate(events):
            if self.fail_mid_stream and i == 1:
                raise ProviderError("connection reset in the middle of the stream")
            yield event
        if usage_event is not None:
            yield usage_event


# OpenAI (openai: OpenAI / AsyncOpenAI).

def required_args(fn):
    """Like openai's and anthropic's own decorator on create(): a plain
    function around the real one (async or not), via functools.wraps."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


def chat_usage(t):
    return {"prompt_tokens": t.prompt, "completion_tokens": t.output, "total_tokens": t.total,
            "prompt_tokens_details": {"cached_tokens": t.cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": t.reasoning, "audio_tokens": 0}}


def chat_completion(model, rid, kwargs):
    body = {"id": rid, "object": "chat.completion", "created": 1767225600, "model": kwargs["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Hello", "refusal": None}}],
            "service_tier": "default", "system_fingerprint": "fp_standin"}
    if model.report_usage:
        body["usage"] = chat_usage(model.tokens)
    return obj(body)


def chat_chunks(model, rid, kwargs):
    def chunk(choices, usage=None):
        return obj({"id": rid, "object": "chat.completion.chunk", "created": 1767225600,
                    "model": kwargs["model"], "service_tier": "default", "choices": choices,
                    "usage": usage})
    events = [chunk([{"index": 0, "delta": {"content": p}, "finish_reason": None}]) for p in Model.STREAM_PARTS]
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    include = (kwargs.get("stream_options") or {}).get("include_usage")
    # With include_usage, a last chunk with no choices carries the usage.
    last = chunk([], chat_usage(model.tokens)) if include and model.report_usage else None
    return model.stream(events, last)


def response_body(model, rid, kwargs, status):
    t = model.tokens
    body = {"id": rid, "object": "response", "created_at": 1767225600, "status": status,
            "model": kwargs["model"], "service_tier": "default", "output": [], "usage": None}
    if status == "completed":
        body["output"] = [{"type": "message", "id": "msg_" + rid, "role": "assistant", "status": "completed",
                           "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}]
        if model.report_usage:
            body["usage"] = {"input_tokens": t.prompt, "output_tokens": t.output, "total_tokens": t.total,
                             "input_tokens_details": {"cached_tokens": t.cached},
                             "output_tokens_details": {"reasoning_tokens": t.reasoning}}
    return body


def response_events(model, rid, kwargs):
    events = [obj({"type": "response.created", "sequence_number": 0,
                   "response": response_body(model, rid, kwargs, "in_progress")})]
    events += [obj({"type": "response.output_text.delta", "sequence_number": i + 1, "item_id": "msg_" + rid,
                    "output_index": 0, "content_index": 0, "delta": p}) for i, p in enumerate(Model.STREAM_PARTS)]
    done = obj({"type": "response.completed", "sequence_number": len(events),
                "response": response_body(model, rid, kwargs, "completed")})
    return model.stream(events, done)


class NotGiven:
    """The SDKs' sentinel for an argument not given (falsy, not None)."""

    def __bool__(self):
        return False


NOT_GIVEN = NotGiven()
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


class _Resource:
    """A Stainless-style resource: create() (stream= or not), parse()
    (posts on its own, not through create), with_raw_response."""

    def __init__(self, model, api, whole, stream, is_async):
        self._model, self._api, self._whole, self._stream = model, api, whole, stream
        self._is_async = is_async
        self.create = required_args(self._acreate if is_async else self._create)
        self.parse = self._aparse if is_async else self._parse

    def _parse(self, **kwargs):
        rid = self._model.receive(self._api, kwargs)
        return self._whole(self._model, rid, kwargs)

    async def _aparse(self, **kwargs):
        return self._parse(**kwargs)

    def _create(self, **kwargs):
        rid = self._model.receive(self._api, kwargs)
        if kwargs.get("stream"):
            out = self._stream(self._model, rid, kwargs)
        else:
            out = self._whole(self._model, rid, kwargs)
        if RAW_RESPONSE_HEADER in (kwargs.get("extra_headers") or {}):
            # The raw HTTP response; .parse() gives the answer.
            return types.SimpleNamespace(status_code=200, headers={"x-request-id": "req_" + rid},
                                         parse=lambda: out)
        return out

    async def _acreate(self, **kwargs):
        out = self._create(**kwargs)
        return _aiter(out) if kwargs.get("stream") else out

    @property
    def with_raw_response(self):
        """As the Stainless SDKs build it: create() with the raw-response
        header, calling the resource's create as it is now."""
        def create(**kwargs):
            headers = dict(kwargs.get("extra_headers") or {}, **{RAW_RESPONSE_HEADER: "true"})
            return self.create(**dict(kwargs, extra_headers=headers))
        return types.SimpleNamespace(create=create)


class _OpenAIChat(_Resource):
    def stream(self, *, model, messages, max_completion_tokens=NOT_GIVEN, max_tokens=NOT_GIVEN,
               stream_options=NOT_GIVEN):
        """openai's chat.completions.stream helper: it calls self.create
        with stream=True and every other argument, given or not."""
        api_request = functools.partial(self.create, model=model, messages=messages, stream=True,
                                        max_completion_tokens=max_completion_tokens, max_tokens=max_tokens,
                                        stream_options=stream_options)
        return _StreamManager(api_request)


class _StreamManager:
    def __init__(self, api_request):
        self._api_request = api_request
        self._stream = None

    def __enter__(self):
        self._stream = self._api_request()
        return self._stream

    def __exit__(self, *exc_info):
        self._stream.close()


async def _aiter(events):
    for event in events:
        await asyncio.sleep(0)
        yield event


class _Models:
    """An untouched resource: listing models never goes through AgentBill."""

    def list(self):
        return obj({"object": "list", "data": [{"id": "standin-model", "object": "model"}]})


class OpenAI:
    _is_async = False

    def __init__(self, model, api_key="sk-standin", timeout=600):
        self.model_server = model
        self.api_key = api_key
        self.timeout = timeout
        self.chat = types.SimpleNamespace(completions=_OpenAIChat(
            model, "chatcmpl", chat_completion, chat_chunks, self._is_async))
        self.responses = _Resource(model, "resp", lambda m, rid, kw: obj(response_body(m, rid, kw, "completed")),
                                         response_events, self._is_async)
        self.models = _Models()

    def with_options(self, **options):
        """A new client (new resources) with other options, as the SDK does."""
        return type(self)(self.model_server, api_key=options.get("api_key", self.api_key),
                          timeout=options.get("timeout", self.timeout))

    copy = with_options


class AsyncOpenAI(OpenAI):
    _is_async = True


# Anthropic (anthropic: Anthropic / AsyncAnthropic).

def anthropic_usage(t, part):
    """Message usage: input_tokens excludes cache reads and writes."""
    if part == "delta":
        return {"output_tokens": t.output, "output_tokens_details": {"thinking_tokens": t.reasoning},
                "input_tokens": None, "cache_read_input_tokens": None, "cache_creation_input_tokens": None}
    u = {"input_tokens": t.prompt - t.cached - t.cache_write, "cache_read_input_tokens": t.cached,
         "cache_creation_input_tokens": t.cache_write,
         "cache_creation": {"ephemeral_1h_input_tokens": t.cache_write_1h,
                            "ephemeral_5m_input_tokens": t.cache_write - t.cache_write_1h},
         "service_tier": "standard"}
    if part == "whole":
        u.update(output_tokens=t.output, output_tokens_details={"thinking_tokens": t.reasoning})
    else:  # message_start: the output so far
        u.update(output_tokens=1)
    return u


def message(model, rid, kwargs, part):
    body = {"id": rid, "type": "message", "role": "assistant", "model": kwargs["model"],
            "content": [{"type": "text", "text": "Hello"}] if part == "whole" else [],
            "stop_reason": "end_turn" if part == "whole" else None, "stop_sequence": None}
    body["usage"] = anthropic_usage(model.tokens, part) if model.report_usage else None
    return body


def message_events(model, rid, kwargs):
    events = [obj({"type": "message_start", "message": message(model, rid, kwargs, "start")}),
              obj({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
    events += [obj({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})
               for p in Model.STREAM_PARTS]
    events.append(obj({"type": "content_block_stop", "index": 0}))
    delta = obj({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                 "usage": anthropic_usage(model.tokens, "delta") if model.report_usage else None})
    events.append(delta)
    return model.stream(events, obj({"type": "message_stop"}))


class _AnthropicMessages(_Resource):
    def stream(self, **kwargs):
        """anthropic's messages.stream helper: a manager that posts the
        request itself (not through create) when entered."""
        def api_request():
            rid = self._model.receive(self._api, dict(kwargs, stream=True))
            return message_events(self._model, rid, kwargs)
        if self._is_async:
            return _AsyncMessageStreamManager(api_request)
        return _MessageStreamManager(api_request)


class _MessageStream:
    """anthropic's MessageStream: the raw events, and the message
    accumulated from them as the SDK does (message_start's message, then
    message_delta's stop reason and usage counts)."""

    def __init__(self, raw):
        self._raw = raw
        self._snapshot = None
        self._iterator = self._events()

    def _events(self):
        for event in self._raw:
            self._accumulate(event)
            yield event

    def _accumulate(self, event):
        if event.type == "message_start":
            self._snapshot = copy.deepcopy(event.message)
        elif event.type == "message_delta":
            self._snapshot.stop_reason = event.delta.stop_reason
            if event.usage is None:
                return
            self._snapshot.usage.output_tokens = event.usage.output_tokens
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                if getattr(event.usage, name) is not None:
                    setattr(self._snapshot.usage, name, getattr(event.usage, name))

    @property
    def current_message_snapshot(self):
        assert self._snapshot is not None
        return self._snapshot

    def __iter__(self):
        return self._iterator

    def __next__(self):
        return next(self._iterator)

    @property
    def text_stream(self):
        return (e.delta.text for e in self if e.type == "content_block_delta")

    def get_final_message(self):
        for _ in self:
            pass
        return self.current_message_snapshot

    def close(self):
        self._raw.close()


class _MessageStreamManager(_StreamManager):
    def __enter__(self):
        self._stream = _MessageStream(self._api_request())
        return self._stream


class _AsyncMessageStream(_MessageStream):
    async def _aevents(self):
        for event in self._raw:
            await asyncio.sleep(0)
            self._accumulate(event)
            yield event

    def __aiter__(self):
        return self._aevents()

    async def get_final_message(self):
        async for _ in self:
            pass
        return self.current_message_snapshot


class _AsyncMessageStreamManager(_MessageStreamManager):
    async def __aenter__(self):
        await asyncio.sleep(0)
        self._stream = _AsyncMessageStream(self._api_request())
        return self._stream

    async def __aexit__(self, *exc_info):
        self._stream.close()


class Anthropic:
    _is_async = False

    def __init__(self, model, api_key="sk-ant-standin"):
        self.model_server = model
        self.api_key = api_key
        self.messages = _AnthropicMessages(model, "msg", lambda m, rid, kw: obj(message(m, rid, kw, "whole")),
                                        message_events, self._is_async)
        self.models = _Models()

    def with_options(self, **options):
        return type(self)(self.model_server, api_key=options.get("api_key", self.api_key))


class AsyncAnthropic(Anthropic):
    _is_async = True


# Google Gemini (google-genai: genai.Client, with client.aio).

def gemini_response(model, rid, kwargs, text, usage):
    t = model.tokens
    body = {"response_id": rid, "model_version": kwargs["model"] + "-001",
            "candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": text}]},
                            "finish_reason": "STOP" if usage else None}],
            "usage_metadata": None}
    if not model.report_usage:
        return obj(body)
    if not usage:  # a chunk before the last: the usage so far
        body["usage_metadata"] = {"prompt_token_count": t.prompt, "candidates_token_count": 1,
                                  "total_token_count": t.prompt + 1}
    else:
        body["usage_metadata"] = {"prompt_token_count": t.prompt, "cached_content_token_count": t.cached,
                                  "candidates_token_count": t.output - t.reasoning,
                                  "thoughts_token_count": t.reasoning, "total_token_count": t.total}
    return obj(body)


class _GeminiModels:
    def __init__(self, model, is_async):
        self._model = model
        if is_async:
            self.generate_content = self._agenerate
            self.generate_content_stream = self._astream

    def generate_content(self, *, model, contents, config=None):
        kwargs = {"model": model, "contents": contents, "config": config}
        rid = self._model.receive("gemini", kwargs)
        return gemini_response(self._model, rid, kwargs, "Hello", True)

    def generate_content_stream(self, *, model, contents, config=None):
        kwargs = {"model": model, "contents": contents, "config": config}
        rid = self._model.receive("gemini", kwargs)
        parts = [gemini_response(self._model, rid, kwargs, p, False) for p in Model.STREAM_PARTS]
        # Each chunk is a GenerateContentResponse; the last one has the usage.
        return self._model.stream(parts, gemini_response(self._model, rid, kwargs, "", True))

    async def _agenerate(self, **kwargs):
        return _GeminiModels.generate_content(self, **kwargs)

    async def _astream(self, **kwargs):
        return _aiter(_GeminiModels.generate_content_stream(self, **kwargs))

    def list(self):
        return _Models().list()


class GenAIClient:
    def __init__(self, model, api_key="gemini-standin"):
        self.api_key = api_key
        self.models = _GeminiModels(model, is_async=False)
        self.aio = types.SimpleNamespace(models=_GeminiModels(model, is_async=True))
