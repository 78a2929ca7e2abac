from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bulkcall.domain.capacity import effective_concurrency, pool_capacity


def test_pool_capacity_counts_each_connection_once() -> None:
    assert pool_capacity([(1, 10), (1, 10), (2, 5)]) == 15


def test_null_limit_means_the_pool() -> None:
    result = effective_concurrency(None, 15, None)
    assert (result.effective, result.binding_limit) == (15, "pool_capacity")


def test_a_limit_above_capacity_is_clamped() -> None:
    result = effective_concurrency(50, 15, None)
    assert (result.effective, result.binding_limit) == (15, "pool_capacity")


def test_tenant_cap_can_bind() -> None:
    assert effective_concurrency(10, 15, 4).binding_limit == "tenant_cap"


@given(
    limit=st.none() | st.integers(1, 100),
    capacity=st.integers(0, 100),
    cap=st.none() | st.integers(1, 100),
)
def test_effective_is_the_minimum_of_the_limits_that_apply(limit: int | None, capacity: int, cap: int | None) -> None:
    result = effective_concurrency(limit, capacity, cap)
    applicable = [value for value in (limit, capacity, cap) if value is not None]
    assert result.effective == min(applicable)
    named = {"concurrency_limit": limit, "pool_capacity": capacity, "tenant_cap": cap}
    assert named[result.binding_limit] == result.effective
