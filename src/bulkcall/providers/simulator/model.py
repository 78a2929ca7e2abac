"""The simulated phone network: what happens when one attempt is dialed, decided by a seeded draw.

The same seed and attempt key always give the same call, so a run can be replayed exactly; different
attempts are independent. The provider adapter (with the engine) turns a ``SimulatedCall`` into status
events on the same callback path a carrier uses, with ``speed`` scaling the wall time they take.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bulkcall.domain.retries import Outcome
from bulkcall.providers.simulator.config import SimulatorConfig

_OUTCOMES: tuple[Outcome, ...] = (
    Outcome.ANSWERED,
    Outcome.VOICEMAIL,
    Outcome.NO_ANSWER,
    Outcome.BUSY,
    Outcome.FAILED,
)


@dataclass(frozen=True)
class SimulatedCall:
    outcome: Outcome
    ring_seconds: float
    talk_seconds: float  # 0 unless a person or a voicemail box picked up
    duplicate_callback: bool
    missing_callback: bool
    # The progress reports (ringing, answered) arrive after the result, as carriers' retried webhooks can.
    reordered_callbacks: bool = False


def outcome_weights(config: SimulatorConfig, callee_e164: str, caller_e164: str | None = None) -> list[float]:
    """The outcome mix for one call: the callee's answer rate if set, else the caller ID's, else the mix;
    the other outcomes scaled to fill the remainder."""
    mix = config.outcomes
    weights = [mix.answered, mix.voicemail, mix.no_answer, mix.busy, mix.failed]
    override = config.number_answer_rates.get(callee_e164)
    if override is None and caller_e164 is not None:
        override = config.caller_answer_rates.get(caller_e164)
    if override is None:
        return weights
    others = sum(weights[1:])
    if others == 0:
        # Nothing else to scale: everything that is not answered goes unanswered.
        return [override, 0.0, 1.0 - override, 0.0, 0.0]
    scale = (1.0 - override) / others
    return [override, *(weight * scale for weight in weights[1:])]


def simulate_call(
    config: SimulatorConfig, *, attempt_key: str, callee_e164: str, caller_e164: str | None = None
) -> SimulatedCall:
    """Decide one attempt; deterministic for (``config.seed``, ``attempt_key``)."""
    rng = random.Random(f"{config.seed}:{attempt_key}")
    outcome = rng.choices(_OUTCOMES, weights=outcome_weights(config, callee_e164, caller_e164), k=1)[0]
    ring_low, ring_high = config.ring_seconds
    ring = 0.0 if outcome in (Outcome.BUSY, Outcome.FAILED) else rng.uniform(ring_low, ring_high)
    talk_low, talk_high = config.talk_seconds
    talk = rng.uniform(talk_low, talk_high) if outcome in (Outcome.ANSWERED, Outcome.VOICEMAIL) else 0.0
    faults = config.callback_faults
    missing = rng.random() < faults.missing
    duplicate = not missing and rng.random() < faults.duplicate
    # Drawn last, so adding this fault left every earlier seed's calls unchanged.
    reordered = rng.random() < faults.reordered
    return SimulatedCall(
        outcome=outcome,
        ring_seconds=ring,
        talk_seconds=talk,
        duplicate_callback=duplicate,
        missing_callback=missing,
        reordered_callbacks=reordered,
    )
