"""The engine's cached calendar answers exactly as ``next_eligible`` does, and call events only move forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkcall.domain.calls import AttemptState, CallStatus, advance
from bulkcall.domain.schedule import WindowCalendar, calendar_for, next_eligible
from bulkcall.domain.windows import DAYS, DayWindow, default_windows
from tests.domain.test_schedule import ZONES, instants, weekly


def _rules(days: list[tuple[bool, int, int]]) -> dict[str, DayWindow]:
    return {DAYS[i]: DayWindow(enabled=d[0], start_minute=d[1], end_minute=d[2]) for i, d in enumerate(days)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True),
    days=weekly,
    start=instants,
    steps=st.lists(st.tuples(st.integers(0, 20 * 24 * 60), st.integers(0, 3 * 24 * 60) | st.none()), max_size=12),
    ends_after=st.integers(1, 40 * 24 * 60) | st.none(),
)
def test_calendar_agrees_with_next_eligible(
    zones: list[str],
    days: list[tuple[bool, int, int]],
    start: datetime,
    steps: list[tuple[int, int | None]],
    ends_after: int | None,
) -> None:
    rules = _rules(days)
    ends_at = None if ends_after is None else start + timedelta(minutes=ends_after)
    calendar = WindowCalendar(zones, rules, ends_at=ends_at)
    # Questions come in any order (the cache must recompute when asked about earlier or far-later instants).
    for offset, delay in steps:
        after = start + timedelta(minutes=offset)
        not_before = None if delay is None else after + timedelta(minutes=delay)
        expected = next_eligible(zones, rules, after, not_before=not_before, ends_at=ends_at)
        assert calendar.next_eligible(after, not_before).at == expected.at
        assert calendar.is_open(after) == (next_eligible(zones, rules, after, ends_at=ends_at).at == after)


def test_open_until_is_the_end_of_the_current_interval() -> None:
    calendar = WindowCalendar(["America/New_York"], _rules([(True, 9 * 60, 18 * 60)] * 7))
    assert calendar.open_until(datetime(2026, 6, 3, 15, tzinfo=UTC)) == datetime(2026, 6, 3, 21, 59, tzinfo=UTC)
    assert calendar.open_until(datetime(2026, 6, 3, 23, tzinfo=UTC)) is None


def test_unknown_zone_gives_no_calendar_so_callers_fail_closed() -> None:
    common = {"windows": default_windows(), "campaign_timezone": "UTC", "ends_at": None}
    assert calendar_for("Mars/Olympus_Mons", mode="callee_local", **common) is None  # type: ignore[arg-type]
    # In campaign_timezone mode the task's own zone does not matter.
    assert calendar_for("Mars/Olympus_Mons", mode="campaign_timezone", **common) is not None  # type: ignore[arg-type]


STAGES = [AttemptState.QUEUED, AttemptState.DIALING, AttemptState.RINGING, AttemptState.IN_PROGRESS, AttemptState.ENDED]


@given(st.lists(st.sampled_from(list(CallStatus)), max_size=12))
def test_events_only_move_an_attempt_forward(events: list[CallStatus]) -> None:
    state: str = AttemptState.DIALING
    for status in events:
        moved = advance(state, status)
        if moved is not None:
            assert STAGES.index(moved) > STAGES.index(AttemptState(state))
            state = moved
    # Nothing moves an ended attempt: a late or repeated event is stale.
    assert all(advance(AttemptState.ENDED, status) is None for status in CallStatus)
