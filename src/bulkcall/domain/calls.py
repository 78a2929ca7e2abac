"""A call's progress as providers report it: status events, in order, applied once.

Events may arrive twice or out of order (carriers retry callbacks, networks reorder them). An event is
applied only if it moves the attempt forward; anything at or behind the attempt's stage changes nothing.
"""

from __future__ import annotations

from enum import StrEnum


class CallStatus(StrEnum):
    """What a provider event says about a call."""

    INITIATED = "initiated"
    RINGING = "ringing"
    ANSWERED = "answered"
    COMPLETED = "completed"


class AttemptState(StrEnum):
    QUEUED = "queued"  # claimed; the request has not left
    DIALING = "dialing"  # the request may have left: never sent again
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    ENDED = "ended"


_STAGE: dict[str, int] = {
    AttemptState.QUEUED: 0,
    AttemptState.DIALING: 1,
    AttemptState.RINGING: 2,
    AttemptState.IN_PROGRESS: 3,
    AttemptState.ENDED: 4,
}
_TARGET: dict[CallStatus, AttemptState] = {
    CallStatus.INITIATED: AttemptState.DIALING,
    CallStatus.RINGING: AttemptState.RINGING,
    CallStatus.ANSWERED: AttemptState.IN_PROGRESS,
    CallStatus.COMPLETED: AttemptState.ENDED,
}

# Attempt states that hold a concurrency slot (everything before the end).
OPEN_STATES: frozenset[str] = frozenset(state for state in AttemptState if state is not AttemptState.ENDED)


def advance(current: str, status: CallStatus) -> AttemptState | None:
    """The attempt's new state after ``status``, or None when the event is stale (out of order)."""
    target = _TARGET[status]
    return target if _STAGE[target] > _STAGE[current] else None
