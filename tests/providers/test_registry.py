from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bulkcall.providers import UnknownProvider, get_provider, known_providers, load_config, parse_config
from bulkcall.providers.simulator.config import OUTCOME_SUM_TOLERANCE, Outcomes, SimulatorConfig
from bulkcall.providers.twilio.config import TwilioConfig

OUTCOME_NAMES = ("answered", "voicemail", "no_answer", "busy", "failed")
probabilities = st.floats(min_value=0, max_value=1, allow_nan=False)


def test_known_providers_are_the_documented_ones() -> None:
    assert known_providers() == ["simulator", "twilio", "http_agent"]


def test_unknown_provider_error_lists_known_ones() -> None:
    with pytest.raises(UnknownProvider, match="simulator, twilio, http_agent"):
        get_provider("vonage")


def test_empty_simulator_config_is_valid_and_sums_to_one() -> None:
    config = parse_config("simulator", {})
    assert isinstance(config, SimulatorConfig)
    outcomes = config.outcomes
    assert math.fsum(getattr(outcomes, name) for name in OUTCOME_NAMES) == pytest.approx(1)


def test_secret_fields_are_split_from_public_config() -> None:
    config = parse_config("twilio", {"account_sid": "AC" + "f" * 32, "auth_token": "s3cret"})
    assert "auth_token" not in config.public()
    assert config.secrets() == {"auth_token": "s3cret"}
    assert "s3cret" not in repr(config)


def test_load_config_rejoins_stored_halves() -> None:
    original = parse_config(
        "http_agent", {"url": "https://agent.example.com", "signing_secret": "whsec_" + "a2V5LWJ5dGVzLWZvci1hLXRlc3Q="}
    )
    rebuilt = load_config("http_agent", original.public(), original.secrets())
    assert rebuilt == original


def test_twilio_account_sid_must_be_ac_and_32_hex_digits() -> None:
    with pytest.raises(ValidationError):
        TwilioConfig.model_validate({"account_sid": "AC" + "g" * 32, "auth_token": "x"})


def test_simulator_refuses_unknown_keys() -> None:
    with pytest.raises(ValidationError) as excinfo:
        SimulatorConfig.model_validate({"seeed": 1})
    assert excinfo.value.errors()[0]["loc"] == ("seeed",)


def test_simulator_normalises_answer_rate_numbers() -> None:
    config = SimulatorConfig.model_validate({"number_answer_rates": {"+1 (415) 555-2671": 0.2}})
    assert config.number_answer_rates == {"+14155552671": 0.2}


@given(st.lists(probabilities, min_size=5, max_size=5))
def test_outcomes_valid_exactly_when_they_sum_to_one(values: list[float]) -> None:
    fields = dict(zip(OUTCOME_NAMES, values, strict=True))
    sums_to_one = abs(math.fsum(values) - 1) <= OUTCOME_SUM_TOLERANCE
    try:
        Outcomes.model_validate(fields)
    except ValidationError:
        assert not sums_to_one
    else:
        assert sums_to_one


@given(st.lists(st.floats(min_value=0.001, max_value=1000, allow_nan=False), min_size=5, max_size=5))
def test_normalised_weights_are_always_accepted(weights: list[float]) -> None:
    total = math.fsum(weights)
    outcomes = Outcomes.model_validate(dict(zip(OUTCOME_NAMES, (w / total for w in weights), strict=True)))
    assert math.fsum(getattr(outcomes, name) for name in OUTCOME_NAMES) == pytest.approx(1)


@given(st.sampled_from(OUTCOME_NAMES), st.floats(allow_nan=False).filter(lambda v: v < 0 or v > 1))
def test_outcome_outside_zero_to_one_is_refused(name: str, value: float) -> None:
    with pytest.raises(ValidationError):
        Outcomes.model_validate({name: value, "answered": 1.0} if name != "answered" else {name: value})


@given(st.floats(min_value=0, max_value=86_400), st.floats(min_value=0, max_value=86_400))
def test_ring_range_needs_min_not_above_max(low: float, high: float) -> None:
    try:
        SimulatorConfig.model_validate({"ring_seconds": [low, high]})
    except ValidationError:
        assert low > high
    else:
        assert low <= high
