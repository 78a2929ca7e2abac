"""``config`` of an ``http_agent`` connection."""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from bulkcall.kit.standard_webhooks import SECRET_PREFIX
from bulkcall.providers.base import HttpUrlText, ProviderConfig


class HttpAgentConfig(ProviderConfig):
    """Where call requests are POSTed, and the Standard Webhooks secret both sides sign with."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"signing_secret"})

    url: HttpUrlText
    signing_secret: SecretStr = Field(
        min_length=1,
        max_length=512,
        description="Write-only. A Standard Webhooks secret: whsec_ followed by base64 of 16 to 64 random bytes",
    )

    @field_validator("signing_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr) -> SecretStr:
        encoded = value.get_secret_value().removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be whsec_ followed by base64 (a Standard Webhooks secret)") from None
        if not 16 <= len(key) <= 64:
            raise ValueError("must encode 16 to 64 bytes (a Standard Webhooks secret)")
        return value
