"""Runtime insight rules: quarter-hour buckets, talk-time bins and their median, the failure-spike breaker and
the budget cap (read from a campaign's ``metadata``), and how dispatch health names a campaign's state.

Buckets are UTC quarter-hours (seconds since the epoch // 900). Every time zone in use today has an offset
that is a multiple of 15 minutes, so a campaign-local day or hour is a whole run of buckets in any zone, and
figures kept per bucket can be read in whatever timezone the campaign has at the time of reading.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from bulkcall.domain.schedule import zone

BUCKET_SECONDS = 900
OUTCOMES = ("answered", "voicemail", "no_answer", "busy", "failed", "rejected", "invalid_number", "unknown")
NO_PREVIOUS = 0  # ``prev_bucket`` of a task's first ended attempt


def bucket_of(instant: datetime) -> int:
    return math.floor(instant.timestamp()) // BUCKET_SECONDS


def bucket_start(bucket: int) -> datetime:
    return datetime.fromtimestamp(bucket * BUCKET_SECONDS, UTC)


def _ceil_bucket(instant: datetime) -> int:
    return -(-math.floor(instant.timestamp()) // BUCKET_SECONDS)


def bucket_bounds(lower: datetime | None, upper: datetime | None) -> tuple[int | None, int | None]:
    """Buckets ``[lo, hi)`` covering the instants ``[lower, upper)`` (``domain/date_ranges.utc_bounds``); exact
    because every zone's days start on a quarter-hour. ``None`` is unbounded."""
    return (None if lower is None else _ceil_bucket(lower)), (None if upper is None else _ceil_bucket(upper))


def local_slot(timezone: str, bucket: int) -> tuple[date, int]:
    """The campaign-local date and hour (0..23) a bucket falls in."""
    local = bucket_start(bucket).astimezone(zone(timezone))
    return local.date(), local.hour


# -- talk time ----------------------------------------------------------------------------------------------

# Bins: 5 s wide below 10 minutes, 1 minute wide to an hour, 10 minutes wide to 6 hours, then one open bin.
_FINE, _FINE_END = 5, 600
_MID, _MID_END = 60, 3600
_COARSE, _COARSE_END = 600, 21600
_FINE_BINS = _FINE_END // _FINE
_MID_BINS = (_MID_END - _FINE_END) // _MID
_COARSE_BINS = (_COARSE_END - _MID_END) // _COARSE
LAST_BIN = _FINE_BINS + _MID_BINS + _COARSE_BINS


def talk_bin(seconds: float) -> int:
    value = max(0.0, seconds)
    if value < _FINE_END:
        return int(value // _FINE)
    if value < _MID_END:
        return _FINE_BINS + int((value - _FINE_END) // _MID)
    if value < _COARSE_END:
        return _FINE_BINS + _MID_BINS + int((value - _MID_END) // _COARSE)
    return LAST_BIN


def bin_bounds(index: int) -> tuple[float, float]:
    """``[low, high)`` seconds of a bin (the open last bin is given as ``[6 h, 6 h]``)."""
    if index < _FINE_BINS:
        return index * _FINE, (index + 1) * _FINE
    index -= _FINE_BINS
    if index < _MID_BINS:
        return _FINE_END + index * _MID, _FINE_END + (index + 1) * _MID
    index -= _MID_BINS
    if index < _COARSE_BINS:
        return _MID_END + index * _COARSE, _MID_END + (index + 1) * _COARSE
    return _COARSE_END, _COARSE_END


def histogram_median(counts: Mapping[int, int]) -> float | None:
    """The median from bin counts: the middle call's (or the two middle calls') bin midpoint.

    So it is within half a bin of the true median: 2.5 s below 10 minutes, 30 s to an hour.
    """
    total = sum(counts.values())
    if total <= 0:
        return None
    ranks = (total // 2, total // 2 + 1) if total % 2 == 0 else (total // 2 + 1,)
    values: list[float] = []
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        low, high = bin_bounds(index)
        while len(values) < len(ranks) and seen >= ranks[len(values)]:
            values.append((low + high) / 2)
    return sum(values) / len(values)


# -- the breaker and the budget -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureSpike:
    """Pause when at least ``min_attempts`` of the campaign's recent attempts ended in the last
    ``window_minutes`` and the share of them that ended ``failed`` (a carrier or provider error) is at least
    ``threshold``. Recent = the campaign's last ``RECENT_ATTEMPTS`` attempts, ended since it last resumed."""

    enabled: bool = True
    threshold: float = 0.5
    min_attempts: int = 20
    window_minutes: int = 15


RECENT_ATTEMPTS = 200


@dataclass(frozen=True)
class Guards:
    failure_spike: FailureSpike
    budget_cap: Decimal | None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        found = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return found if found.is_finite() else None


def guard_problems(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """Problems with ``metadata.failure_spike`` / ``metadata.budget_cap``, by field path (empty: fine)."""
    problems: dict[str, str] = {}
    meta = metadata or {}
    if "budget_cap" in meta and meta["budget_cap"] is not None:
        cap = _number(meta["budget_cap"])
        if cap is None or cap < 0:
            problems["metadata.budget_cap"] = "must be a number (or numeric string) of at least 0, or null"
    spike = meta.get("failure_spike")
    if spike is None or isinstance(spike, bool):
        return problems
    if not isinstance(spike, Mapping):
        problems["metadata.failure_spike"] = "must be an object, true/false or null"
        return problems
    allowed = {"threshold", "min_attempts", "window_minutes", "enabled"}
    for key in spike:
        if key not in allowed:
            problems[f"metadata.failure_spike.{key}"] = "Unknown field"
    threshold = spike.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1
    ):
        problems["metadata.failure_spike.threshold"] = "must be a number in (0, 1]"
    for key, low, high in (("min_attempts", 1, RECENT_ATTEMPTS), ("window_minutes", 1, 1440)):
        value = spike.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            problems[f"metadata.failure_spike.{key}"] = f"must be an integer from {low} to {high}"
    enabled = spike.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        problems["metadata.failure_spike.enabled"] = "must be true or false"
    return problems


def guards(metadata: Mapping[str, Any] | None) -> Guards:
    """The campaign's breaker and cap; a value that does not validate falls back to the default (never raises:
    campaigns written before validation existed still run)."""
    meta = metadata or {}
    problems = guard_problems(meta)
    cap = None if "metadata.budget_cap" in problems else _number(meta.get("budget_cap"))
    spike = meta.get("failure_spike")
    default = FailureSpike()
    if spike is False:
        return Guards(FailureSpike(enabled=False), cap)
    if not isinstance(spike, Mapping):
        return Guards(default, cap)

    def pick(key: str, fallback: Any) -> Any:
        bad = any(path == f"metadata.failure_spike.{key}" for path in problems)
        value = spike.get(key)
        return fallback if bad or value is None else value

    return Guards(
        FailureSpike(
            enabled=bool(pick("enabled", True)),
            threshold=float(pick("threshold", default.threshold)),
            min_attempts=int(pick("min_attempts", default.min_attempts)),
            window_minutes=int(pick("window_minutes", default.window_minutes)),
        ),
        cap,
    )


@dataclass(frozen=True)
class RecentAttempt:
    ended_at: datetime | None
    outcome: str | None
    queued_at: datetime
    phone_number_id: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ErrorRate:
    window_minutes: int
    attempts: int
    failed: int
    # Failed attempts per kind of error (``error_kind``), most frequent first.
    kinds: tuple[tuple[str, int], ...] = ()

    @property
    def rate(self) -> float | None:
        return None if self.attempts == 0 else self.failed / self.attempts


def error_rate(
    config: FailureSpike, recent: Sequence[RecentAttempt], now: datetime, since: datetime | None
) -> ErrorRate:
    """Failed share of the recent attempts that ended in the window (and were claimed after ``since``)."""
    start = now - timedelta(minutes=config.window_minutes)
    counted = [
        a for a in recent if a.ended_at is not None and a.ended_at >= start and (since is None or a.queued_at >= since)
    ]
    failed = [a for a in counted if a.outcome == "failed"]
    kinds = Counter(error_kind(a.error) for a in failed)
    return ErrorRate(config.window_minutes, len(counted), len(failed), tuple(kinds.most_common()))


def error_kind(error: str | None) -> str:
    """What went wrong, without the particulars: an attempt's ``error`` up to its first ``(`` or ``:``
    (providers start their errors with a fixed phrase, e.g. ``twilio rate limited (HTTP 429, ...)``)."""
    if not error:
        return "failed without an error message"
    return re.split(r"[(:]", error, maxsplit=1)[0].strip() or error[:80]


def spike_tripped(config: FailureSpike, rate: ErrorRate) -> bool:
    return (
        config.enabled
        and rate.attempts >= config.min_attempts
        and rate.rate is not None
        and rate.rate >= config.threshold
    )


def budget_reached(cap: Decimal | None, spent: Decimal) -> bool:
    return cap is not None and spent >= cap


# -- dispatch health ----------------------------------------------------------------------------------------

STALL_AFTER = timedelta(minutes=2)
UNHEALTHY_CONSECUTIVE_FAILURES = 5
UNHEALTHY_ANSWER_RATE = 0.05  # with at least this many attempts over 24 h:
UNHEALTHY_MIN_ATTEMPTS = 50
# Degraded from half the breaker's threshold, once a few attempts count.
DEGRADED_MIN_ATTEMPTS = 5


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    count: int


@dataclass(frozen=True)
class HealthInputs:
    status: str  # the campaign's
    pause_reason: str | None
    eligible_now: int
    oldest_eligible_at: datetime | None
    waiting_window: int
    waiting_retry: int
    waiting_other: int
    in_flight: int
    effective_concurrency: int
    dispatch_blocker: str | None
    last_dial_at: datetime | None
    running_since: datetime | None
    error: ErrorRate
    error_threshold: float
    unhealthy_numbers: int
    usable_numbers: int


def health_status(inputs: HealthInputs, now: datetime) -> tuple[str, list[Reason]]:
    """``not_running``, ``idle``, ``stalled``, ``degraded`` or ``healthy``, with the reasons that say why.

    Stalled: work is eligible now, there is free capacity and no limit the engine reported, yet no call was
    dialed (or claimed) for ``STALL_AFTER`` and the oldest eligible task has waited at least that long.
    """
    reasons: list[Reason] = []
    if inputs.status != "running":
        why = f"campaign is {inputs.status}"
        if inputs.status == "paused" and inputs.pause_reason:
            why += f" ({inputs.pause_reason})"
        return "not_running", [Reason(f"campaign_{inputs.status}", why, 0)]
    if inputs.usable_numbers == 0:
        reasons.append(Reason("no_usable_number", "no active, unflagged caller number in the pool", 0))
    if inputs.unhealthy_numbers:
        reasons.append(
            Reason(
                "numbers_unhealthy",
                "caller numbers with repeated failures or a very low answer rate",
                inputs.unhealthy_numbers,
            )
        )
    rate = inputs.error.rate
    if rate is not None and inputs.error.attempts >= DEGRADED_MIN_ATTEMPTS and rate >= inputs.error_threshold / 2:
        reasons.append(
            Reason(
                "high_error_rate",
                f"{inputs.error.failed} of the last {inputs.error.attempts} attempts "
                f"in {inputs.error.window_minutes} min failed",
                inputs.error.failed,
            )
        )
        # Which errors: so an operator sees "twilio rate limited" rather than only a rate.
        reasons.extend(Reason("provider_error", kind, count) for kind, count in inputs.error.kinds[:5])
    free = inputs.effective_concurrency - inputs.in_flight
    if inputs.eligible_now > 0 and inputs.dispatch_blocker in {"no_eligible_number", "cps_throttled"}:
        reasons.append(
            Reason(inputs.dispatch_blocker, f"eligible tasks held back: {inputs.dispatch_blocker}", inputs.eligible_now)
        )
    elif inputs.eligible_now > 0 and free <= 0:
        reasons.append(
            Reason(
                inputs.dispatch_blocker or "concurrency_full",
                "every call slot is in use; eligible tasks wait",
                inputs.eligible_now,
            )
        )
    quiet_since = inputs.last_dial_at or inputs.running_since
    oldest_wait = None if inputs.oldest_eligible_at is None else now - inputs.oldest_eligible_at
    stalled = (
        inputs.eligible_now > 0
        and free > 0
        and inputs.dispatch_blocker is None
        and inputs.usable_numbers > 0
        and (quiet_since is None or now - quiet_since >= STALL_AFTER)
        and oldest_wait is not None
        and oldest_wait >= STALL_AFTER
    )
    if stalled:
        last = "never" if inputs.last_dial_at is None else f"{int((now - inputs.last_dial_at).total_seconds())} s ago"
        reasons.insert(
            0,
            Reason(
                "no_recent_dials",
                f"{inputs.eligible_now} tasks are eligible and {free} call slots are free, but the last dial was "
                f"{last}: is a worker running (bulkcall serve or worker)?",
                inputs.eligible_now,
            ),
        )
        return "stalled", reasons
    if reasons:
        return "degraded", reasons
    if inputs.eligible_now == 0 and inputs.in_flight == 0:
        waiting = inputs.waiting_window + inputs.waiting_retry + inputs.waiting_other
        if inputs.waiting_window:
            reasons.append(Reason("waiting_window", "tasks wait for their call window to open", inputs.waiting_window))
        if inputs.waiting_retry:
            reasons.append(Reason("waiting_retry", "tasks wait for their retry delay", inputs.waiting_retry))
        if inputs.waiting_other:
            reasons.append(
                Reason("waiting_other", "tasks wait for another reason (see the tasks' blocker)", inputs.waiting_other)
            )
        if not waiting:
            reasons.append(Reason("nothing_to_dial", "no task is waiting", 0))
        return "idle", reasons
    if inputs.in_flight == 0:
        reasons.append(
            Reason("dispatch_pending", "eligible tasks wait for the next dispatch round", inputs.eligible_now)
        )
    else:
        reasons.append(Reason("dialing", "calls are being placed", inputs.in_flight))
    return "healthy", reasons


def ordered_counts(items: Iterable[tuple[str, int]]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for outcome, count in items:
        counts[outcome] = counts.get(outcome, 0) + count
    return counts
