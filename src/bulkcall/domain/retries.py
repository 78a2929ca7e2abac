"""What happens to a task after an attempt: done, or retried after which delay. One attempt budget.

Per-outcome rules only choose the delay; ``1 + max_retries`` attempts is a hard cap whatever the mix of
outcomes. A result that never arrived (``unknown``) is never redialed automatically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum


class Outcome(StrEnum):
    ANSWERED = "answered"
    VOICEMAIL = "voicemail"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    REJECTED = "rejected"
    INVALID_NUMBER = "invalid_number"
    UNKNOWN = "unknown"


# Outcomes after which calling again cannot help (or might call someone twice).
FINAL_OUTCOMES: frozenset[Outcome] = frozenset(
    {Outcome.ANSWERED, Outcome.REJECTED, Outcome.INVALID_NUMBER, Outcome.UNKNOWN}
)
RETRYABLE_OUTCOMES: frozenset[Outcome] = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    retry_delay_minutes: int = 60
    retry_delays: Mapping[str, int] = field(default_factory=dict)
    retry_on_voicemail: bool = False
    max_voicemail_attempts: int | None = None

    @property
    def attempt_budget(self) -> int:
        return 1 + self.max_retries

    def delay_for(self, outcome: Outcome) -> timedelta:
        return timedelta(minutes=self.retry_delays.get(outcome.value, self.retry_delay_minutes))


@dataclass(frozen=True)
class Decision:
    """``retry_after`` set: wait that long, then dial again. Else the task ends with ``status``."""

    status: str  # completed | failed | retry_pending
    retry_after: timedelta | None
    reason: str


def after_attempt(policy: RetryPolicy, outcome: Outcome, attempts_made: int, voicemails: int) -> Decision:
    """Decide the task's next step; ``attempts_made`` and ``voicemails`` include this attempt."""
    if outcome is Outcome.ANSWERED:
        return Decision("completed", None, "answered")
    if outcome in FINAL_OUTCOMES:
        return Decision("failed", None, f"{outcome.value}: not retried")
    budget_left = attempts_made < policy.attempt_budget
    if outcome is Outcome.VOICEMAIL:
        voicemail_cap = policy.max_voicemail_attempts
        wants_retry = policy.retry_on_voicemail and (voicemail_cap is None or voicemails < voicemail_cap)
        if wants_retry and budget_left:
            return Decision("retry_pending", policy.delay_for(outcome), "voicemail: retrying")
        return Decision("completed", None, "voicemail reached")
    if budget_left:
        return Decision("retry_pending", policy.delay_for(outcome), f"{outcome.value}: retrying")
    return Decision("failed", None, f"{outcome.value}: attempt budget of {policy.attempt_budget} used")
