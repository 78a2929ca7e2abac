"""Analytics and dispatch health on calls the engine really made, the failure-spike breaker and the budget cap.

Analytics is checked two ways: exact figures on small known campaigns, and equality with an independent
reading of ``call_attempts`` (the definitions in docs/api.md applied row by row) over several ranges, also
after the campaign's timezone changes (DST and half-hour zones included).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update

from bulkcall.db.engine import Database
from bulkcall.db.models import (
    CallAttempt,
    Campaign,
    CampaignCallStat,
    CampaignEvent,
    CampaignReachStat,
    CampaignTalkStat,
)
from bulkcall.db.repositories import insight as insight_queries
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.kit.clock import FixedClock
from tests.conftest import data
from tests.dispatch.conftest import ALWAYS, START, campaign, make_world, settle

CAMPAIGNS = "/bulk_call_campaigns"
ANSWER_30S = {"outcomes": {"answered": 1.0}, "talk_seconds": [30, 30], "ring_seconds": [0, 0]}
OUTCOME_NAMES = ("answered", "voicemail", "no_answer", "busy", "failed", "rejected", "invalid_number", "unknown")


async def analytics(api: httpx.AsyncClient, campaign_id: int, **params: str) -> dict[str, Any]:
    found: dict[str, Any] = data(await api.get(f"{CAMPAIGNS}/{campaign_id}/analytics", params=params))
    return found


async def health(api: httpx.AsyncClient, campaign_id: int) -> dict[str, Any]:
    found: dict[str, Any] = data(await api.get(f"{CAMPAIGNS}/{campaign_id}/dispatch_health"))
    return found


async def ended_attempts(database: Database, campaign_id: int) -> list[CallAttempt]:
    async with database.session(write=False) as session:
        rows = await session.execute(
            select(CallAttempt)
            .where(CallAttempt.campaign_id == campaign_id, CallAttempt.outcome.is_not(None))
            .order_by(CallAttempt.id)
        )
        return list(rows.scalars())


async def events(database: Database, campaign_id: int) -> list[CampaignEvent]:
    async with database.session(write=False) as session:
        rows = await session.execute(
            select(CampaignEvent).where(CampaignEvent.campaign_id == campaign_id).order_by(CampaignEvent.id)
        )
        return list(rows.scalars())


def reference(rows: list[CallAttempt], zone: str, first: date | None, last: date | None) -> dict[str, Any]:
    """The analytics definitions applied to attempt rows one by one (no buckets, no histogram)."""
    tz = ZoneInfo(zone)
    picked = [
        a
        for a in rows
        if a.ended_at is not None
        and (first is None or a.ended_at.astimezone(tz).date() >= first)
        and (last is None or a.ended_at.astimezone(tz).date() <= last)
    ]
    outcomes = Counter(a.outcome for a in picked)
    answered = [a for a in picked if a.outcome == "answered"]
    by_day: dict[str, list[float]] = {}
    by_hour = [[0, 0, 0.0] for _ in range(24)]
    for a in picked:
        assert a.ended_at is not None
        local = a.ended_at.astimezone(tz)
        talk = (a.duration_seconds or 0.0) if a.outcome == "answered" else 0.0
        for point in (by_day.setdefault(local.date().isoformat(), [0, 0, 0.0]), by_hour[local.hour]):
            point[0] += 1
            point[1] += a.outcome == "answered"
            point[2] += talk
    numbers: dict[int, list[Any]] = {}
    for a in picked:
        entry = numbers.setdefault(a.phone_number_id, [0, 0, 0.0, Decimal(0)])
        entry[0] += 1
        entry[1] += a.outcome == "answered"
        entry[2] += (a.duration_seconds or 0.0) if a.outcome == "answered" else 0.0
        entry[3] += a.cost or Decimal(0)
    retries: dict[int, list[int]] = {}
    for a in picked:
        step = retries.setdefault(a.attempt_number, [0, 0])
        step[0] += 1
        step[1] += a.outcome == "answered"
    return {
        "totals": {
            "attempts": len(picked),
            **{name: outcomes.get(name, 0) for name in OUTCOME_NAMES},
            "contacts": len({a.task_id for a in picked}),
            "contacts_reached": len({a.task_id for a in answered}),
        },
        "talk_total": sum(a.duration_seconds or 0.0 for a in answered),
        "talk_median": median([a.duration_seconds or 0.0 for a in answered]) if answered else None,
        "cost": float(sum((a.cost or Decimal(0) for a in picked), Decimal(0))),
        "daily": {day: (int(p[0]), int(p[1]), p[2]) for day, p in by_day.items()},
        "hours": [(int(p[0]), int(p[1]), p[2]) for p in by_hour],
        "numbers": {n: (e[0], e[1], e[2], float(e[3])) for n, e in numbers.items()},
        "retries": {n: tuple(v) for n, v in retries.items()},
    }


def assert_matches(found: dict[str, Any], expected: dict[str, Any]) -> None:
    totals = {k: v for k, v in found["totals"].items() if k != "tasks_total"}
    assert totals == expected["totals"]
    assert found["talk_time"]["total_seconds"] == pytest.approx(expected["talk_total"])
    assert found["cost"] == pytest.approx(expected["cost"])
    if expected["talk_median"] is None:
        assert found["talk_time"]["median_seconds"] is None
    else:  # a histogram median: within half a 5-second bin below ten minutes
        assert abs(found["talk_time"]["median_seconds"] - expected["talk_median"]) <= 5
    daily = {p["date"]: (p["attempts"], p["answered"], pytest.approx(p["talk_seconds"])) for p in found["daily"]}
    assert daily == expected["daily"]
    hours = [(p["attempts"], p["answered"], pytest.approx(p["talk_seconds"])) for p in found["hour_of_day"]]
    assert hours == expected["hours"]
    numbers = {
        p["phone_number_id"]: (p["attempts"], p["answered"], pytest.approx(p["talk_seconds"]), pytest.approx(p["cost"]))
        for p in found["by_caller_number"]
    }
    assert numbers == expected["numbers"]
    retries = {p["attempt_number"]: (p["attempts"], p["answered"]) for p in found["retry_effectiveness"]}
    assert retries == expected["retries"]


# -- analytics: exact figures ----------------------------------------------------------------------------------


async def test_analytics_of_three_answered_calls(api: httpx.AsyncClient, engine: DispatchEngine) -> None:
    world = await make_world(api, simulator=ANSWER_30S, numbers=("+14155550100",))
    await world.contacts(["+12125550101", "+12125550102", "+12125550103"])
    launched = await world.launch(max_retries=0)
    await settle(engine)
    found = await analytics(api, launched["id"])
    assert found["totals"] == {
        "attempts": 3,
        "answered": 3,
        "voicemail": 0,
        "no_answer": 0,
        "busy": 0,
        "failed": 0,
        "rejected": 0,
        "invalid_number": 0,
        "unknown": 0,
        "contacts": 3,
        "contacts_reached": 3,
        "tasks_total": 3,
    }
    assert found["answer_rate"] == 1.0
    assert found["contact_rate"] == 1.0
    # 30 s each; the median is the midpoint of its 5-second bin [30, 35).
    assert found["talk_time"] == {
        "total_seconds": 90.0,
        "average_seconds": 30.0,
        "median_seconds": 32.5,
        "answered_calls": 3,
    }
    assert found["cost"] == pytest.approx(0.039)  # a started minute at 0.013 each
    assert found["retry_effectiveness"] == [{"attempt_number": 1, "attempts": 3, "answered": 3, "answer_rate": 1.0}]
    assert found["by_caller_number"] == [
        {
            "phone_number_id": world.number_ids[0],
            "e164": "+14155550100",
            "attempts": 3,
            "answered": 3,
            "answer_rate": 1.0,
            "talk_seconds": 90.0,
            "cost": pytest.approx(0.039),
        }
    ]
    assert found["daily"] == [{"date": "2026-06-03", "attempts": 3, "answered": 3, "talk_seconds": 90.0}]
    assert [p["attempts"] for p in found["hour_of_day"]] == [0] * 15 + [3] + [0] * 8  # 15:00 UTC
    assert found["range"] == {"from": None, "to": None, "timezone": "UTC", "starts_at": None, "ends_at": None}
    # Another day: nothing in range, rates null, the campaign's tasks still counted.
    empty = await analytics(api, launched["id"], **{"from": "2026-06-04", "to": "2026-06-05"})
    assert empty["totals"]["attempts"] == 0
    assert empty["totals"]["tasks_total"] == 3
    assert empty["answer_rate"] is None
    assert empty["contact_rate"] is None
    assert empty["talk_time"]["median_seconds"] is None
    assert empty["talk_time"]["average_seconds"] is None


SENTINEL = "+12125550199"


def one_call_each(phones: list[str]) -> dict[str, Any]:
    """Every phone answers (30 s), except the sentinel, which never does (its retry keeps the campaign open)."""
    rates = dict.fromkeys(phones, 1.0) | {SENTINEL: 0.0}
    return {**ANSWER_30S, "outcomes": {"answered": 0.5, "no_answer": 0.5}, "number_answer_rates": rates}


async def _calls_at(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, instants: list[datetime], zone: str
) -> int:
    """One answered call ending at each instant (a contact added to the running campaign at that time).

    The campaign is launched two days earlier with a sentinel contact that never answers and retries a month
    later, so it stays running; its one attempt ends before every range the tests read.
    """
    phones = [f"+1212555{n:04d}" for n in range(200, 200 + len(instants))]
    world = await make_world(api, simulator=one_call_each(phones), numbers=("+14155550100",))
    clock.set(instants[0] - timedelta(days=2))
    await world.contacts([SENTINEL])
    launched = await world.launch(
        max_retries=1, retry_delay_minutes=60 * 24 * 30, timezone=zone, timezone_mode="campaign_timezone"
    )
    await settle(engine)
    for phone, instant in zip(phones, instants, strict=True):
        clock.set(instant)
        contact = data(await api.post("/contacts", json={"phone_e164": phone}), 201)
        data(await api.post(f"{CAMPAIGNS}/{launched['id']}/contacts", json={"contact_ids": [contact["id"]]}))
        await settle(engine)
    campaign_id: int = launched["id"]
    return campaign_id


async def test_a_day_in_a_half_hour_zone_starts_at_local_midnight(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    # Kolkata is UTC+05:30: local midnight of June 4 is 18:30 UTC on June 3.
    instants = [
        datetime(2026, 6, 3, 18, 29, tzinfo=UTC),  # 23:59 on the 3rd
        datetime(2026, 6, 3, 18, 31, tzinfo=UTC),  # 00:01 on the 4th
        datetime(2026, 6, 4, 18, 29, 59, tzinfo=UTC),  # 23:59:59 on the 4th
        datetime(2026, 6, 4, 18, 30, tzinfo=UTC),  # 00:00 on the 5th
    ]
    campaign_id = await _calls_at(api, engine, clock, instants, "Asia/Kolkata")
    found = await analytics(api, campaign_id, **{"from": "2026-06-04", "to": "2026-06-04"})
    assert found["totals"]["attempts"] == 2
    assert found["totals"]["contacts"] == 2
    assert found["range"]["starts_at"] == "2026-06-03T18:30:00Z"
    assert found["range"]["ends_at"] == "2026-06-04T18:30:00Z"
    assert [(p["date"], p["attempts"]) for p in found["daily"]] == [("2026-06-04", 2)]
    hours = {p["hour"]: p["attempts"] for p in found["hour_of_day"] if p["attempts"]}
    assert hours == {0: 1, 23: 1}
    everything = await analytics(api, campaign_id)
    assert [(p["date"], p["attempts"]) for p in everything["daily"]] == [
        ("2026-06-01", 1),  # the sentinel's call
        ("2026-06-03", 1),
        ("2026-06-04", 2),
        ("2026-06-05", 1),
    ]
    rows = await ended_attempts(database, campaign_id)
    for first, last in ((None, None), (date(2026, 6, 4), date(2026, 6, 5)), (date(2026, 6, 1), date(2026, 6, 3))):
        params = {k: v.isoformat() for k, v in (("from", first), ("to", last)) if v is not None}
        assert_matches(await analytics(api, campaign_id, **params), reference(rows, "Asia/Kolkata", first, last))


async def test_the_spring_forward_day_has_23_hours(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock
) -> None:
    # New York, 2026-03-08: EST (UTC-5) until 02:00, then EDT (UTC-4); the local day is 05:00Z..04:00Z.
    instants = [
        datetime(2026, 3, 8, 4, 59, tzinfo=UTC),  # 23:59 EST on the 7th
        datetime(2026, 3, 8, 5, 1, tzinfo=UTC),  # 00:01 EST on the 8th
        datetime(2026, 3, 8, 7, 30, tzinfo=UTC),  # 03:30 EDT on the 8th
        datetime(2026, 3, 9, 3, 59, tzinfo=UTC),  # 23:59 EDT on the 8th
        datetime(2026, 3, 9, 4, 1, tzinfo=UTC),  # 00:01 EDT on the 9th
    ]
    campaign_id = await _calls_at(api, engine, clock, instants, "America/New_York")
    found = await analytics(api, campaign_id, **{"from": "2026-03-08", "to": "2026-03-08"})
    assert found["totals"]["attempts"] == 3
    assert found["range"]["starts_at"] == "2026-03-08T05:00:00Z"
    assert found["range"]["ends_at"] == "2026-03-09T04:00:00Z"
    hours = {p["hour"]: p["attempts"] for p in found["hour_of_day"] if p["attempts"]}
    assert hours == {0: 1, 3: 1, 23: 1}


# -- analytics: equal to the attempts, whatever the range and timezone -------------------------------------------


async def test_analytics_reconcile_with_the_attempts_over_days_retries_and_timezone_changes(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    mix = {"answered": 0.35, "voicemail": 0.15, "no_answer": 0.3, "busy": 0.1, "failed": 0.1}
    world = await make_world(
        api,
        simulator={"outcomes": mix, "talk_seconds": [5, 400], "ring_seconds": [0, 0], "seed": 7},
        numbers=("+14155550100", "+14155550101", "+14155550102"),
    )
    await world.contacts([f"+1212555{n:04d}" for n in range(300, 340)])
    launched = await world.launch(
        max_retries=3,
        retry_delay_minutes=700,
        retry_delays={"no_answer": 170, "busy": 400},
        timezone="Asia/Kolkata",
        metadata={"failure_spike": False},
    )
    campaign_id = launched["id"]
    # Rounds 1 h 53 min apart over 34 hours: retries land in other hours and days, some across midnights.
    for _ in range(18):
        await settle(engine)
        clock.set(clock.now() + timedelta(hours=1, minutes=53))
    rows = await ended_attempts(database, campaign_id)
    counts = (await campaign(api, campaign_id))["counts"]
    assert (await health(api, campaign_id))["tasks_by_status"] == counts
    assert (await analytics(api, campaign_id))["totals"]["tasks_total"] == sum(counts.values()) == 40
    assert len(rows) > 50
    assert len({a.attempt_number for a in rows}) >= 3
    assert len({a.ended_at.date() for a in rows if a.ended_at}) >= 2
    days = [START.date() + timedelta(days=n) for n in range(-1, 4)]
    ranges = [
        (None, None),
        (days[1], days[1]),
        (days[1], days[2]),
        (days[2], days[3]),
        (days[0], None),
        (None, days[1]),
    ]
    for zone in ("Asia/Kolkata", "America/St_Johns", "America/New_York", "UTC"):
        # A paused campaign's timezone may change (this one has completed: set it in the row); the figures follow
        # the new zone exactly, half-hour and DST zones included.
        async with database.session(write=True) as session, session.begin():
            await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(timezone=zone))
        for first, last in ranges:
            params = {k: v.isoformat() for k, v in (("from", first), ("to", last)) if v is not None}
            assert_matches(await analytics(api, campaign_id, **params), reference(rows, zone, first, last))
    # The set-based rebuild (bulk loads, repairs) gives the very statistics the engine kept call by call.
    kept = await stats_rows(database, campaign_id)
    async with database.session(write=True) as session, session.begin():
        await insight_queries.rebuild_stats(session, campaign_id)
    assert await stats_rows(database, campaign_id) == kept
    assert len(kept[0]) > 20
    assert len(kept[1]) > 8
    assert len(kept[2]) > 10
    assert {row[2] for row in kept[1]} != {0}  # retries name their previous attempt's bucket


async def stats_rows(database: Database, campaign_id: int) -> tuple[list[Any], ...]:
    """The campaign's statistics per key, summed over the shards (PostgreSQL spreads writers over them)."""
    call, reach, talk = CampaignCallStat, CampaignReachStat, CampaignTalkStat
    call_keys = (call.bucket, call.phone_number_id, call.attempt_number, call.outcome)
    reach_keys = (reach.bucket, reach.kind, reach.prev_bucket)
    talk_keys = (talk.bucket, talk.bin)
    async with database.session(write=False) as session:
        calls = await session.execute(
            select(*call_keys, func.sum(call.attempts), func.sum(call.talk_seconds), func.sum(call.cost))
            .where(call.campaign_id == campaign_id)
            .group_by(*call_keys)
            .order_by(*call_keys)
        )
        reaches = await session.execute(
            select(*reach_keys, func.sum(reach.tasks))
            .where(reach.campaign_id == campaign_id)
            .group_by(*reach_keys)
            .order_by(*reach_keys)
        )
        talks = await session.execute(
            select(*talk_keys, func.sum(talk.calls))
            .where(talk.campaign_id == campaign_id)
            .group_by(*talk_keys)
            .order_by(*talk_keys)
        )
        return (
            [
                (bucket, number, tries, outcome, int(attempts), pytest.approx(float(talk)), pytest.approx(float(cost)))
                for bucket, number, tries, outcome, attempts, talk, cost in calls
            ],
            [(bucket, kind, prev, int(tasks)) for bucket, kind, prev, tasks in reaches],
            [(bucket, index, int(calls)) for bucket, index, calls in talks],
        )


# -- the breaker and the budget ---------------------------------------------------------------------------------


async def test_a_failure_spike_pauses_the_campaign_with_its_events(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"failed": 1.0}}, connection_limit=30)
    await world.contacts([f"+1212555{n:04d}" for n in range(400, 425)])
    launched = await world.launch(max_retries=2)
    await settle(engine)
    found = await campaign(api, launched["id"])
    assert found["status"] == "paused"
    assert found["pause_reason"] == "failure_spike"
    kinds = [e.type for e in await events(database, launched["id"])]
    assert kinds.index("campaign.health_degraded") < kinds.index("campaign.paused")
    degraded = next(e for e in await events(database, launched["id"]) if e.type == "campaign.health_degraded")
    assert degraded.data["reason"] == "failure_spike"
    assert degraded.data["failed"] == degraded.data["attempts"] >= 20
    # Paused means no more dials: the retries wait.
    assert len(await ended_attempts(database, launched["id"])) == 25
    state = await health(api, launched["id"])
    assert state["status"] == "not_running"
    assert state["reasons"][0]["code"] == "campaign_paused"
    assert "failure_spike" in state["reasons"][0]["message"]


async def test_the_breaker_can_be_tuned_or_switched_off(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"failed": 1.0}}, connection_limit=30)
    await world.contacts([f"+1212555{n:04d}" for n in range(400, 425)])
    off = await world.launch(max_retries=0, metadata={"failure_spike": {"enabled": False}})
    await settle(engine)
    assert (await campaign(api, off["id"]))["status"] == "completed"
    # Fewer attempts than min_attempts: the rate is not trusted yet.
    world.contact_ids = world.contact_ids[:10]
    small = await world.launch(max_retries=0, metadata={"failure_spike": {"min_attempts": 11}})
    await settle(engine)
    assert (await campaign(api, small["id"]))["status"] == "completed"
    assert not [e for e in await events(database, small["id"]) if e.type == "campaign.health_degraded"]


async def test_a_budget_cap_pauses_once_the_spend_reaches_it(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator=ANSWER_30S)
    await world.contacts([f"+1212555{n:04d}" for n in range(500, 510)])
    launched = await world.launch(max_retries=0, concurrency_limit=1, metadata={"budget_cap": "0.05"})
    await settle(engine)
    found = await campaign(api, launched["id"])
    assert found["status"] == "paused"
    assert found["pause_reason"] == "budget_cap_reached"
    # 0.013 a call: the fourth reaches 0.052 >= 0.05, and nothing is dialed after it.
    assert len(await ended_attempts(database, launched["id"])) == 4
    degraded = [e for e in await events(database, launched["id"]) if e.type == "campaign.health_degraded"]
    assert [e.data["reason"] for e in degraded] == ["budget_cap_reached"]
    assert Decimal(degraded[0].data["spent"]) == Decimal("0.052")
    state = await health(api, launched["id"])
    assert state["budget"] == {"budget_cap": 0.05, "spent": pytest.approx(0.052)}
    # Resuming under the cap pauses again at the next call's end: the cap is the cap.
    data(await api.post(f"{CAMPAIGNS}/{launched['id']}/resume"))
    await settle(engine)
    assert (await campaign(api, launched["id"]))["pause_reason"] == "budget_cap_reached"
    assert len(await ended_attempts(database, launched["id"])) == 5


async def test_a_numeric_budget_cap_and_bad_guard_settings(api: httpx.AsyncClient, engine: DispatchEngine) -> None:
    world = await make_world(api, simulator=ANSWER_30S)
    await world.contacts(["+12125550601"])
    for metadata, path in (
        ({"budget_cap": "ten"}, "metadata.budget_cap"),
        ({"budget_cap": -1}, "metadata.budget_cap"),
        ({"failure_spike": {"threshold": 2}}, "metadata.failure_spike.threshold"),
        ({"failure_spike": {"min_attempts": 0}}, "metadata.failure_spike.min_attempts"),
        ({"failure_spike": {"typo": 1}}, "metadata.failure_spike.typo"),
        ({"failure_spike": "yes"}, "metadata.failure_spike"),
    ):
        response = await api.post(CAMPAIGNS, json=world.campaign(metadata=metadata))
        assert response.status_code == 422, response.text
        assert path in response.json()["errors"], response.json()
    launched = await world.launch(max_retries=0, metadata={"budget_cap": 0.01})
    await settle(engine)
    assert (await campaign(api, launched["id"]))["pause_reason"] == "budget_cap_reached"


# -- dispatch health --------------------------------------------------------------------------------------------


async def test_stalled_is_never_silent(api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock) -> None:
    world = await make_world(api, simulator=ANSWER_30S)
    await world.contacts([f"+1212555{n:04d}" for n in range(700, 705)])
    launched = await world.launch(max_retries=0)
    # No engine runs. Just launched: work is eligible, but it has not waited long enough to call it stalled.
    fresh = await health(api, launched["id"])
    assert fresh["status"] == "healthy"
    assert fresh["queue"]["eligible_now"] == 5
    assert [r["code"] for r in fresh["reasons"]] == ["dispatch_pending"]
    clock.set(clock.now() + timedelta(minutes=3))
    stalled = await health(api, launched["id"])
    assert stalled["status"] == "stalled"
    assert stalled["reasons"][0]["code"] == "no_recent_dials"
    assert stalled["reasons"][0]["count"] == 5
    assert "worker" in stalled["reasons"][0]["message"]
    assert stalled["queue"]["oldest_eligible_age_seconds"] == 180.0
    assert stalled["dials"]["last_dial_at"] is None
    # The engine runs: everything is dialed; nothing is left, the campaign completes.
    await settle(engine)
    done = await health(api, launched["id"])
    assert done["status"] == "not_running"
    assert done["tasks_by_status"]["completed"] == 5
    assert done["dials"]["last_5_minutes"] == 5
    assert done["time_to_first_dial_seconds"] == 180.0


async def test_health_of_a_running_campaign_in_numbers(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock
) -> None:
    world = await make_world(
        api, simulator={"outcomes": {"no_answer": 1.0}, "ring_seconds": [0, 0]}, connection_limit=4
    )
    await world.contacts([f"+1212555{n:04d}" for n in range(800, 806)])
    launched = await world.launch(max_retries=1, retry_delay_minutes=30, concurrency_limit=3)
    await settle(engine)
    state = await health(api, launched["id"])
    assert state["limits"] == {
        "concurrency_limit": 3,
        "pool_capacity": 4,
        "tenant_cap": None,
        "effective_concurrency": 3,
        "binding_limit": "concurrency_limit",
        "dispatch_blocker": None,
    }
    # Six first attempts, all no-answer: every task waits 30 minutes for its retry.
    assert state["status"] == "idle"
    assert state["queue"]["eligible_now"] == 0
    assert state["queue"]["waiting_retry"] == 6
    assert state["queue"]["next_retry_at"] == (START + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert {r["code"]: r["count"] for r in state["reasons"]} == {"waiting_retry": 6}
    assert state["tasks_by_status"]["retry_pending"] == 6
    assert state["in_flight"] == 0
    assert state["dials"]["last_15_minutes"] == 6
    assert state["error_rate"]["attempts"] == 6
    assert state["error_rate"]["failed"] == 0
    # The trigger-kept counts are the campaign's counts (a scan), also after a cancel rewrites many tasks.
    assert state["tasks_by_status"] == (await campaign(api, launched["id"]))["counts"]
    data(await api.post(f"{CAMPAIGNS}/{launched['id']}/cancel"))
    cancelled = await health(api, launched["id"])
    assert cancelled["tasks_by_status"] == (await campaign(api, launched["id"]))["counts"]
    assert cancelled["tasks_by_status"]["cancelled"] == 6
    numbers = {n["e164"]: n for n in state["numbers"]}
    assert sum(n["attempts_24h"] for n in numbers.values()) == 6
    assert all(n["healthy"] for n in numbers.values())
    assert all(n["consecutive_failures"] == 0 for n in numbers.values())


async def test_health_when_every_window_is_shut_and_when_no_number_may_dial(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock
) -> None:
    world = await make_world(api, simulator=ANSWER_30S)
    await world.contacts(["+12125550901", "+12125550902"])
    # 15:00 UTC on a Wednesday; this campaign dials Mondays only, in UTC.
    monday = {"mon": {"enabled": True, "start": "09:00", "end": "17:00"}}
    shut = await world.launch(call_windows=monday, timezone="UTC", timezone_mode="campaign_timezone")
    await settle(engine)
    state = await health(api, shut["id"])
    assert state["status"] == "idle"
    assert state["queue"]["eligible_now"] == 0
    assert state["queue"]["waiting_window"] == 2
    assert state["queue"]["next_window_opens_at"] == "2026-06-08T09:00:00Z"
    assert {r["code"]: r["count"] for r in state["reasons"]} == {"waiting_window": 2}
    # Every number spam-flagged after launch: degraded, and says why.
    flagged = await world.launch(call_windows=ALWAYS)
    for number_id in world.number_ids:
        data(await api.patch(f"/phone_numbers/{number_id}", json={"spam_flagged": True}))
    await settle(engine)
    state = await health(api, flagged["id"])
    assert state["status"] == "degraded"
    codes = {r["code"] for r in state["reasons"]}
    assert "no_usable_number" in codes
    assert state["queue"]["eligible_now"] == 2
    assert all(not n["healthy"] for n in state["numbers"])


async def test_health_names_the_errors_behind_a_high_error_rate(api: httpx.AsyncClient, engine: DispatchEngine) -> None:
    world = await make_world(api, simulator={"outcomes": {"failed": 1.0}}, connection_limit=30)
    await world.contacts([f"+1212555{n:04d}" for n in range(600, 612)])
    # The breaker is off and a retry is due in an hour: the campaign keeps running with its failures on record.
    launched = await world.launch(max_retries=1, retry_delay_minutes=60, metadata={"failure_spike": False})
    await settle(engine)
    state = data(await api.get(f"/bulk_call_campaigns/{launched['id']}/dispatch_health"))
    reasons = {reason["code"]: reason for reason in state["reasons"]}
    assert state["status"] == "degraded", state
    assert reasons["high_error_rate"]["count"] == 12
    assert reasons["provider_error"] == {
        "code": "provider_error",
        "message": "simulated network failure",
        "count": 12,
    }
