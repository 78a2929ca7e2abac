"""Invariant 8, nothing lost and nothing double-counted: every provider callback reaching
``POST /webhooks/telephony/{provider}`` is stored with its verdict, applied at most once, never applied when
stale, unsigned or from another workspace; and with a simulator that sends every result twice, tasks and
attempts say exactly what the simulated network says happened."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from bulkcall.db.engine import Database
from bulkcall.db.models import ProviderCallback, TelephonyConnection
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.kit.clock import FixedClock
from bulkcall.providers.simulator.provider import SIGNATURE_HEADER, sign
from tests.conftest import data, new_key
from tests.dispatch.conftest import (
    attempt_rows,
    campaign,
    logged_engine,
    make_world,
    settle,
    simulator_events,
    tasks,
)

# Results never arrive on their own, so the test is the only one to report the call's end.
SILENT_END = {"outcomes": {"answered": 1.0}, "callback_faults": {"missing": 1.0}}


async def signing_secret(database: Database, connection_id: int) -> str:
    async with database.session(write=False) as session:
        secret = await session.scalar(
            select(TelephonyConnection.signing_secret).where(TelephonyConnection.id == connection_id)
        )
    assert secret is not None
    return secret


async def receipts(database: Database) -> list[ProviderCallback]:
    async with database.session(write=False) as session:
        return list((await session.execute(select(ProviderCallback).order_by(ProviderCallback.id))).scalars())


async def post_callback(
    client: httpx.AsyncClient,
    connection_id: int,
    body: bytes,
    *,
    secret: str | None,
    provider: str = "simulator",
    signature: str | None = None,
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is None and secret is not None:
        signature = sign(secret, body)
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return await client.post(
        f"/webhooks/telephony/{provider}", params={"connection": connection_id}, content=body, headers=headers
    )


def completed(attempt_id: int, *, event_id: str | None = None, outcome: str = "answered") -> bytes:
    return json.dumps(
        {
            "call_id": f"SIM{attempt_id}",
            "attempt_id": attempt_id,
            "status": "completed",
            "outcome": outcome,
            "answered_by": "human",
            "duration_seconds": 42.0,
            "cost": 0.026,
            "event_id": event_id or f"SIM{attempt_id}:completed",
        }
    ).encode()


@dataclass(frozen=True)
class Call:
    """One call in flight (ringing and answer reported, result not yet), and how to report on it."""

    api: httpx.AsyncClient
    campaign_id: int
    task_id: int
    attempt_id: int
    connection_id: int
    secret: str

    async def task(self) -> dict[str, Any]:
        found: dict[str, Any] = data(
            await self.api.get(f"/bulk_call_campaigns/{self.campaign_id}/tasks/{self.task_id}")
        )
        return found

    async def post(self, body: bytes, **options: Any) -> httpx.Response:
        options.setdefault("secret", self.secret)
        return await post_callback(self.api, self.connection_id, body, **options)


@pytest.fixture
async def call(api: httpx.AsyncClient, engine: DispatchEngine, database: Database) -> Call:
    world = await make_world(api, simulator=SILENT_END)
    await world.contacts(["+12125550001"])
    launched = await world.launch()
    assert await engine.dispatch_once() == 1
    await engine.drain()
    (attempt,) = await attempt_rows(database)
    assert attempt.state == "in_progress"
    return Call(
        api=api,
        campaign_id=launched["id"],
        task_id=attempt.task_id,
        attempt_id=attempt.id,
        connection_id=world.connection_id,
        secret=await signing_secret(database, world.connection_id),
    )


async def assert_counts_add_up(api: httpx.AsyncClient, campaign_id: int) -> dict[str, int]:
    found = await campaign(api, campaign_id)
    assert sum(found["counts"].values()) == found["total_contacts"], found
    counts: dict[str, int] = found["counts"]
    return counts


async def test_the_same_result_twice_is_applied_once(call: Call, database: Database) -> None:
    first = await call.post(completed(call.attempt_id))
    assert data(first) == {"verdict": "applied"}
    again = await call.post(completed(call.attempt_id))
    assert data(again) == {"verdict": "duplicate"}

    task = await call.task()
    assert (task["status"], task["attempts"], task["last_outcome"]) == ("completed", 1, "answered")
    assert task["cost"] == pytest.approx(0.026), "counted once"
    assert task["talk_seconds"] == pytest.approx(42.0), "counted once"
    assert [(a["outcome"], a["state"]) for a in task["call_attempts"]] == [("answered", "ended")]
    results = [r.verdict for r in await receipts(database) if r.dedupe_key == f"SIM{call.attempt_id}:completed"]
    assert results == ["applied", "duplicate"]
    counts = await assert_counts_add_up(call.api, call.campaign_id)
    assert counts["completed"] == 1


async def test_a_stale_status_after_the_result_is_stored_and_changes_nothing(call: Call, database: Database) -> None:
    assert data(await call.post(completed(call.attempt_id))) == {"verdict": "applied"}
    before = await call.task()
    stale = {"call_id": f"SIM{call.attempt_id}", "attempt_id": call.attempt_id, "status": "ringing"}
    late = json.dumps({**stale, "event_id": "carrier-retry-7"}).encode()
    assert data(await call.post(late)) == {"verdict": "out_of_order"}
    assert await call.task() == before
    (attempt,) = await attempt_rows(database)
    assert (attempt.state, attempt.outcome) == ("ended", "answered")
    assert [r.verdict for r in await receipts(database) if r.dedupe_key == "carrier-retry-7"] == ["out_of_order"]


async def test_a_callback_that_fails_verification_is_refused_stored_and_not_applied(
    call: Call, database: Database
) -> None:
    body = completed(call.attempt_id)
    before = await call.task()
    forgeries = {
        "wrong signature": await call.post(body, signature="v1=" + "0" * 64),
        "no signature": await call.post(body, secret=None),
        "body changed after signing": await call.post(
            body.replace(b'"answered"', b'"busy"', 1), signature=sign(call.secret, body)
        ),
        "another secret": await call.post(body, secret=call.secret + "x"),
    }
    for forgery, response in forgeries.items():
        assert response.status_code == 403, (forgery, response.text)
        assert response.json()["error_code"] == "INVALID_SIGNATURE", forgery

    assert await call.task() == before
    (attempt,) = await attempt_rows(database)
    assert (attempt.ended_at, attempt.outcome) == (None, None)
    refused = [r.verdict for r in await receipts(database) if r.verdict != "applied"]
    assert refused == ["rejected_signature"] * len(forgeries)
    # The genuine result still applies afterwards: no forgery used up the event id.
    assert data(await call.post(body)) == {"verdict": "applied"}


async def test_an_unreadable_callback_is_a_400_and_an_unknown_provider_a_404(call: Call, database: Database) -> None:
    before = await call.task()
    for body in (b"{not json", b"[]", json.dumps({"status": "completed", "attempt_id": call.attempt_id}).encode()):
        response = await call.post(body)  # correctly signed
        assert response.status_code == 400, response.text
        assert response.json()["error_code"] == "MALFORMED_CALLBACK"
    stored = await receipts(database)
    assert [r.verdict for r in stored if r.verdict != "applied"] == ["malformed"] * 3

    response = await call.post(completed(call.attempt_id), provider="nosuchcarrier")
    assert response.status_code == 404, response.text
    assert len(await receipts(database)) == len(stored)
    assert await call.task() == before


async def test_an_event_naming_another_workspaces_call_is_unknown_call(
    call: Call, database: Database, engine_app: FastAPI
) -> None:
    key = await new_key(database, "globex")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=engine_app), base_url="http://testserver/api/v1", headers={"X-Api-Key": key}
    ) as globex:
        theirs = data(
            await globex.post(
                "/telephony_connections",
                json={"name": "their sim", "provider": "simulator", "config": {"speed": 100_000}},
            ),
            201,
        )
        their_secret = await signing_secret(database, theirs["id"])
        # Correctly signed by globex's own connection, but about acme's call.
        response = await post_callback(globex, theirs["id"], completed(call.attempt_id), secret=their_secret)
    assert data(response) == {"verdict": "unknown_call"}
    task = await call.task()
    assert (task["status"], [a["outcome"] for a in task["call_attempts"]]) == ("calling", [None])
    (receipt,) = [r for r in await receipts(database) if r.verdict == "unknown_call"]
    assert (receipt.campaign_id, receipt.task_id, receipt.attempt_id) == (None, None, None)
    # acme's own, genuine report is still taken.
    assert data(await call.post(completed(call.attempt_id))) == {"verdict": "applied"}


async def test_with_every_result_sent_twice_tasks_match_the_simulated_network_exactly(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI, tmp_path: Path
) -> None:
    event_log = tmp_path / "sim.jsonl"
    world = await make_world(
        api,
        simulator={
            "seed": 11,
            "outcomes": {"answered": 0.3, "voicemail": 0.2, "busy": 0.2, "no_answer": 0.2, "failed": 0.1},
            "callback_faults": {"duplicate": 1.0},
        },
    )
    await world.contacts([f"+1212555{n:04d}" for n in range(12)])
    launched = await world.launch(max_retries=2, retry_on_voicemail=True)
    async with logged_engine(database, clock, engine_app, event_log) as eng:
        await settle(eng)

    starts = simulator_events(event_log, "start")
    ends = {line["attempt_id"]: line for line in simulator_events(event_log, "end")}
    assert len(starts) > 12, "some contacts were retried"
    attempts = {attempt.id: attempt for attempt in await attempt_rows(database)}
    assert set(attempts) == {start["attempt_id"] for start in starts} == set(ends)
    assert {a.id: a.outcome for a in attempts.values()} == {i: end["outcome"] for i, end in ends.items()}

    completions: dict[str, list[str]] = defaultdict(list)
    for receipt in await receipts(database):
        if receipt.event_type == "completed":
            completions[receipt.dedupe_key or ""].append(receipt.verdict)
    assert completions == {f"SIM{attempt_id}:completed": ["applied", "duplicate"] for attempt_id in attempts}

    network: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for start in starts:
        network[start["task_id"]].append(ends[start["attempt_id"]])
    rows = await tasks(api, launched["id"])
    assert len(rows) == 12
    for row in rows:
        calls = sorted(network[row["id"]], key=lambda end: end["attempt_number"])
        assert row["attempts"] == len(calls), row
        assert row["last_outcome"] == calls[-1]["outcome"], row
        detail = data(await api.get(f"/bulk_call_campaigns/{launched['id']}/tasks/{row['id']}"))
        assert [a["outcome"] for a in detail["call_attempts"]] == [end["outcome"] for end in calls]
    counts = await assert_counts_add_up(api, launched["id"])
    assert Counter({status: n for status, n in counts.items() if n}) == Counter(row["status"] for row in rows)
    assert (await campaign(api, launched["id"]))["status"] == "completed"


async def test_progress_reports_arriving_after_the_result_are_stored_out_of_order_and_change_nothing(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, engine_app: FastAPI, tmp_path: Path
) -> None:
    event_log = tmp_path / "sim.jsonl"
    world = await make_world(
        api,
        simulator={
            "seed": 3,
            "outcomes": {"answered": 0.5, "voicemail": 0.3, "no_answer": 0.2},
            "callback_faults": {"reordered": 1.0},
        },
    )
    await world.contacts([f"+1212555{n:04d}" for n in range(8)])
    launched = await world.launch(max_retries=0)
    async with logged_engine(database, clock, engine_app, event_log) as eng:
        await settle(eng)

    ends = {line["attempt_id"]: line for line in simulator_events(event_log, "end")}
    attempts = await attempt_rows(database)
    assert len(attempts) == 8
    assert {a.id: a.outcome for a in attempts} == {i: end["outcome"] for i, end in ends.items()}
    assert all(a.state == "ended" and a.ended_at is not None for a in attempts)
    # A call picked up still gets its answer time from the result when the "answered" report comes late.
    assert all((a.answered_at is not None) == (a.outcome in ("answered", "voicemail")) for a in attempts)
    verdicts = Counter((r.event_type, r.verdict) for r in await receipts(database))
    answered = sum(1 for end in ends.values() if end["outcome"] in ("answered", "voicemail"))
    assert verdicts == Counter(
        {("completed", "applied"): 8, ("ringing", "out_of_order"): 8, ("answered", "out_of_order"): answered}
    )
    rows = await tasks(api, launched["id"])
    assert {row["last_outcome"] for row in rows} == {end["outcome"] for end in ends.values()}
    assert (await campaign(api, launched["id"]))["status"] == "completed"
