"""``config`` of a ``simulator`` connection; ``{}`` is valid and gives a realistic network."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from bulkcall.domain.phones import InvalidPhone, normalize
from bulkcall.providers.base import ProviderConfig

# How far the outcome probabilities may drift from 1 (floating-point sums of decimals are inexact).
OUTCOME_SUM_TOLERANCE = 1e-6

Probability = Annotated[float, Field(ge=0, le=1, description="A probability, 0..1")]
Seconds = Annotated[float, Field(ge=0, le=86_400)]


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if low > high:
        raise ValueError("min must not exceed max")
    return value


SecondsRange = Annotated[
    tuple[Seconds, Seconds],
    AfterValidator(_ordered),
    Field(description="[min, max] seconds, 0 <= min <= max"),
]


class Outcomes(BaseModel):
    """Probability of each call outcome; they must sum to 1. Omitted outcomes count as 0."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    answered: Probability = 0.0
    voicemail: Probability = 0.0
    no_answer: Probability = 0.0
    busy: Probability = 0.0
    failed: Probability = 0.0

    @model_validator(mode="after")
    def _sums_to_one(self) -> Outcomes:
        total = math.fsum((self.answered, self.voicemail, self.no_answer, self.busy, self.failed))
        if abs(total - 1.0) > OUTCOME_SUM_TOLERANCE:
            raise ValueError(f"outcome probabilities must sum to 1 (they sum to {total:.6g})")
        return self


DEFAULT_OUTCOMES = Outcomes(answered=0.45, voicemail=0.15, no_answer=0.25, busy=0.10, failed=0.05)


class CallbackFaults(BaseModel):
    """How often a call's result arrives twice, or never, or its progress reports arrive after the result
    (to exercise deduplication, timeouts and out-of-order handling)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    duplicate: Probability = 0.0
    missing: Probability = 0.0
    reordered: Probability = 0.0


class SimulatorConfig(ProviderConfig):
    """A seeded model of a phone network: outcome mix, ring and talk times, faulty callbacks."""

    seed: int = Field(default=0, ge=-(2**63), le=2**63 - 1, description="Random seed: same seed, same calls")
    outcomes: Outcomes = Field(default=DEFAULT_OUTCOMES)
    ring_seconds: SecondsRange = (3.0, 25.0)
    talk_seconds: SecondsRange = (10.0, 180.0)
    speed: float = Field(
        default=1.0, gt=0, le=100_000, description="Time multiplier for the simulated call itself (100 = 100x faster)"
    )
    callback_faults: CallbackFaults = Field(default_factory=CallbackFaults)
    number_answer_rates: dict[str, Probability] = Field(
        default_factory=dict,
        max_length=10_000,
        description="Per callee number (E.164) answer rate, overriding outcomes.answered for that number",
    )

    caller_answer_rates: dict[str, Probability] = Field(
        default_factory=dict,
        max_length=10_000,
        description=(
            "Per caller ID (E.164) answer rate, overriding outcomes.answered for calls from that number "
            "(a callee's own rate wins); models numbers that carriers label as spam"
        ),
    )

    @field_validator("number_answer_rates", "caller_answer_rates")
    @classmethod
    def _normalize_numbers(cls, value: dict[str, float]) -> dict[str, float]:
        normalized: dict[str, float] = {}
        for raw, rate in value.items():
            try:
                normalized[normalize(raw).e164] = rate
            except InvalidPhone as exc:
                raise ValueError(f"{raw!r}: {exc}") from None
        return normalized
