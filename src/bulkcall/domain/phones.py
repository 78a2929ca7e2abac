"""Phone numbers: any input form to E.164, the country, and the time zone(s) the number implies.

``normalize`` gives exactly what plain ``phonenumbers`` gives (parse, ``is_valid_number``,
``region_code_for_number``, ``time_zones_for_number``) but several times faster, because big imports
parse a million numbers:

- clean E.164 input (``+`` and ASCII digits) skips the text-scanning regexes of ``phonenumbers.parse``
  and runs only the steps of ``parse`` that can change such input (country code, national prefix,
  leading zeros), calling the library's own helpers for each;
- the number type (one pass over the metadata regexes) is computed once and reused for validity,
  region and time zones, where the library recomputes it up to five times;
- time zones are cached by what the library's lookup reads: the country code for non-geographical
  numbers, the first ``TIMEZONE_LONGEST_PREFIX`` digits otherwise.

``tests/domain/test_phones_fast_path.py`` checks the equality against plain ``phonenumbers`` on
generated numbers from every region.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import phonenumberutil as _pnu
from phonenumbers import timezone as phone_timezones
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from bulkcall.domain.timezones import canonical_zone

# Separator used when a number implies several zones (stored in one indexed text column).
ZONE_SEPARATOR = "|"
_UNKNOWN_ZONE = "Etc/Unknown"
_NON_GEO_REGION = "001"
_UNKNOWN_TYPE = phonenumbers.PhoneNumberType.UNKNOWN

# "+" then 4..17 ASCII digits: for exactly this input, phonenumbers.parse's extraction steps (strip
# punctuation, look for an extension, second numbers, RFC 3966 parts) provably change nothing.
_CLEAN_E164 = re.compile(r"\+[0-9]{4,17}")
_INVALID_REASON = "not a valid phone number for its country"


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
    if _CLEAN_E164.fullmatch(text):
        parts = _parse_clean_e164(text)
        if parts is not None:
            return _classify(*parts)
    number = _parse(text, default_region)
    return _classify(number.country_code, _pnu.national_significant_number(number))


def normalize_many(raws: Iterable[str], default_region: str | None = None) -> list[NormalizedPhone | str]:
    """``normalize`` over many inputs: each result is the number, or the InvalidPhone reason as a string."""
    results: list[NormalizedPhone | str] = []
    append = results.append
    for raw in raws:
        try:
            append(normalize(raw, default_region))
        except InvalidPhone as exc:
            append(str(exc))
    return results


def _parse(text: str, default_region: str | None) -> Any:
    try:
        return phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        # parse() keeps sys.exc_info() in locals, a frame <-> traceback cycle that would hold every
        # caller's frame (a whole import batch) until the cycle collector runs.
        _drop_tracebacks(exc)
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidPhone(
                "no country code: write the number as +<country code>... or give default_region"
            ) from None
        raise InvalidPhone(f"not a phone number ({exc._msg})") from None


def _drop_tracebacks(exc: BaseException | None) -> None:
    # Clearing the finished frames' locals breaks the cycle (parse's frame holds its own traceback).
    while exc is not None:
        traceback.clear_frames(exc.__traceback__)
        exc.__traceback__ = None
        exc = exc.__context__


def _parse_clean_e164(text: str) -> tuple[int, str] | None:
    """``phonenumbers.parse(text)`` for ``+<digits>`` as (country code, national significant number), or
    None where only the full parser can tell.

    Mirrors the steps ``parse`` takes for such input, in order, with the library's own helpers; any
    case that would raise or take another branch returns None and goes through ``parse`` itself.
    The national significant number is the national digits as they stand: ``parse`` keeps leading
    zeros (``italian_leading_zero``/``number_of_leading_zeros``) so that
    ``national_significant_number`` gives exactly those digits back.
    """
    digits = text[1:]
    country_code, national = _split_country_code(digits)
    if country_code == 0:
        return None
    metadata = _metadata_for_country_code(country_code)
    if metadata is None or len(national) < _pnu._MIN_LENGTH_FOR_NSN:
        return None
    prefix = _national_prefix_pattern(country_code)
    if prefix is not None and prefix.match(national):
        # Only a matching prefix can change the number: let the library decide, as parse does.
        _carrier, potential, _ = _pnu._maybe_strip_national_prefix_carrier_code(national, metadata)
        if potential != national and _pnu._test_number_length(potential, metadata) not in _KEEP_ORIGINAL_LENGTHS:
            national = potential
    if not _pnu._MIN_LENGTH_FOR_NSN <= len(national) <= _pnu._MAX_LENGTH_FOR_NSN:
        return None
    return country_code, national


def _split_country_code(digits: str) -> tuple[int, str]:
    # phonenumberutil._extract_country_code: the shortest leading 1-3 digits that are a calling code.
    if not digits or digits[0] == "0":
        return 0, digits
    codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    for length in range(1, min(len(digits), 3) + 1):
        code = int(digits[:length])
        if code in codes:
            return code, digits[length:]
    return 0, digits


@lru_cache(maxsize=512)
def _national_prefix_pattern(country_code: int) -> re.Pattern[str] | None:
    prefix = _metadata_for_country_code(country_code).national_prefix_for_parsing
    return re.compile(prefix) if prefix else None


_KEEP_ORIGINAL_LENGTHS = (
    _pnu.ValidationResult.TOO_SHORT,
    _pnu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    _pnu.ValidationResult.INVALID_LENGTH,
)


@lru_cache(maxsize=512)
def _metadata_for_country_code(country_code: int) -> Any:
    # What parse() uses once the country code is known (the default region only matters without "+").
    return phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, phonenumbers.region_code_for_country_code(country_code)
    )


def _classify(country_code: int, nsn: str) -> NormalizedPhone:
    """Validity, E.164, region and zones of a parsed number, computing its type once."""
    region, number_type = _region_and_type(country_code, nsn)
    if region is None:
        raise InvalidPhone(_INVALID_REASON)
    metadata = _metadata_for_region(country_code, region)
    if metadata is None or (region != _NON_GEO_REGION and country_code != _country_code_of(region)):
        raise InvalidPhone(_INVALID_REASON)
    if number_type is None:
        number_type = _type_matcher(metadata).number_type(nsn)
    if number_type == _UNKNOWN_TYPE:
        raise InvalidPhone(_INVALID_REASON)
    e164 = f"+{country_code}{nsn}"
    if _is_geographical(number_type, country_code):
        zones = _zones_for_prefix(e164[1 : 1 + TIMEZONE_LONGEST_PREFIX])
    else:
        zones = _zones_for_country_code(country_code)
    return NormalizedPhone(e164=e164, country=region if region != _NON_GEO_REGION else None, timezones=zones)


def _region_and_type(country_code: int, nsn: str) -> tuple[str | None, Any | None]:
    """``region_code_for_number``, plus the number type when finding the region already computed it."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None:
        return None, None
    if len(regions) == 1:
        return regions[0], None
    # Same loop as phonenumberutil._region_code_for_number_from_list.
    for candidate in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(candidate.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if _leading_digits_pattern(metadata.leading_digits).match(nsn):
                return candidate, None
        else:
            number_type = _type_matcher(metadata).number_type(nsn)
            if number_type != _UNKNOWN_TYPE:
                # is_valid_number_for_region reads this same metadata object for a geographic region.
                return candidate, number_type
    return None, None


_Desc = tuple[frozenset[int], re.Pattern[str]] | None


def _compile_desc(desc: Any) -> _Desc:
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length), re.compile(desc.national_number_pattern)


def _matches(nsn: str, desc: _Desc) -> bool:
    # phonenumberutil._is_number_matching_desc with precompiled patterns: lengths first, then the
    # whole number against the pattern (match-then-fullmatch there is the same as fullmatch).
    if desc is None:
        return False
    lengths, pattern = desc
    if lengths and len(nsn) not in lengths:
        return False
    return pattern.fullmatch(nsn) is not None


class _TypeMatcher:
    """``phonenumberutil._number_type_helper`` for one metadata object, its patterns compiled once."""

    def __init__(self, metadata: Any) -> None:
        PNT = phonenumbers.PhoneNumberType
        self.metadata = metadata  # keeps the object alive while its id() keys the cache
        self.general = _compile_desc(metadata.general_desc)
        self.special = [
            (PNT.PREMIUM_RATE, _compile_desc(metadata.premium_rate)),
            (PNT.TOLL_FREE, _compile_desc(metadata.toll_free)),
            (PNT.SHARED_COST, _compile_desc(metadata.shared_cost)),
            (PNT.VOIP, _compile_desc(metadata.voip)),
            (PNT.PERSONAL_NUMBER, _compile_desc(metadata.personal_number)),
            (PNT.PAGER, _compile_desc(metadata.pager)),
            (PNT.UAN, _compile_desc(metadata.uan)),
            (PNT.VOICEMAIL, _compile_desc(metadata.voicemail)),
        ]
        self.special = [(kind, desc) for kind, desc in self.special if desc is not None]
        self.fixed_line = _compile_desc(metadata.fixed_line)
        self.mobile = _compile_desc(metadata.mobile)
        self.same_mobile_and_fixed_line = bool(metadata.same_mobile_and_fixed_line_pattern)

    def number_type(self, nsn: str) -> Any:
        PNT = phonenumbers.PhoneNumberType
        if not _matches(nsn, self.general):
            return PNT.UNKNOWN
        for kind, desc in self.special:
            if _matches(nsn, desc):
                return kind
        if _matches(nsn, self.fixed_line):
            if self.same_mobile_and_fixed_line or _matches(nsn, self.mobile):
                return PNT.FIXED_LINE_OR_MOBILE
            return PNT.FIXED_LINE
        if not self.same_mobile_and_fixed_line and _matches(nsn, self.mobile):
            return PNT.MOBILE
        return PNT.UNKNOWN


_TYPE_MATCHERS: dict[int, _TypeMatcher] = {}


def _type_matcher(metadata: Any) -> _TypeMatcher:
    matcher = _TYPE_MATCHERS.get(id(metadata))
    if matcher is None or matcher.metadata is not metadata:
        matcher = _TYPE_MATCHERS[id(metadata)] = _TypeMatcher(metadata)
    return matcher


@lru_cache(maxsize=512)
def _leading_digits_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@lru_cache(maxsize=1024)
def _metadata_for_region(country_code: int, region: str) -> Any:
    return phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())


@lru_cache(maxsize=1024)
def _country_code_of(region: str) -> int:
    return int(_pnu.country_code_for_valid_region(region))


@lru_cache(maxsize=4096)
def _is_geographical(number_type: Any, country_code: int) -> bool:
    return bool(_pnu.is_number_type_geographical(number_type, country_code))


@lru_cache(maxsize=65536)
def _zones_for_prefix(digits: str) -> tuple[str, ...]:
    # time_zones_for_geographical_number: longest prefix of the E.164 digits found in TIMEZONE_DATA.
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return canonical_zones(tuple(zones))
    return ()


@lru_cache(maxsize=1024)
def _zones_for_country_code(country_code: int) -> tuple[str, ...]:
    return canonical_zones(
        tuple(
            phone_timezones._country_level_time_zones_for_number(
                phonenumbers.PhoneNumber(country_code=country_code, national_number=0)
            )
        )
    )
