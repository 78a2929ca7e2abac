"""When may a task be dialed? Windows in the callee's (or the campaign's) local time, as UTC intervals.

A window on local date D runs from the first instant whose wall clock reads ``start`` to the first instant
whose wall clock reads ``end`` (on D+1 when it crosses midnight or ends at 24:00). "First instant" makes DST
ordinary: a start inside the skipped hour begins when the clock jumps past it, and a time in the repeated
hour is taken on its first pass, so nothing is dialed twice. A call never starts in a window's last minute.
With several zones (a number that spans several), a task is eligible only where every zone's window is open.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from bulkcall.domain.windows import DAYS, DayWindow

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
    """Dialable UTC intervals of one zone that overlap [start, end), in order (last minute removed)."""
    intervals: list[Interval] = []
    first_day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date() + timedelta(days=1)
    day = first_day
    while day <= last_day:
        window = windows.get(DAYS[day.weekday()])
        if window is not None and window.enabled:
            opens = first_instant(tz, day, window.start_minute)
            end_day = day + timedelta(days=1) if window.crosses_midnight or window.end_minute == 1440 else day
            closes = first_instant(tz, end_day, window.end_minute % 1440) - LAST_MINUTE
            if closes > opens and closes > start and opens < end:
                intervals.append((max(opens, start), min(closes, end)))
        day += timedelta(days=1)
    return _merge(intervals)


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
