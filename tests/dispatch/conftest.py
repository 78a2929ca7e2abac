"""The engine under test: a real database, the API in-process, the simulator, and a clock the test drives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from bulkcall.db.engine import Database
from bulkcall.db.models import CallAttempt
from bulkcall.dispatch.engine import DispatchEngine, EngineConfig
from bulkcall.kit.clock import FixedClock
from bulkcall.settings import Settings
from tests.conftest import data, new_key, started_app

# A Wednesday, 15:00 UTC: 11:00 in New York (EDT), 20:30 in Kolkata.
START = datetime(2026, 6, 3, 15, 0, tzinfo=UTC)
ALWAYS = {
    day: {"enabled": True, "start": "00:00", "end": "24:00"}
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}
# Simulated calls play out in milliseconds of wall time.
FAST = {"speed": 100_000}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def engine_app(
    shared_app: FastAPI, settings: Settings, database: Database, clock: FixedClock
) -> AsyncIterator[FastAPI]:
    async with started_app(shared_app, settings, database, clock) as application:
        yield application


@pytest.fixture
def app(engine_app: FastAPI) -> FastAPI:
    """The shared conftest's clients (``other_api``, ``anon``) talk to the engine's app, with its clock."""
    return engine_app


@pytest.fixture
async def engine(database: Database, clock: FixedClock, engine_app: FastAPI) -> AsyncIterator[DispatchEngine]:
    eng = DispatchEngine(database, clock, EngineConfig(batch_size=50, result_timeout=timedelta(minutes=10)))
    engine_app.state.ingestion = eng.ingestion  # HTTP callbacks and the simulator share one ingestion path
    yield eng
    await eng.aclose()


@pytest.fixture
async def api(engine_app: FastAPI, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    key = await new_key(database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=engine_app), base_url="http://testserver/api/v1", headers={"X-Api-Key": key}
    ) as client:
        yield client


@dataclass
class World:
    """An agent, a simulator connection and its numbers, and contacts: what a campaign needs."""

    api: httpx.AsyncClient
    agent_id: int
    connection_id: int
    number_ids: list[int]
    contact_ids: list[int] = field(default_factory=list)

    def campaign(self, **overrides: Any) -> dict[str, Any]:
        return {
            "name": "engine test",
            "agent_id": self.agent_id,
            "timezone": "UTC",
            "campaign_phone_number_ids": self.number_ids,
            "contact_ids": self.contact_ids,
            "call_windows": ALWAYS,
            "retry_delay_minutes": 0,
            **overrides,
        }

    async def launch(self, **overrides: Any) -> dict[str, Any]:
        created = data(await self.api.post("/bulk_call_campaigns", json=self.campaign(**overrides)), 201)
        launched: dict[str, Any] = data(await self.api.post(f"/bulk_call_campaigns/{created['id']}/launch"))
        return launched

    async def contacts(self, phones: list[str], **fields: Any) -> list[int]:
        ids = [data(await self.api.post("/contacts", json={"phone_e164": p, **fields}), 201)["id"] for p in phones]
        self.contact_ids.extend(ids)
        return ids


async def make_world(
    api: httpx.AsyncClient,
    *,
    simulator: dict[str, Any] | None = None,
    connection_limit: int = 10,
    calls_per_second: float = 1000,
    numbers: tuple[str, ...] = ("+14155550100", "+14155550101"),
) -> World:
    agent = data(await api.post("/agents", json={"name": "Ava"}), 201)
    connection = data(
        await api.post(
            "/telephony_connections",
            json={
                "name": "sim",
                "provider": "simulator",
                "concurrency_limit": connection_limit,
                "calls_per_second": calls_per_second,
                "config": {**FAST, **(simulator or {})},
            },
        ),
        201,
    )
    number_ids = [
        data(await api.post("/phone_numbers", json={"e164": e164, "telephony_connection_id": connection["id"]}), 201)[
            "id"
        ]
        for e164 in numbers
    ]
    return World(api=api, agent_id=agent["id"], connection_id=connection["id"], number_ids=number_ids)


async def settle(engine: DispatchEngine, *, rounds: int = 200) -> None:
    """Dispatch, let the simulator answer, sweep; until a round starts no call and nothing is in flight."""
    for _ in range(rounds):
        started = await engine.dispatch_once()
        await engine.drain()
        await engine.sweep_once()
        if started == 0:
            return
    raise AssertionError("the engine kept dialing")


async def campaign(api: httpx.AsyncClient, campaign_id: int) -> dict[str, Any]:
    found: dict[str, Any] = data(await api.get(f"/bulk_call_campaigns/{campaign_id}"))
    return found


async def tasks(api: httpx.AsyncClient, campaign_id: int, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = data(
        await api.get(f"/bulk_call_campaigns/{campaign_id}/tasks", params={"per_page": 100, **params})
    )
    return found


# -- helpers for the invariant tests (no duplicate dial, limits, callbacks, caller ID) ---------------------------


@asynccontextmanager
async def logged_engine(
    database: Database, clock: FixedClock, engine_app: FastAPI, event_log: Path, **config: Any
) -> AsyncIterator[DispatchEngine]:
    """An engine whose simulator writes its event log to ``event_log``, wired to the app's callback endpoint."""
    options: dict[str, Any] = {"batch_size": 50, "result_timeout": timedelta(minutes=10), **config}
    eng = DispatchEngine(database, clock, EngineConfig(**options), simulator_event_log=str(event_log))
    engine_app.state.ingestion = eng.ingestion
    try:
        yield eng
    finally:
        await eng.aclose()


def simulator_events(event_log: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The simulator's event log lines (``start`` / ``end``), optionally of one kind."""
    if not event_log.exists():
        return []
    lines = [json.loads(line) for line in event_log.read_text().splitlines() if line]
    return [line for line in lines if kind is None or line["event"] == kind]


async def attempt_rows(database: Database, *, open_only: bool = False) -> list[CallAttempt]:
    """Every call attempt (or only those holding a slot: ``ended_at`` NULL), oldest first."""
    query = select(CallAttempt).order_by(CallAttempt.id)
    if open_only:
        query = query.where(CallAttempt.ended_at.is_(None))
    async with database.session(write=False) as session:
        return list((await session.execute(query)).scalars())


async def attempts_by_task(database: Database, campaign_id: int) -> dict[int, list[CallAttempt]]:
    """A campaign's call attempts grouped by task, each task's in attempt-number order."""
    query = (
        select(CallAttempt)
        .where(CallAttempt.campaign_id == campaign_id)
        .order_by(CallAttempt.task_id, CallAttempt.attempt_number)
    )
    found: dict[int, list[CallAttempt]] = {}
    async with database.session(write=False) as session:
        for attempt in (await session.execute(query)).scalars():
            found.setdefault(attempt.task_id, []).append(attempt)
    return found
