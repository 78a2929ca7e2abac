"""Tenant isolation: another workspace's campaigns, templates and resources are invisible (404 / 422)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.campaign_fixtures import CAMPAIGNS, Setup, create_campaign, errors, launched, make_setup
from tests.conftest import data

OTHER_PHONES = ("+14155550300", "+14155550301")


async def _acme_campaigns(api: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    """A draft, a running campaign (with a task) and a template, all of acme."""
    setup = await make_setup(api, contacts=1)
    draft = await create_campaign(api, setup)
    running = await launched(api, setup, name="Running")
    task_id = data(await api.get(f"{CAMPAIGNS}/{running['id']}/tasks"))[0]["id"]
    template = data(await api.post(f"{CAMPAIGNS}/{draft['id']}/save_as_template"), 201)
    return draft, running, task_id, template["id"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/bulk_call_campaigns/{draft}", None),
        ("PATCH", "/bulk_call_campaigns/{draft}", {"name": "Mine now"}),
        ("DELETE", "/bulk_call_campaigns/{draft}", None),
        ("POST", "/bulk_call_campaigns/{draft}/launch", None),
        ("POST", "/bulk_call_campaigns/{running}/pause", None),
        ("POST", "/bulk_call_campaigns/{running}/resume", None),
        ("POST", "/bulk_call_campaigns/{running}/cancel", None),
        ("POST", "/bulk_call_campaigns/{draft}/contacts", {"contacts": [{"phone_e164": "+14155553999"}]}),
        ("POST", "/bulk_call_campaigns/{draft}/clone", None),
        ("GET", "/bulk_call_campaigns/{draft}/clone_prefill", None),
        ("POST", "/bulk_call_campaigns/{draft}/save_as_template", {"name": "Stolen"}),
        ("GET", "/bulk_call_campaigns/{running}/tasks", None),
        ("GET", "/bulk_call_campaigns/{running}/tasks/{task}", None),
        ("GET", "/bulk_call_campaign_templates/{template}", None),
        ("DELETE", "/bulk_call_campaign_templates/{template}", None),
    ],
)
async def test_every_campaign_endpoint_is_404_to_another_workspace(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    draft, running, task_id, template_id = await _acme_campaigns(api)
    url = path.format(draft=draft["id"], running=running["id"], task=task_id, template=template_id)
    response = await other_api.request(method, url, json=body)
    assert response.status_code == 404, response.text
    assert response.json()["error_code"] == "NOT_FOUND"
    # Nothing changed for the owner.
    assert data(await api.get(f"{CAMPAIGNS}/{draft['id']}"))["name"] == "Q2 Pipeline Reactivation"
    assert data(await api.get(f"{CAMPAIGNS}/{draft['id']}"))["total_contacts"] == 1
    assert data(await api.get(f"{CAMPAIGNS}/{running['id']}"))["status"] == "running"
    assert (await api.get(f"/bulk_call_campaign_templates/{template_id}")).status_code == 200


async def test_campaign_and_template_lists_are_per_workspace(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    await _acme_campaigns(api)
    theirs = await make_setup(other_api, contacts=0, phones=OTHER_PHONES)
    own = await create_campaign(other_api, theirs, name="Globex only")
    listing = await other_api.get(CAMPAIGNS)
    assert [row["id"] for row in data(listing)] == [own["id"]]
    assert listing.json()["meta"]["count"] == 1
    assert data(await other_api.get("/bulk_call_campaign_templates")) == []
    assert len(data(await api.get(CAMPAIGNS))) == 2


async def _foreign(other_api: httpx.AsyncClient) -> tuple[Setup, int]:
    theirs = await make_setup(other_api, contacts=1, phones=OTHER_PHONES)
    contact_list = data(await other_api.post("/contact_lists", json={"name": "Theirs"}), 201)
    return theirs, contact_list["id"]


async def test_create_cannot_use_another_workspaces_agent_numbers_contacts_or_list(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    mine = await make_setup(api, contacts=0)
    theirs, their_list = await _foreign(other_api)
    body = mine.body(
        agent_id=theirs.agent_id,
        campaign_phone_number_ids=theirs.number_ids,
        primary_phone_number_id=theirs.number_ids[0],
        contact_ids=theirs.contact_ids,
        contact_list_id=their_list,
    )
    assert set(errors(await api.post(CAMPAIGNS, json=body))) == {
        "agent_id",
        "campaign_phone_number_ids.0",
        "campaign_phone_number_ids.1",
        "primary_phone_number_id",
        "contact_ids.0",
        "contact_list_id",
    }
    assert data(await api.get(CAMPAIGNS)) == []


async def test_patch_and_add_contacts_cannot_use_another_workspaces_resources(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    mine = await make_setup(api, contacts=1)
    theirs, their_list = await _foreign(other_api)
    campaign = await create_campaign(api, mine)
    patch = {
        "agent_id": theirs.agent_id,
        "campaign_phone_number_ids": theirs.number_ids[:1],
        "contact_list_id": their_list,
    }
    assert set(errors(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json=patch))) == {
        "agent_id",
        "campaign_phone_number_ids.0",
        "contact_list_id",
    }
    response = await api.post(f"{CAMPAIGNS}/{campaign['id']}/contacts", json={"contact_ids": theirs.contact_ids})
    assert set(errors(response)) == {"contact_ids.0"}
    assert data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))["total_contacts"] == 1


async def test_create_from_another_workspaces_template_is_422(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    theirs, _ = await _foreign(other_api)
    source = await create_campaign(other_api, theirs)
    template = data(await other_api.post(f"{CAMPAIGNS}/{source['id']}/save_as_template"), 201)
    response = await api.post(CAMPAIGNS, json={"template_id": template["id"]})
    assert "template_id" in errors(response)
