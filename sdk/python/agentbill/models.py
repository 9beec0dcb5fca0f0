"""Replies of the AgentBill gateway, as plain objects.

Amounts are :class:`decimal.Decimal`, read exactly from the reply's text
(never through float). Each object keeps the whole reply in ``raw``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, List, Optional


def _units(v: Any) -> Optional[Decimal]:
    if v is None:
        return None
    if isinstance(v, Decimal):
        return v
    return Decimal(str(v))  # ints and strings; floats never reach here


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
    ``reason`` and a ``message`` that says why in numbers."""

    approved: bool
    reason: Optional[str]
    message: str
    reservation_id: Optional[str]
    reserved_units: Optional[Decimal]
    remaining_units: Optional[Decimal]
    expires_at: Optional[str]
    upgrade_url: Optional[str]
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

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
        )


@dataclass(frozen=True)
class RecordResult:
    """The answer to a record: ``status`` is ``recorded``, ``released``
    (``success=False``) or ``duplicate`` (a retry of a recorded request)."""

    status: str
    event_id: Optional[str]
    reservation_id: Optional[str]
    charged_units: Optional[Decimal]
    released_units: Optional[Decimal]
    overage_units: Optional[Decimal]
    remaining_units: Optional[Decimal]
    exhausted: bool
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

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
class Budget:
    """GET/PUT /v1/budget: ``limit_units`` includes this period's top-ups;
    ``is_blocked`` is True when nothing remains."""

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
    top-ups (``top_ups``); ``remaining`` = limit + top_ups - used - reserved."""

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
