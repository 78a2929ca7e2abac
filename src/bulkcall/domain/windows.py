"""Call windows: the weekly hours in which dialing is allowed, as configured on a campaign.

A window is local wall-clock time on one weekday, ``start`` to ``end`` (``HH:MM``; ``end`` may be ``24:00``).
An ``end`` earlier than ``start`` crosses midnight into the next day. The scheduling maths that uses them
(next eligible instant per zone) is in ``domain/schedule.py`` once the engine exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")


@dataclass(frozen=True)
class DayWindow:
    enabled: bool
    start_minute: int  # minutes after local midnight
    end_minute: int  # 1..1440; less than start_minute means the window crosses midnight

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minute <= self.start_minute


def default_windows() -> dict[str, dict[str, Any]]:
    """Mon–Fri 09:00–18:00, weekends off."""
    return {day: {"enabled": day not in ("sat", "sun"), "start": "09:00", "end": "18:00"} for day in DAYS}


def parse_minute(value: str) -> int:
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def validate_windows(raw: Any, field: str = "call_windows") -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """Check a ``call_windows`` object; return it normalised (every day present) and errors by field path."""
    errors: dict[str, list[str]] = {}
    if not isinstance(raw, dict):
        return {}, {field: ["must be an object keyed by day (mon..sun)"]}
    normalised = {day: {"enabled": False, "start": "09:00", "end": "18:00"} for day in DAYS}
    for day, spec in raw.items():
        path = f"{field}.{day}"
        if day not in DAYS:
            errors.setdefault(path, []).append("unknown day: use mon, tue, wed, thu, fri, sat, sun")
            continue
        if not isinstance(spec, dict):
            errors.setdefault(path, []).append("must be an object with enabled, start, end")
            continue
        unknown = set(spec) - {"enabled", "start", "end"}
        for key in sorted(unknown):
            errors.setdefault(f"{path}.{key}", []).append("Unknown field")
        enabled = spec.get("enabled", True)
        if not isinstance(enabled, bool):
            errors.setdefault(f"{path}.enabled", []).append("must be true or false")
        start, end = spec.get("start", "09:00"), spec.get("end", "18:00")
        for key, value in (("start", start), ("end", end)):
            if not isinstance(value, str) or not _TIME.match(value):
                errors.setdefault(f"{path}.{key}", []).append("must be HH:MM (00:00–23:59; 24:00 allowed as end)")
        if isinstance(start, str) and start == "24:00":
            errors.setdefault(f"{path}.start", []).append("24:00 is only allowed as an end")
        if (
            f"{path}.start" not in errors
            and f"{path}.end" not in errors
            and isinstance(start, str)
            and isinstance(end, str)
            and parse_minute(start) == parse_minute(end) % 1440
            and not (start == "00:00" and end == "24:00")
        ):
            errors.setdefault(path, []).append("start and end are equal: the window would be empty")
        normalised[day] = {"enabled": enabled, "start": start, "end": end}
    return normalised, errors


def day_windows(windows: dict[str, dict[str, Any]]) -> dict[str, DayWindow]:
    """Validated ``call_windows`` as minutes, for the scheduling maths."""
    return {
        day: DayWindow(
            enabled=bool(spec["enabled"]),
            start_minute=parse_minute(spec["start"]),
            end_minute=parse_minute(spec["end"]),
        )
        for day, spec in windows.items()
    }


def any_enabled(windows: dict[str, dict[str, Any]]) -> bool:
    return any(spec.get("enabled") for spec in windows.values())
