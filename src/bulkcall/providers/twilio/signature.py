"""Twilio's request signature (``X-Twilio-Signature``): HMAC-SHA1 of the full URL followed by the sorted POST
parameters (each name then its value), keyed by the account's auth token, base64-encoded.

Checked against the ``twilio`` package's ``RequestValidator`` in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

SIGNATURE_HEADER = "x-twilio-signature"


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio sends with a request to ``url`` carrying the form ``params``."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    text = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the scheme's default port (Twilio signs either way)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    default_port = 443 if parts.scheme == "https" else 80
    without = urlunsplit(parts._replace(netloc=prefix + host))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{parts.port or default_port}"))
    return list(dict.fromkeys([url, without, with_port]))


def is_valid(auth_token: str, url: str, params: list[tuple[str, str]], given: str) -> bool:
    """Whether ``given`` is Twilio's signature of this request (compared in constant time)."""
    if not given:
        return False
    return any(
        hmac.compare_digest(signature(auth_token, candidate, params).encode(), given.encode())
        for candidate in _port_variants(url)
    )
