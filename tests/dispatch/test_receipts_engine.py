"""``GET /webhook_receipts``: every inbound provider callback with its verdict and what it touched, per workspace."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bulkcall.db.engine import Database
from bulkcall.db.models import ProviderCallback
from bulkcall.dispatch.engine import DispatchEngine
from tests.conftest import data, new_key
from tests.dispatch.conftest import attempt_rows, make_world, settle
from tests.dispatch.test_callbacks_engine import SILENT_END, completed, post_callback, signing_secret


async def stored(database: Database) -> list[ProviderCallback]:
    async with database.session(write=False) as session:
        return list((await session.execute(select(ProviderCallback).order_by(ProviderCallback.id.desc()))).scalars())


async def listed(api: httpx.AsyncClient, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    response = await api.get("/webhook_receipts", params={"per_page": 100, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["data"], body["meta"]


@pytest.fixture
async def callbacks(api: httpx.AsyncClient, engine: DispatchEngine, database: Database) -> dict[str, Any]:
    """One call whose result the test reports: applied, then a duplicate, a stale event, a bad signature,
    garbage and an unknown call."""
    world = await make_world(api, simulator=SILENT_END)
    await world.contacts(["+12125550001"])
    campaign = await world.launch()
    assert await engine.dispatch_once() == 1
    await engine.drain()
    (attempt,) = await attempt_rows(database)
    secret = await signing_secret(database, world.connection_id)
    verdicts = []
    ringing = {"call_id": f"SIM{attempt.id}", "attempt_id": attempt.id, "status": "ringing"}
    sends: list[tuple[bytes, dict[str, Any]]] = [
        (completed(attempt.id), {"secret": secret}),
        (completed(attempt.id), {"secret": secret}),
        (json.dumps({**ringing, "event_id": "late"}).encode(), {"secret": secret}),
        (completed(attempt.id, event_id="forged"), {"secret": None, "signature": "v1=00"}),
        (b'{"status": "sideways"}', {"secret": secret}),
        (completed(999_999, event_id="stranger"), {"secret": secret}),
    ]
    for body, options in sends:
        response = await post_callback(api, world.connection_id, body, **options)
        verdicts.append(response.status_code)
    assert verdicts == [200, 200, 200, 403, 400, 200]
    await settle(engine)
    return {"campaign": campaign, "attempt": attempt, "world": world}


async def test_every_callback_is_listed_newest_first_with_its_verdict(
    api: httpx.AsyncClient, callbacks: dict[str, Any], database: Database
) -> None:
    rows, meta = await listed(api)
    expected = await stored(database)
    assert [row["id"] for row in rows] == [row.id for row in expected], "newest first, nothing missing"
    assert meta["count"] == len(expected)
    newest = rows[:6]
    assert [row["verdict"] for row in newest] == [
        "unknown_call",
        "malformed",
        "rejected_signature",
        "out_of_order",
        "duplicate",
        "applied",
    ]
    attempt = callbacks["attempt"]
    applied = newest[5]
    assert applied == {
        "id": applied["id"],
        "provider": "simulator",
        "telephony_connection_id": callbacks["world"].connection_id,
        "event_type": "completed",
        "dedupe_key": f"SIM{attempt.id}:completed",
        "verdict": "applied",
        "campaign_id": callbacks["campaign"]["id"],
        "task_id": attempt.task_id,
        "attempt_id": attempt.id,
        "received_at": applied["received_at"],
        "error": None,
        "payload": completed(attempt.id).decode(),
    }
    assert applied["received_at"].endswith("Z")
    assert newest[4]["attempt_id"] == attempt.id, "a duplicate still names what it would have touched"
    assert newest[0]["attempt_id"] is None, "an unknown call touched nothing"
    assert newest[1]["error"], "why it was malformed"
    assert newest[2]["error"]


async def test_filters_and_pagination(api: httpx.AsyncClient, callbacks: dict[str, Any]) -> None:
    duplicates, meta = await listed(api, verdict="duplicate")
    assert [row["verdict"] for row in duplicates] == ["duplicate"]
    assert meta["count"] == 1
    mine, _ = await listed(api, campaign_id=callbacks["campaign"]["id"])
    assert mine, "the campaign's callbacks"
    assert {row["campaign_id"] for row in mine} == {callbacks["campaign"]["id"]}
    everything, _ = await listed(api)
    first = data(await api.get("/webhook_receipts", params={"per_page": 2, "page": 1}))
    second = data(await api.get("/webhook_receipts", params={"per_page": 2, "page": 2}))
    assert [row["id"] for row in first + second] == [row["id"] for row in everything[:4]]
    assert (await api.get("/webhook_receipts", params={"verdict": "fine"})).status_code == 422
    assert (await api.get("/webhook_receipts", params={"campaign_id": "x"})).status_code == 422
    assert (await api.get("/webhook_receipts", params={"campaign_id": 999_999})).status_code == 404


async def test_another_workspace_sees_none_of_them(other_api: httpx.AsyncClient, callbacks: dict[str, Any]) -> None:
    rows, meta = await listed(other_api)
    assert rows == []
    assert meta["count"] == 0
    foreign = await other_api.get("/webhook_receipts", params={"campaign_id": callbacks["campaign"]["id"]})
    assert foreign.status_code == 404


async def test_the_webhooks_read_scope_is_required(
    api: httpx.AsyncClient, callbacks: dict[str, Any], database: Database
) -> None:
    campaigns_only = await new_key(database, "acme", scopes=["bulk_call_campaigns:read"])
    refused = await api.get("/webhook_receipts", headers={"X-Api-Key": campaigns_only})
    assert refused.status_code == 403
    assert refused.json()["details"] == {"required_scope": "webhooks:read"}
    webhooks_only = await new_key(database, "acme", scopes=["webhooks:read"])
    allowed = await api.get("/webhook_receipts", headers={"X-Api-Key": webhooks_only})
    assert allowed.status_code == 200
