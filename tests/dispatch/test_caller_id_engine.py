"""Invariant 9, caller ID choice: only active, not spam-flagged numbers allowed for the contact's country dial;
the contact's country is preferred when asked (while that number has capacity); a number that reached a
contact keeps dialing its retries while it is available; every attempt records why its number was chosen."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import httpx

from bulkcall.db.engine import Database
from bulkcall.db.models import CallAttempt
from bulkcall.dispatch.engine import DispatchEngine, EngineConfig
from tests.conftest import data
from tests.dispatch.conftest import FAST, World, attempt_rows, make_world, settle, tasks

US_CALLER, GB_CALLER, CA_CALLER = "+14155550100", "+442079460000", "+14165550100"


async def launch_inline(world: World, callees: list[str], **overrides: Any) -> int:
    body = world.campaign(contact_ids=[], contacts=[{"phone_e164": phone} for phone in callees], **overrides)
    created = data(await world.api.post("/bulk_call_campaigns", json=body), 201)
    data(await world.api.post(f"/bulk_call_campaigns/{created['id']}/launch"))
    return int(created["id"])


async def patch_number(api: httpx.AsyncClient, number_id: int, **changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = data(await api.patch(f"/phone_numbers/{number_id}", json=changes))
    return found


def by_task(attempts: list[CallAttempt]) -> dict[int, list[CallAttempt]]:
    grouped: dict[int, list[CallAttempt]] = defaultdict(list)
    for attempt in attempts:
        grouped[attempt.task_id].append(attempt)
    return {task_id: sorted(calls, key=lambda a: a.attempt_number) for task_id, calls in grouped.items()}


async def test_inactive_and_spam_flagged_numbers_are_never_used(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(
        api, simulator={"outcomes": {"answered": 1.0}}, numbers=("+14155550100", "+14155550101", "+14155550102")
    )
    usable, inactive, flagged = world.number_ids
    assert (await patch_number(api, inactive, status="inactive"))["status"] == "inactive"
    assert (await patch_number(api, flagged, spam_flagged=True))["spam_flagged"] is True
    await launch_inline(world, [f"+1212555{n:04d}" for n in range(16)], concurrency_limit=4)
    for _ in range(2):  # half the audience with the first states ...
        assert await engine.dispatch_once() == 4
        await engine.drain()
    assert Counter(a.phone_number_id for a in await attempt_rows(database)) == {usable: 8}

    # ... then the flags swap mid-campaign: the next calls follow the numbers' current state.
    await patch_number(api, inactive, status="active")
    await patch_number(api, usable, spam_flagged=True)
    await patch_number(api, flagged, status="inactive", spam_flagged=False)
    await settle(engine)
    attempts = await attempt_rows(database)
    assert Counter(a.phone_number_id for a in attempts) == {usable: 8, inactive: 8}
    assert all(a.phone_number_id == inactive for a in attempts[8:])


async def test_a_contact_no_number_may_call_is_skipped_as_country_not_allowed(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"answered": 1.0}}, numbers=(US_CALLER, CA_CALLER))
    uk_only, uk_or_canada = world.number_ids
    await patch_number(api, uk_only, allowed_countries=["GB"])
    await patch_number(api, uk_or_canada, allowed_countries=["GB", "CA"])
    us_contact, gb_contact, ca_contact = "+12125550001", "+442079460001", "+14165550123"
    campaign_id = await launch_inline(world, [us_contact, gb_contact, ca_contact])
    await settle(engine)

    rows = {row["phone_e164"]: row for row in await tasks(api, campaign_id)}
    assert (rows[us_contact]["status"], rows[us_contact]["skip_reason"]) == ("skipped", "country_not_allowed")
    assert rows[us_contact]["attempts"] == 0
    assert rows[gb_contact]["status"] == rows[ca_contact]["status"] == "completed"
    dialed = {a.callee_e164: a.phone_number_id for a in await attempt_rows(database)}
    assert us_contact not in dialed
    assert dialed[ca_contact] == uk_or_canada


async def test_the_contacts_country_is_preferred_when_asked(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"answered": 1.0}}, numbers=(US_CALLER, GB_CALLER))
    us_number, gb_number = world.number_ids
    us_contacts = [f"+1212555{n:04d}" for n in range(8)]
    gb_contacts = [f"+4420794601{n:02d}" for n in range(4)]
    await launch_inline(world, us_contacts + gb_contacts, prefer_country_match=True)
    await settle(engine)
    attempts = await attempt_rows(database)
    assert len(attempts) == 12
    for attempt in attempts:
        expected = (us_number, "US") if attempt.callee_e164 in us_contacts else (gb_number, "GB")
        assert attempt.phone_number_id == expected[0], attempt.caller_id_reason
        assert attempt.caller_id_reason.startswith(f"country match ({expected[1]})"), attempt.caller_id_reason


async def test_a_country_match_gives_way_when_its_connection_is_full(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"answered": 1.0}}, connection_limit=2, numbers=(US_CALLER,))
    other = data(
        await api.post(
            "/telephony_connections",
            json={
                "name": "uk",
                "provider": "simulator",
                "concurrency_limit": 10,
                "calls_per_second": 1000,
                "config": {**FAST, "outcomes": {"answered": 1.0}},
            },
        ),
        201,
    )
    gb_number = data(
        await api.post("/phone_numbers", json={"e164": GB_CALLER, "telephony_connection_id": other["id"]}), 201
    )
    world.number_ids.append(gb_number["id"])
    await launch_inline(world, [f"+1212555{n:04d}" for n in range(6)], prefer_country_match=True)

    assert await engine.dispatch_once() == 6
    used = Counter(a.phone_number_id for a in await attempt_rows(database))
    assert used == {world.number_ids[0]: 2, gb_number["id"]: 4}


async def test_retries_keep_the_number_that_reached_the_contact(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    numbers = tuple(f"+1415555{n:04d}" for n in range(4))
    busy = await make_world(api, simulator={"outcomes": {"busy": 1.0}}, numbers=numbers)
    await launch_inline(busy, [f"+1212555{n:04d}" for n in range(4)], max_retries=2)
    await settle(engine)
    voicemail = await make_world(
        api, simulator={"outcomes": {"voicemail": 1.0}}, numbers=tuple(f"+1415556{n:04d}" for n in range(4))
    )
    await launch_inline(voicemail, [f"+1212556{n:04d}" for n in range(4)], max_retries=2, retry_on_voicemail=True)
    await settle(engine)

    grouped = by_task(await attempt_rows(database))
    assert len(grouped) == 8
    for calls in grouped.values():
        assert [a.attempt_number for a in calls] == [1, 2, 3]
        assert len({a.phone_number_id for a in calls}) == 1, [a.caller_id_reason for a in calls]
        assert not calls[0].caller_id_reason.startswith("sticky")
        assert all(a.caller_id_reason.startswith("sticky") for a in calls[1:]), [a.caller_id_reason for a in calls]


async def test_a_number_that_never_reached_the_contact_does_not_stick(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"no_answer": 1.0}})
    await launch_inline(world, [f"+1212555{n:04d}" for n in range(4)], max_retries=1)
    await settle(engine)
    attempts = await attempt_rows(database)
    assert len(attempts) == 8
    assert not any(a.caller_id_reason.startswith("sticky") for a in attempts)


async def test_a_sticky_number_that_is_no_longer_available_gives_way(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"busy": 1.0}})
    campaign_id = await launch_inline(world, ["+12125550001"], max_retries=1)
    assert await engine.dispatch_once() == 1
    await engine.drain()
    (first,) = await attempt_rows(database)
    await patch_number(api, first.phone_number_id, status="inactive")
    await settle(engine)
    _, retry = await attempt_rows(database)
    (other,) = set(world.number_ids) - {first.phone_number_id}
    assert (retry.attempt_number, retry.phone_number_id) == (2, other)
    assert not retry.caller_id_reason.startswith("sticky")
    (row,) = await tasks(api, campaign_id)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    detail = data(await api.get(f"/bulk_call_campaigns/{campaign_id}/tasks/{row['id']}"))
    assert [(a["phone_number_id"], a["caller_id_reason"]) for a in detail["call_attempts"]] == [
        (first.phone_number_id, first.caller_id_reason),
        (other, retry.caller_id_reason),
    ]
    assert all("weighted by answer rate" in a["caller_id_reason"] for a in detail["call_attempts"]), detail


async def test_the_number_that_answers_better_gets_more_calls(
    api: httpx.AsyncClient, database: Database, clock: Any, engine_app: Any
) -> None:
    good, bad = "+14155550100", "+14155550101"
    world = await make_world(
        api,
        numbers=(good, bad),
        simulator={
            "outcomes": {"answered": 0.5, "no_answer": 0.5},
            "caller_answer_rates": {good: 0.9, bad: 0.1},
        },
    )
    campaign_id = await launch_inline(world, [f"+1212555{n:04d}" for n in range(240)], max_retries=0)
    # Re-read the numbers' records every round, so the weighting follows the results as they come in.
    engine = DispatchEngine(database, clock, EngineConfig(batch_size=10, records_ttl_seconds=0))
    engine_app.state.ingestion = engine.ingestion
    try:
        await settle(engine, rounds=100)
    finally:
        await engine.aclose()
    numbers = {n["e164"]: n["id"] for n in data(await api.get("/phone_numbers"))}
    calls = Counter(a.phone_number_id for a in await attempt_rows(database) if a.campaign_id == campaign_id)
    assert sum(calls.values()) == 240
    # Equal shares would be 120 each; answer-rate weighting moves most calls to the number people pick up.
    assert calls[numbers[good]] >= 2 * calls[numbers[bad]], calls
