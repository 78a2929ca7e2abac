"""``config`` of a ``twilio`` connection."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, SecretStr

from bulkcall.providers.base import HttpUrlText, ProviderConfig

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
DEFAULT_API_BASE_URL = "https://api.twilio.com"


def _check_account_sid(value: str) -> str:
    if not _ACCOUNT_SID.fullmatch(value):
        raise ValueError("must be 'AC' followed by 32 hexadecimal digits")
    return value


class TwilioConfig(ProviderConfig):
    """A Twilio account; ``api_base_url`` may point at any compatible server (e.g. a local test double)."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"auth_token"})

    account_sid: Annotated[str, AfterValidator(_check_account_sid)]
    auth_token: SecretStr = Field(min_length=1, max_length=512, description="Write-only")
    api_base_url: HttpUrlText = DEFAULT_API_BASE_URL
    machine_detection: Literal["Enable", "DetectMessageEnd"] | None = None
