"""``/analytics`` and ``/dispatch_health`` as API resources: ranges, 422s, tenancy, scopes, a draft's figures.

The figures of campaigns that really dialed are tested on the engine harness (tests/dispatch/test_insight_engine.py).
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from bulkcall.db.engine import Database
from tests.api.campaign_fixtures import CAMPAIGNS, create_campaign, make_setup
from tests.conftest import data, new_key


async def test_a_draft_has_empty_analytics_and_is_not_running(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    draft = await create_campaign(api, setup)
    found = data(await api.get(f"{CAMPAIGNS}/{draft['id']}/analytics", params={"from": "2026-01-01"}))
    assert found["totals"]["attempts"] == 0
    assert found["totals"]["tasks_total"] == 0  # a draft has no tasks yet
    assert found["range"] == {
        "from": "2026-01-01",
        "to": None,
        "timezone": "America/New_York",
        "starts_at": "2026-01-01T05:00:00Z",
        "ends_at": None,
    }
    assert [p["hour"] for p in found["hour_of_day"]] == list(range(24))
    assert found["daily"] == []
    health = data(await api.get(f"{CAMPAIGNS}/{draft['id']}/dispatch_health"))
    assert health["status"] == "not_running"
    assert health["reasons"] == [{"code": "campaign_draft", "message": "campaign is draft", "count": 0}]
    assert health["limits"]["concurrency_limit"] == 3
    assert health["limits"]["binding_limit"] == "concurrency_limit"
    assert health["queue"]["eligible_now"] == 0
    assert set(health["tasks_by_status"]) >= {"pending", "retry_pending", "completed", "cancelled"}
    assert [n["e164"] for n in health["numbers"]] == ["+14155550100", "+14155550101"]


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"from": "2026-13-01"}, ["from"]),
        ({"to": "tomorrow"}, ["to"]),
        ({"from": "2026-6-1"}, ["from"]),
        ({"to": "2026-06-03T00:00:00"}, ["to"]),
        ({"from": "2026-06-02", "to": "2026-06-01"}, ["to"]),
        ({"from": "x", "to": "y"}, ["from", "to"]),
    ],
)
async def test_a_bad_range_is_a_422_naming_the_field(
    api: httpx.AsyncClient, params: dict[str, str], fields: list[str]
) -> None:
    setup = await make_setup(api)
    draft = await create_campaign(api, setup)
    response = await api.get(f"{CAMPAIGNS}/{draft['id']}/analytics", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error_code"] == "VALIDATION_ERROR"
    assert sorted(response.json()["errors"]) == fields


async def test_a_one_day_range_and_a_missing_campaign(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    draft = await create_campaign(api, setup)
    one_day = data(
        await api.get(f"{CAMPAIGNS}/{draft['id']}/analytics", params={"from": "2026-06-01", "to": "2026-06-01"})
    )
    assert one_day["range"]["starts_at"] == "2026-06-01T04:00:00Z"
    assert one_day["range"]["ends_at"] == "2026-06-02T04:00:00Z"
    for path in ("analytics", "dispatch_health"):
        missing = await api.get(f"{CAMPAIGNS}/999999/{path}")
        assert missing.status_code == 404, missing.text
        assert (await api.get(f"{CAMPAIGNS}/0/{path}")).status_code == 422


async def test_another_workspace_gets_404(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    draft = await create_campaign(api, setup)
    for path in ("analytics", "dispatch_health"):
        response = await other_api.get(f"{CAMPAIGNS}/{draft['id']}/{path}")
        assert response.status_code == 404, response.text
        assert response.json()["error_code"] == "NOT_FOUND"


async def test_the_read_scope_is_required(api: httpx.AsyncClient, app: FastAPI, database: Database) -> None:
    setup = await make_setup(api)
    draft = await create_campaign(api, setup)
    contacts_only = await new_key(database, "acme", ["contacts:read"])
    readers = await new_key(database, "acme", ["bulk_call_campaigns:read"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver/api/v1") as client:
        for path in ("analytics", "dispatch_health"):
            url = f"{CAMPAIGNS}/{draft['id']}/{path}"
            refused = await client.get(url, headers={"X-Api-Key": contacts_only})
            assert refused.status_code == 403, refused.text
            assert refused.json()["error_code"] == "FORBIDDEN"
            assert (await client.get(url, headers={"X-Api-Key": readers})).status_code == 200


async def test_guard_settings_are_checked_on_update_too(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    draft = await create_campaign(api, setup)
    refused = await api.patch(f"{CAMPAIGNS}/{draft['id']}", json={"metadata": {"budget_cap": "abc"}})
    assert refused.status_code == 422, refused.text
    assert "metadata.budget_cap" in refused.json()["errors"]
    data(await api.post(f"{CAMPAIGNS}/{draft['id']}/launch"))
    running = await api.patch(f"{CAMPAIGNS}/{draft['id']}", json={"metadata": {"failure_spike": {"threshold": 5}}})
    assert running.status_code == 422, running.text
    assert "metadata.failure_spike.threshold" in running.json()["errors"]
    changed = data(await api.patch(f"{CAMPAIGNS}/{draft['id']}", json={"metadata": {"budget_cap": 12}}))
    assert changed["metadata"] == {"budget_cap": 12}
    health = data(await api.get(f"{CAMPAIGNS}/{draft['id']}/dispatch_health"))
    assert health["budget"] == {"budget_cap": 12.0, "spent": 0.0}
