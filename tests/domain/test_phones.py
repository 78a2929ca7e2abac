"""``domain.phones.normalize``: any input form of a valid number gives one E.164, with canonical zones."""

from __future__ import annotations

import re
import zoneinfo

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkcall.domain.phones import InvalidPhone, NormalizedPhone, normalize, region_code
from bulkcall.domain.timezones import LEGACY_ZONE_NAMES

NUMBER_TYPES = [
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.VOIP,
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    phonenumbers.PhoneNumberType.PAGER,
    phonenumbers.PhoneNumberType.UAN,
    phonenumbers.PhoneNumberType.VOICEMAIL,
]
E164_SHAPE = re.compile(r"\+[1-9][0-9]{1,14}")
AVAILABLE_ZONES = zoneinfo.available_timezones()


def _examples() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    """Valid example numbers of every region and type phonenumbers knows, with their region."""
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in NUMBER_TYPES:
            number = phonenumbers.example_number_for_type(region, number_type)
            if number is not None and phonenumbers.is_valid_number(number):
                examples.append((region, number))
    for calling_code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        number = phonenumbers.example_number_for_non_geo_entity(calling_code)
        if number is not None and phonenumbers.is_valid_number(number):
            examples.append(("001", number))
    return examples


EXAMPLES = _examples()
SEPARATORS = st.sampled_from(["", " ", "-", ".", "  ", " - "])


@st.composite
def written_forms(draw: st.DrawFn) -> tuple[str, str | None, str]:
    """(text as a person might write it, the region to read it with, the expected E.164)."""
    region, number = draw(st.sampled_from(EXAMPLES))
    expected = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    formats = [
        phonenumbers.PhoneNumberFormat.E164,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.RFC3966,
    ]
    if region != "001":
        formats.append(phonenumbers.PhoneNumberFormat.NATIONAL)
    chosen = draw(st.sampled_from(formats))
    text = phonenumbers.format_number(number, chosen)
    if chosen != phonenumbers.PhoneNumberFormat.RFC3966:
        # Regroup the digits with other separators, the way people type them.
        groups = re.split(r"[ \-]+", text)
        text = groups[0]
        for group in groups[1:]:
            text += draw(SEPARATORS) + group
        text = draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " "]))
    read_with = (
        region
        if chosen == phonenumbers.PhoneNumberFormat.NATIONAL
        else draw(st.sampled_from([None, region if region != "001" else None, "US", "GB"]))
    )
    return text, read_with, expected


def test_examples_cover_many_regions() -> None:
    assert len({region for region, _ in EXAMPLES}) > 200


@settings(max_examples=500)
@given(written_forms())
def test_every_written_form_of_a_valid_number_gives_its_e164(case: tuple[str, str | None, str]) -> None:
    text, region, expected = case
    assert normalize(text, region).e164 == expected


@settings(max_examples=300)
@given(written_forms())
def test_normalising_an_e164_again_changes_nothing(case: tuple[str, str | None, str]) -> None:
    text, region, _ = case
    first = normalize(text, region)
    assert normalize(first.e164) == first


@settings(max_examples=300)
@given(st.sampled_from(EXAMPLES))
def test_country_is_the_numbers_region(example: tuple[str, phonenumbers.PhoneNumber]) -> None:
    region, number = example
    phone = normalize(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    expected = None if region == "001" else phonenumbers.region_code_for_number(number)
    assert phone.country == expected


@settings(max_examples=500)
@given(st.sampled_from(EXAMPLES))
def test_every_zone_is_a_canonical_iana_name(example: tuple[str, phonenumbers.PhoneNumber]) -> None:
    _, number = example
    phone = normalize(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    for zone in phone.timezones:
        assert zone in AVAILABLE_ZONES
        assert zone not in LEGACY_ZONE_NAMES
    assert list(phone.timezones) == sorted(set(phone.timezones))


def test_all_example_numbers_give_only_canonical_zones() -> None:
    zones = {
        zone
        for _, number in EXAMPLES
        for zone in normalize(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)).timezones
    }
    assert zones <= AVAILABLE_ZONES
    assert not zones & set(LEGACY_ZONE_NAMES)


@pytest.mark.parametrize("raw", ["+91 98765 43210", "+91 22 2345 6789", "+911123456789"])
def test_indian_numbers_imply_asia_kolkata_not_calcutta(raw: str) -> None:
    assert normalize(raw).timezones == ("Asia/Kolkata",)


@settings(max_examples=1000)
@given(st.text(max_size=50), st.sampled_from([None, "US", "GB", "IN", "DE", "BR"]))
def test_garbage_either_raises_invalid_phone_or_gives_a_valid_e164(raw: str, region: str | None) -> None:
    _check_garbage(raw, region)


@settings(max_examples=1000)
@given(st.text(alphabet="+0123456789 ()-.#*xtel:;=", max_size=45), st.sampled_from([None, "US", "GB", "FR", "JP"]))
def test_phone_like_garbage_either_raises_invalid_phone_or_gives_a_valid_e164(raw: str, region: str | None) -> None:
    _check_garbage(raw, region)


def _check_garbage(raw: str, region: str | None) -> None:
    try:
        phone = normalize(raw, region)
    except InvalidPhone:
        return
    assert isinstance(phone, NormalizedPhone)
    assert E164_SHAPE.fullmatch(phone.e164)
    assert phonenumbers.is_valid_number(phonenumbers.parse(phone.e164))


def test_national_number_without_region_says_to_give_one() -> None:
    with pytest.raises(InvalidPhone, match="default_region"):
        normalize("020 7946 0958")


def test_national_number_with_region_is_read() -> None:
    phone = normalize("020 7946 0958", "GB")
    assert (phone.e164, phone.country, phone.timezones) == ("+442079460958", "GB", ("Europe/London",))


def test_too_short_number_is_invalid() -> None:
    with pytest.raises(InvalidPhone, match="not a valid phone number"):
        normalize("+1 555")


def test_empty_input_is_invalid() -> None:
    with pytest.raises(InvalidPhone, match="empty"):
        normalize("   ")


def test_overlong_input_is_invalid() -> None:
    with pytest.raises(InvalidPhone, match="too long"):
        normalize("+1" + "2" * 60)


def test_timezones_key_joins_zones_with_a_bar() -> None:
    phone = NormalizedPhone(e164="+1", country="US", timezones=("America/Chicago", "America/New_York"))
    assert phone.timezones_key == "America/Chicago|America/New_York"
    assert NormalizedPhone(e164="+1", country=None, timezones=()).timezones_key is None


def test_region_code_accepts_any_case_and_refuses_unknown() -> None:
    assert region_code(" gb ") == "GB"
    assert region_code(None) is None
    with pytest.raises(InvalidPhone, match="unknown region"):
        region_code("XX")
