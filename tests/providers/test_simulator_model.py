from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkcall.domain.retries import Outcome
from bulkcall.providers.simulator.config import SimulatorConfig
from bulkcall.providers.simulator.model import outcome_weights, simulate_call

CALLEE = "+14155552671"


def test_same_seed_and_attempt_give_the_same_call() -> None:
    config = SimulatorConfig(seed=42)
    first = simulate_call(config, attempt_key="attempt-1", callee_e164=CALLEE)
    assert simulate_call(config, attempt_key="attempt-1", callee_e164=CALLEE) == first


def test_another_seed_gives_another_run() -> None:
    calls = [
        tuple(simulate_call(SimulatorConfig(seed=seed), attempt_key=str(i), callee_e164=CALLEE) for i in range(20))
        for seed in (1, 2)
    ]
    assert calls[0] != calls[1]


def test_outcomes_follow_the_configured_mix() -> None:
    config = SimulatorConfig(seed=7)
    counts = Counter(simulate_call(config, attempt_key=str(i), callee_e164=CALLEE).outcome for i in range(20_000))
    assert counts[Outcome.ANSWERED] / 20_000 == pytest.approx(0.45, abs=0.02)
    assert counts[Outcome.BUSY] / 20_000 == pytest.approx(0.10, abs=0.015)


def test_a_callee_answer_rate_overrides_the_mix() -> None:
    config = SimulatorConfig(seed=3, number_answer_rates={CALLEE: 0.9})
    counts = Counter(simulate_call(config, attempt_key=str(i), callee_e164=CALLEE).outcome for i in range(5_000))
    assert counts[Outcome.ANSWERED] / 5_000 == pytest.approx(0.9, abs=0.02)


def test_callback_faults_happen_at_their_rates() -> None:
    config = SimulatorConfig(seed=5, callback_faults={"duplicate": 0.2, "missing": 0.1})
    calls = [simulate_call(config, attempt_key=str(i), callee_e164=CALLEE) for i in range(10_000)]
    assert sum(call.missing_callback for call in calls) / 10_000 == pytest.approx(0.1, abs=0.015)
    assert not any(call.missing_callback and call.duplicate_callback for call in calls)
    assert not any(call.reordered_callbacks for call in calls)

    reordering = SimulatorConfig(seed=5, callback_faults={"reordered": 0.3})
    reordered = [simulate_call(reordering, attempt_key=str(i), callee_e164=CALLEE) for i in range(10_000)]
    assert sum(call.reordered_callbacks for call in reordered) / 10_000 == pytest.approx(0.3, abs=0.015)
    # Faults are drawn after the call itself: the same seed gives the same calls whatever the faults.
    assert [(c.outcome, c.ring_seconds, c.talk_seconds) for c in reordered[:200]] == [
        (c.outcome, c.ring_seconds, c.talk_seconds)
        for c in (simulate_call(config, attempt_key=str(i), callee_e164=CALLEE) for i in range(200))
    ]


@given(
    seed=st.integers(0, 10_000),
    key=st.text(min_size=1, max_size=10),
    rate=st.none() | st.floats(0, 1),
)
def test_every_call_stays_within_the_configured_ranges(seed: int, key: str, rate: float | None) -> None:
    config = SimulatorConfig(seed=seed, number_answer_rates={} if rate is None else {CALLEE: rate})
    call = simulate_call(config, attempt_key=key, callee_e164=CALLEE)
    assert 0 <= call.ring_seconds <= config.ring_seconds[1]
    if call.outcome in (Outcome.ANSWERED, Outcome.VOICEMAIL):
        assert config.talk_seconds[0] <= call.talk_seconds <= config.talk_seconds[1]
    else:
        assert call.talk_seconds == 0
    assert sum(outcome_weights(config, CALLEE)) == pytest.approx(1.0)


def test_a_caller_answer_rate_applies_to_calls_from_that_number_and_the_callee_rate_wins() -> None:
    config = SimulatorConfig(caller_answer_rates={"+14155550100": 0.9}, number_answer_rates={"+12125550001": 0.0})
    assert outcome_weights(config, "+12125550002", "+14155550100")[0] == pytest.approx(0.9)
    assert outcome_weights(config, "+12125550002", "+14155550199")[0] == config.outcomes.answered
    assert outcome_weights(config, "+12125550001", "+14155550100")[0] == 0.0
    answered = Counter(
        simulate_call(config, attempt_key=str(n), callee_e164="+12125550002", caller_e164="+14155550100").outcome
        for n in range(2000)
    )[Outcome.ANSWERED]
    assert 0.85 < answered / 2000 < 0.95
