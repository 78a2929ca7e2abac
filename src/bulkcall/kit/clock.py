"""The clock is injected everywhere time matters, so tests and the demo can drive it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(UTC)


class ScaledClock:
    """Service time that runs ``rate`` times faster than wall time: ``start + (wall elapsed) × rate``.

    Wall time is read from ``time.monotonic`` so a system clock adjustment cannot make service time jump.
    ``set_rate`` changes the speed from this instant on without a jump (the demo keeps the clock at real
    speed while it sets up, then runs it fast).
    """

    def __init__(self, start: datetime, rate: float) -> None:
        if start.tzinfo is None:
            raise ValueError("ScaledClock needs an aware datetime")
        if rate < 0:
            raise ValueError("ScaledClock needs a rate of 0 or more")
        self._anchor = start.astimezone(UTC)
        self._anchor_wall = time.monotonic()
        self.rate = rate

    def now(self) -> datetime:
        return self._anchor + timedelta(seconds=(time.monotonic() - self._anchor_wall) * self.rate)

    def set_rate(self, rate: float) -> None:
        if rate < 0:
            raise ValueError("ScaledClock needs a rate of 0 or more")
        self._anchor = self.now()
        self._anchor_wall = time.monotonic()
        self.rate = rate
