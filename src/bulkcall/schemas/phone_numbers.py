"""Request and response shapes of ``/phone_numbers``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from bulkcall.domain.phones import InvalidPhone, normalize
from bulkcall.schemas.base import MAX_ROW_ID, PatchModel, RequestModel, ResponseModel, UtcDatetime
from bulkcall.schemas.contacts import RegionCode

PhoneNumberStatus = Literal["active", "inactive"]

ConnectionRef = Annotated[int, Field(ge=1, le=MAX_ROW_ID, description="A telephony connection of this workspace")]


def _e164(raw: str) -> str:
    try:
        return normalize(raw).e164
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from None


def _distinct(regions: list[str]) -> list[str]:
    if not regions:
        raise ValueError("must not be empty; use null to allow every country")
    return list(dict.fromkeys(regions))


E164 = Annotated[
    str,
    StringConstraints(max_length=40),
    AfterValidator(_e164),
    Field(description="The caller ID, in any international form; stored as E.164"),
]
Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
AllowedCountries = Annotated[
    list[RegionCode],
    Field(max_length=300, description="ISO 3166 alpha-2 codes this number may call; null = any"),
    AfterValidator(_distinct),
]


class PhoneNumberCreate(RequestModel):
    e164: E164
    label: Label | None = None
    telephony_connection_id: ConnectionRef
    status: PhoneNumberStatus = "active"
    spam_flagged: bool = False
    allowed_countries: AllowedCountries | None = None


class PhoneNumberUpdate(PatchModel):
    nullable_fields = frozenset({"label", "allowed_countries"})

    e164: E164 | None = None
    label: Label | None = None
    telephony_connection_id: ConnectionRef | None = None
    status: PhoneNumberStatus | None = None
    spam_flagged: bool | None = None
    allowed_countries: AllowedCountries | None = None


class PhoneNumberOut(ResponseModel):
    id: int
    e164: str
    label: str | None
    telephony_connection_id: int
    country: str | None = Field(description="Derived from the number (ISO 3166 alpha-2)")
    status: PhoneNumberStatus
    spam_flagged: bool
    allowed_countries: list[str] | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
