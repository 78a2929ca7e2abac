"""Pure insight rules: quarter-hour buckets in every zone, talk-time bins and the median, guard settings, status."""

from __future__ import annotations

import statistics
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkcall.domain import insight
from bulkcall.domain.date_ranges import day_start, utc_bounds


@pytest.mark.parametrize("day", [date(2026, 1, 1), date(2026, 3, 29), date(2026, 10, 25), date(2027, 6, 15)])
def test_every_zone_starts_its_days_on_a_quarter_hour(day: date) -> None:
    """What makes UTC quarter-hour buckets exact in any campaign timezone (LMT-era dates aside)."""
    for name in sorted(available_timezones()):
        midnight = day_start(day, ZoneInfo(name))
        assert midnight.timestamp() % insight.BUCKET_SECONDS == 0, (name, midnight)


def _day_buckets(zone_name: str, day: date) -> tuple[int, int]:
    lo, hi = insight.bucket_bounds(*utc_bounds(day, day, zone_name))
    assert lo is not None
    assert hi is not None
    return lo, hi


def test_a_day_range_in_a_half_hour_zone_and_on_a_dst_day() -> None:
    kolkata = _day_buckets("Asia/Kolkata", date(2026, 6, 4))
    assert insight.bucket_start(kolkata[0]) == datetime(2026, 6, 3, 18, 30, tzinfo=UTC)
    assert kolkata[1] - kolkata[0] == 96
    spring = _day_buckets("America/New_York", date(2026, 3, 8))
    assert spring[1] - spring[0] == 92  # 23 hours
    autumn = _day_buckets("America/New_York", date(2026, 11, 1))
    assert autumn[1] - autumn[0] == 100  # 25 hours
    assert insight.local_slot("Asia/Kolkata", kolkata[0]) == (date(2026, 6, 4), 0)
    assert insight.local_slot("Asia/Kolkata", kolkata[1] - 1) == (date(2026, 6, 4), 23)
    assert insight.bucket_bounds(None, None) == (None, None)


@given(st.floats(min_value=0, max_value=30_000, allow_nan=False))
def test_a_duration_falls_inside_its_bin(seconds: float) -> None:
    index = insight.talk_bin(seconds)
    low, high = insight.bin_bounds(index)
    assert 0 <= index <= insight.LAST_BIN
    assert low <= seconds < high or index == insight.LAST_BIN


@given(st.lists(st.floats(min_value=0, max_value=599, allow_nan=False), min_size=1, max_size=200))
def test_the_histogram_median_is_within_half_a_bin_below_ten_minutes(durations: list[float]) -> None:
    counts: dict[int, int] = {}
    for seconds in durations:
        counts[insight.talk_bin(seconds)] = counts.get(insight.talk_bin(seconds), 0) + 1
    found = insight.histogram_median(counts)
    assert found is not None
    assert abs(found - statistics.median(durations)) <= 5.0


def test_the_median_of_nothing_is_none() -> None:
    assert insight.histogram_median({}) is None
    assert insight.histogram_median({6: 3}) == 32.5


def test_guard_settings() -> None:
    default = insight.guards({})
    assert default.failure_spike == insight.FailureSpike()
    assert default.budget_cap is None
    assert insight.guards({"budget_cap": "12.50"}).budget_cap == Decimal("12.50")
    assert insight.guards({"budget_cap": 3}).budget_cap == Decimal(3)
    assert insight.guards({"failure_spike": False}).failure_spike.enabled is False
    tuned = insight.guards({"failure_spike": {"threshold": 0.8, "window_minutes": 5}}).failure_spike
    assert (tuned.threshold, tuned.window_minutes, tuned.min_attempts) == (0.8, 5, 20)
    assert insight.guard_problems({"budget_cap": True}) == {
        "metadata.budget_cap": "must be a number (or numeric string) of at least 0, or null"
    }
    assert set(insight.guard_problems({"failure_spike": {"threshold": 0, "enabled": "yes"}})) == {
        "metadata.failure_spike.threshold",
        "metadata.failure_spike.enabled",
    }
    # A stored bad value never stops the engine: it falls back to the default.
    assert insight.guards({"failure_spike": {"threshold": 7}}).failure_spike.threshold == 0.5


def test_the_error_rate_counts_the_window_since_the_last_resume() -> None:
    now = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
    config = insight.FailureSpike(threshold=0.5, min_attempts=4, window_minutes=15)

    def attempt(minutes_ago: float, outcome: str | None, queued_minutes_ago: float = 20) -> insight.RecentAttempt:
        return insight.RecentAttempt(
            ended_at=None if outcome is None else now - timedelta(minutes=minutes_ago),
            outcome=outcome,
            queued_at=now - timedelta(minutes=queued_minutes_ago),
        )

    recent = [
        attempt(1, "failed"),
        attempt(2, "failed"),
        attempt(3, "answered"),
        attempt(4, None),
        attempt(30, "failed"),
    ]
    rate = insight.error_rate(config, recent, now, None)
    assert (rate.attempts, rate.failed) == (3, 2)
    assert not insight.spike_tripped(config, rate)  # 3 < min_attempts
    recent.append(attempt(5, "failed"))
    assert insight.spike_tripped(config, insight.error_rate(config, recent, now, None))
    # Resumed 10 minutes ago: attempts claimed before it do not count.
    assert insight.error_rate(config, recent, now, now - timedelta(minutes=10)).attempts == 0


def test_stalled_needs_eligible_work_free_slots_and_silence() -> None:
    now = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
    base = insight.HealthInputs(
        status="running",
        pause_reason=None,
        eligible_now=10,
        oldest_eligible_at=now - timedelta(minutes=5),
        waiting_window=0,
        waiting_retry=0,
        waiting_other=0,
        in_flight=0,
        effective_concurrency=5,
        dispatch_blocker=None,
        last_dial_at=now - timedelta(minutes=3),
        running_since=now - timedelta(hours=1),
        error=insight.ErrorRate(15, 0, 0),
        error_threshold=0.5,
        unhealthy_numbers=0,
        usable_numbers=2,
    )
    status, reasons = insight.health_status(base, now)
    assert status == "stalled"
    assert reasons[0].code == "no_recent_dials"
    assert reasons[0].count == 10
    assert insight.health_status(replace(base, last_dial_at=now - timedelta(seconds=30)), now)[0] == "healthy"
    full = insight.health_status(replace(base, in_flight=5, dispatch_blocker="campaign_concurrency_full"), now)
    assert full[0] == "degraded"
    assert full[1][0].code == "campaign_concurrency_full"
    assert insight.health_status(replace(base, eligible_now=0, waiting_window=3), now)[0] == "idle"


def test_failed_attempts_are_grouped_by_the_kind_of_error() -> None:
    now = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
    config = insight.FailureSpike(threshold=0.5, min_attempts=1, window_minutes=15)

    def failed(error: str | None) -> insight.RecentAttempt:
        return insight.RecentAttempt(
            ended_at=now - timedelta(minutes=1), outcome="failed", queued_at=now - timedelta(minutes=2), error=error
        )

    recent = [
        failed("twilio rate limited (HTTP 429, code 20429): Too Many Requests"),
        failed("twilio rate limited (HTTP 429, code 20429): again"),
        failed("twilio unavailable: HTTP 503"),
        failed(None),
        insight.RecentAttempt(ended_at=now, outcome="answered", queued_at=now, error=None),
    ]
    rate = insight.error_rate(config, recent, now, None)
    assert rate.kinds == (
        ("twilio rate limited", 2),
        ("twilio unavailable", 1),
        ("failed without an error message", 1),
    )
    assert insight.error_kind("simulated network failure") == "simulated network failure"
