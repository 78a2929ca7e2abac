"""The engine as a process runs it: the loop dials by itself, wakes on NOTIFY, and gives back unsent claims
when it is asked to stop."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from bulkcall.db.admin import libpq_dsn
from bulkcall.db.engine import Database
from bulkcall.db.repositories import dispatch as queries
from bulkcall.dispatch.engine import DispatchEngine, EngineConfig
from bulkcall.kit.clock import FixedClock
from tests.dispatch.conftest import attempt_rows, campaign, make_world, tasks

ANSWERED = {"outcomes": {"answered": 1.0}}
# Bounds on waiting for something that should happen within milliseconds; a failure, not a timing claim.
PATIENCE_SECONDS = 20.0


async def test_the_loop_dials_a_launched_campaign_to_completion(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI
) -> None:
    world = await make_world(api, simulator=ANSWERED)
    await world.contacts([f"+1212555{n:04d}" for n in range(12)])
    engine = DispatchEngine(database, clock, EngineConfig(batch_size=5, poll_seconds=0.05, sweep_seconds=0.05))
    engine_app.state.ingestion = engine.ingestion
    stop = asyncio.Event()
    loop = asyncio.create_task(engine.run(stop))
    try:
        launched = await world.launch()
        async with asyncio.timeout(PATIENCE_SECONDS):
            while (await campaign(api, launched["id"]))["status"] != "completed":  # noqa: ASYNC110 -- state is in the database
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(loop, PATIENCE_SECONDS)
    assert {row["status"] for row in await tasks(api, launched["id"])} == {"completed"}


async def test_stopping_gives_back_claims_whose_request_has_not_left(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI
) -> None:
    world = await make_world(api, simulator=ANSWERED)
    await world.contacts([f"+1212555{n:04d}" for n in range(4)])
    launched = await world.launch()
    engine = DispatchEngine(database, clock, EngineConfig(worker_name="stopping-worker"))
    async with database.session(write=False) as session:
        (running,) = await queries.running_campaigns(session)
    closed = await engine._prepare_windows(running, clock.now())
    assert closed is not None
    claims = await engine._claim(running.workspace_id, [running], {running.id: closed}, clock.now())
    assert len(claims) == 4
    assert {row["status"] for row in await tasks(api, launched["id"])} == {"queued"}

    stop = asyncio.Event()
    stop.set()  # asked to stop before its next round: it must not leave the claims behind
    await asyncio.wait_for(engine.run(stop), PATIENCE_SECONDS)

    assert await attempt_rows(database) == []
    assert {row["status"] for row in await tasks(api, launched["id"])} == {"pending"}


@pytest.mark.postgres
async def test_a_notify_wakes_a_listening_engine(database: Database, clock: FixedClock) -> None:
    if database.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    engine = DispatchEngine(database, clock, EngineConfig())
    listener = asyncio.create_task(engine._listen())
    try:
        # Keep notifying until the listener, which connects on its own, has heard one.
        async with asyncio.timeout(PATIENCE_SECONDS):
            while not engine._wake.is_set():
                async with await psycopg.AsyncConnection.connect(libpq_dsn(database.url), autocommit=True) as conn:
                    await conn.execute(f"NOTIFY {queries.DISPATCH_CHANNEL}")
                await asyncio.sleep(0.05)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    assert engine._wake.is_set()
