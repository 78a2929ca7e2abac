"""Which caller ID dials a contact: eligible numbers, country match, stickiness, then answer-rate weighting."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CallerNumber:
    """A pool number as the choice sees it; ``attempts`` / ``answers`` are its recent record."""

    id: int
    country: str | None
    active: bool
    spam_flagged: bool
    allowed_countries: tuple[str, ...] | None
    connection_id: int
    attempts: int = 0
    answers: int = 0

    def may_call(self, contact_country: str | None) -> bool:
        if not self.active or self.spam_flagged:
            return False
        if self.allowed_countries is None:
            return True
        return contact_country is not None and contact_country in self.allowed_countries

    @property
    def answer_score(self) -> float:
        """Answer rate with a uniform prior, so a new number is neither starved nor favoured."""
        return (self.answers + 1) / (self.attempts + 2)


@dataclass(frozen=True)
class CallerChoice:
    number_id: int
    connection_id: int
    reason: str


def choose_caller_id(
    numbers: Sequence[CallerNumber],
    *,
    contact_country: str | None,
    prefer_country_match: bool,
    sticky_number_id: int | None,
    connections_with_capacity: Collection[int],
    rng: random.Random,
) -> CallerChoice | None:
    """Pick a number, or None when no number may call this contact right now."""
    eligible = [
        number
        for number in numbers
        if number.may_call(contact_country) and number.connection_id in connections_with_capacity
    ]
    if not eligible:
        return None
    for number in eligible:
        if number.id == sticky_number_id:
            return CallerChoice(number.id, number.connection_id, "sticky: this number reached the contact before")
    candidates, why = eligible, "any eligible number"
    if prefer_country_match and contact_country is not None:
        same_country = [number for number in eligible if number.country == contact_country]
        if same_country:
            candidates, why = same_country, f"country match ({contact_country})"
    chosen = rng.choices(candidates, weights=[number.answer_score for number in candidates], k=1)[0]
    return CallerChoice(
        chosen.id,
        chosen.connection_id,
        f"{why}; weighted by answer rate ({chosen.answer_score:.0%} of {len(candidates)} candidate(s))",
    )


def ineligible_reason(numbers: Sequence[CallerNumber], contact_country: str | None) -> str:
    """Why no number may call this contact, for the task's blocker or skip reason."""
    usable = [number for number in numbers if number.active and not number.spam_flagged]
    if not usable:
        return "no_eligible_number"
    if not any(number.may_call(contact_country) for number in usable):
        return "country_not_allowed"
    return "pool_capacity_full"
