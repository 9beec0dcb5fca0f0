"""``agentbill.wrap(client, ...)``: budget checks inside a provider client.

The wrapped OpenAI, Anthropic or Google Gemini client is the same object:
its known model calls (see :mod:`agentbill.providers`) are preflighted
before the request is sent and recorded after, with the usage the
provider reported; every other attribute is untouched, and copies made
with ``with_options`` (or ``copy``) are wrapped too, sharing the job.

One call:

1. preflight the estimate (:meth:`Job.estimate`, or with
   ``pricing="list"`` a usage estimate the ledger prices,
   :meth:`Job.usage_estimate`); a refusal raises
   :class:`RefusedError` and the request is never sent; an unavailable
   AgentBill follows the AgentBill client's ``on_unavailable`` (deny by
   default: :class:`UnavailableError`, nothing sent; allow: the call runs
   unchecked and nothing is recorded);
2. call the provider; an error before any response releases the hold;
3. record the usage (:func:`agentbill.usage.record_fields`) with the
   provider's response id as the idempotency key, settling the hold. A
   stream is recorded when it ends, and released if it errors or is closed
   before its usage arrived (anthropic's ``messages.stream`` manager: when
   its ``with`` block is left). A raw-response call (``with_raw_response``,
   ``with_streaming_response``) is recorded at once as usage missing. A record that fails is logged (logger
   ``"agentbill"``) and the answer returned; the hold stays until it
   expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import math
import threading
import uuid
from typing import Any, Callable, Dict, Optional

from .client import AgentBillClient, _amount
from .errors import AgentBillError, RefusedError
from .models import PreflightResult
from .providers import COPY_METHODS, ENDPOINTS, GEMINI_ASYNC_ATTR, Endpoint, Fold
from .usage import PRICING_LIST, PRICING_TOKENS, PRICINGS, measured, record_fields, units_of

#: Output tokens a call is assumed to need when it sets no maximum and the
#: job has measured no call yet.
FIRST_CALL_OUTPUT_TOKENS = 1024
#: Bytes of prompt JSON per token, for the first call's prompt estimate
#: (about 4 for English text with the common tokenizers).
PROMPT_BYTES_PER_TOKEN = 4
#: The smallest estimate preflighted.
ESTIMATE_MIN = 1
#: The request arguments that hold the prompt, across the providers.
PROMPT_ARGS = ("messages", "input", "instructions", "system", "contents")
#: The longest idempotency key the ledger accepts (ledger.IdempotencyKeyBytesMax);
#: a longer response id is hashed.
IDEMPOTENCY_KEY_BYTES_MAX = 128
#: The attribute that marks a wrapped client (and holds its job).
WRAPPED_ATTR = "_agentbill_job"

_log = logging.getLogger("agentbill")


class _Aborted(Exception):
    """A stream closed before it ended."""


class Job:
    """What one wrap() shares across its calls and copies: the options, and
    the running means the default estimate is made of."""

    def __init__(self, agentbill: AgentBillClient, agent_id: str, customer_id: Optional[str],
                 task_ref: Optional[str], task_ceiling: Any, estimate: Any, ttl: Any,
                 pricing: str = PRICING_TOKENS):
        self.agentbill = agentbill
        self.pricing = pricing
        self.agent_id = agent_id
        self.customer_id = customer_id
        self.task_ref = task_ref
        self.task_ceiling = task_ceiling
        self.fixed_estimate = estimate
        self.ttl = ttl
        self._lock = threading.Lock()
        self.measured_calls = 0
        self._units_sum = 0
        self._input_sum = 0

    def estimate(self, kwargs: Dict[str, Any], max_output: Optional[int]) -> Any:
        """The units to hold for a call. ``estimate=`` wins (a number, or a
        function of the call's keyword arguments); else the mean units of
        this job's measured calls, capped by their mean prompt plus the
        call's own max output tokens; before any measured call, the prompt's
        size plus the max output (or :data:`FIRST_CALL_OUTPUT_TOKENS`)."""
        if callable(self.fixed_estimate):
            return self.fixed_estimate(kwargs)
        if self.fixed_estimate is not None:
            return self.fixed_estimate
        with self._lock:
            n, units_sum, input_sum = self.measured_calls, self._units_sum, self._input_sum
        if n == 0:
            out = FIRST_CALL_OUTPUT_TOKENS if max_output is None else max_output
            return max(ESTIMATE_MIN, _prompt_tokens(kwargs) + out)
        mean = math.ceil(units_sum / n)
        if max_output is not None:
            mean = min(mean, math.ceil(input_sum / n) + max_output)
        return max(ESTIMATE_MIN, mean)

    def usage_estimate(self, kwargs: Dict[str, Any], max_output: Optional[int], model: Any) -> Dict[str, Any]:
        """The usage estimate the ledger prices for a call (``pricing="list"``):
        the call's model; as input tokens the prompt's size, or once calls
        were measured their mean prompt; as max output tokens the call's
        own maximum, else the measured calls' mean output (before any,
        :data:`FIRST_CALL_OUTPUT_TOKENS`)."""
        if not isinstance(model, str) or not model:
            raise ValueError("wrap(pricing=%r) needs the call's model= to price it" % PRICING_LIST)
        with self._lock:
            n, units_sum, input_sum = self.measured_calls, self._units_sum, self._input_sum
        if n == 0:
            input_tokens = _prompt_tokens(kwargs)
            output = FIRST_CALL_OUTPUT_TOKENS
        else:
            input_tokens = math.ceil(input_sum / n)
            output = math.ceil((units_sum - input_sum) / n)
        if max_output is not None:
            output = max_output
        return {"model": model, "input_tokens": input_tokens, "max_output_tokens": output}

    def observe(self, usage: Dict[str, Any]) -> None:
        """Adds a measured call to the running means."""
        with self._lock:
            self.measured_calls += 1
            self._units_sum += units_of(usage)
            self._input_sum += usage["input_tokens"]


def _prompt_tokens(kwargs: Dict[str, Any]) -> int:
    """A rough prompt size in tokens: its JSON bytes over PROMPT_BYTES_PER_TOKEN."""
    prompt = {k: kwargs[k] for k in PROMPT_ARGS if k in kwargs}
    raw = json.dumps(prompt, default=str, separators=(",", ":")).encode("utf-8")
    return math.ceil(len(raw) / PROMPT_BYTES_PER_TOKEN)


def _idempotency_key(response_id: Optional[str]) -> str:
    if not response_id:
        return str(uuid.uuid4())
    if len(response_id.encode("utf-8")) <= IDEMPOTENCY_KEY_BYTES_MAX:
        return response_id
    return "sha256:" + hashlib.sha256(response_id.encode("utf-8")).hexdigest()


class Call:
    """One provider call: its preflight, and the record or release that
    settles it (exactly once)."""

    def __init__(self, job: Job, endpoint: Endpoint, kwargs: Dict[str, Any]):
        self.job = job
        self.endpoint = endpoint
        self.model = kwargs.get("model")
        self.max_output = endpoint.max_output(kwargs)
        self.kwargs = kwargs
        self.check: Optional[PreflightResult] = None
        self.fold: Fold = endpoint.new_fold(self.model)
        self._settled = False
        self._lock = threading.Lock()

    def preflight(self) -> None:
        job = self.job
        estimate = usage_estimate = None
        if job.pricing == PRICING_LIST and job.fixed_estimate is None:
            usage_estimate = job.usage_estimate(self.kwargs, self.max_output, self.model)
        else:
            estimate = job.estimate(self.kwargs, self.max_output)
            _amount("estimate", estimate)
        meta = {"call": self.endpoint.name}
        if isinstance(self.model, str):
            meta["model"] = self.model
        check = job.agentbill.preflight(
            job.agent_id, job.customer_id, estimate, task_ref=job.task_ref,
            task_ceiling=job.task_ceiling, ttl=job.ttl, metadata=meta, usage_estimate=usage_estimate)
        if not check.approved:
            raise RefusedError(check)
        self.check = check

    def see_response(self, response: Any) -> None:
        self.fold.response_id = self.endpoint.response_id(response)
        self.fold.usage = self.endpoint.usage(response, self.model)

    def _claim(self) -> bool:
        """True for the first settle of this call; an unchecked call (no
        hold, AgentBill was unavailable) is never settled."""
        with self._lock:
            if self._settled or self.check is None or self.check.unchecked:
                self._settled = True
                return False
            self._settled = True
            return True

    def end(self, exc: Optional[BaseException]) -> None:
        """Settles the call: a record, unless it failed (or was aborted)
        before the provider reported its usage, which releases the hold."""
        if exc is not None and not measured(self.fold.usage):
            self.release(exc)
        else:
            self.record()

    def record(self) -> None:
        if not self._claim():
            return
        job, usage = self.job, self.fold.usage
        fields = record_fields(usage, self.check.reserved_units, job.pricing)
        try:
            job.agentbill.record(
                job.agent_id, fields["units"], job.customer_id, reservation_id=self.check.reservation_id,
                task_ref=job.task_ref, idempotency_key=_idempotency_key(self.fold.response_id),
                metadata=fields["metadata"], usage=fields["usage"])
        except AgentBillError as err:
            what = "the usage" if fields["units"] is None else "%s units" % fields["units"]
            _log.warning("agentbill: recording %s of %s (reservation %s) failed; the answer is "
                         "returned and the hold stays until it expires: %s",
                         what, self.endpoint.name, self.check.reservation_id, err)
            return
        if measured(usage):
            job.observe(usage)

    def release(self, exc: BaseException) -> None:
        if not self._claim():
            return
        try:
            self.job.agentbill.release(self.check.reservation_id, self.job.customer_id)
        except AgentBillError as err:  # the hold still expires by its TTL
            _log.warning("agentbill: releasing reservation %s after %s failed: %s",
                         self.check.reservation_id, type(exc).__name__, err)


class _Stream:
    """A provider's stream, passed through event by event; the call is
    settled when it ends, errors or is closed. Other attributes are the
    stream's own."""

    def __init__(self, inner: Any, call: Call):
        self._inner = inner
        self._call = call
        self._events = self._run()

    def _run(self):
        try:
            for event in self._inner:
                self._call.fold.see(event)
                yield event
        except BaseException as exc:  # GeneratorExit too: closed early
            self._call.end(exc)
            raise
        self._call.fold.ended()
        self._call.end(None)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._events)

    def close(self) -> None:
        self._events.close()
        self._call.end(_Aborted("stream closed before it started"))  # no-op once settled
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_inner"], name)


class _AsyncStream:
    """The async twin of _Stream (the HTTP calls to AgentBill run in a
    worker thread)."""

    def __init__(self, inner: Any, call: Call):
        self._inner = inner
        self._call = call
        self._events = self._run()

    async def _run(self):
        try:
            async for event in self._inner:
                self._call.fold.see(event)
                yield event
        except BaseException as exc:
            await asyncio.to_thread(self._call.end, exc)
            raise
        self._call.fold.ended()
        await asyncio.to_thread(self._call.end, None)

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._events.__anext__()

    async def close(self) -> None:
        await self._events.aclose()
        await asyncio.to_thread(self._call.end, _Aborted("stream closed before it started"))
        close = getattr(self._inner, "close", None) or getattr(self._inner, "aclose", None)
        if callable(close):
            out = close()
            if inspect.isawaitable(out):
                await out

    aclose = close

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_inner"], name)


class _ManagedStream:
    """anthropic's ``messages.stream(...)`` manager, sync or async: the
    request goes out on enter, so the preflight is there; on exit the
    call is settled from the message the stream accumulated (recorded if
    its usage is final, else released as aborted)."""

    def __init__(self, inner: Any, call: Call):
        self._inner = inner
        self._call = call
        self._stream: Any = None

    def __enter__(self) -> Any:
        self._call.preflight()
        try:
            self._stream = self._inner.__enter__()
        except BaseException as exc:
            self._call.release(exc)
            raise
        return self._stream

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._inner.__exit__(*exc_info)
        finally:
            self._call.end(self._outcome(exc_info[1]))

    async def __aenter__(self) -> Any:
        await asyncio.to_thread(self._call.preflight)
        try:
            self._stream = await self._inner.__aenter__()
        except BaseException as exc:
            await asyncio.to_thread(self._call.release, exc)
            raise
        return self._stream

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._inner.__aexit__(*exc_info)
        finally:
            await asyncio.to_thread(self._call.end, self._outcome(exc_info[1]))

    def _outcome(self, exc: Optional[BaseException]) -> Optional[BaseException]:
        """What ended the call: ``exc``, or an abort if the stream was left
        before its final usage."""
        try:
            message = self._stream.current_message_snapshot
        except (AssertionError, AttributeError):  # no message_start yet
            message = None
        self._call.fold.see_final(message)
        if exc is None and not measured(self._call.fold.usage):
            return _Aborted("stream left before its final usage")
        return exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_inner"], name)


def _managed_call(job: Job, endpoint: Endpoint, method: Callable) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _ManagedStream(method(*args, **kwargs), Call(job, endpoint, kwargs))
    return call


def _sync_call(job: Job, endpoint: Endpoint, method: Callable) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        c = Call(job, endpoint, kwargs)
        kwargs = endpoint.prepare(kwargs)
        c.preflight()
        try:
            out = method(*args, **kwargs)
        except BaseException as exc:
            c.release(exc)
            raise
        if endpoint.streaming(kwargs) and not endpoint.raw(kwargs):
            return _Stream(out, c)
        c.see_response(out)
        c.record()
        return out
    return call


def _async_call(job: Job, endpoint: Endpoint, method: Callable) -> Callable:
    async def call(*args: Any, **kwargs: Any) -> Any:
        c = Call(job, endpoint, kwargs)
        kwargs = endpoint.prepare(kwargs)
        await asyncio.to_thread(c.preflight)
        try:
            out = await method(*args, **kwargs)
        except BaseException as exc:
            await asyncio.to_thread(c.release, exc)
            raise
        if endpoint.streaming(kwargs) and not endpoint.raw(kwargs):
            return _AsyncStream(out, c)
        c.see_response(out)
        await asyncio.to_thread(c.record)
        return out
    return call


def _resolve(obj: Any, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def _is_async(method: Callable, owner: Any, client: Any) -> bool:
    # The providers decorate their methods, so look through functools.wraps;
    # their async clients' classes are named Async*.
    if inspect.iscoroutinefunction(inspect.unwrap(method)):
        return True
    return any(type(o).__name__.startswith("Async") for o in (owner, client))


def _patch(client: Any, job: Job, force_async: bool = False) -> int:
    """Wraps the known methods found on ``client``; returns how many."""
    found = 0
    for endpoint in ENDPOINTS:
        owner = _resolve(client, endpoint.path)
        method = getattr(owner, endpoint.method, None)
        if not callable(method):
            continue
        if endpoint.managed:
            factory = _managed_call  # a plain method returning a (sync or async) manager
        elif force_async or _is_async(method, owner, client):
            factory = _async_call
        else:
            factory = _sync_call
        wrapped = factory(job, endpoint, method)
        setattr(owner, endpoint.method, wrapped)
        found += 1
    return found


def _patch_copies(client: Any, job: Job) -> None:
    for name in COPY_METHODS:
        make_copy = getattr(client, name, None)
        if not callable(make_copy):
            continue

        def copy(*args: Any, _make_copy: Callable = make_copy, **kwargs: Any) -> Any:
            return _attach(_make_copy(*args, **kwargs), job)
        setattr(client, name, copy)


def _attach(client: Any, job: Job) -> Any:
    if getattr(client, WRAPPED_ATTR, None) is job:
        return client  # a copy method that returned the client itself
    found = _patch(client, job)
    aio = getattr(client, GEMINI_ASYNC_ATTR, None)
    if aio is not None:
        found += _patch(aio, job, force_async=True)
    if found == 0:
        raise TypeError("wrap() knows no model call on %s: expected an OpenAI, Anthropic or google-genai "
                        "client (chat.completions.create, responses.create, messages.create, "
                        "models.generate_content)" % type(client).__name__)
    _patch_copies(client, job)
    setattr(client, WRAPPED_ATTR, job)
    return client


def wrap(
    client: Any,
    *,
    agent_id: str,
    customer_id: Optional[str] = None,
    task_ref: Optional[str] = None,
    task_ceiling: Any = None,
    estimate: Any = None,
    ttl: Any = None,
    agentbill: Optional[AgentBillClient] = None,
    pricing: str = PRICING_TOKENS,
) -> Any:
    """Puts a budget check around every model call of a provider client and
    returns the same client.

    ``client`` is an OpenAI or AsyncOpenAI, Anthropic or AsyncAnthropic, or
    google-genai Client (``client.aio`` is wrapped too). ``agent_id``,
    ``customer_id``, ``task_ref`` and ``task_ceiling`` go with every
    preflight, as in :meth:`AgentBillClient.preflight`. ``estimate`` is the
    units to hold per call: a number, or a function of the call's keyword
    arguments; by default the running mean of this job's calls (see
    :meth:`Job.estimate`). ``ttl`` is each hold's lifetime. ``agentbill`` is
    the AgentBill client (default: ``AgentBillClient()`` from the
    environment); its ``on_unavailable`` is the fail policy.

    ``pricing`` is how a call is charged. ``"tokens"`` (the default): its
    token total as units. ``"list"``: at the list price of the customer's
    price list, computed by the ledger. Each call is then preflighted
    with a usage estimate (the call's model, the prompt's tokens and the
    call's max output tokens, see :meth:`Job.usage_estimate`) instead of
    units, unless ``estimate`` is given (then that is held), and recorded
    with the usage the provider reported, without units; a call whose
    usage is missing is charged its hold. A model the list does not price
    is :class:`InvalidArgumentError` at the preflight (give ``estimate``
    to hold units for it instead), and the request is not sent.

    A client is wrapped once: wrapping it again raises ValueError.
    """
    if not isinstance(agent_id, str) or not agent_id:
        raise ValueError("agent_id is required")
    if getattr(client, WRAPPED_ATTR, None) is not None:
        raise ValueError("this client is already wrapped by agentbill.wrap")
    if pricing not in PRICINGS:
        raise ValueError("pricing must be one of %s, got %r" % (", ".join(map(repr, PRICINGS)), pricing))
    if estimate is not None and not callable(estimate):
        _amount("estimate", estimate)
    job = Job(agentbill or AgentBillClient(), agent_id, customer_id, task_ref, task_ceiling, estimate, ttl,
              pricing)
    return _attach(client, job)
