"""Replies of the AgentBill gateway, as plain objects.

Amounts are :class:`decimal.Decimal`, read exactly from the reply's text
(never through float). Each object keeps the whole reply in ``raw``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, List, Optional, Union


def _units(v: Any) -> Optional[Decimal]:
    """An amount of a reply, exactly. Remaining amounts are signed: they
    are negative for a customer in its overdraft."""
    if v is None:
        return None
    if isinstance(v, Decimal):
        return v
    return Decimal(str(v))  # ints and strings; floats never reach here


def _count(v: Any) -> Optional[int]:
    return None if v is None else int(v)


def _rollover(v: Any) -> Optional[Union[str, Decimal]]:
    """A budget's rollover as status shows it: "all", a Decimal cap, or
    None (no rollover)."""
    if v is None or v == "" or v == "none":
        return None
    if v == "all":
        return "all"
    return _units(v)


@dataclass(frozen=True)
class ScopeLimit:
    """One scope limit of a budget (``set_budget(scope_limits=[...])``):
    the usage of ``value`` in ``dimension`` (say ``team`` = ``research``)
    is capped at ``limit`` per ``period`` (``day``, ``week``, ``month``,
    ``none``; None: the budget's period). ``limit`` is an int, str or
    Decimal, as every amount sent."""

    dimension: str
    value: str
    limit: Any
    period: Optional[str] = None


@dataclass(frozen=True)
class ScopeRef:
    """A scope value: the scope limit that refused a preflight
    (``reason == "scope_limit_exceeded"``)."""

    dimension: str
    value: str

    @classmethod
    def from_json(cls, d: Optional[Dict[str, Any]]) -> Optional["ScopeRef"]:
        if not d:
            return None
        return cls(dimension=d.get("dimension", ""), value=d.get("value", ""))


@dataclass(frozen=True)
class RateLimit:
    """A customer's own preflight rate limit: ``per_second`` on average,
    ``burst`` at once (``per_second`` 0: no limit)."""

    per_second: Decimal
    burst: int = 0

    @classmethod
    def from_json(cls, d: Optional[Dict[str, Any]]) -> Optional["RateLimit"]:
        if not d:
            return None
        return cls(per_second=_units(d.get("per_second", 0)), burst=int(d.get("burst", 0)))


@dataclass(frozen=True)
class GrantDraw:
    """What one credit grant paid of a recorded charge."""

    grant_id: str
    units: Decimal

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "GrantDraw":
        return cls(grant_id=d.get("grant_id", ""), units=_units(d.get("units", 0)))


@dataclass(frozen=True)
class GrantStatus:
    """One open credit grant in a status, listed in draw-down order (lower
    ``priority`` first, then the earliest expiry, then the oldest).
    ``expires_at`` is None for a grant that never expires."""

    grant_id: str
    units: Decimal
    remaining: Decimal
    priority: int
    source: str
    effective_at: Optional[str]
    expires_at: Optional[str]

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "GrantStatus":
        return cls(
            grant_id=d.get("grant_id", ""),
            units=_units(d.get("units", 0)),
            remaining=_units(d.get("remaining", 0)),
            priority=int(d.get("priority", 0)),
            source=d.get("source", ""),
            effective_at=d.get("effective_at"),
            expires_at=d.get("expires_at"),
        )


@dataclass(frozen=True)
class ScopeStatus:
    """One limited scope value's position in its period. ``remaining`` is
    negative when the value's usage went past its limit."""

    dimension: str
    value: str
    limit: Decimal
    period: str
    period_start: Optional[str]
    used: Decimal
    reserved: Decimal
    remaining: Decimal

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ScopeStatus":
        return cls(
            dimension=d.get("dimension", ""),
            value=d.get("value", ""),
            limit=_units(d.get("limit", 0)),
            period=d.get("period", ""),
            period_start=d.get("period_start"),
            used=_units(d.get("used", 0)),
            reserved=_units(d.get("reserved", 0)),
            remaining=_units(d.get("remaining", 0)),
        )


def _text(d: Decimal) -> str:
    """An amount as the ledger writes it (events.Units.String): reduced,
    never in exponent form, "0" for zero."""
    if d.is_zero():
        return "0"
    return format(d.normalize(), "f")


def _thousands(n: int) -> str:
    """A count with comma separators, as the ledger writes it: 1,200."""
    return format(n, ",")


@dataclass(frozen=True)
class UsageEstimate:
    """A model call to price before it runs (``preflight(usage_estimate=)``),
    at its worst case: every prompt token at the input rate and all of
    ``max_output_tokens`` at the output rate. Token counts are ints."""

    model: str
    input_tokens: int
    max_output_tokens: int
    provider: Optional[str] = None
    service_tier: Optional[str] = None


@dataclass(frozen=True)
class UsageReport:
    """What a model call used (``record(usage=)``), in the ledger's shape
    (:mod:`agentbill.usage` normalizes provider responses into the same
    keys, as a dict). A count not reported stays None and is left out,
    never sent as 0: ``input_tokens`` counts every prompt token (cache
    reads and writes included), ``output_tokens`` every output token
    (reasoning included); the others are parts of those two."""

    model: str
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    cache_read_tokens: Optional[int] = None
    cache_write_tokens: Optional[int] = None
    cache_write_1h_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None
    provider: Optional[str] = None
    service_tier: Optional[str] = None


@dataclass(frozen=True)
class PriceLine:
    """One kind's part of a priced charge: ``tokens`` of ``kind`` (input,
    cache_read, cache_write, cache_write_5m, cache_write_1h, output,
    reasoning) at ``rate`` per million tokens."""

    kind: str
    tokens: int
    rate: Decimal

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "PriceLine":
        return cls(kind=d.get("kind", ""), tokens=int(d.get("tokens", 0)), rate=_units(d.get("rate", 0)))


@dataclass(frozen=True)
class Pricing:
    """How usage was priced (``RecordResult.pricing``) or an estimate
    (``PreflightResult.estimate_pricing``): the price list and version
    used, the kinds charged at their rates per million tokens, the
    request fee and the ``total``. ``above_input_tokens`` is the
    long-context tier the prompt crossed (None: none)."""

    list: str
    version: str
    model: str
    provider: Optional[str]
    service_tier: Optional[str]
    above_input_tokens: Optional[int]
    lines: List[PriceLine]
    request_fee: Optional[Decimal]
    total: Decimal

    @classmethod
    def from_json(cls, d: Optional[Dict[str, Any]]) -> Optional["Pricing"]:
        if not d:
            return None
        return cls(
            list=d.get("list", ""),
            version=d.get("version", ""),
            model=d.get("model", ""),
            provider=d.get("provider") or None,
            service_tier=d.get("service_tier") or None,
            above_input_tokens=_count(d.get("above_input_tokens")) or None,
            lines=[PriceLine.from_json(x) for x in d.get("lines") or []],
            request_fee=_units(d.get("request_fee")),
            total=_units(d.get("total", 0)),
        )

    def describe(self) -> str:
        """The charge as ``agentbill audit`` writes it (events.Pricing's
        Describe): ``1,200 input x 3/M + 400 output x 15/M = 0.0096
        (model, list default v1)``."""
        parts = ["%s %s x %s/M" % (_thousands(ln.tokens), ln.kind.replace("_", " "), _text(ln.rate))
                 for ln in self.lines]
        if self.request_fee is not None and not self.request_fee.is_zero():
            parts.append("request fee " + _text(self.request_fee))
        if not parts:
            parts.append("0 tokens")
        how = []
        if self.above_input_tokens:
            how.append("long-context rates above %s input tokens" % _thousands(self.above_input_tokens))
        if self.service_tier:
            how.append("service tier " + self.service_tier)
        how.append("%s, list %s %s" % (self.model, self.list, self.version))
        return "%s = %s (%s)" % (" + ".join(parts), _text(self.total), "; ".join(how))


@dataclass(frozen=True)
class PricesResult:
    """The answer to :meth:`AgentBillClient.set_prices`: the list and
    version set, the SHA-256 ``digest`` of the list as stored, its number
    of ``models``, and ``changed`` (False: this version with these prices
    was set already, nothing was appended). ``partition`` and
    ``partitions`` say which writer answered, of how many."""

    list: str
    version: str
    digest: str
    models: int
    changed: bool
    partition: int
    partitions: int
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "PricesResult":
        return cls(
            list=d.get("list", ""),
            version=d.get("version", ""),
            digest=d.get("digest", ""),
            models=int(d.get("models", 0)),
            changed=bool(d.get("changed")),
            partition=int(d.get("partition", 0)),
            partitions=int(d.get("partitions", 0)),
            raw=d,
        )


@dataclass(frozen=True)
class PriceListInfo:
    """One price list set: its name, version, digest, number of models and
    when it was set; ``prices`` is the whole list (as a dict, amounts as
    Decimal) when it was asked for by name, else None."""

    list: str
    version: str
    digest: str
    models: int
    set_at: Optional[str]
    prices: Optional[Dict[str, Any]] = None

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "PriceListInfo":
        return cls(
            list=d.get("list", ""),
            version=d.get("version", ""),
            digest=d.get("digest", ""),
            models=int(d.get("models", 0)),
            set_at=d.get("set_at"),
            prices=d.get("prices"),
        )


@dataclass(frozen=True)
class PriceLists:
    """The answer to :meth:`AgentBillClient.price_lists`: every list set,
    or the one asked for with its prices."""

    lists: List[PriceListInfo]
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "PriceLists":
        return cls(lists=[PriceListInfo.from_json(x) for x in d.get("lists") or []], raw=d)


@dataclass(frozen=True)
class Usage:
    """Returned by a gated function to report what the run really used:
    ``return Usage(units=7, result=answer)``. The gate records ``units`` and
    returns ``result`` to the caller."""

    units: Any
    result: Any = None


@dataclass(frozen=True)
class PreflightResult:
    """The answer to a preflight. ``approved`` False is a refusal, with a
    ``reason`` and a ``message`` that says why in numbers.

    ``partial`` is True when the hold (``reserved_units``) is less than
    the estimate: ``min_units`` allowed it. ``overdraft`` is True when the
    hold took the customer below zero, into its overdraft; then
    ``remaining_units`` is negative. ``scope`` names the scope limit that
    refused (reason ``scope_limit_exceeded``). ``retry_after_ms`` is, for
    ``rate_limited``, the milliseconds until the customer's next preflight
    can pass its rate limit. A priced ``usage_estimate`` fills
    ``max_output_tokens`` and ``estimate_pricing``.
    """

    approved: bool
    reason: Optional[str]
    message: str
    reservation_id: Optional[str]
    reserved_units: Optional[Decimal]
    remaining_units: Optional[Decimal]
    expires_at: Optional[str]
    upgrade_url: Optional[str]
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    # New fields have defaults and come after raw, so that code building
    # a result positionally (a test double, say) keeps working.
    partial: bool = False
    overdraft: bool = False
    scope: Optional[ScopeRef] = None
    retry_after_ms: Optional[int] = None
    #: True only for the approval a client with ``on_unavailable="allow"``
    #: returns when the service was unavailable: the budget check was
    #: skipped and there is no reservation. The service never sets it.
    unchecked: bool = False
    #: With a priced ``usage_estimate``: the output tokens the hold covers
    #: (fewer than asked on a partial approval: cap the model call there).
    max_output_tokens: Optional[int] = None
    #: With a priced ``usage_estimate``: how it was priced.
    estimate_pricing: Optional[Pricing] = None

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "PreflightResult":
        return cls(
            approved=bool(d.get("approved")),
            reason=d.get("reason"),
            message=d.get("message", ""),
            reservation_id=d.get("reservation_id"),
            reserved_units=_units(d.get("reserved_units")),
            remaining_units=_units(d.get("remaining_units")),
            expires_at=d.get("expires_at"),
            upgrade_url=d.get("upgrade_url"),
            raw=d,
            partial=bool(d.get("partial")),
            overdraft=bool(d.get("overdraft")),
            scope=ScopeRef.from_json(d.get("scope")),
            max_output_tokens=_count(d.get("max_output_tokens")),
            estimate_pricing=Pricing.from_json(d.get("estimate_pricing")),
            retry_after_ms=_count(d.get("retry_after_ms")),
        )


@dataclass(frozen=True)
class RecordResult:
    """The answer to a record: ``status`` is ``recorded``, ``released``
    (``success=False``) or ``duplicate`` (a retry of a recorded request).
    ``funded_by`` lists what credit grants paid of the charge (empty when
    the period's allowance paid it all). ``exhausted`` is True when
    nothing is left to approve, the overdraft included."""

    status: str
    event_id: Optional[str]
    reservation_id: Optional[str]
    charged_units: Optional[Decimal]
    released_units: Optional[Decimal]
    overage_units: Optional[Decimal]
    remaining_units: Optional[Decimal]
    exhausted: bool
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    funded_by: List[GrantDraw] = field(default_factory=list)
    #: How the record's ``usage`` was priced (None without usage, or unpriced).
    pricing: Optional[Pricing] = None
    #: Why the ``usage`` could not be priced; the charge was then the
    #: record's ``units``, else the hold's.
    unpriced: Optional[str] = None

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "RecordResult":
        return cls(
            status=d.get("status", ""),
            event_id=d.get("event_id"),
            reservation_id=d.get("reservation_id"),
            charged_units=_units(d.get("charged_units")),
            released_units=_units(d.get("released_units")),
            overage_units=_units(d.get("overage_units")),
            remaining_units=_units(d.get("remaining_units")),
            exhausted=bool(d.get("exhausted")),
            raw=d,
            funded_by=[GrantDraw.from_json(g) for g in d.get("funded_by") or []],
            pricing=Pricing.from_json(d.get("pricing")),
            unpriced=d.get("unpriced") or None,
        )


@dataclass(frozen=True)
class ReleaseResult:
    """The answer to a release."""

    status: str
    released_units: Optional[Decimal]
    remaining_units: Optional[Decimal]
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ReleaseResult":
        return cls(
            status=d.get("status", ""),
            released_units=_units(d.get("released_units")),
            remaining_units=_units(d.get("remaining_units")),
            raw=d,
        )


@dataclass(frozen=True)
class ExtendResult:
    """The answer to an extend: the reservation's new deadline."""

    reservation_id: str
    expires_at: str
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ExtendResult":
        return cls(reservation_id=d.get("reservation_id", ""), expires_at=d.get("expires_at", ""), raw=d)


@dataclass(frozen=True)
class GrantResult:
    """The answer to a grant: the new grant, and ``remaining_units``, the
    customer's remaining after it (negative if still in its overdraft).
    ``expires_at`` is None for a grant that never expires."""

    grant_id: str
    units: Decimal
    priority: int
    source: str
    effective_at: Optional[str]
    expires_at: Optional[str]
    remaining_units: Decimal
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "GrantResult":
        return cls(
            grant_id=d.get("grant_id", ""),
            units=_units(d.get("units", 0)),
            priority=int(d.get("priority", 0)),
            source=d.get("source", ""),
            effective_at=d.get("effective_at"),
            expires_at=d.get("expires_at"),
            remaining_units=_units(d.get("remaining_units", 0)),
            raw=d,
        )


@dataclass(frozen=True)
class Budget:
    """GET/PUT /v1/budget: ``limit_units`` includes this period's top-ups;
    ``is_blocked`` is True when nothing remains. ``grants_remaining_units``
    is what the customer's credit grants usable now have left (in
    ``remaining_units``); ``overdraft_units`` the budget's overdraft, None
    without one."""

    customer_id: str
    limit_units: Decimal
    top_up_units: Decimal
    used_units: Decimal
    reserved_units: Decimal
    remaining_units: Decimal
    is_blocked: bool
    period: str
    period_end: Optional[str]
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    grants_remaining_units: Decimal = Decimal(0)
    overdraft_units: Optional[Decimal] = None

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Budget":
        return cls(
            customer_id=d.get("customer_id", ""),
            limit_units=_units(d.get("limit_units", 0)),
            top_up_units=_units(d.get("top_up_units", 0)),
            used_units=_units(d.get("used_units", 0)),
            reserved_units=_units(d.get("reserved_units", 0)),
            remaining_units=_units(d.get("remaining_units", 0)),
            is_blocked=bool(d.get("is_blocked")),
            period=d.get("period", ""),
            period_end=d.get("period_end"),
            raw=d,
            grants_remaining_units=_units(d.get("grants_remaining_units", 0)),
            overdraft_units=_units(d.get("overdraft_units")),
        )


@dataclass(frozen=True)
class AgentStatus:
    """One agent's position within its customer's period."""

    used: Decimal
    reserved: Decimal
    limit: Optional[Decimal]


@dataclass(frozen=True)
class Status:
    """GET /v1/customers/{id}: the customer's position. ``limit`` excludes
    top-ups (``top_ups``); ``remaining`` = limit + top_ups - (used -
    ``grants_used``) + ``grants_remaining`` - reserved. It is negative for a
    customer in its overdraft; ``exhausted`` is True when remaining +
    overdraft is spent.

    ``grants`` are the open credit grants in draw-down order,
    ``grants_remaining`` what those usable now have left, ``grants_used``
    the part of ``used`` they funded this period. ``scopes`` are
    the limited scope values (by dimension, then value). ``overdraft``,
    ``rollover`` (``"all"`` or a Decimal cap), ``max_concurrent_runs`` and
    ``max_concurrent_runs_per_agent`` are None when the budget sets none;
    so is ``rate_limit`` (then the server's default applies).
    ``price_list`` is the price list the budget names (None: ``default``);
    ``unpriced_records`` counts the records whose usage could not be
    priced.
    """

    customer_id: str
    limit: Decimal
    top_ups: Decimal
    used: Decimal
    reserved: Decimal
    remaining: Decimal
    period: str
    period_start: Optional[str]
    period_end: Optional[str]
    open_reservations: int
    exhausted: bool
    agents: Dict[str, AgentStatus]
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    grants: List[GrantStatus] = field(default_factory=list)
    grants_remaining: Decimal = Decimal(0)
    grants_used: Decimal = Decimal(0)
    scopes: List[ScopeStatus] = field(default_factory=list)
    overdraft: Optional[Decimal] = None
    rollover: Optional[Union[str, Decimal]] = None
    max_concurrent_runs: Optional[int] = None
    max_concurrent_runs_per_agent: Optional[int] = None
    #: The price list the budget names (None: the list named ``default``).
    price_list: Optional[str] = None
    #: Records whose usage could not be priced, ever.
    unpriced_records: int = 0
    rate_limit: Optional[RateLimit] = None

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Status":
        agents = {
            name: AgentStatus(
                used=_units(a.get("used", 0)),
                reserved=_units(a.get("reserved", 0)),
                limit=_units(a.get("limit")),
            )
            for name, a in (d.get("agents") or {}).items()
        }
        return cls(
            customer_id=d.get("customer_id", ""),
            limit=_units(d.get("limit", 0)),
            top_ups=_units(d.get("top_ups", 0)),
            used=_units(d.get("used", 0)),
            reserved=_units(d.get("reserved", 0)),
            remaining=_units(d.get("remaining", 0)),
            period=d.get("period", ""),
            period_start=d.get("period_start"),
            period_end=d.get("period_end"),
            open_reservations=int(d.get("open_reservations", 0)),
            exhausted=bool(d.get("exhausted")),
            agents=agents,
            raw=d,
            grants=[GrantStatus.from_json(g) for g in d.get("grants") or []],
            grants_remaining=_units(d.get("grants_remaining", 0)),
            grants_used=_units(d.get("grants_used", 0)),
            scopes=[ScopeStatus.from_json(x) for x in d.get("scopes") or []],
            overdraft=_units(d.get("overdraft")),
            rollover=_rollover(d.get("rollover")),
            max_concurrent_runs=_count(d.get("max_concurrent_runs")),
            max_concurrent_runs_per_agent=_count(d.get("max_concurrent_runs_per_agent")),
            price_list=d.get("price_list") or None,
            unpriced_records=int(d.get("unpriced_records", 0)),
            rate_limit=RateLimit.from_json(d.get("rate_limit")),
        )


@dataclass(frozen=True)
class EventsPage:
    """GET /v1/customers/{id}/events: the customer's newest events, oldest
    first, as stored in the log. ``truncated`` means the scan stopped at
    its bound and older events may exist."""

    customer_id: str
    events: List[Dict[str, Any]]
    scanned_commits: int
    last_seq: int
    truncated: bool
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "EventsPage":
        return cls(
            customer_id=d.get("customer_id", ""),
            events=list(d.get("events") or []),
            scanned_commits=int(d.get("scanned_commits", 0)),
            last_seq=int(d.get("last_seq", 0)),
            truncated=bool(d.get("truncated")),
            raw=d,
        )
