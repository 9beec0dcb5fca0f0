"""The AgentBill HTTP client: preflight before a run, record after it, or
wrap the run in :meth:`AgentBillClient.gate`."""

from __future__ import annotations

import asyncio
import datetime
import functools
import http.client
import inspect
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict, is_dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Union

from . import __version__
from .errors import AgentBillError, RateLimitedError, RefusedError, UnavailableError, error_for
from .models import (
    Budget,
    EventsPage,
    ExtendResult,
    GrantResult,
    PreflightResult,
    PriceLists,
    PricesResult,
    RateLimit,
    RecordResult,
    ReleaseResult,
    ScopeLimit,
    Status,
    Usage,
    UsageEstimate,
    UsageReport,
)
from .usage import TOKEN_FIELDS

#: Where the client sends requests unless told otherwise (argument, then
#: the AGENTBILL_BASE_URL environment variable).
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
#: Seconds one HTTP attempt may take.
DEFAULT_TIMEOUT = 10.0
#: Retries after the first attempt, for 503 and for no answer at all. Every
#: mutating request carries an idempotency key, and a retry sends the same
#: one, so a retry is never charged twice.
DEFAULT_MAX_RETRIES = 3
#: Bounds of the wait between attempts (seconds; doubled each retry, with
#: jitter).
BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
#: The largest reply the client reads.
RESPONSE_BYTES_MAX = 8 * 1024 * 1024

#: The fail policies (``on_unavailable=``): what a preflight does when the
#: service is still unavailable after the retries.
ON_UNAVAILABLE_DENY = "deny"
ON_UNAVAILABLE_ALLOW = "allow"
#: Seconds between two "budget check skipped" warnings at most, so an
#: outage under load does not flood the log (``skipped_checks`` counts
#: every skip).
SKIPPED_WARN_INTERVAL = 60.0
#: The message of an unchecked approval.
UNCHECKED_MESSAGE = "budget check skipped: AgentBill was unavailable (on_unavailable=allow)"

_JSON_TYPE = "application/json"
_log = logging.getLogger("agentbill")


def _amount(name: str, value: Any) -> Any:
    """Checks an amount and returns what goes in the JSON body.

    Amounts must be exact: ``int``, ``str`` holding a decimal ("12.5"), or
    ``decimal.Decimal``. ``float`` is refused, because 0.1 as a float is not
    0.1; pass ``Decimal("0.1")`` or ``"0.1"``. Decimals and strings are sent
    as JSON strings, which the gateway parses exactly; ints as JSON numbers.
    The server checks the bounds (non-negative, at most 10^15, at most 18
    fractional digits).
    """
    if isinstance(value, bool):
        raise TypeError("%s must be an int, str or decimal.Decimal, not bool" % name)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("%s must be a finite number, not %s" % (name, value))
        return format(value, "f")
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        raise TypeError(
            "%s must be an int, str or decimal.Decimal, not float (floats are inexact): "
            "use Decimal(%r) or %r" % (name, repr(value), repr(value))
        )
    raise TypeError("%s must be an int, str or decimal.Decimal, not %s" % (name, type(value).__name__))


def _ttl(value: Any) -> Optional[str]:
    """A reservation lifetime: a Go duration string ("90s", "15m"), seconds
    as a number, or a datetime.timedelta."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "%dms" % round(value * 1000)
    raise TypeError("ttl must be a duration string like '15m', seconds, or a timedelta")


def _time(name: str, value: Any) -> Optional[str]:
    """A time sent to the gateway: an RFC 3339 string as given, or an aware
    datetime.datetime written in UTC. A naive datetime is refused: which
    zone it means is a guess, and a guess moves an expiry by hours."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("%s must be timezone-aware (e.g. datetime.now(timezone.utc)), not naive" % name)
        return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    raise TypeError("%s must be an RFC 3339 string or a datetime.datetime, not %s" % (name, type(value).__name__))


def _scope(value: Optional[Mapping[str, str]]) -> Optional[Dict[str, str]]:
    """A run's scope: dimension -> value, e.g. {"team": "research"}. The
    server checks the names and the bound (at most 4 dimensions)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError("scope must be a mapping of dimension to value, like {'team': 'research'}")
    return dict(value)


def _scope_limits(limits: Optional[Iterable[Union[ScopeLimit, Mapping[str, Any]]]]) -> Optional[list]:
    """A budget's scope limits, each a ScopeLimit or a dict with the same
    keys (dimension, value, limit, period)."""
    if limits is None:
        return None
    out = []
    for sl in limits:
        if isinstance(sl, Mapping):
            sl = ScopeLimit(**sl)
        if not isinstance(sl, ScopeLimit):
            raise TypeError("scope_limits items must be ScopeLimit or dict, not %s" % type(sl).__name__)
        out.append(_compact({
            "dimension": sl.dimension,
            "value": sl.value,
            "limit": _amount("scope limit", sl.limit),
            "period": sl.period,
        }))
    return out


def _rollover(value: Any) -> Any:
    """A rollover policy: "none", "all", or a cap (an amount)."""
    if value in ("none", "all"):
        return value
    return _amount("rollover", value)


def _int(name: str, value: Any) -> Optional[int]:
    """An integer field (not an amount): an int, never a bool or float."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    return value


def _rate_limit(rl: Optional[Union[RateLimit, Mapping[str, Any]]]) -> Optional[Dict[str, Any]]:
    """A budget's rate limit, a RateLimit or a dict with the same keys;
    the server checks the bounds."""
    if rl is None:
        return None
    if isinstance(rl, Mapping):
        rl = RateLimit(**rl)
    if not isinstance(rl, RateLimit):
        raise TypeError("rate_limit must be RateLimit or dict, not %s" % type(rl).__name__)
    return _compact({"per_second": _amount("rate_limit per_second", rl.per_second),
                     "burst": _int("rate_limit burst", rl.burst) or None})


def _runs(name: str, value: Any) -> Optional[int]:
    """A run cap: None and 0 both mean no cap, and are left out."""
    value = _int(name, value)
    return value or None


#: The names of a usage (``record(usage=)``): strings, then token counts.
USAGE_NAMES = ("model", "provider", "service_tier")
#: The token counts of a usage estimate (``preflight(usage_estimate=)``).
ESTIMATE_COUNTS = ("input_tokens", "max_output_tokens")


def _token_object(name: str, value: Any, kind: type, counts: Iterable[str]) -> Optional[Dict[str, Any]]:
    """A usage or usage estimate as sent: a ``kind`` dataclass or a
    mapping with its keys. Names are strings and counts ints (never bool
    or float); a None is left out, never sent as 0. The server checks the
    bounds and that the counts agree."""
    if value is None:
        return None
    if isinstance(value, kind):
        value = asdict(value)
    if not isinstance(value, Mapping):
        raise TypeError("%s must be a %s or a dict, not %s" % (name, kind.__name__, type(value).__name__))
    counts = tuple(counts)
    unknown = sorted(set(value) - set(USAGE_NAMES) - set(counts))
    if unknown:
        raise ValueError("%s: unknown keys %s (known: %s)"
                         % (name, ", ".join(unknown), ", ".join(USAGE_NAMES + counts)))
    out = {}
    for k, v in value.items():
        if v is None:
            continue
        if k in counts and (isinstance(v, bool) or not isinstance(v, int)):
            raise TypeError("%s.%s must be an int (a token count), not %s" % (name, k, type(v).__name__))
        if k in USAGE_NAMES and not isinstance(v, str):
            raise TypeError("%s.%s must be a str, not %s" % (name, k, type(v).__name__))
        out[k] = v
    if not out.get("model"):
        raise ValueError("%s.model is required" % name)
    return out


def _usage(value: Any) -> Optional[Dict[str, Any]]:
    """A record's usage: a UsageReport, or a dict of the same keys (what
    :mod:`agentbill.usage` normalizes a provider's response into)."""
    return _token_object("usage", value, UsageReport, TOKEN_FIELDS)


def _usage_estimate(value: Any) -> Optional[Dict[str, Any]]:
    """A preflight's usage estimate: a UsageEstimate, or a dict of the
    same keys."""
    return _token_object("usage_estimate", value, UsageEstimate, ESTIMATE_COUNTS)


def _json_amounts(value: Any, where: str = "price_list") -> Any:
    """A price list dict made JSON: Decimals as decimal strings, floats
    refused (a rate of 0.1 as a float is not 0.1)."""
    if isinstance(value, Mapping):
        return {k: _json_amounts(v, "%s.%s" % (where, k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_amounts(v, "%s[%d]" % (where, i)) for i, v in enumerate(value)]
    if isinstance(value, (Decimal, float)):
        return _amount(where, value)
    return value


def _new_key() -> str:
    return str(uuid.uuid4())


def _compact(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class AgentBillClient:
    """A client of an AgentBill HTTP gateway (``agentbill serve --http``).

    ``api_key`` defaults to the AGENTBILL_API_KEY environment variable,
    ``base_url`` to AGENTBILL_BASE_URL, then ``http://127.0.0.1:8080``.
    It is safe to share between threads. A ``customer_id`` left as None is
    the key's own customer if the key is bound to one, else ``"default"``.

    ``on_unavailable`` is the fail policy, applied only when the service is
    still unavailable after ``max_retries`` (a refusal is always a refusal,
    and other errors are raised as they are). ``"deny"`` (the default)
    raises :class:`UnavailableError`, so the run does not start.
    ``"allow"`` returns an approval with ``unchecked=True`` and no
    reservation, adds one to ``skipped_checks`` and logs a warning (logger
    ``"agentbill"``) at most once per :data:`SKIPPED_WARN_INTERVAL`.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        on_unavailable: str = ON_UNAVAILABLE_DENY,
    ):
        if on_unavailable not in (ON_UNAVAILABLE_DENY, ON_UNAVAILABLE_ALLOW):
            raise ValueError("on_unavailable must be %r or %r, got %r"
                             % (ON_UNAVAILABLE_DENY, ON_UNAVAILABLE_ALLOW, on_unavailable))
        api_key = api_key or os.environ.get("AGENTBILL_API_KEY")
        if not api_key:
            raise ValueError("an API key is required: pass api_key= or set AGENTBILL_API_KEY")
        self.api_key = api_key
        self.base_url = (base_url or os.environ.get("AGENTBILL_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.on_unavailable = on_unavailable
        #: Preflights approved unchecked under ``on_unavailable="allow"``.
        self.skipped_checks = 0
        self._skip_lock = threading.Lock()
        self._warned_at: Optional[float] = None  # self._clock() of the last warning
        self._clock = time.monotonic  # a field, so tests control time

    def __repr__(self) -> str:
        return "AgentBillClient(base_url=%r, api_key=%r)" % (self.base_url, self.api_key[:8] + "...")

    # Agent operations.

    def preflight(
        self,
        agent_id: str,
        customer_id: Optional[str] = None,
        estimated_units: Any = None,
        *,
        ceiling: Any = None,
        task_ref: Optional[str] = None,
        task_ceiling: Any = None,
        ttl: Any = None,
        idempotency_key: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        scope: Optional[Mapping[str, str]] = None,
        min_units: Any = None,
        usage_estimate: Union[UsageEstimate, Mapping[str, Any], None] = None,
    ) -> PreflightResult:
        """Asks to reserve ``estimated_units`` (default 1) for a run of
        ``agent_id``. A refusal is not an error: check ``.approved``, and
        ``.reason``/``.message`` say why.

        ``scope`` places the run in the customer's organisation, e.g.
        ``{"team": "research", "user": "alice"}`` (at most 4 dimensions):
        every scope limit of a value it names must fit too. ``min_units``
        asks for a partial approval: if the estimate does not fit but
        ``min_units`` does, the hold is the most that fits, and the reply
        says ``partial=True`` with the hold in ``reserved_units``.

        ``usage_estimate`` (a :class:`UsageEstimate` or a dict: ``model``,
        ``input_tokens``, ``max_output_tokens``, optionally ``provider``
        and ``service_tier``) asks the ledger to price the hold from the
        customer's price list at its worst case, instead of
        ``estimated_units``; the approval then says ``max_output_tokens``
        (fewer on a partial approval: cap the model call there) and
        ``estimate_pricing``. A model the list does not price is
        :class:`InvalidArgumentError`, unless ``estimated_units`` is given
        too: then that is held instead."""
        body = _compact({
            "agent_id": agent_id,
            "customer_id": customer_id,
            "estimated_units": None if estimated_units is None else _amount("estimated_units", estimated_units),
            "ceiling": None if ceiling is None else _amount("ceiling", ceiling),
            "task_ref": task_ref,
            "task_ceiling": None if task_ceiling is None else _amount("task_ceiling", task_ceiling),
            "ttl": _ttl(ttl),
            "idempotency_key": idempotency_key or _new_key(),
            "metadata": metadata,
            "scope": _scope(scope),
            "min_units": None if min_units is None else _amount("min_units", min_units),
            "usage_estimate": _usage_estimate(usage_estimate),
        })
        try:
            return PreflightResult.from_json(self._request("POST", "/v1/preflight", body))
        except UnavailableError as err:
            if self.on_unavailable != ON_UNAVAILABLE_ALLOW:
                raise
            return self._unchecked(err)

    def _unchecked(self, err: UnavailableError) -> PreflightResult:
        """The approval of a check skipped under on_unavailable="allow"."""
        now = self._clock()
        with self._skip_lock:
            self.skipped_checks += 1
            skipped = self.skipped_checks
            warn = self._warned_at is None or now - self._warned_at >= SKIPPED_WARN_INTERVAL
            if warn:
                self._warned_at = now
        if warn:
            _log.warning("agentbill: budget check skipped, service unavailable (on_unavailable=allow; "
                         "%d skipped so far): %s", skipped, err)
        return PreflightResult(
            approved=True, reason=None, message=UNCHECKED_MESSAGE, reservation_id=None,
            reserved_units=None, remaining_units=None, expires_at=None, upgrade_url=None,
            unchecked=True)

    def record(
        self,
        agent_id: str,
        units: Any = None,
        customer_id: Optional[str] = None,
        reservation_id: Optional[str] = None,
        success: bool = True,
        *,
        task_ref: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        scope: Optional[Mapping[str, str]] = None,
        usage: Union[UsageReport, Mapping[str, Any], None] = None,
    ) -> RecordResult:
        """Records what a run actually used. It settles ``reservation_id``
        (or the agent's oldest open reservation, if None): the units are
        charged and the rest of the hold released. ``success=False``
        releases the hold instead of charging (``units`` may then be None).
        ``scope`` is the run's scope when the record settles no hold (a
        hold's scope is its preflight's). ``.funded_by`` says what credit
        grants paid.

        ``usage`` (a :class:`UsageReport` or a dict of the same keys, as
        :mod:`agentbill.usage` normalizes a provider's response) is the
        model usage to charge at the customer's price list, instead of
        ``units``: ``.pricing`` then says how it was priced. Usage the list
        cannot price is charged ``units`` if given, else the hold, and
        ``.unpriced`` says why; never a silent 0."""
        usage_body = _usage(usage)
        if units is None and success and usage_body is None:
            raise TypeError("units is required, unless usage= is given (the ledger prices it) or success=False")
        body = _compact({
            "customer_id": customer_id,
            "event_type": agent_id,
            "units": None if units is None else _amount("units", units),  # None only as checked above
            "usage": usage_body,
            "reservation_id": reservation_id,
            "success": bool(success),
            "task_ref": task_ref,
            "idempotency_key": idempotency_key or _new_key(),
            "metadata": metadata,
            "scope": _scope(scope),
        })
        return RecordResult.from_json(self._request("POST", "/v1/events", body))

    def release(
        self,
        reservation_id: str,
        customer_id: Optional[str] = None,
        *,
        idempotency_key: Optional[str] = None,
    ) -> ReleaseResult:
        """Gives a reservation's hold back without charging anything."""
        body = _compact({
            "customer_id": customer_id,
            "reservation_id": reservation_id,
            "idempotency_key": idempotency_key or _new_key(),
        })
        return ReleaseResult.from_json(self._request("POST", "/v1/release", body))

    def extend(
        self,
        reservation_id: str,
        ttl: Any,
        customer_id: Optional[str] = None,
        *,
        idempotency_key: Optional[str] = None,
    ) -> ExtendResult:
        """Pushes a reservation's deadline to now + ``ttl``, for long runs."""
        body = _compact({
            "customer_id": customer_id,
            "reservation_id": reservation_id,
            "ttl": _ttl(ttl),
            "idempotency_key": idempotency_key or _new_key(),
        })
        return ExtendResult.from_json(self._request("POST", "/v1/extend", body))

    # Reads.

    def status(self, customer_id: str) -> Status:
        """The customer's full position: limit, used, reserved, remaining,
        period, open reservations and per-agent usage."""
        return Status.from_json(self._request("GET", "/v1/customers/" + _path(customer_id)))

    def budget(self, customer_id: Optional[str] = None) -> Budget:
        """The customer's budget in the REST API's shape."""
        query = {"customer_id": customer_id} if customer_id else None
        return Budget.from_json(self._request("GET", "/v1/budget", query=query))

    def events(self, customer_id: str, limit: Optional[int] = None) -> EventsPage:
        """The customer's newest events from the log (auditor or admin)."""
        query = {"limit": str(int(limit))} if limit is not None else None
        path = "/v1/customers/%s/events" % _path(customer_id)
        return EventsPage.from_json(self._request("GET", path, query=query))

    # Admin operations.

    def set_budget(
        self,
        customer_id: str,
        limit_units: Any,
        period: str,
        *,
        thresholds: Optional[list] = None,
        upgrade_url: Optional[str] = None,
        agent_limits: Optional[Dict[str, Any]] = None,
        idempotency_key: Optional[str] = None,
        rollover: Any = None,
        overdraft: Any = None,
        scope_limits: Optional[Iterable[Union[ScopeLimit, Mapping[str, Any]]]] = None,
        max_concurrent_runs: Optional[int] = None,
        max_concurrent_runs_per_agent: Optional[int] = None,
        price_list: Optional[str] = None,
        rate_limit: Optional[Union[RateLimit, Mapping[str, Any]]] = None,
    ) -> Budget:
        """Sets a customer's budget per ``period`` (day, week, month, none).
        It replaces the whole budget: a field left out is removed.

        ``rollover`` is what of a period's unused allowance becomes a grant
        in the next: ``"none"`` (the default), ``"all"``, or a cap (an
        amount); it needs a period other than none. ``overdraft`` lets
        approvals go that many units below zero. ``scope_limits`` cap scope
        values (:class:`ScopeLimit` or dicts with the same keys).
        ``max_concurrent_runs`` caps the customer's open reservations,
        ``max_concurrent_runs_per_agent`` each agent's (0 or None: no cap).
        ``price_list`` names the price list the customer's usage is priced
        with (it must be set already; None: the list named ``default``).
        ``rate_limit`` is the customer's own preflight rate
        (:class:`RateLimit` or a dict of ``per_second`` and ``burst``;
        ``per_second`` 0 without ``burst``: no limit; None: the server's
        default).
        """
        body = _compact({
            "customer_id": customer_id,
            "limit_units": _amount("limit_units", limit_units),
            "period": period,
            "thresholds": None if thresholds is None else [_amount("thresholds", t) for t in thresholds],
            "upgrade_url": upgrade_url,
            "agent_limits": None if agent_limits is None else {
                a: _amount("agent_limits", u) for a, u in agent_limits.items()
            },
            "idempotency_key": idempotency_key or _new_key(),
            "rollover": None if rollover is None else _rollover(rollover),
            "overdraft": None if overdraft is None else _amount("overdraft", overdraft),
            "scope_limits": _scope_limits(scope_limits),
            "max_concurrent_runs": _runs("max_concurrent_runs", max_concurrent_runs),
            "max_concurrent_runs_per_agent": _runs("max_concurrent_runs_per_agent", max_concurrent_runs_per_agent),
            "price_list": price_list,
            "rate_limit": _rate_limit(rate_limit),
        })
        return Budget.from_json(self._request("PUT", "/v1/budget", body))

    def top_up(
        self,
        customer_id: str,
        units: Any,
        *,
        note: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Budget:
        """Adds units to the customer's current period."""
        body = _compact({
            "customer_id": customer_id,
            "units": _amount("units", units),
            "note": note,
            "idempotency_key": idempotency_key or _new_key(),
        })
        return Budget.from_json(self._request("POST", "/v1/topup", body))

    def grant(
        self,
        customer_id: Optional[str],
        units: Any,
        *,
        expires_at: Any = None,
        effective_at: Any = None,
        priority: Optional[int] = None,
        source: Optional[str] = None,
        note: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> GrantResult:
        """Grants the customer ``units`` of credit: used after the period's
        allowance, kept across periods until used up or expired. Use it for
        credits a customer buys; :meth:`top_up` raises this period only.

        ``expires_at`` (None: never) and ``effective_at`` (None: now) are
        aware datetimes or RFC 3339 strings. Grants are drawn by
        ``priority`` (0..1000000, lower first, default 100), then the
        earliest expiry. ``source`` labels it (default ``"purchase"``;
        ``"promo"``, ``"allowance"``...; at most 32 bytes).
        """
        body = _compact({
            "customer_id": customer_id,
            "units": _amount("units", units),
            "expires_at": _time("expires_at", expires_at),
            "effective_at": _time("effective_at", effective_at),
            "priority": _int("priority", priority),
            "source": source,
            "note": note,
            "idempotency_key": idempotency_key or _new_key(),
        })
        return GrantResult.from_json(self._request("POST", "/v1/grants", body))

    def set_prices(self, price_list: Union[Mapping[str, Any], str, bytes]) -> PricesResult:
        """Sets a named, versioned price list (admin, a key bound to no
        customer): a dict, or its JSON as str or bytes (sent as it is, so
        its rates stay exactly as written). Rates are decimals per million
        tokens: strings, ints or Decimals, never floats. Setting a version
        again with the same prices changes nothing (``changed=False``);
        with other prices it is :class:`ConflictError`. Every problem of
        the list is reported at once (:class:`InvalidArgumentError`)."""
        if isinstance(price_list, str):
            data = price_list.encode("utf-8")
        elif isinstance(price_list, (bytes, bytearray)):
            data = bytes(price_list)
        elif isinstance(price_list, Mapping):
            data = _json_body(_json_amounts(price_list))
        else:
            raise TypeError("price_list must be a dict, str or bytes, not %s" % type(price_list).__name__)
        return PricesResult.from_json(self._request("POST", "/v1/prices", data))

    def price_lists(self, list: Optional[str] = None) -> PriceLists:  # noqa: A002 (the wire's name)
        """The price lists set (admin, a key bound to no customer): each
        one's name, version, digest and number of models; with ``list``,
        that list with its ``prices`` (:class:`NotFoundError` if it is not
        set)."""
        query = {"list": list} if list else None
        return PriceLists.from_json(self._request("GET", "/v1/prices", query=query))

    # The gate.

    def gate(
        self,
        agent_id: str,
        estimated_units: Any = None,
        customer_id: Optional[str] = None,
        *,
        task_ref: Optional[str] = None,
        ttl: Any = None,
        units_from: Optional[Callable[[Any], Any]] = None,
        scope: Optional[Mapping[str, str]] = None,
        min_units: Any = None,
    ) -> Callable:
        """A decorator that runs a function only if its preflight is approved.

        It preflights ``estimated_units`` (default 1), runs the function,
        then records what the run used and settles the reservation. The
        units recorded are, in order: those of a returned :class:`Usage`
        (``return Usage(units=7, result=answer)``, and the caller gets
        ``answer``), ``units_from(result)`` if given, else what the
        preflight held: the estimate, or less on a partial approval.
        ``scope`` and ``min_units`` are the preflight's (see
        :meth:`preflight`); the reservation keeps the scope, so the record
        needs none. If the function raises, the hold is released and the
        exception propagates. When the service is unavailable the client's
        ``on_unavailable`` decides: ``"deny"`` raises
        :class:`UnavailableError`; ``"allow"`` runs the function unchecked
        and records nothing. A refusal raises :class:`RefusedError` (its
        ``reason`` may be ``scope_limit_exceeded`` or
        ``concurrency_limit_exceeded`` too) and the function never runs.
        ``async def`` functions are gated too (the HTTP calls then run in a
        worker thread).
        """
        # Fail at decoration time, not at the first call.
        if estimated_units is not None:
            _amount("estimated_units", estimated_units)
        if min_units is not None:
            _amount("min_units", min_units)
        _scope(scope)

        def decorator(fn: Callable) -> Callable:
            gate = _Gate(self, agent_id, estimated_units, customer_id, task_ref, ttl, units_from, scope, min_units)
            if inspect.iscoroutinefunction(fn):
                @functools.wraps(fn)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    check = await asyncio.to_thread(gate.preflight)
                    try:
                        out = await fn(*args, **kwargs)
                    except BaseException as exc:
                        await asyncio.to_thread(gate.release, check, exc)
                        raise
                    return await asyncio.to_thread(gate.record, check, out)
                return run_async

            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                check = gate.preflight()
                try:
                    out = fn(*args, **kwargs)
                except BaseException as exc:
                    gate.release(check, exc)
                    raise
                return gate.record(check, out)
            return run

        return decorator

    # Transport.

    def _request(self, method: str, path: str, body: Union[Dict[str, Any], bytes, None] = None,
                 query: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """Sends one request, retrying 503 and no-answer up to max_retries
        times with the same body (so the same idempotency key). ``body`` is
        a dict, or JSON already encoded."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = body if body is None or isinstance(body, bytes) else _json_body(body)
        headers = {
            "Authorization": "Bearer " + self.api_key,
            "Accept": _JSON_TYPE,
            "User-Agent": "agentbill-python/" + __version__,
        }
        if data is not None:
            headers["Content-Type"] = _JSON_TYPE
        backoff = BACKOFF_MIN
        attempt = 0
        while True:
            try:
                return self._once(method, url, data, headers)
            except AgentBillError as err:
                if not isinstance(err, UnavailableError) or attempt >= self.max_retries:
                    raise
            attempt += 1
            time.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _once(self, method: str, url: str, data: Optional[bytes], headers: Dict[str, str]) -> Dict[str, Any]:
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                return _decode(res.read(RESPONSE_BYTES_MAX + 1), res.status)
        except urllib.error.HTTPError as res:
            with res:
                payload = _decode_error(res.read(RESPONSE_BYTES_MAX + 1), res.code)
                if isinstance(payload, RateLimitedError):
                    payload.retry_after_ms = _retry_after_ms(res.headers.get("Retry-After"))
            raise payload from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # no answer
            reason = getattr(exc, "reason", exc)
            raise UnavailableError("no answer from %s: %s" % (self.base_url, reason), status=None) from exc


class _Gate:
    """The steps of one gated call; see AgentBillClient.gate."""

    def __init__(self, client, agent_id, estimated_units, customer_id, task_ref, ttl, units_from,
                 scope=None, min_units=None):
        self.client = client
        self.agent_id = agent_id
        self.estimated_units = estimated_units
        self.customer_id = customer_id
        self.task_ref = task_ref
        self.ttl = ttl
        self.units_from = units_from
        self.scope = scope
        self.min_units = min_units

    def preflight(self) -> PreflightResult:
        check = self.client.preflight(
            self.agent_id, self.customer_id, self.estimated_units, task_ref=self.task_ref, ttl=self.ttl,
            scope=self.scope, min_units=self.min_units)
        if not check.approved:
            raise RefusedError(check)
        return check

    def release(self, check: PreflightResult, exc: BaseException) -> None:
        if check.unchecked:
            return  # no reservation to release
        try:
            self.client.release(check.reservation_id, self.customer_id)
        except AgentBillError as err:  # the hold still expires by its TTL
            if hasattr(exc, "add_note"):
                exc.add_note("agentbill: releasing reservation %s failed: %s" % (check.reservation_id, err))

    def record(self, check: PreflightResult, out: Any) -> Any:
        if isinstance(out, Usage):
            units, result = out.units, out.result
        elif self.units_from is not None:
            units, result = self.units_from(out), out
        elif check.partial:
            units, result = check.reserved_units, out  # the hold, not the estimate that did not fit
        else:
            units = 1 if self.estimated_units is None else self.estimated_units
            result = out
        if check.unchecked:
            # No reservation, and the service was just unavailable: the
            # run's usage is not recorded (skipped_checks counts it).
            return result
        try:
            self.client.record(
                self.agent_id, units, self.customer_id, reservation_id=check.reservation_id,
                task_ref=self.task_ref)
        except AgentBillError as err:
            err.result = result  # the run happened; do not lose its result
            raise
        return result


def _json_body(body: Dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _path(customer_id: str) -> str:
    if not customer_id:
        raise ValueError("customer_id is required")
    return urllib.parse.quote(customer_id, safe="")


def _loads(raw: bytes) -> Any:
    # Amounts are read from their text: parse_float keeps "7.25" exact.
    return json.loads(raw.decode("utf-8"), parse_float=Decimal)


def _decode(raw: bytes, status: int) -> Dict[str, Any]:
    if len(raw) > RESPONSE_BYTES_MAX:
        raise AgentBillError("reply larger than %d bytes" % RESPONSE_BYTES_MAX, status=status)
    try:
        out = _loads(raw)
    except ValueError as exc:
        raise AgentBillError("malformed reply: %s" % exc, status=status) from None
    if not isinstance(out, dict):
        raise AgentBillError("malformed reply: not a JSON object", status=status)
    return out


def _retry_after_ms(header: Optional[str]) -> Optional[int]:
    """A Retry-After header in whole seconds, as milliseconds; None if absent or not seconds."""
    if header is None or not header.strip().isdigit():
        return None
    return int(header.strip()) * 1000


def _decode_error(raw: bytes, status: int) -> AgentBillError:
    try:
        err = _loads(raw[:RESPONSE_BYTES_MAX])["error"]
        return error_for(str(err["code"]), str(err.get("message", "")), status)
    except (ValueError, KeyError, TypeError):
        # Not the gateway's JSON (a proxy's page, say): classify by status.
        code = "unavailable" if status in (502, 503, 504) else "internal"
        return error_for(code, "HTTP %d from the server" % status, status)
