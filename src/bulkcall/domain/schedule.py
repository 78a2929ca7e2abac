"""When may a task be dialed? Windows in the callee's (or the campaign's) local time, as UTC intervals.

A window on local date D runs from the first instant whose wall clock reads ``start`` to the first instant
whose wall clock reads ``end`` (on D+1 when it crosses midnight or ends at 24:00). "First instant" makes DST
ordinary: a start inside the skipped hour begins when the clock jumps past it, and a time in the repeated
hour is taken on its first pass, so nothing is dialed twice. A call never starts in a window's last minute
(windows that touch, such as 24:00 and the next day's 00:00, are one window).
With several zones (a number that spans several), a task is eligible only where every zone's window is open.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bulkcall.domain.windows import DAYS, DayWindow, parse_minute

LAST_MINUTE = timedelta(minutes=1)
# Far enough to see every weekday twice and a DST change between two zones' weeks.
DEFAULT_HORIZON = timedelta(days=15)

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Eligibility:
    """``at``: the earliest dialable instant, or None if there is none before ``checked_until``."""

    at: datetime | None
    checked_until: datetime


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def first_instant(tz: ZoneInfo, day: date, minute_of_day: int) -> datetime:
    """The first UTC instant at which the wall clock in ``tz`` reads ``day`` + ``minute_of_day`` or later."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute_of_day)
    earliest = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    other = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    candidates = sorted({earliest, other})
    for candidate in candidates:
        if candidate.astimezone(tz).replace(tzinfo=None) == wall:
            return candidate
    # ``wall`` falls in a gap (the clock jumps over it): find when the clock passes it, to the second.
    low, high = candidates[0], candidates[-1]
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def zone_intervals(tz: ZoneInfo, windows: dict[str, DayWindow], start: datetime, end: datetime) -> list[Interval]:
    """Dialable UTC intervals of one zone that overlap [start, end), in order.

    Windows that touch (Monday until 24:00, Tuesday from 00:00) are one stretch of dialing; the last minute
    is removed from the end of each stretch, not from each day.
    """
    windows_open: list[Interval] = []
    # A week either side: a stretch of touching windows may begin before ``start`` or run past ``end``.
    first_day = start.astimezone(tz).date() - timedelta(days=8)
    last_day = end.astimezone(tz).date() + timedelta(days=8)
    day = first_day
    while day <= last_day:
        window = windows.get(DAYS[day.weekday()])
        if window is not None and window.enabled:
            opens = first_instant(tz, day, window.start_minute)
            end_day = day + timedelta(days=1) if window.crosses_midnight or window.end_minute == 1440 else day
            windows_open.append((opens, first_instant(tz, end_day, window.end_minute % 1440)))
        day += timedelta(days=1)
    intervals: list[Interval] = []
    for opens, closes in _merge(windows_open):
        closes -= LAST_MINUTE
        if closes > opens and closes > start and opens < end:
            intervals.append((max(opens, start), min(closes, end)))
    return intervals


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for low, high in sorted(intervals):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def intersect(first: Sequence[Interval], second: Sequence[Interval]) -> list[Interval]:
    result: list[Interval] = []
    i = j = 0
    while i < len(first) and j < len(second):
        low = max(first[i][0], second[j][0])
        high = min(first[i][1], second[j][1])
        if low < high:
            result.append((low, high))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return result


def dialable_intervals(
    zones: Sequence[str], windows: dict[str, DayWindow], start: datetime, end: datetime
) -> list[Interval]:
    """Where every zone's window is open, within [start, end)."""
    if not zones:
        return []
    result = zone_intervals(zone(zones[0]), windows, start, end)
    for name in zones[1:]:
        result = intersect(result, zone_intervals(zone(name), windows, start, end))
    return result


def next_eligible(
    zones: Sequence[str],
    windows: dict[str, DayWindow],
    after: datetime,
    *,
    not_before: datetime | None = None,
    ends_at: datetime | None = None,
    horizon: timedelta = DEFAULT_HORIZON,
) -> Eligibility:
    """The earliest instant ≥ ``after`` (and ≥ ``not_before``, < ``ends_at``) inside every zone's window.

    ``not_before`` carries ``scheduled_at`` and retry delays. An unknown zone name is the caller's to catch
    (``zone`` raises): callers fail closed on it, never open.
    """
    start = max(after, not_before) if not_before is not None else after
    end = start + horizon
    if ends_at is not None:
        end = min(end, ends_at)
    if end <= start:
        return Eligibility(at=None, checked_until=start)
    intervals = dialable_intervals(zones, windows, start, end)
    return Eligibility(at=intervals[0][0] if intervals else None, checked_until=end)


class WindowCalendar:
    """The dialable intervals of one zone key under one campaign's windows, computed a horizon at a time.

    The engine asks the same question (is this key open now, when does it open next, when does it close)
    for thousands of tasks that share a handful of keys; this answers each by bisection in a cached list.
    """

    def __init__(
        self,
        zones: Sequence[str],
        windows: dict[str, DayWindow],
        *,
        ends_at: datetime | None = None,
        horizon: timedelta = DEFAULT_HORIZON,
    ) -> None:
        for name in zones:
            zone(name)  # an unknown name raises here, so callers fail closed before asking anything
        self.zones = tuple(zones)
        self.windows = windows
        self.ends_at = ends_at
        self.horizon = horizon
        self._start: datetime | None = None
        self._end: datetime | None = None
        self._intervals: list[Interval] = []

    def _cover(self, instant: datetime) -> None:
        # Recompute when ``instant`` is outside the cached span or too close to its end to see a whole week.
        if (
            self._start is not None
            and self._end is not None
            and self._start <= instant <= self._end - timedelta(days=8)
        ):
            return
        self._start = instant
        self._end = instant + self.horizon
        self._intervals = dialable_intervals(self.zones, self.windows, self._start, self._end)

    def next_eligible(self, after: datetime, not_before: datetime | None = None) -> Eligibility:
        """Same answer as :func:`next_eligible` for these zones and windows, from the cache."""
        start = max(after, not_before) if not_before is not None else after
        limit = start + self.horizon if self.ends_at is None else min(start + self.horizon, self.ends_at)
        if limit <= start:
            return Eligibility(at=None, checked_until=start)
        self._cover(start)
        assert self._end is not None
        limit = min(limit, self._end)
        first = max(0, bisect_right(self._intervals, (start, start)) - 1)
        for low, high in self._intervals[first:]:
            if high <= start:
                continue
            candidate = max(low, start)
            return Eligibility(at=candidate if candidate < limit else None, checked_until=limit)
        return Eligibility(at=None, checked_until=limit)

    def is_open(self, instant: datetime) -> bool:
        return self.next_eligible(instant).at == instant

    def open_until(self, instant: datetime) -> datetime | None:
        """When the interval containing ``instant`` ends (None if closed at ``instant``)."""
        if not self.is_open(instant):
            return None
        for low, high in self._intervals:
            if low <= instant < high:
                return high if self.ends_at is None else min(high, self.ends_at)
        return None


def windows_key(windows: dict[str, dict[str, object]]) -> tuple[tuple[str, bool, str, str], ...]:
    """A hashable form of a campaign's ``call_windows`` (for caching calendars)."""
    return tuple(
        (day, bool(spec.get("enabled")), str(spec.get("start")), str(spec.get("end")))
        for day, spec in sorted(windows.items())
    )


def zones_of(zone_key: str | None, *, mode: str, campaign_timezone: str) -> tuple[str, ...]:
    """The zones whose windows apply to a task: its own (``|``-joined key), or the campaign's in
    ``campaign_timezone`` mode or when the task has none."""
    if mode == "campaign_timezone" or not zone_key:
        return (campaign_timezone,)
    return tuple(zone_key.split("|"))


@lru_cache(maxsize=4096)
def _cached_calendar(
    zones: tuple[str, ...], windows: tuple[tuple[str, bool, str, str], ...], ends_at: datetime | None
) -> WindowCalendar | None:
    rules = {
        day: DayWindow(enabled=enabled, start_minute=parse_minute(start), end_minute=parse_minute(end))
        for day, enabled, start, end in windows
    }
    try:
        return WindowCalendar(zones, rules, ends_at=ends_at)
    except (ZoneInfoNotFoundError, ValueError):
        return None  # an unknown zone: the caller fails closed


def calendar_for(
    zone_key: str | None,
    *,
    windows: dict[str, dict[str, object]],
    mode: str,
    campaign_timezone: str,
    ends_at: datetime | None,
) -> WindowCalendar | None:
    """The (cached) calendar of a task's zone key under a campaign's settings; None for an unknown zone."""
    zones = zones_of(zone_key, mode=mode, campaign_timezone=campaign_timezone)
    return _cached_calendar(zones, windows_key(windows), ends_at)
