from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from bulkcall.domain.caller_id import CallerNumber, choose_caller_id, ineligible_reason


def number(number_id: int, country: str = "US", **changes: object) -> CallerNumber:
    fields: dict[str, object] = {
        "id": number_id,
        "country": country,
        "active": True,
        "spam_flagged": False,
        "allowed_countries": None,
        "connection_id": 1,
        **changes,
    }
    return CallerNumber(**fields)  # type: ignore[arg-type]


def choose(numbers: list[CallerNumber], country: str | None = "US", **kwargs: object) -> int | None:
    options: dict[str, object] = {
        "contact_country": country,
        "prefer_country_match": True,
        "sticky_number_id": None,
        "connections_with_capacity": {1, 2},
        "rng": random.Random(7),
        **kwargs,
    }
    choice = choose_caller_id(numbers, **options)  # type: ignore[arg-type]
    return None if choice is None else choice.number_id


def test_inactive_and_spam_flagged_numbers_are_never_used() -> None:
    assert choose([number(1, active=False), number(2, spam_flagged=True)]) is None


def test_allowed_countries_are_honoured() -> None:
    assert choose([number(1, allowed_countries=("GB",))], country="US") is None
    assert choose([number(1, allowed_countries=("GB",))], country="GB") == 1


def test_contact_country_is_preferred() -> None:
    assert choose([number(1, "GB"), number(2, "IN")], country="IN") == 2


def test_without_preference_any_country_may_be_used() -> None:
    picks = {
        choose([number(1, "GB"), number(2, "IN")], country="IN", prefer_country_match=False, rng=random.Random(s))
        for s in range(30)
    }
    assert picks == {1, 2}


def test_sticky_number_wins_when_eligible() -> None:
    assert choose([number(1, "IN"), number(2, "US")], country="IN", sticky_number_id=2) == 2


def test_sticky_number_is_skipped_when_its_connection_is_full() -> None:
    numbers = [number(1, connection_id=1), number(2, connection_id=2)]
    assert choose(numbers, sticky_number_id=2, connections_with_capacity={1}) == 1


def test_better_answering_numbers_get_a_larger_share() -> None:
    good, poor = number(1, attempts=100, answers=60), number(2, attempts=100, answers=20)
    rng = random.Random(1)
    picks = Counter(choose([good, poor], rng=rng) for _ in range(3000))
    assert picks[1] > 2 * picks[2]


def test_ineligible_reason_names_the_cause() -> None:
    assert ineligible_reason([number(1, active=False)], "US") == "no_eligible_number"
    assert ineligible_reason([number(1, allowed_countries=("GB",))], "US") == "country_not_allowed"
    assert ineligible_reason([number(1)], "US") == "pool_capacity_full"


numbers_strategy = st.lists(
    st.builds(
        CallerNumber,
        id=st.integers(1, 50),
        country=st.sampled_from(["US", "GB", "IN", None]),
        active=st.booleans(),
        spam_flagged=st.booleans(),
        allowed_countries=st.none() | st.tuples(st.sampled_from(["US", "GB", "IN"])),
        connection_id=st.integers(1, 3),
        attempts=st.integers(0, 100),
        answers=st.integers(0, 100),
    ),
    max_size=8,
    unique_by=lambda n: n.id,
)


@given(
    numbers=numbers_strategy,
    country=st.sampled_from(["US", "GB", "IN", None]),
    prefer=st.booleans(),
    sticky=st.none() | st.integers(1, 50),
    capacity=st.sets(st.integers(1, 3)),
    seed=st.integers(0, 1000),
)
def test_choice_is_always_an_eligible_number(
    numbers: list[CallerNumber], country: str | None, prefer: bool, sticky: int | None, capacity: set[int], seed: int
) -> None:
    choice = choose_caller_id(
        numbers,
        contact_country=country,
        prefer_country_match=prefer,
        sticky_number_id=sticky,
        connections_with_capacity=capacity,
        rng=random.Random(seed),
    )
    eligible = [n for n in numbers if n.may_call(country) and n.connection_id in capacity]
    if choice is None:
        assert not eligible
        return
    chosen = next(n for n in numbers if n.id == choice.number_id)
    assert chosen in eligible
    if sticky is not None and any(n.id == sticky for n in eligible):
        assert chosen.id == sticky
    elif prefer and country is not None and any(n.country == country for n in eligible):
        assert chosen.country == country
