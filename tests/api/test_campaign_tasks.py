"""``/bulk_call_campaigns/{id}/tasks``: pagination, filters, one task, and the paused blocker."""

from __future__ import annotations

import httpx

from tests.api.campaign_fixtures import CAMPAIGNS, US_PHONES, act, create_campaign, errors, launched, make_setup
from tests.conftest import data


async def test_tasks_are_paginated_in_creation_order_with_meta(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=3)
    campaign = await launched(api, setup)
    response = await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks", params={"page": 2, "per_page": 2})
    assert [task["contact_id"] for task in data(response)] == setup.contact_ids[2:]
    assert response.json()["meta"] == {"count": 3, "page": 2, "per_page": 2, "pages": 2}


async def test_tasks_filter_by_status(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=3)
    data(await api.post("/dnc", json={"phone_e164": US_PHONES[1]}), 201)
    campaign = await launched(api, setup)
    response = await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks", params={"status": "skipped"})
    assert [task["contact_id"] for task in data(response)] == [setup.contact_ids[1]]
    assert response.json()["meta"]["count"] == 1
    pending = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks", params={"status": "pending"}))
    assert [task["contact_id"] for task in pending] == [setup.contact_ids[0], setup.contact_ids[2]]


async def test_tasks_reject_an_unknown_status(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    campaign = await launched(api, setup)
    assert "status" in errors(await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks", params={"status": "asleep"}))


async def test_draft_has_no_tasks(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=2)
    campaign = await create_campaign(api, setup)
    response = await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks")
    assert data(response) == []
    assert response.json()["meta"]["count"] == 0


async def test_get_one_task(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=2)
    campaign = await launched(api, setup, call_variables={"offer": "spring"})
    listed = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks"))[1]
    task = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks/{listed['id']}"))
    assert task.pop("call_attempts") == []  # not dialed yet; the detail adds the attempts to what the list shows
    assert task == listed
    assert task["campaign_id"] == campaign["id"]
    assert (task["status"], task["attempts"], task["phone_e164"]) == ("pending", 0, US_PHONES[1])
    assert task["variables"]["offer"] == "spring"


async def test_waiting_task_of_a_paused_campaign_is_blocked_by_the_pause(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=2)
    data(await api.post("/dnc", json={"phone_e164": US_PHONES[0]}), 201)
    campaign = await launched(api, setup)
    data(await act(api, campaign["id"], "pause"))
    tasks = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks"))
    assert [(task["status"], task["blocker"]) for task in tasks] == [("skipped", None), ("pending", "campaign_paused")]
    one = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks/{tasks[1]['id']}"))
    assert one["blocker"] == "campaign_paused"
    data(await act(api, campaign["id"], "resume"))
    resumed = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks/{tasks[1]['id']}"))
    assert resumed["blocker"] != "campaign_paused"


async def test_task_of_another_campaign_is_404(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    first = await launched(api, setup)
    second = await launched(api, setup, name="Second")
    task_id = data(await api.get(f"{CAMPAIGNS}/{first['id']}/tasks"))[0]["id"]
    response = await api.get(f"{CAMPAIGNS}/{second['id']}/tasks/{task_id}")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


async def test_tasks_of_an_unknown_campaign_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"{CAMPAIGNS}/99999/tasks")).status_code == 404
