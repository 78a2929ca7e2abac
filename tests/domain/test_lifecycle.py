"""The campaign transition table: each transition, no-ops, refusals, and a random walk that never escapes it."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bulkcall.domain.lifecycle import (
    NO_OPS,
    TERMINAL,
    TRANSITIONS,
    Action,
    CampaignStatus,
    InvalidTransition,
    allowed_actions,
    transition,
)

S = CampaignStatus
A = Action


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        (S.DRAFT, A.LAUNCH, S.RUNNING),
        (S.SCHEDULED, A.START, S.RUNNING),
        (S.RUNNING, A.PAUSE, S.PAUSED),
        (S.SCHEDULED, A.PAUSE, S.PAUSED),
        (S.PAUSED, A.RESUME, S.RUNNING),
        (S.RUNNING, A.CANCEL, S.CANCELLED),
        (S.PAUSED, A.CANCEL, S.CANCELLED),
        (S.SCHEDULED, A.CANCEL, S.CANCELLED),
        (S.RUNNING, A.COMPLETE, S.COMPLETED),
    ],
)
def test_each_transition_moves_to_its_target(current: S, action: A, expected: S) -> None:
    result = transition(current, action)
    assert result.status is expected
    assert result.changed


def test_launch_with_a_scheduled_trigger_goes_to_scheduled() -> None:
    assert transition(S.DRAFT, A.LAUNCH, waits_for_start=True).status is S.SCHEDULED


def test_resuming_a_campaign_paused_before_its_start_goes_back_to_scheduled() -> None:
    assert transition(S.PAUSED, A.RESUME, waits_for_start=True).status is S.SCHEDULED


@pytest.mark.parametrize(("current", "action"), sorted(NO_OPS))
def test_repeating_an_action_is_a_no_op(current: S, action: A) -> None:
    result = transition(current, action)
    assert result.status is current
    assert not result.changed


@pytest.mark.parametrize(
    ("current", "action"),
    [
        (S.DRAFT, A.PAUSE),
        (S.DRAFT, A.RESUME),
        (S.DRAFT, A.CANCEL),
        (S.PAUSED, A.LAUNCH),
        (S.COMPLETED, A.RESUME),
        (S.COMPLETED, A.CANCEL),
        (S.CANCELLED, A.RESUME),
        (S.CANCELLED, A.LAUNCH),
        (S.PAUSED, A.COMPLETE),
    ],
)
def test_illegal_actions_raise_invalid_transition(current: S, action: A) -> None:
    with pytest.raises(InvalidTransition) as caught:
        transition(current, action)
    assert caught.value.current is current


def test_allowed_actions_lists_only_state_changing_api_actions() -> None:
    assert allowed_actions(S.DRAFT) == ["launch"]
    assert allowed_actions(S.RUNNING) == ["pause", "cancel"]
    assert allowed_actions(S.PAUSED) == ["resume", "cancel"]
    assert allowed_actions(S.SCHEDULED) == ["pause", "cancel"]
    assert allowed_actions(S.COMPLETED) == []
    assert allowed_actions(S.CANCELLED) == []


class LifecycleMachine(RuleBasedStateMachine):
    """Random action sequences: the status only ever moves along the table, and terminal states stay put."""

    def __init__(self) -> None:
        super().__init__()
        self.status = S.DRAFT
        self.history: list[tuple[S, A, S]] = []

    @rule(action=st.sampled_from(list(Action)), waits=st.booleans())
    def act(self, action: A, waits: bool) -> None:
        before = self.status
        try:
            result = transition(before, action, waits_for_start=waits)
        except InvalidTransition:
            assert (before, action) not in TRANSITIONS
            assert (before, action) not in NO_OPS
            return
        if result.changed:
            expected = TRANSITIONS[(before, action)]
            if action in (A.LAUNCH, A.RESUME) and waits:
                expected = S.SCHEDULED
            assert result.status is expected
        else:
            assert result.status is before
        self.history.append((before, action, result.status))
        self.status = result.status

    @invariant()
    def terminal_states_are_final(self) -> None:
        for index, (before, _action, _after) in enumerate(self.history):
            if before in TERMINAL:
                assert all(after == before for _, _, after in self.history[index:])

    @invariant()
    def never_back_to_draft(self) -> None:
        assert all(after is not S.DRAFT for _, _, after in self.history)


TestLifecycleMachine = LifecycleMachine.TestCase
