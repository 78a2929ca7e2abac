"""``from`` / ``to`` date ranges (``YYYY-MM-DD``, inclusive, read in the campaign timezone) as UTC bounds.

One definition for analytics, the tasks API and the results export, so their totals reconcile: an attempt is
in the range when its ``ended_at`` falls in ``[start of from, start of to + 1 day)``, both starts being the first
instant of that local day in the campaign timezone. A local day need not begin at 00:00 (a DST gap at
midnight starts it at the transition) nor last 24 hours.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bulkcall.domain.schedule import first_instant
from bulkcall.kit.errors import ValidationFailed


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) whose local date in ``zone`` is ``day`` or later: midnight; the first of two
    midnights on a fall-back; the transition when a DST gap swallows midnight."""
    return first_instant(zone, day, 0)


def utc_bounds(date_from: date | None, date_to: date | None, timezone: str) -> tuple[datetime | None, datetime | None]:
    """``(lower, upper)`` in UTC for the inclusive local dates ``date_from``..``date_to`` of ``timezone``.

    An instant ``t`` is in the range when ``lower <= t < upper``; an omitted side is ``None`` (unbounded).
    """
    zone = ZoneInfo(timezone)
    lower = _start_or_none(date_from, zone)
    upper = _start_or_none(date_to + timedelta(days=1), zone) if date_to is not None and date_to < date.max else None
    return lower, upper


def _start_or_none(day: date | None, zone: ZoneInfo) -> datetime | None:
    """``day_start``, or None (unbounded) for no day or one at the edge of what ``datetime`` can hold."""
    if day is None:
        return None
    try:
        return day_start(day, zone)
    except OverflowError:
        return None


def check_range(date_from: date | None, date_to: date | None) -> None:
    """A reversed range (``to`` before ``from``) is a 422 on ``to``."""
    if date_from is not None and date_to is not None and date_to < date_from:
        raise ValidationFailed.single("to", f"must not be before from ({date_from.isoformat()})")
