"""``from``/``to`` dates as UTC bounds: a local day of the campaign timezone, whatever its length."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkcall.domain.date_ranges import check_range, day_start, utc_bounds
from bulkcall.kit.errors import ValidationFailed

ZONES = [
    "UTC",
    "America/New_York",
    "America/Santiago",  # DST starts at midnight: some days have no 00:00
    "America/Havana",  # DST ends at 01:00 back to 00:00: midnight happens twice
    "America/St_Johns",  # -03:30 / -02:30
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "Europe/London",
    "Pacific/Apia",  # skipped 2011-12-30 entirely
]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def bounded(first: date, last: date, zone: str) -> tuple[datetime, datetime]:
    lower, upper = utc_bounds(first, last, zone)
    assert lower is not None
    assert upper is not None
    return lower, upper


def test_plain_day_in_utc() -> None:
    assert utc_bounds(date(2026, 6, 3), date(2026, 6, 3), "UTC") == (utc(2026, 6, 3), utc(2026, 6, 4))


def test_omitted_sides_are_unbounded() -> None:
    assert utc_bounds(None, None, "UTC") == (None, None)
    assert utc_bounds(date(2026, 6, 3), None, "Asia/Kolkata") == (utc(2026, 6, 2, 18, 30), None)
    assert utc_bounds(None, date(2026, 6, 3), "Asia/Kolkata") == (None, utc(2026, 6, 3, 18, 30))


def test_spring_forward_day_lasts_23_hours_in_new_york() -> None:
    lower, upper = bounded(date(2026, 3, 8), date(2026, 3, 8), "America/New_York")
    assert (lower, upper) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    assert upper - lower == timedelta(hours=23)


def test_fall_back_day_lasts_25_hours_in_new_york() -> None:
    lower, upper = utc_bounds(date(2026, 11, 1), date(2026, 11, 1), "America/New_York")
    assert (lower, upper) == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))


def test_a_day_without_midnight_starts_at_the_transition() -> None:
    # Chile moves 2026-09-06 00:00 (-04) to 01:00 (-03): the local day starts at 04:00 UTC.
    assert day_start(date(2026, 9, 6), ZoneInfo("America/Santiago")) == utc(2026, 9, 6, 4)
    assert day_start(date(2026, 9, 7), ZoneInfo("America/Santiago")) == utc(2026, 9, 7, 3)


def test_a_repeated_midnight_counts_from_its_first_occurrence() -> None:
    # Havana falls back 2026-11-01 01:00 (-04) to 00:00 (-05): 00:00 happens at 04:00 and 05:00 UTC.
    assert day_start(date(2026, 11, 1), ZoneInfo("America/Havana")) == utc(2026, 11, 1, 4)


def test_half_and_quarter_hour_zones() -> None:
    assert utc_bounds(date(2026, 1, 10), date(2026, 1, 11), "Asia/Kathmandu") == (
        utc(2026, 1, 9, 18, 15),
        utc(2026, 1, 11, 18, 15),
    )
    # Lord Howe's DST ends 2026-04-05 02:00 (+11) back to 01:30 (+10:30): a 24.5-hour day.
    lower, upper = bounded(date(2026, 4, 5), date(2026, 4, 5), "Australia/Lord_Howe")
    assert upper - lower == timedelta(hours=24, minutes=30)


def test_a_skipped_day_is_an_empty_range() -> None:
    # Samoa jumped from 2011-12-29 to 2011-12-31: the 30th has no instant at all.
    lower, upper = utc_bounds(date(2011, 12, 30), date(2011, 12, 30), "Pacific/Apia")
    assert lower == upper


def test_the_edges_of_the_calendar_are_unbounded_not_an_error() -> None:
    assert utc_bounds(date.min, date.max, "Asia/Kolkata") == (None, None)
    lower, upper = utc_bounds(date(9999, 12, 31), date(9999, 12, 31), "Pacific/Chatham")
    assert lower is not None
    assert upper is None


def test_a_reversed_range_is_a_422_on_to() -> None:
    check_range(date(2026, 6, 3), date(2026, 6, 3))
    check_range(None, date(2026, 6, 3))
    check_range(date(2026, 6, 3), None)
    with pytest.raises(ValidationFailed) as raised:
        check_range(date(2026, 6, 4), date(2026, 6, 3))
    assert raised.value.status_code == 422
    assert list(raised.value.errors) == ["to"]


instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2037, 12, 31)).map(
    lambda value: value.replace(tzinfo=UTC)
)
dates = st.dates(min_value=date(1990, 1, 2), max_value=date(2037, 12, 30))


@settings(max_examples=3000, deadline=None)
@given(zone=st.sampled_from(ZONES), instant=instants, first=dates, span=st.integers(min_value=0, max_value=40))
def test_an_instant_is_in_the_bounds_exactly_when_its_local_date_is_in_the_range(
    zone: str, instant: datetime, first: date, span: int
) -> None:
    last = first + timedelta(days=span)
    lower, upper = bounded(first, last, zone)
    local_day = instant.astimezone(ZoneInfo(zone)).date()
    assert (lower <= instant < upper) == (first <= local_day <= last)


@settings(max_examples=2000, deadline=None)
@given(zone=st.sampled_from(ZONES), instant=instants)
def test_the_range_of_an_instants_own_local_day_contains_it(zone: str, instant: datetime) -> None:
    local_day = instant.astimezone(ZoneInfo(zone)).date()
    lower, upper = bounded(local_day, local_day, zone)
    assert lower <= instant < upper
    # ... and the day starts exactly there: the instant before belongs to an earlier day.
    assert (lower - timedelta(microseconds=1)).astimezone(ZoneInfo(zone)).date() < local_day
