"""Typed errors of the AgentBill SDK.

Every error the gateway returns is ``{"error": {"code", "message"}}``; the
SDK raises the subclass of :class:`AgentBillError` for its code. A refused
preflight inside :meth:`AgentBillClient.gate` raises :class:`RefusedError`.
"""

from __future__ import annotations

from typing import Any, Optional


#: Why a preflight can be refused (docs/PROTOCOL.md, "Refusal reasons"),
#: in the order the ledger checks them; ``no_budget`` needs no check.
REFUSAL_REASONS = (
    "ceiling_exceeded",
    "task_ceiling_exceeded",
    "agent_limit_exceeded",
    "scope_limit_exceeded",  # a scope limit of the run's scope; .scope names it
    "concurrency_limit_exceeded",  # the customer's or the agent's open runs are at their cap
    "budget_exhausted",
    "no_budget",
    "rate_limited",  # checked first: faster than the customer's rate limit; wait .retry_after_ms
)


class AgentBillError(Exception):
    """Base class of every AgentBill error.

    ``code`` is the gateway's error code (``invalid_argument``,
    ``unauthenticated``, ``permission_denied``, ``not_found``, ``conflict``,
    ``unavailable``, ``internal``, or ``refused`` for :class:`RefusedError`),
    ``status`` the HTTP status (``None`` if no answer came back).
    """

    code = "internal"

    def __init__(self, message: str, *, code: Optional[str] = None, status: Optional[int] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status

    def __str__(self) -> str:
        return "%s: %s" % (self.code, self.message)


class InvalidArgumentError(AgentBillError, ValueError):
    """400: the request is malformed or out of bounds; nothing changed."""

    code = "invalid_argument"


class AuthenticationError(AgentBillError):
    """401: the API key is missing, unknown or revoked."""

    code = "unauthenticated"


class PermissionDeniedError(AgentBillError):
    """403: the key's role or customer does not allow this request."""

    code = "permission_denied"


class NotFoundError(AgentBillError):
    """404: no such customer, reservation or path."""

    code = "not_found"


class ConflictError(AgentBillError):
    """409: an idempotency key was reused with a different request, or a
    reservation was already settled."""

    code = "conflict"


class UnavailableError(AgentBillError):
    """503, or no answer at all: retried already; try again later."""

    code = "unavailable"


class RateLimitedError(AgentBillError):
    """429: the API key sent requests faster than the gateway's per-key
    rate limit. Nothing was done. ``retry_after_ms`` is how long to wait
    (the Retry-After header), or None; it is not retried by the client."""

    code = "rate_limited"
    retry_after_ms: Optional[int] = None


class InternalError(AgentBillError):
    """500: a bug on the server side."""

    code = "internal"


class RefusedError(AgentBillError):
    """A gated run was refused by its preflight and never started.

    ``reason`` is one of :data:`REFUSAL_REASONS`; ``message`` says why in
    numbers; ``scope`` names the scope limit that refused (for
    ``scope_limit_exceeded``, else None); ``retry_after_ms`` is how long to
    wait before the customer's next preflight (for ``rate_limited``, else
    None); ``preflight`` is the full reply.
    """

    code = "refused"

    def __init__(self, preflight: Any):
        super().__init__(preflight.message, status=200)
        self.reason = preflight.reason
        self.remaining_units = preflight.remaining_units
        self.upgrade_url = preflight.upgrade_url
        self.scope = getattr(preflight, "scope", None)
        self.retry_after_ms = getattr(preflight, "retry_after_ms", None)
        self.preflight = preflight

    def __str__(self) -> str:
        return "refused (%s): %s" % (self.reason, self.message)


ERRORS_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        UnavailableError,
        RateLimitedError,
        InternalError,
    )
}


def error_for(code: str, message: str, status: Optional[int]) -> AgentBillError:
    """Returns the typed error for a gateway error code."""
    cls = ERRORS_BY_CODE.get(code, AgentBillError)
    return cls(message, code=code, status=status)
