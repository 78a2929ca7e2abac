"""IANA zone names: validation and canonical spelling."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

# Legacy spellings (tz "backward" renames) that libphonenumber and old CRMs still emit, mapped to
# today's names. Country zones that tz now links to a neighbour (Europe/Bratislava) stay as they are:
# they are still the name people use for that country.
LEGACY_ZONE_NAMES: dict[str, str] = {
    "Africa/Asmera": "Africa/Asmara",
    "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
    "America/Catamarca": "America/Argentina/Catamarca",
    "America/Cordoba": "America/Argentina/Cordoba",
    "America/Jujuy": "America/Argentina/Jujuy",
    "America/Mendoza": "America/Argentina/Mendoza",
    "America/Godthab": "America/Nuuk",
    "America/Indianapolis": "America/Indiana/Indianapolis",
    "America/Louisville": "America/Kentucky/Louisville",
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Choibalsan": "Asia/Ulaanbaatar",
    "Asia/Katmandu": "Asia/Kathmandu",
    "Asia/Rangoon": "Asia/Yangon",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Asia/Ulan_Bator": "Asia/Ulaanbaatar",
    "Atlantic/Faeroe": "Atlantic/Faroe",
    "Europe/Kiev": "Europe/Kyiv",
    "Pacific/Enderbury": "Pacific/Kanton",
    "Pacific/Ponape": "Pacific/Pohnpei",
    "Pacific/Truk": "Pacific/Chuuk",
    "US/Eastern": "America/New_York",
    "US/Central": "America/Chicago",
    "US/Mountain": "America/Denver",
    "US/Pacific": "America/Los_Angeles",
    "US/Alaska": "America/Anchorage",
    "US/Hawaii": "Pacific/Honolulu",
}


@lru_cache(maxsize=1)
def _available() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def canonical_zone(name: str) -> str | None:
    """The canonical IANA name for ``name``, or None when it is not a zone at all.

    Matching is exact (IANA names are case-sensitive in files, but users type ``asia/kolkata``): a
    case-insensitive match is accepted and returned in its proper spelling.
    """
    candidate = name.strip()
    if not candidate:
        return None
    candidate = LEGACY_ZONE_NAMES.get(candidate, candidate)
    if candidate in _available():
        return candidate
    folded = _casefold_index().get(candidate.casefold())
    if folded is None:
        return None
    return LEGACY_ZONE_NAMES.get(folded, folded)


@lru_cache(maxsize=1)
def _casefold_index() -> dict[str, str]:
    return {zone.casefold(): zone for zone in _available()}


def is_valid_zone(name: str) -> bool:
    return canonical_zone(name) is not None
