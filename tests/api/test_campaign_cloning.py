"""Cloning, clone_prefill, save_as_template, the templates API and creating from a template."""

from __future__ import annotations

import httpx

from bulkcall.db.engine import Database
from tests.api.campaign_fixtures import CAMPAIGNS, act, create_campaign, insert_contacts, launched, make_setup
from tests.conftest import data

TEMPLATES = "/bulk_call_campaign_templates"
CONFIG = {
    "timezone": "Europe/Berlin",
    "max_retries": 4,
    "retry_delay_minutes": 15,
    "retry_delays": {"busy": 5},
    "priority": 8,
    "record_calls": False,
    "call_windows": {"sat": {"enabled": True, "start": "10:00", "end": "14:00"}},
    "call_variables": {"offer": "spring"},
    "metadata": {"owner": "ops"},
}
COPIED = (
    "agent_id",
    "timezone",
    "max_retries",
    "retry_delay_minutes",
    "retry_delays",
    "priority",
    "record_calls",
    "call_windows",
    "call_variables",
    "metadata",
    "concurrency_limit",
    "campaign_phone_number_ids",
    "timezone_mode",
    "trigger_mode",
)


async def test_clone_makes_a_draft_with_config_and_audience(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    source = await launched(api, setup, **CONFIG)
    clone = data(await api.post(f"{CAMPAIGNS}/{source['id']}/clone"), 201)
    assert clone["id"] != source["id"]
    assert clone["status"] == "draft"
    assert clone["name"] == "Q2 Pipeline Reactivation (copy)"
    assert {key: clone[key] for key in COPIED} == {key: source[key] for key in COPIED}
    assert clone["total_contacts"] == 3
    assert clone["launched_at"] is None
    assert data(await act(api, clone["id"], "launch"))["counts"]["pending"] == 3


async def test_clone_with_a_name_and_without_audience(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    source = await create_campaign(api, setup)
    clone = data(
        await api.post(f"{CAMPAIGNS}/{source['id']}/clone", json={"name": "Fresh", "include_audience": False}), 201
    )
    assert (clone["name"], clone["total_contacts"], clone["contact_list_id"]) == ("Fresh", 0, None)


async def test_clone_keeps_the_contact_list(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    contact_list = data(await api.post("/contact_lists", json={"name": "Leads"}), 201)
    data(await api.post(f"/contact_lists/{contact_list['id']}/contacts", json={"contact_ids": setup.contact_ids}))
    source = await create_campaign(api, setup, contact_ids=[], contact_list_id=contact_list["id"])
    clone = data(await api.post(f"{CAMPAIGNS}/{source['id']}/clone"), 201)
    assert (clone["contact_list_id"], clone["total_contacts"]) == (contact_list["id"], 3)


async def test_clone_prefill_round_trips_through_create(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    source = await create_campaign(api, setup, **CONFIG)
    prefill = data(await api.get(f"{CAMPAIGNS}/{source['id']}/clone_prefill"))
    assert prefill["audience_total"] == 3
    assert prefill["contact_ids_truncated"] is False
    body = prefill["body"]
    assert body["name"] == "Q2 Pipeline Reactivation (copy)"
    assert body["contact_ids"] == setup.contact_ids
    created = data(await api.post(CAMPAIGNS, json=body), 201)
    assert {key: created[key] for key in COPIED} == {key: source[key] for key in COPIED}
    assert created["total_contacts"] == 3
    assert len(data(await api.get(CAMPAIGNS))) == 2  # prefill itself saved nothing


async def test_clone_prefill_of_a_scheduled_campaign_round_trips(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    source = await create_campaign(
        api, setup, trigger_mode="scheduled", scheduled_at="2099-05-01T08:00:00Z", ends_at="2099-06-01T08:00:00Z"
    )
    body = data(await api.get(f"{CAMPAIGNS}/{source['id']}/clone_prefill"))["body"]
    created = data(await api.post(CAMPAIGNS, json=body), 201)
    assert (created["scheduled_at"], created["ends_at"]) == ("2099-05-01T08:00:00Z", "2099-06-01T08:00:00Z")


async def test_clone_prefill_caps_contact_ids_at_1000(api: httpx.AsyncClient, database: Database) -> None:
    setup = await make_setup(api, contacts=0)
    workspace_id = data(await api.get("/workspace"))["id"]
    contact_ids = await insert_contacts(database, workspace_id, 1005)
    source = await create_campaign(api, setup, contact_ids=contact_ids)
    assert source["total_contacts"] == 1005
    prefill = data(await api.get(f"{CAMPAIGNS}/{source['id']}/clone_prefill"))
    assert prefill["audience_total"] == 1005
    assert prefill["contact_ids_truncated"] is True
    assert prefill["body"]["contact_ids"] == contact_ids[:1000]
    created = data(await api.post(CAMPAIGNS, json=prefill["body"]), 201)
    assert created["total_contacts"] == 1000


async def test_save_as_template_stores_the_config(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    source = await create_campaign(api, setup, **CONFIG)
    template = data(await api.post(f"{CAMPAIGNS}/{source['id']}/save_as_template"), 201)
    assert template["name"] == "Q2 Pipeline Reactivation"
    assert template["source_campaign_id"] == source["id"]
    assert template["config"]["max_retries"] == 4
    assert template["config"]["agent_id"] == setup.agent_id
    assert "contact_ids" not in template["config"]


async def test_save_as_template_with_a_duplicate_name_is_409(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    source = await create_campaign(api, setup)
    first = data(await api.post(f"{CAMPAIGNS}/{source['id']}/save_as_template", json={"name": "Std"}), 201)
    response = await api.post(f"{CAMPAIGNS}/{source['id']}/save_as_template", json={"name": "Std"})
    assert response.status_code == 409
    body = response.json()
    assert body["error_code"] == "CONFLICT"
    assert body["details"]["existing_id"] == first["id"]


async def test_templates_list_get_and_delete(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    source = await create_campaign(api, setup)
    ids = [
        data(await api.post(f"{CAMPAIGNS}/{source['id']}/save_as_template", json={"name": name}), 201)["id"]
        for name in ("Alpha", "Beta")
    ]
    listing = await api.get(TEMPLATES)
    assert [row["id"] for row in data(listing)] == ids[::-1]
    assert listing.json()["meta"]["count"] == 2
    assert [row["name"] for row in data(await api.get(TEMPLATES, params={"search": "alp"}))] == ["Alpha"]
    assert data(await api.get(f"{TEMPLATES}/{ids[0]}"))["name"] == "Alpha"
    assert (await api.delete(f"{TEMPLATES}/{ids[0]}")).status_code == 204
    assert (await api.get(f"{TEMPLATES}/{ids[0]}")).status_code == 404
    assert (await api.delete(f"{TEMPLATES}/{ids[0]}")).status_code == 404


async def test_template_survives_deleting_its_source_campaign(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    source = await create_campaign(api, setup)
    template = data(await api.post(f"{CAMPAIGNS}/{source['id']}/save_as_template"), 201)
    assert (await api.delete(f"{CAMPAIGNS}/{source['id']}")).status_code == 204
    assert data(await api.get(f"{TEMPLATES}/{template['id']}"))["source_campaign_id"] is None


async def test_create_from_template_prefills_and_explicit_fields_win(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    source = await create_campaign(api, setup, **CONFIG)
    template = data(await api.post(f"{CAMPAIGNS}/{source['id']}/save_as_template"), 201)
    created = data(
        await api.post(CAMPAIGNS, json={"template_id": template["id"], "name": "From template", "max_retries": 1}),
        201,
    )
    assert created["name"] == "From template"
    assert created["max_retries"] == 1
    assert created["template_id"] == template["id"]
    for key in ("timezone", "retry_delays", "priority", "record_calls", "call_windows", "call_variables", "metadata"):
        assert created[key] == source[key], key
    assert created["total_contacts"] == 0


async def test_create_from_template_takes_name_and_agent_from_it(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    source = await create_campaign(api, setup, name="Standard outreach")
    template = data(await api.post(f"{CAMPAIGNS}/{source['id']}/save_as_template"), 201)
    created = data(await api.post(CAMPAIGNS, json={"template_id": template["id"]}), 201)
    assert (created["name"], created["agent_id"]) == ("Standard outreach", setup.agent_id)


async def test_create_from_an_unknown_template_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(CAMPAIGNS, json={"template_id": 99_999, "name": "x", "agent_id": 1})
    assert response.status_code == 422
    assert "template_id" in response.json()["errors"]


async def test_create_without_name_or_agent_and_no_template_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(CAMPAIGNS, json={})
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"name", "agent_id"}
