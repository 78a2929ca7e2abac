"""Request and response shapes of ``/contacts``, and the field types contacts, lists and the DNC share."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from bulkcall.domain.phones import ZONE_SEPARATOR, InvalidPhone, normalize, region_code
from bulkcall.domain.timezones import canonical_zone
from bulkcall.schemas.base import PatchModel, RequestModel, ResponseModel, UtcDatetime

MAX_TAGS = 100
MAX_CUSTOM_FIELDS = 100
MAX_CUSTOM_TEXT = 10_000
_CUSTOM_FIELD_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _region(raw: str) -> str:
    try:
        region = region_code(raw)
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from None
    assert region is not None
    return region


def _zone(raw: str) -> str:
    zone = canonical_zone(raw)
    if zone is None:
        raise ValueError(f"unknown time zone {raw!r}: use an IANA name such as America/New_York")
    return zone


def _blank_to_none(value: str) -> str | None:
    return value or None


def _email(value: str) -> str | None:
    if not value:
        return None
    local, at, domain = value.partition("@")
    if not at or not local or not domain or "@" in domain or any(char.isspace() for char in value):
        raise ValueError("not an email address: it needs exactly one @ and no spaces")
    return value


def _unique_tags(tags: list[str]) -> list[str]:
    seen: set[str] = set()
    for tag in tags:
        if tag in seen:
            raise ValueError(f"duplicate tag {tag!r}: tags must be unique")
        seen.add(tag)
    return tags


def _custom_fields(value: Any) -> Any:
    """A flat object of scalars; checked by hand so each problem gets one readable message."""
    if not isinstance(value, dict):
        raise ValueError("must be an object of key/value pairs")
    if len(value) > MAX_CUSTOM_FIELDS:
        raise ValueError(f"at most {MAX_CUSTOM_FIELDS} custom fields")
    for key, item in value.items():
        if not isinstance(key, str) or not _CUSTOM_FIELD_KEY.fullmatch(key):
            raise ValueError(
                f"key {key!r} must start with a letter or _ and hold only letters, digits and _ (at most 64)"
            )
        if isinstance(item, str):
            if len(item) > MAX_CUSTOM_TEXT:
                raise ValueError(f"{key}: text longer than {MAX_CUSTOM_TEXT} characters")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{key}: numbers must be finite")
        elif item is not None and not isinstance(item, (bool, int)):
            raise ValueError(f"{key}: value must be a string, number, boolean or null (no nested objects or lists)")
    return value


RegionCode = Annotated[
    str,
    StringConstraints(max_length=10),
    AfterValidator(_region),
    Field(description="ISO 3166 alpha-2 region used to read national-format numbers, e.g. GB", examples=["GB"]),
]
TimezoneName = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_zone),
    Field(description="IANA time zone; legacy names are stored canonically (Asia/Calcutta → Asia/Kolkata)"),
]
PersonText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_blank_to_none)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=320),
    AfterValidator(_email),
    Field(description="Lightly checked: exactly one @ and no spaces"),
]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Tags = Annotated[
    list[Tag],
    Field(max_length=MAX_TAGS, description="Unique, non-empty labels"),
    AfterValidator(_unique_tags),
]
CustomFields = Annotated[
    dict[str, Any],
    BeforeValidator(_custom_fields),
    Field(
        description="Flat object: keys match [A-Za-z_][A-Za-z0-9_]{0,63}; values string, number, boolean or null",
        examples=[{"plan": "pro", "seats": 12}],
    ),
]
PhoneInput = Annotated[
    str,
    StringConstraints(max_length=40),
    Field(
        description="Any input form (E.164, international, or national with default_region); stored as E.164",
        examples=["+14155552671"],
    ),
]


def normalized_e164(raw: str, info: ValidationInfo) -> str:
    """Field validator body: ``raw`` read with the model's (already validated) ``default_region``."""
    try:
        return normalize(raw, info.data.get("default_region")).e164
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from None


class ContactCreate(RequestModel):
    # Declared before phone_e164 so the phone validator can read it.
    default_region: RegionCode | None = None
    phone_e164: PhoneInput
    first_name: PersonText | None = None
    last_name: PersonText | None = None
    email: Email | None = None
    company: PersonText | None = None
    timezone: TimezoneName | None = None
    tags: Tags = Field(default_factory=list)
    custom_fields: CustomFields = Field(default_factory=dict)

    @field_validator("phone_e164")
    @classmethod
    def _normalize_phone(cls, value: str, info: ValidationInfo) -> str:
        return normalized_e164(value, info)


class ContactUpdate(PatchModel):
    """Changes to a contact; ``custom_fields`` and ``tags`` replace the stored values whole."""

    nullable_fields = frozenset({"first_name", "last_name", "email", "company", "timezone"})

    default_region: RegionCode | None = Field(default=None, description="Only with phone_e164")
    phone_e164: PhoneInput | None = None
    first_name: PersonText | None = None
    last_name: PersonText | None = None
    email: Email | None = None
    company: PersonText | None = None
    timezone: TimezoneName | None = None
    tags: Tags | None = None
    custom_fields: CustomFields | None = None

    @field_validator("phone_e164")
    @classmethod
    def _normalize_phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else normalized_e164(value, info)


class ContactOut(ResponseModel):
    id: int
    phone_e164: str
    country: str | None = Field(description="ISO 3166 alpha-2 region of the number")
    phone_timezones: list[str] = Field(description="Canonical IANA zones the number implies (may be several)")
    first_name: str | None
    last_name: str | None
    email: str | None
    company: str | None
    timezone: str | None = Field(description="The zone given for the contact (canonical IANA name)")
    tags: list[str]
    custom_fields: dict[str, Any]
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @field_validator("phone_timezones", mode="before")
    @classmethod
    def _split_zones(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [zone for zone in value.split(ZONE_SEPARATOR) if zone]
        return value
