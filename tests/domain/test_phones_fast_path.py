"""``phones.normalize`` (fast path) must give exactly what plain ``phonenumbers`` gives, on any input."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as phone_timezones

from bulkcall.domain.phones import InvalidPhone, NormalizedPhone, canonical_zones, normalize, normalize_many

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TYPES = [
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.VOIP,
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    phonenumbers.PhoneNumberType.PAGER,
    phonenumbers.PhoneNumberType.UAN,
    phonenumbers.PhoneNumberType.VOICEMAIL,
]
FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
]
EXAMPLES = [
    (region, number)
    for region in REGIONS
    for kind in TYPES
    if (number := phonenumbers.example_number_for_type(region, kind)) is not None
] + [
    ("001", number)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
    if (number := phonenumbers.example_number_for_non_geo_entity(code)) is not None
]


def reference(raw: str, default_region: str | None) -> NormalizedPhone | str:
    """The slow path, written with plain phonenumbers calls only (what normalize did before the fast path)."""
    text = raw.strip()
    if not text:
        return "phone number is empty"
    if len(text) > 40:
        return "phone number is too long"
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            return "no country code: write the number as +<country code>... or give default_region"
        return f"not a phone number ({exc._msg})"
    if not phonenumbers.is_valid_number(number):
        return "not a valid phone number for its country"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    country = phonenumbers.region_code_for_number(number)
    zones = canonical_zones(tuple(phone_timezones.time_zones_for_number(number)))
    return NormalizedPhone(e164=e164, country=country if country and country != "001" else None, timezones=zones)


def fast(raw: str, default_region: str | None) -> NormalizedPhone | str:
    try:
        return normalize(raw, default_region)
    except InvalidPhone as exc:
        return str(exc)


@st.composite
def mutated_numbers(draw: st.DrawFn) -> tuple[str, str | None]:
    """An example number of some region and type, digits changed/added/removed, in some format."""
    region, number = draw(st.sampled_from(EXAMPLES))
    chosen_format = draw(st.sampled_from(FORMATS))
    text = phonenumbers.format_number(number, chosen_format)
    chars = list(text)
    digit_positions = [i for i, char in enumerate(chars) if char.isdigit()]
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.sampled_from(digit_positions))
        chars[position] = str(draw(st.integers(0, 9)))
    if draw(st.booleans()):
        chars.insert(draw(st.sampled_from(digit_positions)), str(draw(st.integers(0, 9))))
    elif draw(st.booleans()) and len(digit_positions) > 2:
        del chars[draw(st.sampled_from(digit_positions[1:]))]
    default_region = draw(st.sampled_from([None, region if region != "001" else None]))
    if draw(st.integers(0, 9)) == 0:
        default_region = draw(st.sampled_from(REGIONS))
    return "".join(chars), default_region


@pytest.mark.parametrize(("region", "number"), EXAMPLES[::7], ids=lambda value: str(value)[:12])
def test_example_numbers_match_plain_phonenumbers(region: str, number: phonenumbers.PhoneNumber) -> None:
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    default_region = region if region != "001" else None
    assert fast(e164, None) == reference(e164, None)
    assert fast(national, default_region) == reference(national, default_region)


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_numbers())
@example(("+14155552671", None))
@example(("+4407911123456", None))  # national prefix after the country code: stripped by parse
@example(("+390612345678", None))  # Italian leading zero
@example(("+5501112345678", None))  # Brazilian carrier-code prefix
@example(("+1 415 555 2671 ext. 7", None))
@example(("+0114155552671", None))
@example(("+800 1234 5678", None))  # non-geographic, country "001"
def test_fast_path_equals_plain_phonenumbers(case: tuple[str, str | None]) -> None:
    raw, default_region = case
    assert fast(raw, default_region) == reference(raw, default_region)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="+0123456789", min_size=0, max_size=20), st.sampled_from([None, "US", "GB", "IN", "BR"]))
def test_fast_path_equals_plain_phonenumbers_on_digit_strings(raw: str, default_region: str | None) -> None:
    assert fast(raw, default_region) == reference(raw, default_region)


def test_normalize_many_returns_numbers_and_reasons_in_order() -> None:
    results = normalize_many(["+14155552671", "nope", "07911 123456"], "GB")
    assert isinstance(results[0], NormalizedPhone)
    assert results[0].e164 == "+14155552671"
    assert results[1] == reference("nope", "GB")
    assert results[2] == reference("07911 123456", "GB")
