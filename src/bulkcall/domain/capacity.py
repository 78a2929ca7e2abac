"""How many calls a campaign may have in flight, and which limit binds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Concurrency:
    effective: int
    pool_capacity: int
    binding_limit: str  # pool_capacity | concurrency_limit | tenant_cap


def pool_capacity(connection_limits: Iterable[tuple[int, int]]) -> int:
    """Sum of the limits of the distinct connections (``(connection_id, limit)`` pairs) behind a pool."""
    return sum(dict(connection_limits).values())


def effective_concurrency(limit: int | None, capacity: int, tenant_cap: int | None) -> Concurrency:
    """The tightest of the pool's capacity, the campaign limit (null = the pool) and the tenant cap.

    Ties name the campaign's own setting first, then the tenant cap: the one an operator would change.
    """
    candidates = [("pool_capacity", capacity)]
    if tenant_cap is not None:
        candidates.insert(0, ("tenant_cap", tenant_cap))
    if limit is not None:
        candidates.insert(0, ("concurrency_limit", limit))
    binding, value = min(candidates, key=lambda item: item[1])
    return Concurrency(effective=max(0, value), pool_capacity=capacity, binding_limit=binding)
