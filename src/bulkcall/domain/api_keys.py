"""API keys: how they look, how they are stored, which scopes exist."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCOPES: tuple[str, ...] = (
    "bulk_call_campaigns:read",
    "bulk_call_campaigns:write",
    "contacts:read",
    "contacts:write",
    "phone_numbers:read",
    "phone_numbers:write",
    "agents:read",
    "agents:write",
    "webhooks:read",
    "webhooks:write",
)

KEY_PREFIX = "sk_"
_LOOKUP_CHARS = 12


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def lookup_prefix(key: str) -> str:
    """The part of a key stored in clear to find its row; the rest is only ever hashed."""
    return key[: len(KEY_PREFIX) + _LOOKUP_CHARS]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def looks_like_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and len(key) > len(KEY_PREFIX) + _LOOKUP_CHARS


def unknown_scopes(scopes: list[str]) -> list[str]:
    return [scope for scope in scopes if scope not in SCOPES]
