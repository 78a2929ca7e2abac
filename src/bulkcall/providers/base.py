"""What every provider's ``config`` model shares: strictness, and write-only secret fields."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr, StringConstraints


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if any(char.isspace() for char in value):
        raise ValueError("must not contain whitespace")
    return value


# A URL kept exactly as written (pydantic's HttpUrl would rewrite it, e.g. add a trailing slash).
HttpUrlText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(_check_http_url)]


class ProviderConfig(BaseModel):
    """Base of every provider's ``config``: unknown keys are refused, secrets are ``SecretStr``.

    ``secret_fields`` names the write-only fields: they are split from the config on write, stored
    apart (``telephony_connections.secrets``), and never rendered in a response or a log.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def public(self) -> dict[str, Any]:
        """The config without its secrets, as JSON-ready data (defaults filled in)."""
        return self.model_dump(mode="json", exclude=set(self.secret_fields))

    def secrets(self) -> dict[str, str]:
        """The secret fields' plain values (only those that are set)."""
        values: dict[str, str] = {}
        for name in sorted(self.secret_fields):
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                values[name] = value.get_secret_value()
        return values
