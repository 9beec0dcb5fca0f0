"""Verify AgentBill webhook deliveries (the Standard Webhooks format).

``agentbill serve`` POSTs each alert with three headers: ``webhook-id`` (the
event's ID, the same on every retry: deduplicate on it),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}``, keyed with the
bytes after ``whsec_`` in the secret ``agentbill webhooks add`` printed).
Standard library only::

    from agentbill import webhooks

    event = webhooks.verify(raw_body, request.headers, "whsec_...")

Pass the body exactly as received (bytes), before any JSON parsing.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Mapping, Optional, Union

from .errors import AgentBillError

SECRET_PREFIX = "whsec_"
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
SIGNATURE_VERSION = "v1"
# How far (seconds) a delivery's timestamp may be from this machine's clock
# before verify() refuses it as a possible replay.
TIMESTAMP_TOLERANCE = 5 * 60


class WebhookVerificationError(AgentBillError):
    """A delivery failed verification: a bad or missing signature, or a
    timestamp outside the tolerance. Answer it with a 4xx and do not act
    on it."""

    code = "invalid_signature"


def _header(headers: Any, name: str) -> Optional[str]:
    # http.server's message objects and email.message are case-insensitive;
    # a plain dict may use any case.
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name)
        if value is not None:
            return value
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if key.lower() == name:
                return value
    return None


def _key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise WebhookVerificationError("webhook secret must start with %s" % SECRET_PREFIX)
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise WebhookVerificationError("webhook secret is not %s and base64" % SECRET_PREFIX)
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: Union[bytes, str]) -> str:
    """Returns the ``webhook-signature`` value for one delivery."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    content = b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "%s,%s" % (SIGNATURE_VERSION, base64.b64encode(digest).decode("ascii"))


def verify(body: Union[bytes, str], headers: Any, secret: str, *,
           tolerance: float = TIMESTAMP_TOLERANCE, now: Optional[float] = None) -> Any:
    """Checks a delivery and returns its event, decoded from JSON.

    Raises :class:`WebhookVerificationError` if a header is missing, the
    timestamp is more than ``tolerance`` seconds from ``now`` (this
    machine's clock by default), or no ``v1`` signature matches.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    msg_id = _header(headers, HEADER_ID)
    ts_text = _header(headers, HEADER_TIMESTAMP)
    signatures = _header(headers, HEADER_SIGNATURE)
    if not msg_id or not ts_text or not signatures:
        raise WebhookVerificationError("missing %s, %s or %s header" % (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE))
    try:
        timestamp = int(ts_text)
    except ValueError:
        raise WebhookVerificationError("%s %r is not Unix seconds" % (HEADER_TIMESTAMP, ts_text[:32])) from None
    if now is None:
        now = time.time()
    if abs(now - timestamp) > tolerance:
        raise WebhookVerificationError("%s is %ds from now, outside the tolerance of %ds"
                                       % (HEADER_TIMESTAMP, int(now - timestamp), tolerance))
    expected = sign(secret, msg_id, timestamp, body).encode("ascii")
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode("utf-8", "replace"), expected):
            try:
                return json.loads(body)
            except ValueError as e:
                raise WebhookVerificationError("signed body is not JSON: %s" % e) from None
    raise WebhookVerificationError("no %s signature matches: wrong secret, or the body was changed" % SIGNATURE_VERSION)
