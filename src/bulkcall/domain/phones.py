"""Phone numbers: any input form to E.164, the country, and the time zone(s) the number implies."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as phone_timezones

from bulkcall.domain.timezones import canonical_zone

# Separator used when a number implies several zones (stored in one indexed text column).
ZONE_SEPARATOR = "|"
_UNKNOWN_ZONE = "Etc/Unknown"


class InvalidPhone(ValueError):
    """The input cannot be read as a dialable phone number; ``str(exc)`` says why, for a person."""


@dataclass(frozen=True, slots=True)
class NormalizedPhone:
    e164: str
    country: str | None
    timezones: tuple[str, ...]

    @property
    def timezones_key(self) -> str | None:
        """The zones as stored with a contact: canonical names joined by ``|``, or None."""
        return ZONE_SEPARATOR.join(self.timezones) if self.timezones else None


def region_code(value: str | None) -> str | None:
    """Validate an ISO 3166 alpha-2 region for national-format parsing; None passes through."""
    if value is None:
        return None
    upper = value.strip().upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidPhone(f"unknown region {value!r}: use an ISO 3166 alpha-2 code such as US or GB")
    return upper


@lru_cache(maxsize=4096)
def canonical_zones(raw: tuple[str, ...]) -> tuple[str, ...]:
    zones = {canonical_zone(zone) for zone in raw if zone != _UNKNOWN_ZONE}
    return tuple(sorted(zone for zone in zones if zone is not None))


def normalize(raw: str, default_region: str | None = None) -> NormalizedPhone:
    """Parse ``raw`` (E.164, international or national format) into a valid number, or raise InvalidPhone.

    National formats need ``default_region``. Numbers that parse but are not valid for any region
    (too short, unassigned ranges) are refused: dialing them only costs money.
    """
    text = raw.strip()
    if not text:
        raise InvalidPhone("phone number is empty")
    if len(text) > 40:
        raise InvalidPhone("phone number is too long")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidPhone(
                "no country code: write the number as +<country code>... or give default_region"
            ) from None
        raise InvalidPhone(f"not a phone number ({exc._msg})") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid phone number for its country")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    country = phonenumbers.region_code_for_number(number)
    zones = canonical_zones(tuple(phone_timezones.time_zones_for_number(number)))
    return NormalizedPhone(e164=e164, country=country if country and country != "001" else None, timezones=zones)
