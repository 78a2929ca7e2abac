"""The audience: contact ids, a contact list, inline rows, every skip reason, adding contacts and task variables."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.campaign_fixtures import (
    CAMPAIGNS,
    US_PHONES,
    Setup,
    act,
    all_tasks,
    create_campaign,
    errors,
    launched,
    make_setup,
)
from tests.conftest import data

FIRST, SECOND, THIRD = US_PHONES[:3]


async def _list_with(api: httpx.AsyncClient, contact_ids: list[int]) -> int:
    contact_list = data(await api.post("/contact_lists", json={"name": "Leads"}), 201)
    data(await api.post(f"/contact_lists/{contact_list['id']}/contacts", json={"contact_ids": contact_ids}))
    list_id: int = contact_list["id"]
    return list_id


def _by_phone(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {task["phone_e164"]: task for task in tasks}


def _assert_counts_consistent(campaign: dict[str, Any]) -> None:
    assert sum(campaign["counts"].values()) == campaign["total_contacts"]


async def test_contact_ids_become_one_pending_task_each(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    tasks = await all_tasks(api, campaign["id"])
    assert [task["contact_id"] for task in tasks] == setup.contact_ids
    assert {task["status"] for task in tasks} == {"pending"}
    assert campaign["total_contacts"] == 3


async def test_contact_list_members_are_resolved_at_launch(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    list_id = await _list_with(api, setup.contact_ids[:1])
    campaign = await create_campaign(api, setup, contact_ids=[], contact_list_id=list_id)
    assert campaign["total_contacts"] == 1
    data(await api.post(f"/contact_lists/{list_id}/contacts", json={"contact_ids": setup.contact_ids[1:]}))
    running = data(await act(api, campaign["id"], "launch"))
    assert running["total_contacts"] == 3
    assert sorted(task["contact_id"] for task in await all_tasks(api, campaign["id"])) == setup.contact_ids


async def test_inline_rows_create_contacts(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    rows = [
        {"phone_e164": "+14155553000", "first_name": "Ana"},
        {"phone_e164": "(415) 555-3001", "default_region": "US"},
    ]
    campaign = await create_campaign(api, setup, contacts=rows)
    assert campaign["total_contacts"] == 2
    contacts = data(await api.get("/contacts", params={"per_page": 100}))
    assert {c["phone_e164"]: c["first_name"] for c in contacts} == {"+14155553000": "Ana", "+14155553001": None}


async def test_inline_row_for_an_existing_phone_updates_the_contact(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    row = {"phone_e164": FIRST, "first_name": "Bea", "custom_fields": {"tier": "gold"}}
    await create_campaign(api, setup, contact_ids=[], contacts=[row])
    contacts = data(await api.get("/contacts", params={"per_page": 100}))
    assert len(contacts) == 1
    assert contacts[0]["id"] == setup.contact_ids[0]
    assert (contacts[0]["first_name"], contacts[0]["custom_fields"]) == ("Bea", {"tier": "gold"})


@pytest.mark.parametrize("form", ["contact_ids", "contact_list_id", "contacts"])
async def test_dnc_contact_is_skipped_in_every_input_form(api: httpx.AsyncClient, form: str) -> None:
    setup = await make_setup(api, contacts=1)
    data(await api.post("/dnc", json={"phone_e164": "415-555-2000", "default_region": "US"}), 201)
    forms: dict[str, dict[str, Any]] = {
        "contact_ids": {"contact_ids": setup.contact_ids},
        "contact_list_id": {"contact_ids": [], "contact_list_id": await _list_with(api, setup.contact_ids)},
        "contacts": {"contact_ids": [], "contacts": [{"phone_e164": FIRST}]},
    }
    audience = forms[form]
    extra = {"contact_ids": [], "contacts": [{"phone_e164": "+14155553000"}]}
    campaign = await create_campaign(api, setup, **audience)
    data(await api.post(f"{CAMPAIGNS}/{campaign['id']}/contacts", json=extra))
    running = data(await act(api, campaign["id"], "launch"))
    tasks = _by_phone(await all_tasks(api, campaign["id"]))
    assert (tasks[FIRST]["status"], tasks[FIRST]["skip_reason"]) == ("skipped", "dnc")
    assert tasks["+14155553000"]["status"] == "pending"
    assert (running["counts"]["skipped"], running["counts"]["pending"]) == (1, 1)


async def test_unreadable_inline_phone_is_skipped_as_invalid_number(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    campaign = await create_campaign(api, setup, contacts=[{"phone_e164": "call me maybe"}])
    assert campaign["total_contacts"] == 2
    running = data(await act(api, campaign["id"], "launch"))
    tasks = await all_tasks(api, campaign["id"])
    invalid = [task for task in tasks if task["contact_id"] is None]
    assert len(invalid) == 1
    assert (invalid[0]["status"], invalid[0]["skip_reason"]) == ("skipped", "invalid_number")
    assert invalid[0]["phone_e164"] == "call me maybe"
    assert running["counts"]["skipped"] == 1
    _assert_counts_consistent(running)


async def test_unreadable_inline_phone_creates_no_contact(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    await create_campaign(api, setup, contacts=[{"phone_e164": "12"}])
    assert data(await api.get("/contacts")) == []


async def test_same_contact_twice_in_contact_ids_is_skipped_as_duplicate(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=2)
    first, second = setup.contact_ids
    running = await launched(api, setup, contact_ids=[first, second, first])
    tasks = await all_tasks(api, running["id"])
    assert [(task["contact_id"], task["status"], task["skip_reason"]) for task in tasks] == [
        (first, "pending", None),
        (second, "pending", None),
        (first, "skipped", "duplicate_phone"),
    ]
    assert running["total_contacts"] == 3
    _assert_counts_consistent(running)


async def test_contact_in_ids_and_in_the_list_is_skipped_once_as_duplicate(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=2)
    first, second = setup.contact_ids
    list_id = await _list_with(api, [first, second])
    running = await launched(api, setup, contact_ids=[first], contact_list_id=list_id)
    tasks = await all_tasks(api, running["id"])
    statuses = sorted((task["contact_id"], task["status"], task["skip_reason"]) for task in tasks)
    assert statuses == sorted(
        [(first, "pending", None), (first, "skipped", "duplicate_phone"), (second, "pending", None)]
    )
    assert (running["counts"]["pending"], running["counts"]["skipped"], running["total_contacts"]) == (2, 1, 3)


async def test_dnc_added_after_launch_leaves_the_task_pending(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    running = await launched(api, setup)
    data(await api.post("/dnc", json={"phone_e164": FIRST}), 201)
    task = (await all_tasks(api, running["id"]))[0]
    assert (task["status"], task["skip_reason"]) == ("pending", None)


async def test_counts_are_exclusive_and_sum_to_total_contacts(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=3)
    data(await api.post("/dnc", json={"phone_e164": SECOND}), 201)
    ids = [*setup.contact_ids, setup.contact_ids[0]]
    running = await launched(api, setup, contact_ids=ids, contacts=[{"phone_e164": "nope"}])
    counts = running["counts"]
    assert counts == {
        "pending": 2,
        "queued": 0,
        "placing_call": 0,
        "calling": 0,
        "retry_pending": 0,
        "completed": 0,
        "failed": 0,
        "skipped": 3,
        "cancelled": 0,
    }
    assert running["total_contacts"] == 5
    reasons = sorted(task["skip_reason"] for task in await all_tasks(api, running["id"]) if task["skip_reason"])
    assert reasons == ["dnc", "duplicate_phone", "invalid_number"]


async def test_add_contacts_to_a_draft_grows_the_audience(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=2)
    campaign = await create_campaign(api, setup, contact_ids=setup.contact_ids[:1])
    updated = data(
        await api.post(
            f"{CAMPAIGNS}/{campaign['id']}/contacts",
            json={"contact_ids": setup.contact_ids[1:], "contacts": [{"phone_e164": "+14155553000"}]},
        )
    )
    assert (updated["status"], updated["total_contacts"]) == ("draft", 3)
    assert await all_tasks(api, campaign["id"]) == []


async def test_add_contacts_to_a_running_campaign_creates_tasks_at_once(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=2)
    running = await launched(api, setup, contact_ids=setup.contact_ids[:1])
    updated = data(await api.post(f"{CAMPAIGNS}/{running['id']}/contacts", json={"contact_ids": setup.contact_ids}))
    tasks = await all_tasks(api, running["id"])
    assert [(task["contact_id"], task["status"], task["skip_reason"]) for task in tasks] == [
        (setup.contact_ids[0], "pending", None),
        (setup.contact_ids[0], "skipped", "duplicate_phone"),
        (setup.contact_ids[1], "pending", None),
    ]
    assert updated["total_contacts"] == 3
    _assert_counts_consistent(updated)


@pytest.mark.parametrize("final", ["cancelled", "completed"])
async def test_add_contacts_to_a_finished_campaign_is_409(api: httpx.AsyncClient, final: str) -> None:
    setup = await make_setup(api, contacts=2)
    if final == "completed":
        data(await api.post("/dnc", json={"phone_e164": FIRST}), 201)
        campaign = await launched(api, setup, contact_ids=setup.contact_ids[:1])
    else:
        campaign = await launched(api, setup, contact_ids=setup.contact_ids[:1])
        data(await act(api, campaign["id"], "cancel"))
    response = await api.post(f"{CAMPAIGNS}/{campaign['id']}/contacts", json={"contact_ids": setup.contact_ids[1:]})
    assert response.status_code == 409
    assert response.json()["details"]["current_status"] == final


async def test_add_contacts_rejects_an_unknown_contact_id_at_its_index(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    campaign = await create_campaign(api, setup)
    response = await api.post(
        f"{CAMPAIGNS}/{campaign['id']}/contacts", json={"contact_ids": [setup.contact_ids[0], 99_999]}
    )
    assert set(errors(response)) == {"contact_ids.1"}


async def test_add_contacts_with_nothing_to_add_is_422(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    campaign = await create_campaign(api, setup)
    assert "contact_ids" in errors(await api.post(f"{CAMPAIGNS}/{campaign['id']}/contacts", json={}))


async def test_task_variables_merge_call_variables_contact_fields_and_custom_fields(
    api: httpx.AsyncClient,
) -> None:
    setup = await make_setup(api, contacts=0)
    contact = data(
        await api.post(
            "/contacts",
            json={"phone_e164": FIRST, "first_name": "Ana", "custom_fields": {"offer": "vip", "first_name": "Annie"}},
        ),
        201,
    )
    call_variables = {"greeting": "hello", "company": "Fallback Co", "offer": "standard", "first_name": "Friend"}
    running = await launched(api, setup, contact_ids=[contact["id"]], call_variables=call_variables)
    variables = (await all_tasks(api, running["id"]))[0]["variables"]
    assert variables["greeting"] == "hello"
    assert variables["company"] == "Fallback Co"  # an empty contact field does not hide the campaign variable
    assert variables["offer"] == "vip"  # custom fields win over call variables
    assert variables["first_name"] == "Annie"  # ... and over contact fields
    assert variables["phone_e164"] == FIRST
    assert variables["contact_id"] == contact["id"]


async def test_contact_field_overrides_a_call_variable(api: httpx.AsyncClient) -> None:
    setup: Setup = await make_setup(api, contacts=0)
    contact = data(await api.post("/contacts", json={"phone_e164": THIRD, "company": "Acme"}), 201)
    running = await launched(api, setup, contact_ids=[contact["id"]], call_variables={"company": "Fallback Co"})
    assert (await all_tasks(api, running["id"]))[0]["variables"]["company"] == "Acme"
