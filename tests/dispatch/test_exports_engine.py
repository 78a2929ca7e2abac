"""Results export and collection export, on campaigns the engine really dialed (simulator, fixed clock).

Exact rows for known outcomes; CSV hygiene (UTF-8, formula cells neutralised, nested objects as compact JSON);
JSON lines; filters; ``from``/``to`` at a DST boundary, reconciled with the tasks API; errors; streaming.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from bulkcall.db.engine import Database
from bulkcall.db.models import CallAttempt, CallTask, Campaign, Contact
from bulkcall.db.repositories.exports import ExportRepository, ResultFilters
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.dispatch.outcomes import CallResult, finish_attempts
from bulkcall.domain.calls import CallStatus
from bulkcall.domain.retries import Outcome
from bulkcall.kit.clock import FixedClock
from bulkcall.providers.base import CallEvent
from bulkcall.services import exports
from tests.conftest import data, new_key
from tests.dispatch.conftest import START, attempts_by_task, make_world, settle, tasks

ANSWERS = "+14155550111"
NEVER = "+14155550122"
LISTED = "+14155550133"
# Every call goes unanswered except to ANSWERS.
NETWORK = {"outcomes": {"no_answer": 1.0}, "number_answer_rates": {ANSWERS: 1.0}}

HEADER = [
    "task_id",
    "contact_id",
    "phone_e164",
    "first_name",
    "last_name",
    "email",
    "company",
    "country",
    "timezone",
    "custom_fields",
    "variables",
    "status",
    "skip_reason",
    "attempts",
    "attempt_outcomes",
    "last_outcome",
    "caller_number",
    "first_called_at",
    "last_called_at",
    "talk_seconds",
    "cost",
    "extracted_data",
]


def parse_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8"), newline="")))
    assert rows[0] == HEADER
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def parse_jsonl(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson; charset=utf-8"
    text = response.content.decode("utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def compact(expected: dict[str, Any], cell: str) -> str:
    """``cell`` if it is ``expected`` as compact JSON (keys in the database's order: PostgreSQL's JSONB sorts them)."""
    assert json.loads(cell) == expected
    assert cell == json.dumps(json.loads(cell), ensure_ascii=False, separators=(",", ":"))
    return cell


async def set_extracted(database: Database, attempt: CallAttempt, value: dict[str, Any]) -> None:
    """What an agent provider reports at the end of a call (the simulator reports none), on the attempt and,
    as ``dispatch.outcomes`` keeps it, on its task (the caller passes the task's latest attempt with data)."""
    async with database.session(write=True) as session, session.begin():
        await session.execute(update(CallAttempt).where(CallAttempt.id == attempt.id).values(extracted_data=value))
        await session.execute(update(CallTask).where(CallTask.id == attempt.task_id).values(extracted_data=value))


async def asgi_get(app: FastAPI, path: str, key: str) -> list[MutableMapping[str, Any]]:
    """Every ASGI message the app sends for a GET, as a server sees them (httpx's test transport buffers)."""
    sent: list[MutableMapping[str, Any]] = []
    requested: list[bool] = []

    async def receive() -> MutableMapping[str, Any]:
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"x-api-key", key.encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent


@pytest.fixture
async def dialed(api: httpx.AsyncClient, engine: DispatchEngine, database: Database) -> dict[str, Any]:
    """A finished campaign: ANSWERS answered at once, NEVER unanswered three times, LISTED skipped (DNC)."""
    world = await make_world(api, simulator=NETWORK)
    answers = data(
        await api.post(
            "/contacts",
            json={
                "phone_e164": ANSWERS,
                "first_name": "Zoë",
                "last_name": '=HYPERLINK("http://evil")',
                "email": "zoe@example.com",
                "company": 'Acme, "Inc."',
                "timezone": "America/Los_Angeles",
                "custom_fields": {"plan": "pro", "note": "@risk", "seats": 3},
            },
        ),
        201,
    )
    never = data(
        await api.post("/contacts", json={"phone_e164": NEVER, "first_name": "José", "company": "-minus"}), 201
    )
    listed = data(await api.post("/contacts", json={"phone_e164": LISTED}), 201)
    data(await api.post("/dnc", json={"phone_e164": LISTED}), 201)
    world.contact_ids.extend([answers["id"], never["id"], listed["id"]])
    campaign = await world.launch(max_retries=2, call_variables={"product": "Widget", "first_name": "Friend"})
    await settle(engine)
    by_task = await attempts_by_task(database, campaign["id"])
    rows = {row["phone_e164"]: row for row in await tasks(api, campaign["id"])}
    # The agent extracted data on ANSWERS' call, and on NEVER's first call only (the latest that has any wins).
    await set_extracted(database, by_task[rows[ANSWERS]["id"]][0], {"interested": True, "budget": "€5k"})
    await set_extracted(database, by_task[rows[NEVER]["id"]][0], {"callback": "tomorrow"})
    numbers = {
        number["id"]: number["e164"] for number in data(await api.get("/phone_numbers", params={"per_page": 100}))
    }
    return {"campaign": campaign, "tasks": rows, "attempts": by_task, "numbers": numbers, "world": world}


async def test_results_export_rows_are_exact(api: httpx.AsyncClient, dialed: dict[str, Any]) -> None:
    campaign_id = dialed["campaign"]["id"]
    response = await api.get(f"/bulk_call_campaigns/{campaign_id}/results_export")
    assert response.headers["content-disposition"] == f'attachment; filename="campaign_{campaign_id}_results.csv"'
    rows = parse_csv(response)
    assert [row["phone_e164"] for row in rows] == [ANSWERS, NEVER, LISTED], "task (creation) order"
    answers, never, listed = rows
    task = dialed["tasks"][ANSWERS]
    (call,) = dialed["attempts"][task["id"]]
    assert answers == {
        "task_id": str(task["id"]),
        "contact_id": str(task["contact_id"]),
        "phone_e164": ANSWERS,  # strictly E.164: a number to a spreadsheet, left as it is
        "first_name": "Zoë",
        "last_name": '\'=HYPERLINK("http://evil")',
        "email": "zoe@example.com",
        "company": 'Acme, "Inc."',
        "country": "US",
        "timezone": "America/Los_Angeles",
        "custom_fields": compact({"plan": "pro", "note": "@risk", "seats": 3}, answers["custom_fields"]),
        "variables": compact(task["variables"], answers["variables"]),
        "status": "completed",
        "skip_reason": "",
        "attempts": "1",
        "attempt_outcomes": "answered",
        "last_outcome": "answered",
        "caller_number": dialed["numbers"][task["caller_phone_number_id"]],
        "first_called_at": task["first_called_at"],
        "last_called_at": task["last_called_at"],
        "talk_seconds": repr(round(task["talk_seconds"], 3)),
        "cost": repr(round(task["cost"], 4)),
        "extracted_data": compact({"interested": True, "budget": "€5k"}, answers["extracted_data"]),
    }
    assert json.loads(answers["variables"])["first_name"] == "Zoë", "the contact's field overrides call_variables"
    assert json.loads(answers["variables"])["product"] == "Widget"
    assert float(answers["talk_seconds"]) == pytest.approx(call.duration_seconds)
    assert answers["first_called_at"] == START.isoformat().replace("+00:00", "Z")

    assert never["first_name"] == "José"
    assert never["company"] == "'-minus"
    assert (never["status"], never["attempts"], never["attempt_outcomes"]) == (
        "failed",
        "3",
        "no_answer|no_answer|no_answer",
    )
    assert never["talk_seconds"] == "0.0"
    assert never["extracted_data"] == compact({"callback": "tomorrow"}, never["extracted_data"])
    assert json.loads(never["variables"])["first_name"] == "José"

    assert (listed["status"], listed["skip_reason"], listed["attempts"], listed["attempt_outcomes"]) == (
        "skipped",
        "dnc",
        "0",
        "",
    )
    assert listed["first_called_at"] == listed["caller_number"] == listed["extracted_data"] == ""
    assert json.loads(listed["variables"])["first_name"] == "Friend", "no contact name: the campaign's variable"


async def test_the_engine_keeps_the_outcomes_and_latest_extracted_data_on_the_task(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    """What the export reads from the task instead of its attempts, kept where attempts end: each outcome in
    turn, and the latest extracted data that is not empty (a report without any keeps the previous one). The
    one attempt ended again stands in for later attempts: ``finish_attempts`` is what is under test."""
    world = await make_world(api, simulator=NETWORK)
    await world.contacts([ANSWERS])
    campaign = await world.launch()
    await settle(engine)
    ((task_id, (attempt,)),) = (await attempts_by_task(database, campaign["id"])).items()
    reports = [({"tier": "gold"}, Outcome.VOICEMAIL), (None, Outcome.NO_ANSWER), ({}, Outcome.BUSY)]
    for number, (extracted, outcome) in enumerate(reports):
        report = CallEvent(dedupe_key=f"r{number}", status=CallStatus.COMPLETED, extracted_data=extracted)
        async with database.session(write=True) as session, session.begin():
            await finish_attempts(session, START, [CallResult(attempt, outcome, report)])
    async with database.session(write=False) as session:
        task = (await session.execute(select(CallTask).filter_by(id=task_id))).scalar_one()
    assert (task.attempt_outcomes, task.extracted_data) == ("answered|voicemail|no_answer|busy", {"tier": "gold"})


async def test_results_export_jsonl_has_objects_and_the_same_rows(
    api: httpx.AsyncClient, dialed: dict[str, Any]
) -> None:
    campaign_id = dialed["campaign"]["id"]
    response = await api.get(f"/bulk_call_campaigns/{campaign_id}/results_export", params={"format": "jsonl"})
    assert response.headers["content-disposition"].endswith('_results.jsonl"')
    lines = parse_jsonl(response)
    assert [list(line) for line in lines] == [HEADER] * 3
    answers, never, listed = lines
    task = dialed["tasks"][ANSWERS]
    assert answers["custom_fields"] == {"plan": "pro", "note": "@risk", "seats": 3}
    assert answers["variables"] == task["variables"]
    assert answers["last_name"] == '=HYPERLINK("http://evil")', "no spreadsheet, nothing to neutralise"
    assert answers["extracted_data"] == {"interested": True, "budget": "€5k"}
    assert answers["attempt_outcomes"] == ["answered"]
    assert (answers["attempts"], answers["talk_seconds"], answers["cost"]) == (
        1,
        round(task["talk_seconds"], 3),
        round(task["cost"], 4),
    )
    assert never["attempt_outcomes"] == ["no_answer"] * 3
    assert listed["attempt_outcomes"] == []
    assert listed["custom_fields"] == {}
    assert listed["extracted_data"] is None


async def test_results_export_filters_by_status_and_last_outcome(
    api: httpx.AsyncClient, dialed: dict[str, Any]
) -> None:
    url = f"/bulk_call_campaigns/{dialed['campaign']['id']}/results_export"
    assert [r["phone_e164"] for r in parse_csv(await api.get(url, params={"status": "failed"}))] == [NEVER]
    assert [r["phone_e164"] for r in parse_csv(await api.get(url, params={"outcome": "answered"}))] == [ANSWERS]
    assert parse_csv(await api.get(url, params={"status": "pending"})) == []


async def test_results_export_errors_are_json_before_streaming(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, dialed: dict[str, Any], database: Database
) -> None:
    url = f"/bulk_call_campaigns/{dialed['campaign']['id']}/results_export"
    bad_format = await api.get(url, params={"format": "xlsx"})
    assert bad_format.status_code == 422
    assert "format" in bad_format.json()["errors"]
    reversed_range = await api.get(url, params={"from": "2026-06-04", "to": "2026-06-03"})
    assert reversed_range.status_code == 422
    assert list(reversed_range.json()["errors"]) == ["to"]
    tasks_url = f"/bulk_call_campaigns/{dialed['campaign']['id']}/tasks"
    reversed_tasks = await api.get(tasks_url, params={"from": "2026-06-04", "to": "2026-06-03"})
    assert reversed_tasks.status_code == 422
    assert list(reversed_tasks.json()["errors"]) == ["to"]
    assert (await api.get(tasks_url, params={"to": "2026-06-03T00:00:00"})).status_code == 422
    not_a_date = await api.get(url, params={"from": "1780000000"})
    assert not_a_date.status_code == 422
    assert list(not_a_date.json()["errors"]) == ["from"]
    assert (await api.get("/bulk_call_campaigns/999999/results_export")).status_code == 404
    assert (await other_api.get(url)).status_code == 404, "another workspace's campaign"
    narrow = await new_key(database, "acme", scopes=["contacts:read"])
    forbidden = await api.get(url, headers={"X-Api-Key": narrow})
    assert forbidden.status_code == 403
    assert forbidden.json()["error_code"] == "FORBIDDEN"


async def test_an_error_mid_stream_aborts_the_body_and_is_logged(
    engine_app: FastAPI, database: Database, dialed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    logged: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        def exception(self, event: str, **fields: Any) -> None:
            logged.append((event, fields))

    def broken(_call_variables: Any, **_options: Any) -> Any:
        def write(*_batch: Any) -> bytes:
            raise RuntimeError("disk on fire")

        return write

    monkeypatch.setattr(exports, "_csv_results", broken)
    monkeypatch.setattr(exports, "log", Recorder())
    campaign_id = dialed["campaign"]["id"]
    key = await new_key(database, "acme")
    # At the ASGI level, as a server sees it: the status and header row are out, then the failure.
    sent = await asgi_get(engine_app, f"/api/v1/bulk_call_campaigns/{campaign_id}/results_export", key)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 200
    bodies = [message for message in sent if message["type"] == "http.response.body"]
    assert bodies[0]["body"].startswith(b"task_id,"), "the header row went out before the failure"
    assert all(message.get("more_body", False) for message in bodies), "never completed: the body is truncated"
    assert logged == [("export_failed", {"export": "results_export", "campaign_id": campaign_id})]


async def test_the_export_is_streamed_in_batches(
    engine_app: FastAPI, database: Database, dialed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "BATCH_SIZE", 1)
    campaign_id = dialed["campaign"]["id"]
    key = await new_key(database, "acme")
    sent = await asgi_get(engine_app, f"/api/v1/bulk_call_campaigns/{campaign_id}/results_export", key)
    headers = dict(sent[0]["headers"])
    assert b"content-length" not in headers, "streamed, not built whole"
    chunks = [message["body"].decode("utf-8") for message in sent[1:] if message["body"]]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}, "completed"
    assert len(chunks) == 4, "the header, then one chunk per batch of one task"
    assert chunks[0].startswith("task_id,contact_id,")
    assert [chunk.split(",")[2] for chunk in chunks[1:]] == [ANSWERS, NEVER, LISTED]


async def test_date_range_at_a_dst_boundary_reconciles_tasks_and_export(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, clock: FixedClock
) -> None:
    # New York springs forward on 2026-03-08: that local day is 05:00 UTC to 04:00 UTC the next day (23 h).
    world = await make_world(api, simulator=NETWORK)
    await world.contacts([ANSWERS, NEVER])
    late_evening = datetime(2026, 3, 9, 3, 30, tzinfo=UTC)  # 23:30 EDT on the 8th
    clock.set(late_evening)
    campaign = await world.launch(timezone="America/New_York", max_retries=1, retry_delay_minutes=60)
    await settle(engine)
    clock.set(late_evening + timedelta(minutes=61))  # 00:31 EDT on the 9th (a naive 24 h day would hold it)
    await settle(engine)
    by_task = await attempts_by_task(database, campaign["id"])
    assert sorted(len(calls) for calls in by_task.values()) == [1, 2]

    async def export(**params: str) -> list[dict[str, str]]:
        url = f"/bulk_call_campaigns/{campaign['id']}/results_export"
        return parse_csv(await api.get(url, params=params))

    async def task_count(**params: str) -> int:
        url = f"/bulk_call_campaigns/{campaign['id']}/tasks"
        response = await api.get(url, params=params)
        assert response.status_code == 200, response.text
        count: int = response.json()["meta"]["count"]
        return count

    eighth = await export(**{"from": "2026-03-08", "to": "2026-03-08"})
    assert [(r["phone_e164"], r["attempts"], r["attempt_outcomes"]) for r in eighth] == [
        (ANSWERS, "1", "answered"),
        (NEVER, "1", "no_answer"),
    ]
    assert await task_count(**{"from": "2026-03-08", "to": "2026-03-08"}) == 2
    ninth = await export(**{"from": "2026-03-09", "to": "2026-03-09"})
    assert [(r["phone_e164"], r["attempts"], r["attempt_outcomes"], r["talk_seconds"]) for r in ninth] == [
        (NEVER, "1", "no_answer", "0.0")
    ]
    assert ninth[0]["first_called_at"] == ninth[0]["last_called_at"] == "2026-03-09T04:31:00Z"
    assert await task_count(**{"from": "2026-03-09"}) == 1
    assert await task_count(to="2026-03-07") == 0
    assert await export(to="2026-03-07") == []
    both = await export(**{"from": "2026-03-08", "to": "2026-03-09"})
    assert [(r["attempts"], r["attempt_outcomes"]) for r in both] == [("1", "answered"), ("2", "no_answer|no_answer")]
    assert await task_count(**{"from": "2026-03-08", "to": "2026-03-09"}) == 2
    # Within a range, the outcome filter still means the task's last outcome.
    assert [r["phone_e164"] for r in await export(**{"from": "2026-03-09", "outcome": "no_answer"})] == [NEVER]
    # The task detail keeps every call whatever the range.
    never = next(t for t in await tasks(api, campaign["id"], **{"from": "2026-03-09"}))
    detail = data(await api.get(f"/bulk_call_campaigns/{campaign['id']}/tasks/{never['id']}"))
    assert len(detail["call_attempts"]) == 2
    # Sums over the range add up to what the attempts say.
    eighth_starts, eighth_ends = datetime(2026, 3, 8, 5, tzinfo=UTC), datetime(2026, 3, 9, 4, tzinfo=UTC)
    in_range = [
        call
        for calls in by_task.values()
        for call in calls
        if call.ended_at is not None and eighth_starts <= call.ended_at < eighth_ends
    ]
    assert sum(int(r["attempts"]) for r in eighth) == len(in_range) == 2


async def test_collection_export(api: httpx.AsyncClient, dialed: dict[str, Any]) -> None:
    world = dialed["world"]
    draft = data(await api.post("/bulk_call_campaigns", json=world.campaign(name="=draft")), 201)
    response = await api.get("/bulk_call_campaigns/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="bulk_call_campaigns.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"), newline="")))
    assert [row["id"] for row in rows] == [str(draft["id"]), str(dialed["campaign"]["id"])], "newest first"
    draft_row, done = rows
    assert draft_row["name"] == "'=draft"
    assert (draft_row["status"], draft_row["total_contacts"], draft_row["tasks_pending"]) == ("draft", "3", "3")
    assert (draft_row["attempts"], draft_row["answer_rate"]) == ("0", "")
    tasks_now = dialed["tasks"]
    assert (done["status"], done["total_contacts"]) == ("completed", "3")
    assert (done["tasks_completed"], done["tasks_failed"], done["tasks_skipped"]) == ("1", "1", "1")
    assert (done["attempts"], done["answered"], done["answer_rate"]) == ("4", "1", "0.25")
    assert float(done["talk_seconds"]) == pytest.approx(sum(t["talk_seconds"] for t in tasks_now.values()))
    assert float(done["cost"]) == pytest.approx(sum(t["cost"] for t in tasks_now.values()))

    lines = parse_jsonl(await api.get("/bulk_call_campaigns/export", params={"format": "jsonl"}))
    assert lines[1]["counts"]["completed"] == 1
    assert lines[1]["answer_rate"] == 0.25
    assert lines[0]["name"] == "=draft"
    filtered = parse_jsonl(await api.get("/bulk_call_campaigns/export", params={"format": "jsonl", "status": "draft"}))
    assert [line["id"] for line in filtered] == [draft["id"]]
    searched = parse_jsonl(await api.get("/bulk_call_campaigns/export", params={"format": "jsonl", "search": "ENGINE"}))
    assert [line["id"] for line in searched] == [dialed["campaign"]["id"]]
    assert (await api.get("/bulk_call_campaigns/export", params={"format": "pdf"})).status_code == 422
    assert (await api.get("/bulk_call_campaigns/export", params={"status": "nope"})).status_code == 422


async def test_collection_export_never_shows_another_workspace(
    other_api: httpx.AsyncClient, dialed: dict[str, Any]
) -> None:
    response = await other_api.get("/bulk_call_campaigns/export", params={"format": "jsonl"})
    assert parse_jsonl(response) == []


# Contacts (and a task's talk seconds and cost) whose CSV line the database writes itself, and those it must
# leave to Python, per dialect.
VARIED: list[tuple[dict[str, Any], tuple[float, Decimal] | None, set[str]]] = [
    (
        {"first_name": "Ann", "custom_fields": {"plan": "pro", "seats": 3, "ratio": 0.25, "vip": True}},
        (42.0, Decimal("0.0125")),
        {"sqlite", "postgresql"},
    ),
    (
        {"first_name": 'Al "the" \\ pal\tx', "company": "=1+1", "email": "-x@y.z"},
        (12.345, Decimal("2")),
        {"sqlite", "postgresql"},
    ),
    (
        {"last_name": "Zoë", "timezone": "Europe/Paris", "custom_fields": {"tier": 0, "off": False}},
        None,
        {"sqlite", "postgresql"},
    ),
    ({"custom_fields": {"note": "café"}}, (1e12, Decimal("0")), set()),  # too big to trust; SQLite keeps "\u00e9"
    ({"custom_fields": {"plan": None, "x": 1}}, None, set()),  # a null custom field never hides a variable
    ({"custom_fields": {"product": "Gadget", "company": "Inc"}}, None, set()),  # overrides a variable, in place
    ({"custom_fields": {"tiny": 0.00001}}, None, {"sqlite"}),  # PostgreSQL writes 0.00001, Python 1e-05
    ({"company": "Acme, Inc.\nEU"}, (0.5, Decimal("0.0001")), {"sqlite", "postgresql"}),
    (
        {"first_name": "@sum", "last_name": "+1 (415)", "company": "\rCR", "email": "a-b@c.d"},
        None,
        {"sqlite", "postgresql"},
    ),
    ({"first_name": "Bo"}, (0.1 + 0.2, Decimal("0.0125")), set()),  # 0.30000000000000004: Python rounds it
]


async def test_results_csv_lines_from_the_database_are_what_python_writes(
    api: httpx.AsyncClient, database: Database
) -> None:
    """The database's CSV line of a task (``csv_lines``) is exactly the ``csv`` module's line of ``_csv_row``,
    and the tasks it cannot write exactly are the ones it leaves to Python; the variables are the tasks API's."""
    world = await make_world(api, simulator=NETWORK)
    for number, (contact, _amounts, _fast) in enumerate(VARIED):
        await world.contacts([f"+1415555{number:04d}"], **contact)
    campaign = await world.launch(
        call_variables={
            "product": "Widget",
            "first_name": "Friend",
            "nested": {"a": [1, "é"]},
            "flag": False,
            "n": None,
        }
    )
    by_phone = {row["phone_e164"]: row for row in await tasks(api, campaign["id"])}
    async with database.session(write=True) as session, session.begin():
        for number, (_contact, amounts, _fast) in enumerate(VARIED):
            if amounts is not None:
                talk, cost = amounts
                task_id = by_phone[f"+1415555{number:04d}"]["id"]
                await session.execute(update(CallTask).filter_by(id=task_id).values(talk_seconds=talk, cost=cost))
    dialect = database.engine.dialect.name
    filters = ResultFilters(campaign["id"])
    async with database.session(write=False) as session:
        stored = (await session.execute(select(Campaign).filter_by(id=campaign["id"]))).scalar_one()
        call_variables = dict(stored.call_variables)  # as the export reads them (PostgreSQL: JSONB's key order)
        repo = ExportRepository(session, stored.workspace_id)
        lines = [line async for batch in repo.csv_lines(filters, call_variables, 3) for line in batch]
        fields = [row async for batch in repo.result_batches(filters, 100) for row in batch]
    assert [task_id for task_id, _ in lines] == [row[0] for row in fields]
    assert len(lines) == len(VARIED)
    for number, ((contact, _amounts, fast), (_, line), field) in enumerate(zip(VARIED, lines, fields, strict=True)):
        python = exports._csv_row(call_variables, field, repo.compact_json)
        assert (line is not None) == (dialect in fast), (number, contact, line)
        if line is not None:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\r\n").writerow(python)
            assert line == buffer.getvalue(), (number, contact)
        variables = json.loads(python[10])
        expected = by_phone[f"+1415555{number:04d}"]["variables"]
        assert variables == expected
        assert list(variables) == list(expected), "keys in the tasks API's order"
    assert json.loads(exports._csv_row(call_variables, fields[4], repo.compact_json)[10])["first_name"] == "Friend"
    # The whole export, database lines and Python ones interleaved in one stream, is the Python path's bytes.
    export = exports.ResultsExport(filters, call_variables, exports.ExportFormat.CSV, "results.csv")
    streamed = b"".join([chunk async for chunk in exports.results_chunks(database, stored.workspace_id, export)])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(exports.RESULT_COLUMNS)
    writer.writerows(exports._csv_row(call_variables, field, repo.compact_json) for field in fields)
    assert streamed == buffer.getvalue().encode("utf-8")


async def test_csv_lines_in_parts_are_one_snapshot_in_order(
    api: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite writes a big export's lines in two processes, part by part; the lines are the single connection's,
    in task order, and a change committed while the export runs shows in none of them (one snapshot)."""
    world = await make_world(api, simulator=NETWORK)
    await world.contacts([f"+1415556{number:04d}" for number in range(23)], company="Acme")
    campaign = await world.launch()
    filters = ResultFilters(campaign["id"])
    started: list[Any] = []
    spawn = asyncio.create_subprocess_exec

    async def counted(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        return await spawn(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", counted)
    async with database.session(write=False) as session:
        stored = (await session.execute(select(Campaign).filter_by(id=campaign["id"]))).scalar_one()
        workspace_id, call_variables = stored.workspace_id, dict(stored.call_variables)
    async with database.session(write=False) as session:
        await session.execute(select(1))  # a transaction already open: one connection writes every line
        single = [
            line
            async for batch in ExportRepository(session, workspace_id).csv_lines(filters, call_variables, 4)
            for line in batch
        ]
    assert not started
    parts: list[tuple[int, str | None]] = []
    async with database.session(write=False) as session:
        async for batch in ExportRepository(session, workspace_id).csv_lines(filters, call_variables, 4):
            if not parts:  # after the first part: every task's company changes, committed
                async with database.session(write=True) as writer, writer.begin():
                    await writer.execute(update(Contact).values(company="Changed"))
            parts.extend(batch)
    assert parts == single
    assert [task_id for task_id, _ in parts] == sorted(task_id for task_id, _ in parts)
    assert len(parts) == 23
    assert all(line is not None and ",Acme," in line and "Changed" not in line for _, line in parts)
    assert len(started) == (1 if database.dialect == "sqlite" else 0)
