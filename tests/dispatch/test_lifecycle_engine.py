"""Invariants 6 and 7 in the engine: pause means stop, resume continues, cancel ends what was not dialed,
and a campaign finishes on its own (all tasks terminal, or ``ends_at``) or starts on its own (``scheduled_at``).

Calls that must still be in flight when the campaign changes state use a slow simulator (``speed`` 1: a call
rings 0.2 s and talks 0.2 s of wall time); the rest play out in milliseconds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bulkcall.db.engine import Database
from bulkcall.db.models import CallAttempt, CampaignEvent
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.kit.clock import FixedClock
from tests.conftest import data
from tests.dispatch.conftest import START, World, attempts_by_task, campaign, make_world, settle, tasks

SLOW = {"speed": 1, "ring_seconds": [0.2, 0.2], "talk_seconds": [0.2, 0.2]}
ANSWERED = {"outcomes": {"answered": 1.0}}
NO_ANSWER = {"outcomes": {"no_answer": 1.0}}
CAMPAIGNS = "/bulk_call_campaigns"


async def all_attempts(database: Database, campaign_id: int) -> list[CallAttempt]:
    return [a for attempts in (await attempts_by_task(database, campaign_id)).values() for a in attempts]


async def event_types(database: Database, campaign_id: int) -> list[str]:
    """The campaign's lifecycle events (``campaign.*``), oldest first."""
    async with database.session(write=False) as session:
        rows = await session.execute(
            select(CampaignEvent.type)
            .where(CampaignEvent.campaign_id == campaign_id, CampaignEvent.type.startswith("campaign."))
            .order_by(CampaignEvent.id)
        )
        return list(rows.scalars())


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {status: count for status, count in counts.items() if count}


async def act(api: httpx.AsyncClient, campaign_id: int, action: str, status: str) -> dict[str, Any]:
    found: dict[str, Any] = data(await api.post(f"{CAMPAIGNS}/{campaign_id}/{action}", json={}))
    assert found["status"] == status, found
    return found


async def speed_up(api: httpx.AsyncClient, world: World) -> None:
    """Make the simulator fast again (the engine rereads a connection whose ``updated_at`` moved)."""
    data(await api.patch(f"/telephony_connections/{world.connection_id}", json={"config": {"speed": 100_000}}))


async def ten_contacts(world: World) -> None:
    await world.contacts([f"+1212555{n:04d}" for n in range(10)])


# -- pause and resume ------------------------------------------------------------------------------------------


async def test_pause_stops_new_dials_at_once_and_lets_calls_in_flight_finish(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    world = await make_world(api, simulator={**SLOW, **ANSWERED})
    await ten_contacts(world)
    launched = await world.launch(concurrency_limit=3)
    assert await engine.dispatch_once() == 3

    await act(api, launched["id"], "pause", "paused")
    paused_at = clock.now()
    # Results are only ingested inside drain(), so these calls are certainly still open at the pause.
    assert [a.ended_at for a in await all_attempts(database, launched["id"])] == [None] * 3
    clock.set(paused_at + timedelta(minutes=1))
    assert await engine.dispatch_once() == 0
    await engine.drain()  # the three calls play out after the pause
    await engine.sweep_once()
    assert await engine.dispatch_once() == 0

    attempts = await all_attempts(database, launched["id"])
    assert len(attempts) == 3
    assert all(a.dialed_at is not None and a.dialed_at <= paused_at for a in attempts)
    assert all(a.outcome == "answered" and a.ended_at is not None for a in attempts), attempts
    rows = await tasks(api, launched["id"])
    dialed = {a.task_id for a in attempts}
    assert {row["status"] for row in rows if row["id"] in dialed} == {"completed"}
    waiting = [row for row in rows if row["id"] not in dialed]
    assert len(waiting) == 7
    assert all(row["status"] == "pending" and row["blocker"] == "campaign_paused" for row in waiting), waiting
    assert (await campaign(api, launched["id"]))["status"] == "paused"

    # Resume: the seven that waited are dialed, once each; the three already done are left alone.
    clock.set(clock.now() + timedelta(minutes=1))
    await speed_up(api, world)
    resumed_at = clock.now()
    await act(api, launched["id"], "resume", "running")
    await settle(engine)
    by_task = await attempts_by_task(database, launched["id"])
    assert sorted(len(calls) for calls in by_task.values()) == [1] * 10
    assert all(calls[0].dialed_at == resumed_at for task_id, calls in by_task.items() if task_id not in dialed)
    assert (await campaign(api, launched["id"]))["status"] == "completed"


async def test_a_pause_between_claim_and_dial_starts_no_call(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pause response comes after the claim but before the dial: the claimed calls must not start."""
    world = await make_world(api, simulator=ANSWERED)
    await ten_contacts(world)
    launched = await world.launch(concurrency_limit=3)
    claim = engine._claim
    paused: list[bool] = []

    async def claim_then_pause(*args: Any, **kwargs: Any) -> Any:
        claimed = await claim(*args, **kwargs)
        if claimed and not paused:
            await act(api, launched["id"], "pause", "paused")
            paused.append(True)
        return claimed

    monkeypatch.setattr(engine, "_claim", claim_then_pause)
    assert await engine.dispatch_once() == 0
    assert paused == [True]  # the claim did take tasks: the race was really run
    await engine.drain()
    await engine.sweep_once()
    assert await all_attempts(database, launched["id"]) == []
    assert {row["status"] for row in await tasks(api, launched["id"])} == {"pending"}

    await act(api, launched["id"], "resume", "running")
    await settle(engine)
    by_task = await attempts_by_task(database, launched["id"])
    assert sorted(len(calls) for calls in by_task.values()) == [1] * 10
    assert (await campaign(api, launched["id"]))["status"] == "completed"


# -- cancel ----------------------------------------------------------------------------------------------------


async def test_cancel_ends_undialed_tasks_and_lets_calls_in_flight_finish(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    world = await make_world(api, simulator={**SLOW, **ANSWERED})
    await ten_contacts(world)
    launched = await world.launch(concurrency_limit=3)
    assert await engine.dispatch_once() == 3
    await act(api, launched["id"], "cancel", "cancelled")

    in_flight = {a.task_id for a in await all_attempts(database, launched["id"])}
    rows = await tasks(api, launched["id"])
    assert {row["status"] for row in rows if row["id"] not in in_flight} == {"cancelled"}
    assert {row["status"] for row in rows if row["id"] in in_flight} <= {"placing_call", "calling"}

    await engine.drain()
    await engine.sweep_once()
    clock.set(clock.now() + timedelta(hours=1))
    assert await engine.dispatch_once() == 0
    await settle(engine)
    attempts = await all_attempts(database, launched["id"])
    assert len(attempts) == 3
    assert all(a.outcome == "answered" and a.ended_at is not None for a in attempts)
    rows = await tasks(api, launched["id"])
    for row in rows:
        if row["id"] in in_flight:
            assert row["status"] == "completed", row
            assert row["last_outcome"] == "answered", row
        else:
            assert row["status"] == "cancelled", row
            assert row["attempts"] == 0, row
    found = await campaign(api, launched["id"])
    assert found["status"] == "cancelled", found
    assert nonzero(found["counts"]) == {"completed": 3, "cancelled": 7}, found


async def test_cancel_ends_tasks_waiting_for_a_retry_and_in_flight_calls_get_no_retry(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    world = await make_world(api, simulator={**SLOW, **NO_ANSWER})
    await ten_contacts(world)
    launched = await world.launch(concurrency_limit=3, max_retries=2, retry_delay_minutes=10)
    assert await engine.dispatch_once() == 3
    await engine.drain()
    first = {a.task_id for a in await all_attempts(database, launched["id"])}
    assert await engine.dispatch_once() == 3  # three more, still ringing when the cancel comes
    await act(api, launched["id"], "cancel", "cancelled")
    in_flight = {a.task_id for a in await all_attempts(database, launched["id"])} - first

    await engine.drain()
    clock.set(clock.now() + timedelta(minutes=30))  # long past every retry delay
    await settle(engine)
    attempts = await all_attempts(database, launched["id"])
    assert len(attempts) == 6
    assert all(a.outcome == "no_answer" and a.ended_at is not None for a in attempts)
    rows = await tasks(api, launched["id"])
    assert {row["status"] for row in rows} == {"cancelled"}, rows
    for row in rows:
        assert row["attempts"] == (1 if row["id"] in first | in_flight else 0), row
    assert (await campaign(api, launched["id"]))["status"] == "cancelled"


# -- completion, ends_at, scheduled start ----------------------------------------------------------------------


async def test_a_campaign_completes_on_its_own_when_every_task_is_terminal(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    world = await make_world(api, simulator=NO_ANSWER)
    await world.contacts(["+12125550101", "+12125550102"])
    launched = await world.launch(max_retries=1, retry_delay_minutes=10)
    await settle(engine)
    # A retry is still to come: not complete yet.
    assert (await campaign(api, launched["id"]))["status"] == "running"
    assert "campaign.completed" not in await event_types(database, launched["id"])

    clock.set(clock.now() + timedelta(minutes=10))
    # Only dispatch and callbacks: the last result completes the campaign, no sweep needed.
    assert await engine.dispatch_once() == 2
    await engine.drain()
    found = await campaign(api, launched["id"])
    assert found["status"] == "completed", found
    assert found["completed_at"] is not None, found
    assert nonzero(found["counts"]) == {"failed": 2}
    assert (await event_types(database, launched["id"])).count("campaign.completed") == 1
    await settle(engine)
    assert (await event_types(database, launched["id"])).count("campaign.completed") == 1


async def test_a_campaign_with_nothing_to_dial_completes_at_launch(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator=ANSWERED)
    await world.contacts(["+12125550101"])
    data(await api.post("/dnc", json={"phone_e164": "+12125550101"}), 201)
    launched = await world.launch()
    assert launched["status"] == "completed"
    assert await event_types(database, launched["id"]) == ["campaign.launched", "campaign.completed"]
    assert await engine.dispatch_once() == 0


async def test_ends_at_ends_waiting_tasks_and_completes_the_campaign(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    world = await make_world(api, simulator=NO_ANSWER)
    new_york, kolkata = "+12125550101", "+919876543210"
    await world.contacts([new_york], timezone="America/New_York")
    await world.contacts([kolkata], timezone="Asia/Kolkata")
    nine_to_six = {
        day: {"enabled": True, "start": "09:00", "end": "18:00"}
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    ends_at = START + timedelta(hours=1)
    launched = await world.launch(
        call_windows=nine_to_six, max_retries=5, retry_delay_minutes=30, ends_at=ends_at.isoformat()
    )
    # START is 11:00 in New York (dialed, then waits 30 min to retry) and 20:30 in Kolkata (waits for morning).
    await settle(engine)
    by_phone = {row["phone_e164"]: row for row in await tasks(api, launched["id"])}
    assert by_phone[new_york]["status"] == "retry_pending"
    assert by_phone[kolkata]["status"] == "pending"

    clock.set(ends_at + timedelta(minutes=1))  # the New York retry is due, but the campaign has ended
    assert await engine.dispatch_once() == 0
    await engine.sweep_once()
    await settle(engine)
    by_phone = {row["phone_e164"]: row for row in await tasks(api, launched["id"])}
    for phone, attempts in ((new_york, 1), (kolkata, 0)):
        row = by_phone[phone]
        assert row["status"] == "skipped", row
        assert row["skip_reason"] == "campaign_ended", row
        assert row["attempts"] == attempts, row
    assert len(await all_attempts(database, launched["id"])) == 1
    assert (await campaign(api, launched["id"]))["status"] == "completed"
    assert (await event_types(database, launched["id"])).count("campaign.completed") == 1


async def test_a_scheduled_campaign_dials_nothing_before_its_start_and_starts_after_it(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    world = await make_world(api, simulator=ANSWERED)
    await world.contacts(["+12125550101", "+12125550102"])
    starts = START + timedelta(hours=2)
    launched = await world.launch(trigger_mode="scheduled", scheduled_at=starts.isoformat())
    assert launched["status"] == "scheduled"
    for instant in (START, starts - timedelta(seconds=1)):
        clock.set(instant)
        await settle(engine)
        await settle(engine)
        assert await all_attempts(database, launched["id"]) == []
        assert (await campaign(api, launched["id"]))["status"] == "scheduled"
        rows = await tasks(api, launched["id"])
        assert all(row["blocker"] == "campaign_scheduled" for row in rows), rows

    clock.set(starts)
    await engine.sweep_once()  # the sweep starts it (the loop runs one every second)
    assert (await campaign(api, launched["id"]))["status"] == "running"
    await settle(engine)
    attempts = await all_attempts(database, launched["id"])
    assert len(attempts) == 2, attempts
    assert all(a.dialed_at == starts for a in attempts), attempts
    assert (await campaign(api, launched["id"]))["status"] == "completed"
    assert await event_types(database, launched["id"]) == [
        "campaign.launched",
        "campaign.started",
        "campaign.completed",
    ]
