"""Planning maths: how long a campaign will take under its windows and limits, and who is callable when.

Everything here is per *zone key* (the zones whose windows apply to a group of contacts, as the engine uses
them), never per contact: the callers group the audience first.

The duration model (:func:`estimate`) is a fluid simulation of the engine, stepped through time:

- a call holds a line for ``handle_seconds`` (ringing and talking, averaged over every outcome), so with
  ``concurrency`` lines and ``calls_per_second`` the campaign starts at most
  ``min(concurrency / handle_seconds, calls_per_second)`` calls a second, shared by the zone keys whose
  window is open (in proportion to the work each has ready, as the engine's claims take due tasks in turn);
- a zone key starts calls only inside its dialable intervals (``domain/schedule.py``: DST, windows across
  midnight, no start in a window's last minute); a call started before the window closes runs on;
- an attempt is followed by another with probability ``retry_rate`` while the attempt budget
  (``1 + max_retries``) lasts; the retry becomes due ``retry_delay`` after the attempt ended and waits behind
  earlier attempt numbers of its zone key (due tasks are taken oldest first, and first attempts are older);
- the campaign is done when less than half an attempt of expected work is left (the fluid work of retries
  decays geometrically and never quite reaches zero); the duration runs to the end of the last call, with
  the model's clock moved back by the head start the engine gets from filling every free line at once.

The step is one call length (at least a minute's worth), coarser for long campaigns so the loop stays near
``TARGET_STEPS``; the answer is good to about one step (``Estimate.resolution``), which is also how far two
estimates with different steps may disagree on which is shorter.

Contacts whose zone key has no dialable hour in a week never finish: they are reported, not simulated.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bulkcall.domain.schedule import Interval, dialable_intervals, first_instant, zone
from bulkcall.domain.windows import DayWindow

WEEK = timedelta(days=7)
# How much expected work (attempts) may be left for the campaign to count as done. Less a hair: work that is
# exactly half an attempt must not count as done when float sums land a rounding error below it and not
# when they land on it (2 contacts with half retried twice leave exactly 0.5 either way).
DONE_BELOW = 0.5 - 1e-9
# Longest duration the model follows before answering "not within this span".
MAX_SPAN = timedelta(days=3 * 365)
# The simulation takes about this many steps over the campaign's likely span (more: slower, barely better).
TARGET_STEPS = 4000
MAX_STEP = timedelta(minutes=15)
_CHUNK = timedelta(days=14)


@dataclass(frozen=True)
class ZoneDemand:
    """``contacts`` whose calls follow the windows of every zone in ``zones`` (a task's zone key)."""

    zones: tuple[str, ...]
    contacts: int


@dataclass(frozen=True)
class Workload:
    """What one contact costs: ``handle_seconds`` per attempt, and how often an attempt is followed by another."""

    handle_seconds: float
    retry_rate: float
    max_retries: int
    retry_delay: timedelta = timedelta(0)

    @property
    def attempts_per_contact(self) -> float:
        return expected_attempts(self.retry_rate, self.max_retries)


@dataclass(frozen=True)
class Estimate:
    """``duration`` None: the callable audience does not finish within ``MAX_SPAN`` (or cannot start at all)."""

    duration: timedelta | None
    completion_at: datetime | None
    calls_per_hour: float
    never_callable: int  # contacts whose zone key has no dialable hour in a week
    resolution: timedelta = timedelta(0)  # the simulation's step: the duration is good to about this much


def expected_attempts(retry_rate: float, max_retries: int) -> float:
    """Attempts per contact when each attempt is followed by another with ``retry_rate``: 1 + q + ... + q^r."""
    return sum(retry_rate**k for k in range(max_retries + 1))


def retry_rate_for(attempts_per_contact: float, max_retries: int) -> float:
    """The retry rate that gives ``attempts_per_contact`` (the inverse of :func:`expected_attempts`)."""
    target = min(max(attempts_per_contact, 1.0), float(max_retries + 1))
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if expected_attempts(middle, max_retries) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def call_rate(concurrency: int, calls_per_second: float | None, handle_seconds: float) -> float:
    """Calls started per second with every line busy: lines over handle time, capped by the CPS ceiling."""
    rate = concurrency / max(handle_seconds, 1.0)
    if calls_per_second is not None:
        rate = min(rate, calls_per_second)
    return max(rate, 0.0)


class ZoneTimeline:
    """The dialable intervals of one zone key from ``start`` on, computed a chunk at a time, read forwards."""

    def __init__(self, zones: Sequence[str], windows: dict[str, DayWindow], start: datetime) -> None:
        self.zones = tuple(zones)
        self.windows = windows
        self._until = start
        self._intervals: list[Interval] = []
        self._cursor = 0

    def _extend(self, until: datetime) -> None:
        while self._until < until:
            end = self._until + _CHUNK
            for low, high in dialable_intervals(self.zones, self.windows, self._until, end):
                if self._intervals and low <= self._intervals[-1][1]:
                    self._intervals[-1] = (self._intervals[-1][0], max(high, self._intervals[-1][1]))
                else:
                    self._intervals.append((low, high))
            self._until = end

    def open_seconds(self, low: datetime, high: datetime) -> float:
        """Seconds of [low, high) inside the intervals; ``low`` never goes backwards between calls."""
        self._extend(high)
        while self._cursor < len(self._intervals) and self._intervals[self._cursor][1] <= low:
            self._cursor += 1
        total = 0.0
        for opens, closes in self._intervals[self._cursor :]:
            if opens >= high:
                break
            total += (min(closes, high) - max(opens, low)).total_seconds()
        return max(total, 0.0)

    def next_open(self, instant: datetime, limit: datetime) -> datetime | None:
        """The first instant ≥ ``instant`` inside an interval, or None before ``limit``."""
        while True:
            self._extend(min(instant + _CHUNK, limit))
            for opens, closes in self._intervals[self._cursor :]:
                if closes > instant:
                    return max(opens, instant)
            if self._until >= limit:
                return None


def weekly_hours(zones: Sequence[str], windows: dict[str, DayWindow], start: datetime) -> float:
    """Hours in the week from ``start`` at which a call may start for this zone key."""
    intervals = dialable_intervals(zones, windows, start, start + WEEK)
    return sum((high - low).total_seconds() for low, high in intervals) / 3600


@dataclass
class _Zone:
    timeline: ZoneTimeline
    ready: list[float]  # attempts due now, by attempt number (0 = first attempt)
    releases: deque[tuple[datetime, int, float]] = field(default_factory=deque)  # (due at, attempt number, amount)

    def work(self) -> float:
        return sum(self.ready) + sum(amount for _, _, amount in self.releases)

    def release_until(self, instant: datetime) -> None:
        while self.releases and self.releases[0][0] <= instant:
            _, number, amount = self.releases.popleft()
            self.ready[number] += amount


def estimate(
    demands: Sequence[ZoneDemand],
    windows: dict[str, DayWindow],
    *,
    start: datetime,
    concurrency: int,
    calls_per_second: float | None,
    workload: Workload,
) -> Estimate:
    """How long the audience takes from ``start`` (see the module docstring for the model)."""
    rate = call_rate(concurrency, calls_per_second, workload.handle_seconds)
    handle = timedelta(seconds=max(workload.handle_seconds, 0.0))
    hours = {d.zones: weekly_hours(d.zones, windows, start) for d in demands if d.contacts > 0}
    never = sum(d.contacts for d in demands if d.contacts > 0 and hours[d.zones] <= 0)
    live = [d for d in demands if d.contacts > 0 and hours[d.zones] > 0]
    total_attempts = sum(d.contacts for d in live) * workload.attempts_per_contact
    if total_attempts < DONE_BELOW:
        if never:  # nobody callable at all: no completion, not an instant one
            return Estimate(None, None, rate * 3600, never)
        return Estimate(timedelta(0), start, rate * 3600, never)
    if rate <= 0 or total_attempts / rate > MAX_SPAN.total_seconds():
        return Estimate(None, None, rate * 3600, never)  # not even dialing without a pause would finish
    budget = workload.max_retries + 1
    zones: list[_Zone] = []
    for demand in live:
        ready = [0.0] * budget
        ready[0] = float(demand.contacts)
        zones.append(_Zone(ZoneTimeline(demand.zones, windows, start), ready))
    # The step: a call's length, or coarser for long campaigns so the loop stays near TARGET_STEPS.
    open_share = sum(d.contacts * hours[d.zones] for d in live) / (168 * sum(d.contacts for d in live))
    likely_span = total_attempts / rate / max(open_share, 1e-3)
    seconds = max(min(workload.handle_seconds, 60.0), likely_span / TARGET_STEPS, 1.0)
    step = timedelta(seconds=min(seconds, MAX_STEP.total_seconds()))
    limit = start + MAX_SPAN
    now = start
    last_end = start
    capacity = rate * step.total_seconds()
    # The engine fills every free line at once where the fluid model starts calls at ``rate``: a busy stretch
    # of real dialing runs this far ahead of the model's (a burst of lines, or of one second's CPS tokens).
    burst = concurrency if calls_per_second is None else min(concurrency, max(1.0, calls_per_second))
    lead = timedelta(seconds=burst / rate)
    while now < limit:
        for item in zones:
            item.release_until(now)
        remaining = sum(item.work() for item in zones)
        if remaining < DONE_BELOW:
            return Estimate(last_end - start, last_end, rate * 3600, never, step)
        wants: list[float] = []
        for item in zones:
            ready_now = sum(item.ready)
            if ready_now <= 0:
                wants.append(0.0)
                continue
            open_for = item.timeline.open_seconds(now, now + step)
            wants.append(min(ready_now, rate * open_for))
        wanted = sum(wants)
        if wanted <= 0:
            now = _next_event(zones, now, limit)
            continue
        scale = min(1.0, capacity / wanted)
        started = 0.0
        for item, want in zip(zones, wants, strict=True):
            take = want * scale
            started += take
            _take(item, take, now + step / 2 + handle + workload.retry_delay, workload.retry_rate)
        used = step * min(1.0, started / capacity) - lead
        last_end = max(last_end, now + max(used, timedelta(0)) + handle)
        now += step
    return Estimate(None, None, rate * 3600, never, step)


def _take(item: _Zone, amount: float, retry_due: datetime, retry_rate: float) -> None:
    """Start ``amount`` attempts of a zone key, oldest attempt numbers first; queue their retries."""
    budget = len(item.ready)
    for number in range(budget):
        if amount <= 0:
            break
        taken = min(amount, item.ready[number])
        item.ready[number] -= taken
        amount -= taken
        if number + 1 < budget and taken * retry_rate > 0:
            item.releases.append((retry_due, number + 1, taken * retry_rate))


def _next_event(zones: Sequence[_Zone], now: datetime, limit: datetime) -> datetime:
    """Nothing can start now: the next instant a ready zone opens or a retry falls due."""
    candidates: list[datetime] = []
    for item in zones:
        if sum(item.ready) > 0:
            opens = item.timeline.next_open(now, limit)
            if opens is not None:
                candidates.append(opens)
        if item.releases:
            candidates.append(item.releases[0][0])
    following = min(candidates, default=limit)
    return max(following, now + timedelta(seconds=1))


# -- who is callable when ---------------------------------------------------------------------------------------


def week_start(instant: datetime, campaign_timezone: str) -> datetime:
    """Monday 00:00 (campaign time) of the week holding ``instant``, as UTC."""
    tz = zone(campaign_timezone)
    local = instant.astimezone(tz)
    monday = local.date() - timedelta(days=local.weekday())
    return first_instant(tz, monday, 0)


def callable_grid(
    demands: Sequence[ZoneDemand],
    windows: dict[str, DayWindow],
    campaign_timezone: str,
    at: datetime,
    *,
    audience: int | None = None,
) -> list[list[float]]:
    """7 rows (Mon..Sun) × 24 hours of the campaign timezone, in the week holding ``at``.

    Cell (d, h) is the share of the audience callable during that campaign-local hour, averaged over the hour:
    Σ contacts × (seconds of the hour inside their zone key's dialable intervals) / 3600 / all contacts. An
    hour the campaign's clock skips (DST) is 0; a repeated hour covers both passes.
    """
    tz = zone(campaign_timezone)
    monday = week_start(at, campaign_timezone).astimezone(tz).date()
    bounds: list[datetime] = []
    for day in range(8):
        for hour in range(24):
            bounds.append(first_instant(tz, monday + timedelta(days=day), hour * 60))
            if day == 7:
                break
    total = audience if audience is not None else sum(d.contacts for d in demands)
    grid = [[0.0] * 24 for _ in range(7)]
    if total <= 0:
        return grid
    begin, end = bounds[0], bounds[-1]
    for demand in demands:
        if demand.contacts <= 0:
            continue
        intervals = dialable_intervals(demand.zones, windows, begin, end)
        for cell in range(7 * 24):
            low, high = bounds[cell], bounds[cell + 1]
            length = (high - low).total_seconds()
            if length <= 0:
                continue
            covered = sum(
                (min(high, closes) - max(low, opens)).total_seconds()
                for opens, closes in intervals
                if opens < high and closes > low
            )
            if covered > 0:
                grid[cell // 24][cell % 24] += demand.contacts * covered / length
    return [[round(value / total, 4) for value in row] for row in grid]


def utc_offset(zone_name: str, at: datetime) -> str:
    """``+05:30`` style offset of a zone at ``at``."""
    offset = at.astimezone(zone(zone_name)).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_time(zone_name: str, at: datetime) -> str:
    """Wall-clock time in a zone at ``at``, ISO 8601 with its offset."""
    return at.astimezone(zone(zone_name)).isoformat(timespec="seconds")


def ceil_hours(value: timedelta | None) -> float | None:
    return None if value is None else math.ceil(value.total_seconds() / 36) / 100


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
