"""Invariant 3, no duplicate dial: one task per phone, at most one call in flight per task (also as a database
rule), a crash between claim and start never turns into a second call, and a call whose result never came
back ends ``unknown`` and is never redialed."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bulkcall.db.engine import Database
from bulkcall.db.models import CallAttempt, CallTask
from bulkcall.db.repositories import dispatch as queries
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.kit.clock import FixedClock
from tests.conftest import data
from tests.dispatch.conftest import (
    START,
    attempt_rows,
    campaign,
    logged_engine,
    make_world,
    settle,
    simulator_events,
    tasks,
)

ANSWERED = {"outcomes": {"answered": 1.0}}


async def test_a_phone_in_the_audience_twice_becomes_one_task_and_one_skipped_duplicate(
    api: httpx.AsyncClient, engine: DispatchEngine
) -> None:
    world = await make_world(api, simulator=ANSWERED)
    first, second = await world.contacts(["+12125550001", "+12125550002"])
    members = data(await api.post("/contact_lists", json={"name": "vip"}), 201)
    data(await api.post(f"/contact_lists/{members['id']}/contacts", json={"contact_ids": [second]}))
    created = data(
        await api.post(
            "/bulk_call_campaigns",
            json=world.campaign(
                contact_ids=[first, second],
                # The same phone as ``first`` in another notation resolves to the same contact.
                contacts=[{"phone_e164": "+1 (212) 555-0001"}],
            ),
        ),
        201,
    )
    # The list repeats ``second``, which the explicit ids already hold.
    data(await api.patch(f"/bulk_call_campaigns/{created['id']}", json={"contact_list_id": members["id"]}))
    data(await api.post(f"/bulk_call_campaigns/{created['id']}/launch"))

    rows = await tasks(api, created["id"])
    by_phone = Counter((row["phone_e164"], row["status"], row["skip_reason"]) for row in rows)
    assert by_phone == {
        ("+12125550001", "pending", None): 1,
        ("+12125550001", "skipped", "duplicate_phone"): 1,
        ("+12125550002", "pending", None): 1,
        ("+12125550002", "skipped", "duplicate_phone"): 1,
    }

    await settle(engine)
    dialed = Counter(attempt.callee_e164 for attempt in await attempt_rows(engine.database))
    assert dialed == {"+12125550001": 1, "+12125550002": 1}


async def test_the_database_refuses_a_second_open_attempt_for_a_task(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator=ANSWERED)
    await world.contacts(["+12125550001"])
    await world.launch()
    assert await engine.dispatch_once() == 1  # not drained: the call stays in flight
    (open_attempt,) = await attempt_rows(database, open_only=True)

    def twin(attempt_number: int, *, ended: bool) -> CallAttempt:
        return CallAttempt(
            workspace_id=open_attempt.workspace_id,
            campaign_id=open_attempt.campaign_id,
            task_id=open_attempt.task_id,
            attempt_number=attempt_number,
            phone_number_id=open_attempt.phone_number_id,
            caller_e164=open_attempt.caller_e164,
            callee_e164=open_attempt.callee_e164,
            telephony_connection_id=open_attempt.telephony_connection_id,
            provider=open_attempt.provider,
            state="ended" if ended else "dialing",
            caller_id_reason="test",
            queued_at=START,
            ended_at=START if ended else None,
        )

    # The same row, ended, is accepted: what the database refuses is only a second *open* attempt.
    async with database.session(write=True) as session, session.begin():
        session.add(twin(3, ended=True))
    with pytest.raises(IntegrityError) as refused:
        async with database.session(write=True) as session, session.begin():
            session.add(twin(2, ended=False))
    assert "ux_call_attempts_open_task" in str(refused.value) or "call_attempts.task_id" in str(refused.value)


async def test_claims_of_a_crashed_worker_are_released_after_the_lease_and_dialed_once(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI, tmp_path: Path
) -> None:
    event_log = tmp_path / "sim.jsonl"
    world = await make_world(api, simulator=ANSWERED)
    await world.contacts([f"+1212555{n:04d}" for n in range(6)])
    launched = await world.launch()

    async with logged_engine(database, clock, engine_app, event_log, lease_seconds=0.05) as crashed:
        now = clock.now()
        async with database.session(write=False) as session:
            (running,) = await queries.running_campaigns(session)
        closed = await crashed._prepare_windows(running, now)
        assert closed is not None
        claims = await crashed._claim(running.workspace_id, [running], {running.id: closed}, now)
        assert len(claims) == 6
        # The worker dies here: the claims are never started.
    held = await attempt_rows(database, open_only=True)
    assert [attempt.state for attempt in held] == ["queued"] * 6
    assert {row["status"] for row in await tasks(api, launched["id"])} == {"queued"}
    assert simulator_events(event_log) == []

    async with logged_engine(database, clock, engine_app, event_log) as survivor:
        # Nothing can be dialed while the claims hold the tasks.
        assert await survivor.dispatch_once() == 0
        await asyncio.sleep(0.1)  # wall time passes the 50 ms lease (leases are about live workers, not the clock)
        await survivor.sweep_once()
        assert await attempt_rows(database) == []
        assert {row["status"] for row in await tasks(api, launched["id"])} == {"pending"}

        # A zombie that wakes up now finds nothing left to start.
        assert await crashed._start_and_send(running.workspace_id, claims) == 0

        await settle(survivor)

    starts = simulator_events(event_log, "start")
    assert len(starts) == 6
    assert len({start["attempt_id"] for start in starts}) == 6, "one start per attempt"
    assert Counter((start["task_id"], start["attempt_number"]) for start in starts) == {
        (row["id"], 1): 1 for row in await tasks(api, launched["id"])
    }
    rows = await tasks(api, launched["id"])
    assert all(row["status"] == "completed" and row["attempts"] == 1 for row in rows), rows


async def test_a_zombie_worker_never_starts_another_workers_claim(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI, tmp_path: Path
) -> None:
    event_log = tmp_path / "sim.jsonl"
    world = await make_world(api, simulator=ANSWERED)
    await world.contacts(["+12125550001", "+12125550002"])
    await world.launch()
    async with logged_engine(database, clock, engine_app, event_log, lease_seconds=0.05) as zombie:
        async with database.session(write=False) as session:
            (running,) = await queries.running_campaigns(session)
        closed = await zombie._prepare_windows(running, clock.now())
        assert closed is not None
        stale = await zombie._claim(running.workspace_id, [running], {running.id: closed}, clock.now())
        assert len(stale) == 2
        # The zombie stalls past its lease; the claims are released.
        await asyncio.sleep(0.1)
        await zombie.sweep_once()
        assert await attempt_rows(database) == []
        # Another worker claims only the second task (the first is not due), possibly under a reused attempt id.
        async with database.session(write=True) as session, session.begin():
            await session.execute(
                update(CallTask)
                .where(CallTask.id == stale[0].task.id)
                .values(next_eligible_at=START + timedelta(hours=1))
            )
        async with logged_engine(database, clock, engine_app, event_log) as other:
            fresh = await other._claim(running.workspace_id, [running], {running.id: closed}, clock.now())
            assert [claim.task.id for claim in fresh] == [stale[1].task.id]

            assert await zombie._start_and_send(running.workspace_id, stale) == 0, "the zombie starts nothing"
            assert await other._start_and_send(running.workspace_id, fresh) == 1
            await other.drain()
    (start,) = simulator_events(event_log, "start")
    assert (start["attempt_id"], start["task_id"], start["to"]) == (
        fresh[0].attempt_id,
        stale[1].task.id,
        "+12125550002",
    )


async def test_an_attempt_without_a_result_ends_unknown_after_the_timeout_and_is_never_redialed(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI, tmp_path: Path
) -> None:
    event_log = tmp_path / "sim.jsonl"
    world = await make_world(api, simulator={"outcomes": {"no_answer": 1.0}, "callback_faults": {"missing": 1.0}})
    await world.contacts(["+12125550001", "+12125550002"])
    launched = await world.launch(max_retries=3)

    async with logged_engine(database, clock, engine_app, event_log, result_timeout=timedelta(minutes=10)) as eng:
        assert await eng.dispatch_once() == 2
        await eng.drain()  # the calls play out; only their "ringing" ever reports back
        clock.set(START + timedelta(minutes=9))
        await eng.sweep_once()
        assert {attempt.outcome for attempt in await attempt_rows(database)} == {None}, "ended before the timeout"

        clock.set(START + timedelta(minutes=10, seconds=1))
        await eng.sweep_once()
        attempts = await attempt_rows(database)
        assert [(a.outcome, a.state, a.ended_at is not None) for a in attempts] == [("unknown", "ended", True)] * 2

        # Retries are left (max_retries 3) and time moves on, yet nothing is dialed again.
        for hours in (1, 2, 24):
            clock.set(START + timedelta(hours=hours))
            await settle(eng)

    assert len(simulator_events(event_log, "start")) == 2
    assert len(await attempt_rows(database)) == 2
    rows = await tasks(api, launched["id"])
    assert [(row["status"], row["last_outcome"], row["attempts"]) for row in rows] == [("failed", "unknown", 1)] * 2
    detail = data(await api.get(f"/bulk_call_campaigns/{launched['id']}/tasks/{rows[0]['id']}"))
    assert [(a["outcome"], a["attempt_number"]) for a in detail["call_attempts"]] == [("unknown", 1)]
    assert (await campaign(api, launched["id"]))["status"] == "completed"


async def test_no_task_ever_has_two_calls_in_flight_across_retries(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"busy": 0.5, "no_answer": 0.5}})
    await world.contacts([f"+1212555{n:04d}" for n in range(5)])
    await world.launch(max_retries=2)
    for round_number in range(8):
        # Rounds without draining pile up work; draining every other round lets retries come due.
        await engine.dispatch_once()
        async with database.session(write=False) as session:
            open_per_task = Counter(
                (await session.execute(select(CallAttempt.task_id).where(CallAttempt.ended_at.is_(None)))).scalars()
            )
            in_flight_tasks = set(
                (
                    await session.execute(
                        select(CallTask.id).where(CallTask.status.in_(("queued", "placing_call", "calling")))
                    )
                ).scalars()
            )
        assert all(count == 1 for count in open_per_task.values()), open_per_task
        assert set(open_per_task) == in_flight_tasks
        if round_number % 2:
            await engine.drain()
            await engine.sweep_once()
    attempts = await attempt_rows(database)
    per_task = Counter(attempt.task_id for attempt in attempts)
    assert set(per_task.values()) == {3}, "every contact got its full budget, one call at a time"
