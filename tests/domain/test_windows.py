"""Validation of ``call_windows``: HH:MM, 24:00 as an end, windows across midnight, errors by field path."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bulkcall.domain.windows import DAYS, day_windows, default_windows, validate_windows


def test_default_is_weekdays_nine_to_six() -> None:
    windows = default_windows()
    assert [day for day in DAYS if windows[day]["enabled"]] == ["mon", "tue", "wed", "thu", "fri"]
    assert windows["mon"]["start"] == "09:00"
    assert windows["mon"]["end"] == "18:00"


def test_missing_days_are_disabled() -> None:
    normalised, errors = validate_windows({"sat": {"enabled": True, "start": "10:00", "end": "14:00"}})
    assert errors == {}
    assert normalised["sat"]["enabled"] is True
    assert normalised["mon"]["enabled"] is False


def test_end_may_be_24_00_and_00_00_to_24_00_is_the_whole_day() -> None:
    _, errors = validate_windows({"mon": {"enabled": True, "start": "00:00", "end": "24:00"}})
    assert errors == {}
    assert day_windows(validate_windows({"mon": {"start": "00:00", "end": "24:00"}})[0])["mon"].end_minute == 1440


def test_window_crossing_midnight_is_accepted() -> None:
    normalised, errors = validate_windows({"fri": {"enabled": True, "start": "22:00", "end": "02:00"}})
    assert errors == {}
    assert day_windows(normalised)["fri"].crosses_midnight


def test_every_problem_is_reported_with_its_path() -> None:
    _, errors = validate_windows(
        {
            "mon": {"enabled": "yes", "start": "9am", "end": "25:00"},
            "funday": {"enabled": True},
            "tue": {"enabled": True, "start": "24:00", "end": "10:00", "colour": "red"},
            "wed": {"enabled": True, "start": "10:00", "end": "10:00"},
        }
    )
    assert set(errors) == {
        "call_windows.mon.enabled",
        "call_windows.mon.start",
        "call_windows.mon.end",
        "call_windows.funday",
        "call_windows.tue.start",
        "call_windows.tue.colour",
        "call_windows.wed",
    }


def test_not_an_object_is_an_error() -> None:
    assert validate_windows(["mon"])[1] == {"call_windows": ["must be an object keyed by day (mon..sun)"]}


times = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@given(start=times, end=times | st.just("24:00"), day=st.sampled_from(DAYS))
def test_any_valid_pair_validates_unless_empty(start: str, end: str, day: str) -> None:
    _, errors = validate_windows({day: {"enabled": True, "start": start, "end": end}})
    assert bool(errors) == (start == end)
