"""``domain.timezones.canonical_zone``: IANA names checked and spelled canonically."""

from __future__ import annotations

import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkcall.domain.timezones import LEGACY_ZONE_NAMES, canonical_zone, is_valid_zone


@pytest.mark.parametrize("name", ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_canonical_name_is_returned_as_is(name: str) -> None:
    assert canonical_zone(name) == name


@pytest.mark.parametrize(
    ("legacy", "canonical"),
    [
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("Europe/Kiev", "Europe/Kyiv"),
        ("Asia/Saigon", "Asia/Ho_Chi_Minh"),
        ("US/Pacific", "America/Los_Angeles"),
        ("America/Buenos_Aires", "America/Argentina/Buenos_Aires"),
    ],
)
def test_legacy_name_gives_todays_name(legacy: str, canonical: str) -> None:
    assert canonical_zone(legacy) == canonical


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("america/new_york", "America/New_York"),
        ("EUROPE/LONDON", "Europe/London"),
        ("utc", "UTC"),
        ("asia/calcutta", "Asia/Kolkata"),
        ("  Asia/Tokyo  ", "Asia/Tokyo"),
    ],
)
def test_any_case_and_surrounding_spaces_are_accepted(typed: str, canonical: str) -> None:
    assert canonical_zone(typed) == canonical


@pytest.mark.parametrize(
    "name",
    ["", "   ", "Mars/Olympus", "America/NewYork", "Eastern Standard Time", "+05:30", "../etc/passwd", "Europe/"],
)
def test_invalid_names_give_none(name: str) -> None:
    assert canonical_zone(name) is None
    assert not is_valid_zone(name)


def test_every_legacy_target_is_an_available_zone() -> None:
    assert set(LEGACY_ZONE_NAMES.values()) <= zoneinfo.available_timezones()


@given(st.sampled_from(sorted(zoneinfo.available_timezones())))
def test_every_available_zone_is_accepted_and_result_is_stable(name: str) -> None:
    canonical = canonical_zone(name)
    assert canonical is not None
    assert canonical in zoneinfo.available_timezones()
    assert canonical_zone(canonical) == canonical
    assert canonical_zone(name.upper()) == canonical


@given(st.text(max_size=40))
def test_arbitrary_text_gives_none_or_an_available_zone(text: str) -> None:
    result = canonical_zone(text)
    assert result is None or result in zoneinfo.available_timezones()
