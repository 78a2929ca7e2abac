"""Invariant 5, concurrency limits hold at every instant: per campaign (its limit, else its pool's capacity), per
telephony connection (shared by every campaign on it), per workspace (the tenant cap) and calls per second
per connection. Priorities order the slots, equal priorities share them, held-back tasks name the limit
that binds, and slots come back on every exit path (call ended, provider refusal, lease release, timeout).

Calls stay in flight because the tests drive rounds without draining: the simulator's callbacks wait in
the engine's queue until ``drain``, so after every ``dispatch_once`` the open attempts are exactly the calls
that hold a slot.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bulkcall.db.engine import Database
from bulkcall.db.repositories import dispatch as queries
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.domain.retries import Outcome
from bulkcall.kit.clock import FixedClock
from bulkcall.providers.base import CallNotPlaced, CallRequest, ConnectionInfo, PlacedCall
from tests.conftest import data
from tests.dispatch.conftest import (
    FAST,
    START,
    World,
    attempt_rows,
    campaign,
    logged_engine,
    make_world,
    settle,
    tasks,
)

ANSWERED = {"outcomes": {"answered": 1.0}}


@dataclass(frozen=True)
class InFlight:
    """Calls holding a slot right now (attempts with ``ended_at`` NULL)."""

    by_campaign: Counter[int]
    by_connection: Counter[int]
    by_workspace: Counter[int]


async def in_flight(database: Database) -> InFlight:
    attempts = await attempt_rows(database, open_only=True)
    return InFlight(
        by_campaign=Counter(a.campaign_id for a in attempts),
        by_connection=Counter(a.telephony_connection_id for a in attempts),
        by_workspace=Counter(a.workspace_id for a in attempts),
    )


async def add_connection(api: httpx.AsyncClient, numbers: list[str], *, limit: int, cps: float = 1000) -> list[int]:
    """Another simulator connection with its numbers; returns the number ids."""
    connection = data(
        await api.post(
            "/telephony_connections",
            json={
                "name": f"sim {numbers[0]}",
                "provider": "simulator",
                "concurrency_limit": limit,
                "calls_per_second": cps,
                "config": {**FAST, **ANSWERED},
            },
        ),
        201,
    )
    return [
        data(await api.post("/phone_numbers", json={"e164": e164, "telephony_connection_id": connection["id"]}), 201)[
            "id"
        ]
        for e164 in numbers
    ]


async def launch_with(world: World, callees: list[str], **overrides: Any) -> int:
    """Create and launch a campaign whose audience is given inline (one request instead of one per contact)."""
    body = world.campaign(contact_ids=[], contacts=[{"phone_e164": phone} for phone in callees], **overrides)
    created = data(await world.api.post("/bulk_call_campaigns", json=body), 201)
    data(await world.api.post(f"/bulk_call_campaigns/{created['id']}/launch"))
    return int(created["id"])


def phones(prefix: int, count: int) -> list[str]:
    return [f"+1212{prefix:03d}{n:04d}" for n in range(count)]


async def blockers(api: httpx.AsyncClient, campaign_id: int) -> set[str | None]:
    return {row["blocker"] for row in await tasks(api, campaign_id, status="pending")}


async def nonzero_counts(api: httpx.AsyncClient, campaign_id: int) -> dict[str, int]:
    return {status: count for status, count in (await campaign(api, campaign_id))["counts"].items() if count}


async def run_rounds(
    engine: DispatchEngine, database: Database, rounds: int, check: Any, *, drain_every: int = 3
) -> list[InFlight]:
    """Dispatch ``rounds`` times, checking the calls in flight after each round; drain now and then."""
    seen: list[InFlight] = []
    for number in range(rounds):
        await engine.dispatch_once()
        now = await in_flight(database)
        check(now)
        seen.append(now)
        if number % drain_every == drain_every - 1:
            await engine.drain()
            await engine.sweep_once()
    return seen


async def test_a_campaign_limit_is_never_exceeded(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator=ANSWERED, connection_limit=10)
    campaign_id = await launch_with(world, phones(555, 8), concurrency_limit=3)

    def check(now: InFlight) -> None:
        assert now.by_campaign[campaign_id] <= 3, now

    assert await engine.dispatch_once() == 3
    assert await engine.dispatch_once() == 0
    assert await blockers(api, campaign_id) == {"campaign_concurrency_full"}
    seen = await run_rounds(engine, database, 6, check, drain_every=2)
    assert max(now.by_campaign[campaign_id] for now in seen) == 3
    await settle(engine)
    assert await nonzero_counts(api, campaign_id) == {"completed": 8}


async def test_without_a_limit_a_campaign_may_use_its_pools_capacity_counted_once_per_connection(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    # Connection A (limit 2) holds two of the pool's numbers, connection B (limit 3) one: capacity 5, not 7.
    world = await make_world(api, simulator=ANSWERED, connection_limit=2)
    other = await add_connection(api, ["+14155550200"], limit=3)
    world.number_ids.extend(other)
    campaign_id = await launch_with(world, phones(555, 8))
    assert (await campaign(api, campaign_id))["effective_concurrency"] == 5

    assert await engine.dispatch_once() == 5
    now = await in_flight(database)
    assert now.by_campaign[campaign_id] == 5
    assert now.by_connection[world.connection_id] == 2
    assert sorted(now.by_connection.values()) == [2, 3]
    assert await engine.dispatch_once() == 0
    assert await blockers(api, campaign_id) == {"pool_capacity_full"}

    def check(now: InFlight) -> None:
        assert now.by_campaign[campaign_id] <= 5, now
        assert now.by_connection[world.connection_id] <= 2, now
        assert sum(now.by_connection.values()) - now.by_connection[world.connection_id] <= 3, now

    await run_rounds(engine, database, 4, check, drain_every=2)


async def test_a_connection_limit_holds_in_total_across_the_campaigns_that_share_it(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator=ANSWERED, connection_limit=4)
    first = await launch_with(world, phones(555, 5), concurrency_limit=3)
    second = await launch_with(world, phones(556, 5), concurrency_limit=3)

    def check(now: InFlight) -> None:
        assert now.by_connection[world.connection_id] <= 4, now
        assert max(now.by_campaign[first], now.by_campaign[second]) <= 3, now

    assert await engine.dispatch_once() == 4
    now = await in_flight(database)
    assert sorted((now.by_campaign[first], now.by_campaign[second])) == [2, 2]
    assert await blockers(api, first) == await blockers(api, second) == {"pool_capacity_full"}
    seen = await run_rounds(engine, database, 5, check, drain_every=2)
    assert max(now.by_connection[world.connection_id] for now in seen) == 4


async def test_the_workspace_cap_holds_across_campaigns_and_connections(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    data(await api.patch("/workspace", json={"concurrency_cap": 3}))
    world = await make_world(api, simulator=ANSWERED, connection_limit=10)
    first = await launch_with(world, phones(555, 5))
    other_numbers = await add_connection(api, ["+14155550200"], limit=10)
    second = await launch_with(world, phones(556, 5), campaign_phone_number_ids=other_numbers)

    def check(now: InFlight) -> None:
        assert sum(now.by_workspace.values()) <= 3, now

    assert await engine.dispatch_once() == 3
    now = await in_flight(database)
    assert sorted((now.by_campaign[first], now.by_campaign[second])) == [1, 2], "both campaigns dial, 3 in all"
    assert await engine.dispatch_once() == 0
    assert await blockers(api, first) == await blockers(api, second) == {"tenant_cap_full"}
    seen = await run_rounds(engine, database, 4, check, drain_every=2)
    assert max(sum(now.by_workspace.values()) for now in seen) == 3


async def test_calls_per_second_per_connection_hold_while_the_clock_stands_still(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock
) -> None:
    world = await make_world(api, simulator=ANSWERED, connection_limit=10, calls_per_second=2)
    campaign_id = await launch_with(world, phones(555, 7))

    assert await engine.dispatch_once() == 2
    for _ in range(4):
        # Slots are free (the calls ended), but this second's dials are spent.
        await engine.drain()
        await engine.sweep_once()
        assert await engine.dispatch_once() == 0
    assert await blockers(api, campaign_id) == {"cps_throttled"}

    clock.set(START + timedelta(seconds=1))
    assert await engine.dispatch_once() == 2
    assert await engine.dispatch_once() == 0
    clock.set(START + timedelta(seconds=1, milliseconds=999))
    assert await engine.dispatch_once() == 0
    clock.set(START + timedelta(seconds=2))
    assert await engine.dispatch_once() == 2
    queued = Counter(attempt.queued_at for attempt in await attempt_rows(engine.database))
    assert sorted(queued.values()) == [2, 2, 2]


async def test_a_higher_priority_campaign_gets_the_shared_slots_first(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator=ANSWERED, connection_limit=4)
    # The low-priority campaign is created first, so creation order cannot explain the result.
    low = await launch_with(world, phones(555, 6), priority=1)
    high = await launch_with(world, phones(556, 6), priority=9)

    assert await engine.dispatch_once() == 4
    now = await in_flight(database)
    assert (now.by_campaign[high], now.by_campaign[low]) == (4, 0)
    assert await blockers(api, low) == {"pool_capacity_full"}

    await engine.drain()
    await engine.sweep_once()
    assert await engine.dispatch_once() == 4
    now = await in_flight(database)
    assert (now.by_campaign[high], now.by_campaign[low]) == (2, 2), "the rest of the high campaign, then the low one"


async def test_equal_priorities_split_the_shared_slots_evenly(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator=ANSWERED, connection_limit=7)
    ids = [await launch_with(world, phones(555 + n, 5), priority=5) for n in range(3)]

    for _ in range(2):
        assert await engine.dispatch_once() == 7
        now = await in_flight(database)
        shares = [now.by_campaign[campaign_id] for campaign_id in ids]
        assert sum(shares) == 7, shares
        assert max(shares) - min(shares) <= 1, shares
        await engine.drain()
        await engine.sweep_once()


async def test_slots_come_back_when_calls_end(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator=ANSWERED, connection_limit=2)
    await launch_with(world, phones(555, 4))
    assert await engine.dispatch_once() == 2
    assert await engine.dispatch_once() == 0
    await engine.drain()  # the results arrive: the calls end
    assert sum((await in_flight(database)).by_workspace.values()) == 0
    assert await engine.dispatch_once() == 2


async def test_slots_come_back_when_the_provider_refuses_a_call(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world(api, simulator=ANSWERED, connection_limit=2)
    campaign_id = await launch_with(world, phones(555, 6), max_retries=0)

    async def refuse(connection: ConnectionInfo, request: CallRequest) -> PlacedCall:
        raise CallNotPlaced(Outcome.FAILED, "the carrier refused the call")

    monkeypatch.setattr(engine.providers["simulator"], "place_call", refuse)
    for _ in range(3):
        assert await engine.dispatch_once() == 2
        assert sum((await in_flight(database)).by_workspace.values()) == 0
    rows = await tasks(api, campaign_id)
    assert {(row["status"], row["last_outcome"]) for row in rows} == {("failed", "failed")}


async def test_slots_come_back_when_a_dead_workers_claims_are_released(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI, tmp_path: Path
) -> None:
    world = await make_world(api, simulator=ANSWERED, connection_limit=2)
    await launch_with(world, phones(555, 4))
    event_log = tmp_path / "sim.jsonl"
    async with logged_engine(database, clock, engine_app, event_log, lease_seconds=0.05) as crashed:
        async with database.session(write=False) as session:
            (running,) = await queries.running_campaigns(session)
        closed = await crashed._prepare_windows(running, clock.now())
        assert closed is not None
        claims = await crashed._claim(running.workspace_id, [running], {running.id: closed}, clock.now())
        assert len(claims) == 2  # and the worker dies
    async with logged_engine(database, clock, engine_app, event_log) as survivor:
        assert await survivor.dispatch_once() == 0, "the dead worker's claims still hold the slots"
        await asyncio.sleep(0.1)  # wall time passes the lease
        await survivor.sweep_once()
        assert sum((await in_flight(database)).by_workspace.values()) == 0
        assert await survivor.dispatch_once() == 2


async def test_slots_come_back_when_a_silent_call_times_out(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, clock: FixedClock
) -> None:
    world = await make_world(api, simulator={**ANSWERED, "callback_faults": {"missing": 1.0}}, connection_limit=2)
    await launch_with(world, phones(555, 4))
    assert await engine.dispatch_once() == 2
    await engine.drain()  # the calls played out, but their results never arrive
    await engine.sweep_once()
    assert await engine.dispatch_once() == 0
    clock.set(START + engine.config.result_timeout + timedelta(seconds=1))
    await engine.sweep_once()
    assert sum((await in_flight(database)).by_workspace.values()) == 0
    assert await engine.dispatch_once() == 2
