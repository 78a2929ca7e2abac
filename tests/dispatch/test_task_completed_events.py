"""Every task that reaches a terminal status has exactly one ``task.completed`` event, whatever ended it:
an attempt, a skip at launch (DNC, invalid or duplicate phone), a cancel, ``ends_at``, or a skip just before
the dial (DNC re-check, no number allowed to call the contact's country)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from bulkcall.db.engine import Database
from bulkcall.db.models import CallTask
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.kit.clock import FixedClock
from tests.conftest import data
from tests.dispatch.conftest import START, make_world, settle
from tests.dispatch.test_webhooks_engine import assert_one_task_completed_per_terminal_task, rows

NO_ANSWER = {"outcomes": {"no_answer": 1.0}}


async def _statuses(database: Database, campaign_id: int) -> dict[str, str | None]:
    found = await rows(database, CallTask, CallTask.campaign_id == campaign_id)
    return {task.phone_e164 or "": task.skip_reason or task.status for task in found}


async def test_skips_at_launch_and_when_contacts_are_added(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"answered": 1.0}})
    await world.contacts(["+14155550001", "+14155550002", "+14155550003"])
    data(await api.post("/dnc", json={"phone_e164": "+14155550002"}), 201)
    world.contact_ids.append(world.contact_ids[0])
    campaign = await world.launch(contacts=[{"phone_e164": "not a phone"}], max_retries=0)
    found = await rows(database, CallTask, CallTask.campaign_id == campaign["id"])
    assert sorted((task.phone_e164, task.skip_reason or task.status) for task in found) == [
        ("+14155550001", "duplicate_phone"),
        ("+14155550001", "pending"),
        ("+14155550002", "dnc"),
        ("+14155550003", "pending"),
        ("not a phone", "invalid_number"),
    ]
    await assert_one_task_completed_per_terminal_task(database, campaign["id"])
    added = await api.post(
        f"/bulk_call_campaigns/{campaign['id']}/contacts", json={"contact_ids": [world.contact_ids[0]]}
    )
    assert added.status_code in (200, 201, 202), added.text
    await assert_one_task_completed_per_terminal_task(database, campaign["id"])
    await settle(engine)
    await assert_one_task_completed_per_terminal_task(database, campaign["id"])
    found = await rows(database, CallTask, CallTask.campaign_id == campaign["id"])
    assert [task.skip_reason for task in found].count("duplicate_phone") == 2


async def test_cancel_with_calls_in_flight(api: httpx.AsyncClient, engine: DispatchEngine, database: Database) -> None:
    world = await make_world(api, simulator=NO_ANSWER, connection_limit=2)
    await world.contacts([f"+1415555{n:04d}" for n in range(8)])
    campaign = await world.launch(max_retries=3)
    assert await engine.dispatch_once() == 2  # two calls in flight, six waiting
    data(await api.post(f"/bulk_call_campaigns/{campaign['id']}/cancel"))
    await assert_one_task_completed_per_terminal_task(database, campaign["id"])
    await settle(engine)
    statuses = await _statuses(database, campaign["id"])
    assert list(statuses.values()) == ["cancelled"] * 8
    await assert_one_task_completed_per_terminal_task(database, campaign["id"])


async def test_ends_at_dnc_before_the_dial_and_no_allowed_number(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, clock: FixedClock
) -> None:
    world = await make_world(api, simulator=NO_ANSWER, connection_limit=1, numbers=("+14155550100",))
    data(await api.patch(f"/phone_numbers/{world.number_ids[0]}", json={"allowed_countries": ["US"]}))
    await world.contacts(["+14155550001", "+14155550002", "+14155550003", "+14155550004"])
    await world.contacts(["+442079460001"])  # no number may call GB
    ends_at = START + timedelta(hours=1)
    campaign = await world.launch(max_retries=1, retry_delay_minutes=30, ends_at=ends_at.isoformat())
    data(await api.post("/dnc", json={"phone_e164": "+14155550001"}), 201)  # after launch: caught at the dial
    for _ in range(6):  # one call at a time; each no-answer waits 30 minutes to retry
        await engine.dispatch_once()
        await engine.drain()
    clock.set(ends_at + timedelta(minutes=1))
    await engine.sweep_once()
    await settle(engine)
    statuses = await _statuses(database, campaign["id"])
    assert statuses["+14155550001"] == "dnc"
    assert statuses["+442079460001"] == "country_not_allowed"
    assert [statuses[f"+1415555000{n}"] for n in (2, 3, 4)] == ["campaign_ended"] * 3
    assert data(await api.get(f"/bulk_call_campaigns/{campaign['id']}"))["status"] == "completed"
    await assert_one_task_completed_per_terminal_task(database, campaign["id"])
