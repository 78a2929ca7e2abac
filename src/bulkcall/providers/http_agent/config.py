"""``config`` of an ``http_agent`` connection."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from bulkcall.providers.base import HttpUrlText, ProviderConfig


class HttpAgentConfig(ProviderConfig):
    """Where call requests are POSTed, and the secret they are signed with."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"signing_secret"})

    url: HttpUrlText
    signing_secret: SecretStr = Field(min_length=1, max_length=512, description="Write-only")
