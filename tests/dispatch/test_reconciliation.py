"""Issue 5's promise: for any campaign and date range, analytics, the tasks API and the results export agree
exactly, and with the provider receipts — also after duplicated, reordered and missing callbacks and a worker
that dies holding claims. The stored attempts are the fourth witness."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from bulkcall.db.engine import Database
from bulkcall.db.models import CallAttempt, ProviderCallback
from bulkcall.db.repositories import dispatch as queries
from bulkcall.domain.date_ranges import utc_bounds
from bulkcall.kit.clock import FixedClock
from tests.conftest import data
from tests.dispatch.conftest import campaign, logged_engine, make_world, settle

OUTCOMES = ("answered", "voicemail", "no_answer", "busy", "failed", "rejected", "invalid_number", "unknown")
ZONE = "America/New_York"
FAULTY_NETWORK = {
    "seed": 21,
    "outcomes": {"answered": 0.35, "voicemail": 0.2, "no_answer": 0.25, "busy": 0.1, "failed": 0.1},
    "callback_faults": {"duplicate": 0.3, "missing": 0.15, "reordered": 0.3},
}
RANGES: list[tuple[str | None, str | None]] = [
    (None, None),
    ("2026-06-03", "2026-06-03"),
    ("2026-06-04", "2026-06-04"),
    ("2026-06-04", None),
    (None, "2026-06-03"),
    ("2026-06-03", "2026-06-06"),
    ("2026-06-10", "2026-06-12"),  # nothing happened then
]


def _params(date_from: str | None, date_to: str | None) -> dict[str, str]:
    return {key: value for key, value in (("from", date_from), ("to", date_to)) if value is not None}


async def _all_tasks(
    api: httpx.AsyncClient, campaign_id: int, params: dict[str, str]
) -> tuple[int, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    page, count = 1, 0
    while True:
        response = await api.get(
            f"/bulk_call_campaigns/{campaign_id}/tasks", params={**params, "page": page, "per_page": 100}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        rows.extend(body["data"])
        count = body["meta"]["count"]
        if page >= body["meta"]["pages"]:
            return count, rows
        page += 1


async def _export(api: httpx.AsyncClient, campaign_id: int, params: dict[str, str]) -> list[dict[str, Any]]:
    response = await api.get(f"/bulk_call_campaigns/{campaign_id}/results_export", params={**params, "format": "jsonl"})
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def _in(bounds: tuple[datetime | None, datetime | None], instant: datetime | None) -> bool:
    lower, upper = bounds
    return instant is not None and (lower is None or instant >= lower) and (upper is None or instant < upper)


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _run_with_faults_and_a_crash(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI, tmp_path: Path
) -> int:
    world = await make_world(api, simulator=FAULTY_NETWORK, connection_limit=6)
    await world.contacts([f"+1212555{n:04d}" for n in range(40)])
    launched = await world.launch(timezone=ZONE, max_retries=2, retry_on_voicemail=True, retry_delay_minutes=600)
    event_log = tmp_path / "sim.jsonl"
    # A worker claims a batch and dies before dialing it; its claims come back after the lease.
    async with logged_engine(database, clock, engine_app, event_log, lease_seconds=0.05) as crashed:
        async with database.session(write=False) as session:
            (running,) = await queries.running_campaigns(session)
        now = clock.now()
        closed = await crashed._prepare_windows(running, now)
        assert closed is not None
        claims = await crashed._claim(running.workspace_id, [running], {running.id: closed}, now)
        assert claims
    await asyncio.sleep(0.1)
    async with logged_engine(database, clock, engine_app, event_log) as survivor:
        for _ in range(12):
            await survivor.sweep_once()  # releases the dead worker's claims, ends lost calls `unknown`
            await settle(survivor)
            if (await campaign(api, launched["id"]))["status"] == "completed":
                break
            # Lost results time out (10 min), then retries come due 10 h later: attempts span several days.
            clock.set(clock.now() + timedelta(minutes=11))
            await survivor.sweep_once()
            clock.set(clock.now() + timedelta(hours=10))
        else:
            raise AssertionError("the campaign never completed")
    campaign_id: int = launched["id"]
    return campaign_id


async def test_analytics_tasks_export_and_receipts_reconcile_after_faults_and_a_crash(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI, tmp_path: Path
) -> None:
    campaign_id = await _run_with_faults_and_a_crash(api, database, clock, engine_app, tmp_path)
    async with database.session(write=False) as session:
        attempts = list(
            (await session.execute(select(CallAttempt).where(CallAttempt.campaign_id == campaign_id))).scalars()
        )
        receipts = list(
            (
                await session.execute(select(ProviderCallback).where(ProviderCallback.campaign_id == campaign_id))
            ).scalars()
        )
    assert all(attempt.outcome is not None for attempt in attempts), "every call ended"
    outcomes = Counter(attempt.outcome for attempt in attempts)
    assert outcomes["unknown"] > 0, "some results were lost"
    assert len({a.ended_at.date() for a in attempts if a.ended_at is not None}) >= 2, "calls span days"
    verdicts = Counter((r.event_type, r.verdict) for r in receipts)
    assert verdicts[("completed", "duplicate")] > 0
    assert verdicts[("ringing", "out_of_order")] > 0
    # The receipts: one applied result per call that reported one; lost results are the `unknown` calls.
    assert verdicts[("completed", "applied")] == len(attempts) - outcomes["unknown"]

    _, every_task = await _all_tasks(api, campaign_id, {})
    details = {
        row["id"]: data(await api.get(f"/bulk_call_campaigns/{campaign_id}/tasks/{row['id']}"))["call_attempts"]
        for row in every_task
    }
    for date_from, date_to in RANGES:
        params = _params(date_from, date_to)
        bounds = utc_bounds(
            date.fromisoformat(date_from) if date_from else None, date.fromisoformat(date_to) if date_to else None, ZONE
        )
        stored = [a for a in attempts if _in(bounds, a.ended_at)]
        analytics = data(await api.get(f"/bulk_call_campaigns/{campaign_id}/analytics", params=params))
        count, listed = await _all_tasks(api, campaign_id, params)
        exported = await _export(api, campaign_id, params)
        from_details = [a for calls in details.values() for a in calls if _in(bounds, _parse(a["ended_at"]))]
        label = f"range {params}"

        totals = analytics["totals"]
        expected = Counter(a.outcome for a in stored)
        assert {o: totals[o] for o in OUTCOMES} == {o: expected[o] for o in OUTCOMES}, label
        assert Counter(a["outcome"] for a in from_details) == expected, label
        exported_outcomes = Counter(o for row in exported for o in row["attempt_outcomes"])
        assert exported_outcomes == expected, label
        # Each task's outcomes in attempt order, whether kept on the task (no range) or read from the attempts.
        in_order = {
            task_id: [a.outcome for a in sorted(stored, key=lambda a: a.attempt_number) if a.task_id == task_id]
            for task_id in {a.task_id for a in stored}
        }
        assert {row["task_id"]: row["attempt_outcomes"] for row in exported} == in_order, label

        assert totals["attempts"] == len(stored) == len(from_details) == sum(row["attempts"] for row in exported), label
        touched = {a.task_id for a in stored}
        assert totals["contacts"] == len(touched) == count == len(listed) == len(exported), label
        assert {row["id"] for row in listed} == touched == {row["task_id"] for row in exported}, label
        reached = {a.task_id for a in stored if a.outcome == "answered"}
        assert totals["contacts_reached"] == len(reached), label
        assert totals["tasks_total"] == len(every_task) == 40, label

        # Every breakdown adds up to the same totals.
        assert sum(point["attempts"] for point in analytics["daily"]) == len(stored), label
        assert sum(point["attempts"] for point in analytics["hour_of_day"]) == len(stored), label
        assert sum(step["attempts"] for step in analytics["retry_effectiveness"]) == len(stored), label
        assert sum(number["attempts"] for number in analytics["by_caller_number"]) == len(stored), label
        answered_talk = sum(a.duration_seconds or 0.0 for a in stored if a.outcome == "answered")
        assert abs(analytics["talk_time"]["total_seconds"] - answered_talk) < 1e-6 * max(1.0, answered_talk), label
        stored_cost = sum(float(a.cost or 0) for a in stored)
        assert abs(analytics["cost"] - stored_cost) < 1e-6, label
        assert abs(sum(float(row["cost"] or 0) for row in exported) - stored_cost) < 1e-6, label
