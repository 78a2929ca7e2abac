"""The campaign lifecycle: one transition table and one function that applies it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Action(StrEnum):
    """What can happen to a campaign. The first four are API calls; the last two the system takes."""

    LAUNCH = "launch"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    START = "start"  # a scheduled campaign reaches scheduled_at
    COMPLETE = "complete"  # every task is terminal, or ends_at has passed


USER_ACTIONS: tuple[Action, ...] = (Action.LAUNCH, Action.PAUSE, Action.RESUME, Action.CANCEL)

S = CampaignStatus
A = Action

# (from, action) -> to. Launch goes to RUNNING for an immediate trigger; see ``transition``.
TRANSITIONS: dict[tuple[CampaignStatus, Action], CampaignStatus] = {
    (S.DRAFT, A.LAUNCH): S.RUNNING,
    (S.SCHEDULED, A.START): S.RUNNING,
    (S.SCHEDULED, A.PAUSE): S.PAUSED,
    (S.RUNNING, A.PAUSE): S.PAUSED,
    (S.PAUSED, A.RESUME): S.RUNNING,
    (S.SCHEDULED, A.CANCEL): S.CANCELLED,
    (S.RUNNING, A.CANCEL): S.CANCELLED,
    (S.PAUSED, A.CANCEL): S.CANCELLED,
    (S.RUNNING, A.COMPLETE): S.COMPLETED,
}

# Repeating an action whose result is the current state is a no-op, not an error.
NO_OPS: frozenset[tuple[CampaignStatus, Action]] = frozenset(
    {
        (S.RUNNING, A.LAUNCH),
        (S.SCHEDULED, A.LAUNCH),
        (S.PAUSED, A.PAUSE),
        (S.RUNNING, A.RESUME),
        (S.CANCELLED, A.CANCEL),
        (S.RUNNING, A.START),
        (S.COMPLETED, A.COMPLETE),
    }
)

TERMINAL: frozenset[CampaignStatus] = frozenset({S.COMPLETED, S.CANCELLED})

# Which fields may change in which state (PATCH). None means every field.
EDITABLE_FIELDS: dict[CampaignStatus, frozenset[str] | None] = {
    S.DRAFT: None,
    S.PAUSED: None,
    S.RUNNING: frozenset({"name", "priority", "concurrency_limit", "metadata"}),
    S.SCHEDULED: frozenset({"name", "priority", "concurrency_limit", "metadata"}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}


class InvalidTransition(Exception):
    def __init__(self, current: CampaignStatus, action: Action) -> None:
        super().__init__(f"cannot {action.value} a campaign that is {current.value}")
        self.current = current
        self.action = action


@dataclass(frozen=True)
class TransitionResult:
    status: CampaignStatus
    changed: bool


def transition(current: CampaignStatus, action: Action, *, waits_for_start: bool = False) -> TransitionResult:
    """Apply ``action`` to a campaign in ``current``.

    ``waits_for_start``: the campaign has a scheduled start still ahead, so launching (or resuming one that
    was paused before it started) leads to ``scheduled`` rather than ``running``.
    """
    if (current, action) in NO_OPS:
        return TransitionResult(current, changed=False)
    target = TRANSITIONS.get((current, action))
    if target is None:
        raise InvalidTransition(current, action)
    if action in (A.LAUNCH, A.RESUME) and waits_for_start:
        target = S.SCHEDULED
    return TransitionResult(target, changed=True)


def allowed_actions(current: CampaignStatus) -> list[str]:
    """The API actions that change a campaign in ``current`` (no-ops excluded)."""
    return [action.value for action in USER_ACTIONS if (current, action) in TRANSITIONS]
