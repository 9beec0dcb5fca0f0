"""AgentBill: preflight budgets for AI agents.

The client of an AgentBill HTTP gateway (``agentbill serve --http``),
standard library only::

    from agentbill import AgentBillClient

    client = AgentBillClient(api_key="agb_...")
    check = client.preflight(agent_id="research_agent", customer_id="user_123", estimated_units=10)
    if not check.approved:
        raise Exception(f"Blocked: {check.reason}")
    result = run_agent(task)
    client.record(agent_id="research_agent", units=10, customer_id="user_123")

Or wrap a provider client, so each model call is preflighted and charged
the usage the provider reported (see agentbill.wrap)::

    client = agentbill.wrap(OpenAI(), agent_id="support_bot", customer_id="user_123")

Amounts are exact: pass int, str or decimal.Decimal (never float); replies
carry decimal.Decimal.
"""

__version__ = "0.1.0"

from .client import (  # noqa: E402  (after __version__, which client reads)
    BACKOFF_MAX,
    BACKOFF_MIN,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    AgentBillClient,
)
from .errors import (  # noqa: E402
    AgentBillError,
    AuthenticationError,
    ConflictError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    REFUSAL_REASONS,
    RateLimitedError,
    RefusedError,
    UnavailableError,
)
from . import usage, webhooks  # noqa: E402
from .wrap import wrap  # noqa: E402
from .webhooks import WebhookVerificationError  # noqa: E402
from .models import (  # noqa: E402
    AgentStatus,
    Budget,
    EventsPage,
    ExtendResult,
    GrantDraw,
    GrantResult,
    GrantStatus,
    PreflightResult,
    PriceLine,
    PriceListInfo,
    PriceLists,
    PricesResult,
    Pricing,
    RateLimit,
    RecordResult,
    ReleaseResult,
    ScopeLimit,
    ScopeRef,
    ScopeStatus,
    Status,
    Usage,
    UsageEstimate,
    UsageReport,
)

__all__ = [
    "AgentBillClient",
    "AgentBillError",
    "AgentStatus",
    "AuthenticationError",
    "BACKOFF_MAX",
    "BACKOFF_MIN",
    "Budget",
    "ConflictError",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "EventsPage",
    "ExtendResult",
    "GrantDraw",
    "GrantResult",
    "GrantStatus",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreflightResult",
    "PriceLine",
    "PriceListInfo",
    "PriceLists",
    "PricesResult",
    "Pricing",
    "REFUSAL_REASONS",
    "RecordResult",
    "RateLimit",
    "RateLimitedError",
    "RefusedError",
    "ReleaseResult",
    "ScopeLimit",
    "ScopeRef",
    "ScopeStatus",
    "Status",
    "UnavailableError",
    "Usage",
    "UsageEstimate",
    "UsageReport",
    "WebhookVerificationError",
    "usage",
    "webhooks",
    "wrap",
]
