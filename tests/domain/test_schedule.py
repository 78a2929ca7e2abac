"""Next eligible instant: always inside every zone's window, never later than the first valid minute."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkcall.domain.schedule import first_instant, next_eligible
from bulkcall.domain.windows import DAYS, DayWindow, day_windows, default_windows, validate_windows

ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Halifax",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Pacific/Auckland",
    "America/Sao_Paulo",
    "UTC",
]


def windows(spec: dict[str, Any]) -> dict[str, DayWindow]:
    normalised, errors = validate_windows(spec)
    assert not errors
    return day_windows(normalised)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def wall_valid(instant: datetime, zone_name: str, rules: dict[str, DayWindow], *, first_pass_only: bool) -> bool:
    """The oracle: is the wall clock at ``instant`` inside an enabled window, before its last minute?"""
    local = instant.astimezone(ZoneInfo(zone_name))
    if first_pass_only and local.fold == 1:
        return False
    wall = local.replace(tzinfo=None, fold=0)
    for back in (0, 1):
        day = wall.date() - timedelta(days=back)
        found = _wall_window(rules, day)
        if found is None or not found[0] <= wall < found[1]:
            continue
        # Windows that touch the next day's are one stretch: only the stretch's last minute is off limits.
        closes = found[1]
        for ahead in range(1, 8):
            following = _wall_window(rules, day + timedelta(days=ahead))
            if following is None or following[0] > closes:
                break
            closes = max(closes, following[1])
        if wall < closes - timedelta(minutes=1):
            return True
    return False


def _wall_window(rules: dict[str, DayWindow], day: date) -> tuple[datetime, datetime] | None:
    rule = rules[DAYS[day.weekday()]]
    if not rule.enabled:
        return None
    opens = datetime.combine(day, datetime.min.time()) + timedelta(minutes=rule.start_minute)
    end_day = day + timedelta(days=1) if rule.crosses_midnight or rule.end_minute == 1440 else day
    return opens, datetime.combine(end_day, datetime.min.time()) + timedelta(minutes=rule.end_minute % 1440)


def test_weekday_window_in_callee_time_after_friday_evening() -> None:
    result = next_eligible(["America/New_York"], windows(default_windows()), utc(2026, 11, 27, 23, 0))
    assert result.at == utc(2026, 11, 30, 14, 0)  # Monday 09:00 EST


def test_half_hour_zone() -> None:
    result = next_eligible(["Asia/Kolkata"], windows(default_windows()), utc(2026, 11, 27, 23, 0))
    assert result.at == utc(2026, 11, 30, 3, 30)  # Monday 09:00 IST (+05:30)


def test_several_zones_need_every_window_open() -> None:
    # +1 709 numbers map to Halifax (-04:00) and St John's (-03:30): 09:00 in both is 13:00 UTC.
    result = next_eligible(["America/Halifax", "America/St_Johns"], windows(default_windows()), utc(2026, 11, 30, 12))
    assert result.at == utc(2026, 11, 30, 13, 0)


def test_zones_whose_windows_never_overlap_are_never_eligible() -> None:
    rules = windows({day: {"enabled": True, "start": "09:00", "end": "10:00"} for day in DAYS})
    result = next_eligible(["Asia/Tokyo", "America/New_York"], rules, utc(2026, 6, 1))
    assert result.at is None


def test_window_starting_in_the_skipped_hour_opens_when_the_clock_jumps() -> None:
    # 2026-03-08 02:30 does not exist in New York: the window opens at 03:00 EDT (07:00 UTC).
    assert first_instant(ZoneInfo("America/New_York"), date(2026, 3, 8), 150) == utc(2026, 3, 8, 7, 0)
    rules = windows({"sun": {"enabled": True, "start": "02:30", "end": "05:00"}})
    assert next_eligible(["America/New_York"], rules, utc(2026, 3, 8, 0)).at == utc(2026, 3, 8, 7, 0)


def test_repeated_hour_is_taken_on_its_first_pass() -> None:
    # 2026-11-01 01:30 happens twice in New York; a window ending then closes at the first 01:30 (EDT).
    rules = windows({"sun": {"enabled": True, "start": "00:00", "end": "01:30"}})
    result = next_eligible(["America/New_York"], rules, utc(2026, 11, 1, 5, 28, 30))
    assert result.at == utc(2026, 11, 1, 5, 28, 30)
    after_close = next_eligible(["America/New_York"], rules, utc(2026, 11, 1, 5, 29))
    assert after_close.at is not None
    assert after_close.at >= utc(2026, 11, 8)  # not again in the repeated hour


def test_window_across_midnight() -> None:
    rules = windows({"fri": {"enabled": True, "start": "22:00", "end": "02:00"}})
    assert next_eligible(["UTC"], rules, utc(2026, 11, 28, 1, 0)).at == utc(2026, 11, 28, 1, 0)  # Saturday 01:00
    assert next_eligible(["UTC"], rules, utc(2026, 11, 28, 1, 59)).at == utc(2026, 12, 4, 22, 0)


def test_no_call_starts_in_the_last_minute() -> None:
    rules = windows({"mon": {"enabled": True, "start": "09:00", "end": "18:00"}})
    assert next_eligible(["UTC"], rules, utc(2026, 11, 30, 17, 58, 59)).at == utc(2026, 11, 30, 17, 58, 59)
    assert next_eligible(["UTC"], rules, utc(2026, 11, 30, 17, 59)).at == utc(2026, 12, 7, 9, 0)


def test_scheduled_start_and_end_bound_the_answer() -> None:
    rules = windows({day: {"enabled": True, "start": "00:00", "end": "24:00"} for day in DAYS})
    start = utc(2026, 12, 1, 12)
    assert next_eligible(["UTC"], rules, utc(2026, 11, 30), not_before=start).at == start
    assert next_eligible(["UTC"], rules, utc(2026, 11, 30), ends_at=utc(2026, 11, 29)).at is None


def test_unknown_zone_fails_closed() -> None:
    with pytest.raises(ZoneInfoNotFoundError):
        next_eligible(["Mars/Olympus_Mons"], windows(default_windows()), utc(2026, 11, 30))


times = st.builds(lambda h, m: h * 60 + m, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
day_rules = st.tuples(st.booleans(), times, times | st.just(1440)).filter(lambda r: r[1] != r[2] % 1440 or r[2] == 1440)
weekly = st.lists(day_rules, min_size=7, max_size=7).filter(lambda days: any(d[0] for d in days))
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))


def _rules(days: list[tuple[bool, int, int]]) -> dict[str, DayWindow]:
    return {DAYS[i]: DayWindow(enabled=d[0], start_minute=d[1], end_minute=d[2]) for i, d in enumerate(days)}


@settings(
    max_examples=int(os.environ.get("SCHEDULE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    days=weekly,
    after=instants,
)
def test_chosen_instant_is_inside_every_window_and_none_earlier_was_missed(
    zones: list[str], days: list[tuple[bool, int, int]], after: datetime
) -> None:
    rules = _rules(days)
    horizon = timedelta(days=8)
    result = next_eligible(zones, rules, after, horizon=horizon)
    if result.at is not None:
        assert result.at >= after
        assert all(wall_valid(result.at, name, rules, first_pass_only=False) for name in zones)
    # No whole minute between ``after`` and the answer (or the horizon) is valid in every zone.
    limit = result.at if result.at is not None else after + horizon
    minute = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < limit - timedelta(minutes=1):
        assert not all(wall_valid(minute, name, rules, first_pass_only=True) for name in zones), minute
        minute += timedelta(minutes=1)


def test_touching_windows_are_one_stretch() -> None:
    # Around the clock: no gap at 23:59 (only a window's real end takes its last minute off).
    always = windows({day: {"enabled": True, "start": "00:00", "end": "24:00"} for day in DAYS})
    assert next_eligible(["UTC"], always, utc(2026, 11, 30, 23, 59, 30)).at == utc(2026, 11, 30, 23, 59, 30)
    # Saturday 22:00-24:00 then Sunday 00:00-02:00: one stretch, its last minute is Sunday 01:59.
    weekend = windows(
        {
            "sat": {"enabled": True, "start": "22:00", "end": "24:00"},
            "sun": {"enabled": True, "start": "00:00", "end": "02:00"},
        }
    )
    assert next_eligible(["UTC"], weekend, utc(2026, 11, 28, 23, 59, 30)).at == utc(2026, 11, 28, 23, 59, 30)
    assert next_eligible(["UTC"], weekend, utc(2026, 11, 29, 1, 59)).at == utc(2026, 12, 5, 22, 0)
