"""Standard Webhooks signing (https://www.standardwebhooks.com): one signer for everything bulkcall sends.

Outbound webhook deliveries and ``http_agent`` call requests are signed the same way, and ``http_agent``
callbacks are verified with it. A secret is ``whsec_`` + base64 of random bytes; the signature is
``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")); several space-separated signatures may be
sent (secret rotation) and any one matching is enough.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
# How far a receiver accepts a timestamp from its own clock, both ways (replay protection).
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A message failed verification; the text says why (never includes the secret)."""


def new_secret() -> str:
    """A fresh secret in the ``whsec_<base64>`` form (24 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise SignatureError("the secret is not base64") from exc


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    message_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {ID_HEADER: self.message_id, TIMESTAMP_HEADER: str(self.timestamp), SIGNATURE_HEADER: self.signature}


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> SignedHeaders:
    """The three headers a sender attaches to ``body``."""
    return SignedHeaders(message_id, timestamp, signature(secret, message_id, timestamp, body))


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Check a received message; return its ``webhook-id``. Raise ``SignatureError`` when it fails.

    ``headers`` must be case-insensitive for real requests (Starlette's and httpx's are) or use the
    lower-case names. ``now`` is the receiver's clock in Unix seconds.
    """
    message_id = headers.get(ID_HEADER)
    raw_timestamp = headers.get(TIMESTAMP_HEADER)
    given = headers.get(SIGNATURE_HEADER)
    if not message_id or not raw_timestamp or not given:
        raise SignatureError(f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    try:
        timestamp = int(raw_timestamp)
    except ValueError as exc:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not an integer") from exc
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(f"{TIMESTAMP_HEADER} is more than {tolerance_seconds} s from now")
    expected = signature(secret, message_id, timestamp, body)
    for candidate in given.split(" "):
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return message_id
    raise SignatureError(f"no {SIGNATURE_HEADER} matches")
