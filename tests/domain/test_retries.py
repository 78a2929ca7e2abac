from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from bulkcall.domain.retries import Outcome, RetryPolicy, after_attempt


def test_answered_completes() -> None:
    assert after_attempt(RetryPolicy(), Outcome.ANSWERED, 1, 0).status == "completed"


def test_unknown_is_never_redialed() -> None:
    decision = after_attempt(RetryPolicy(max_retries=5), Outcome.UNKNOWN, 1, 0)
    assert decision.status == "failed"
    assert decision.retry_after is None


def test_busy_uses_its_own_delay() -> None:
    policy = RetryPolicy(retry_delay_minutes=60, retry_delays={"busy": 10})
    assert after_attempt(policy, Outcome.BUSY, 1, 0).retry_after == timedelta(minutes=10)
    assert after_attempt(policy, Outcome.NO_ANSWER, 1, 0).retry_after == timedelta(minutes=60)


def test_voicemail_is_retried_only_when_asked_and_up_to_its_cap() -> None:
    assert after_attempt(RetryPolicy(), Outcome.VOICEMAIL, 1, 1).status == "completed"
    policy = RetryPolicy(max_retries=5, retry_on_voicemail=True, max_voicemail_attempts=2)
    assert after_attempt(policy, Outcome.VOICEMAIL, 1, 1).status == "retry_pending"
    assert after_attempt(policy, Outcome.VOICEMAIL, 2, 2).status == "completed"


def test_budget_exhausted_fails() -> None:
    assert after_attempt(RetryPolicy(max_retries=2), Outcome.NO_ANSWER, 3, 0).status == "failed"


@given(
    max_retries=st.integers(0, 10),
    outcomes=st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=30),
    retry_on_voicemail=st.booleans(),
    voicemail_cap=st.none() | st.integers(1, 11),
)
def test_attempts_never_exceed_one_plus_max_retries(
    max_retries: int, outcomes: list[Outcome], retry_on_voicemail: bool, voicemail_cap: int | None
) -> None:
    policy = RetryPolicy(
        max_retries=max_retries, retry_on_voicemail=retry_on_voicemail, max_voicemail_attempts=voicemail_cap
    )
    attempts = voicemails = 0
    for outcome in outcomes:
        attempts += 1
        voicemails += outcome is Outcome.VOICEMAIL
        decision = after_attempt(policy, outcome, attempts, voicemails)
        if decision.status != "retry_pending":
            break
    assert attempts <= 1 + max_retries
    if voicemail_cap is not None and retry_on_voicemail:
        assert voicemails <= max(voicemail_cap, 1)
