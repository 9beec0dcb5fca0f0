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
    can pass its rate limit.
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
