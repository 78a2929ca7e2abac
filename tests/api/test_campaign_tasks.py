"""``/bulk_call_campaigns/{id}/tasks``: pagination, filters, one task, and the paused blocker."""

from __future__ import annotations

import httpx
from sqlalchemy import select, update

from bulkcall.db.engine import Database
from bulkcall.db.models import CallTask
from bulkcall.db.repositories.campaigns import CampaignRepository
from tests.api.campaign_fixtures import (
    CAMPAIGNS,
    US_PHONES,
    act,
    all_tasks,
    create_campaign,
    errors,
    launched,
    make_setup,
)
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


# Statuses set straight in the table, two tasks each (pending keeps three): the counts read two partial indexes
# (``pending`` is the waiting index's count less ``retry_pending``), so each status must still come out exact.
STATUS_MIX = {
    "queued": 2,
    "placing_call": 2,
    "calling": 2,
    "retry_pending": 2,
    "completed": 2,
    "failed": 2,
    "skipped": 2,
    "cancelled": 2,
}


async def _set_statuses(database: Database, task_ids: list[int], statuses: list[str]) -> None:
    async with database.session(write=True) as session, session.begin():
        for task_id, status in zip(task_ids, statuses, strict=True):
            await session.execute(update(CallTask).where(CallTask.id == task_id).values(status=status))


async def test_counts_listing_and_filters_are_exact_for_every_status(
    api: httpx.AsyncClient, database: Database
) -> None:
    setup = await make_setup(api, contacts=19)
    campaign = await launched(api, setup)
    tasks = await all_tasks(api, campaign["id"])
    statuses = [status for status, count in STATUS_MIX.items() for _ in range(count)]
    statuses = ["pending", *statuses[:8], "pending", *statuses[8:], "pending"]
    await _set_statuses(database, [task["id"] for task in tasks], statuses)
    got = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))
    assert got["counts"] == {**STATUS_MIX, "pending": 3}
    assert got["total_contacts"] == sum(got["counts"].values()) == 19
    for status in ("pending", *STATUS_MIX):
        response = await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks", params={"status": status, "per_page": 2})
        wanted = [task["id"] for task, task_status in zip(tasks, statuses, strict=True) if task_status == status]
        assert [task["id"] for task in data(response)] == wanted[:2], status
        assert response.json()["meta"]["count"] == len(wanted), status
    page = await api.get(f"{CAMPAIGNS}/{campaign['id']}/tasks", params={"page": 4, "per_page": 5})
    assert [task["status"] for task in data(page)] == statuses[15:]


async def test_a_campaign_is_unfinished_while_any_task_waits_or_is_in_flight(
    api: httpx.AsyncClient, database: Database
) -> None:
    setup = await make_setup(api, contacts=2)
    campaign = await launched(api, setup)
    task_ids = [task["id"] for task in await all_tasks(api, campaign["id"])]

    async def unfinished() -> bool:
        async with database.session(write=False) as session:
            workspace_id = (await session.execute(select(CallTask.workspace_id).limit(1))).scalar_one()
            return await CampaignRepository(session, workspace_id).has_unfinished_tasks(campaign["id"])

    for status, expected in [
        ("pending", True),
        ("retry_pending", True),
        ("queued", True),
        ("placing_call", True),
        ("calling", True),
        ("completed", False),
        ("failed", False),
        ("skipped", False),
        ("cancelled", False),
    ]:
        await _set_statuses(database, task_ids, ["completed", status])
        assert await unfinished() is expected, status
