"""Building blocks for campaign tests: an agent, a simulator connection, numbers and contacts over the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import insert, select

from bulkcall.db.engine import Database
from bulkcall.db.models import CallTask, CampaignEvent, Contact
from tests.conftest import data

US_PHONES = [f"+1415555{n:04d}" for n in range(2000, 2100)]
CAMPAIGNS = "/bulk_call_campaigns"


@dataclass
class Setup:
    agent_id: int
    connection_id: int
    number_ids: list[int]
    contact_ids: list[int] = field(default_factory=list)

    def body(self, **overrides: Any) -> dict[str, Any]:
        """A create body that is ready to launch."""
        return {
            "name": "Q2 Pipeline Reactivation",
            "agent_id": self.agent_id,
            "timezone": "America/New_York",
            "campaign_phone_number_ids": self.number_ids,
            "concurrency_limit": 3,
            "contact_ids": self.contact_ids,
            **overrides,
        }


async def make_setup(
    api: httpx.AsyncClient, contacts: int = 3, phones: tuple[str, str] = ("+14155550100", "+14155550101")
) -> Setup:
    agent = data(await api.post("/agents", json={"name": "Ava"}), 201)
    connection = data(
        await api.post("/telephony_connections", json={"name": "sim", "provider": "simulator", "concurrency_limit": 5}),
        201,
    )
    numbers = [
        data(await api.post("/phone_numbers", json={"e164": e164, "telephony_connection_id": connection["id"]}), 201)
        for e164 in phones
    ]
    setup = Setup(agent_id=agent["id"], connection_id=connection["id"], number_ids=[n["id"] for n in numbers])
    for phone in US_PHONES[:contacts]:
        setup.contact_ids.append(data(await api.post("/contacts", json={"phone_e164": phone}), 201)["id"])
    return setup


async def create_campaign(api: httpx.AsyncClient, setup: Setup, **overrides: Any) -> dict[str, Any]:
    """Create a draft from ``setup.body(**overrides)``, asserting the 201."""
    created: dict[str, Any] = data(await api.post(CAMPAIGNS, json=setup.body(**overrides)), 201)
    return created


async def act(api: httpx.AsyncClient, campaign_id: int, action: str, **kwargs: Any) -> httpx.Response:
    """POST a lifecycle action (launch, pause, resume, cancel)."""
    return await api.post(f"{CAMPAIGNS}/{campaign_id}/{action}", **kwargs)


async def launched(api: httpx.AsyncClient, setup: Setup, **overrides: Any) -> dict[str, Any]:
    """A campaign created from the setup and launched (running unless the overrides schedule it)."""
    campaign = await create_campaign(api, setup, **overrides)
    result: dict[str, Any] = data(await act(api, campaign["id"], "launch"))
    return result


def errors(response: httpx.Response, status: int = 422) -> dict[str, list[str]]:
    """The field errors of an error envelope, asserting the status first."""
    assert response.status_code == status, response.text
    found: dict[str, list[str]] = response.json()["errors"]
    return found


def check_names(response: httpx.Response) -> set[str]:
    """The failed launch checks of a 422 LAUNCH_PRECONDITIONS_FAILED."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_code"] == "LAUNCH_PRECONDITIONS_FAILED"
    return {check["check"] for check in body["details"]["checks"]}


async def all_tasks(api: httpx.AsyncClient, campaign_id: int) -> list[dict[str, Any]]:
    """Every task of a campaign (up to 100), in creation order."""
    tasks: list[dict[str, Any]] = data(await api.get(f"{CAMPAIGNS}/{campaign_id}/tasks", params={"per_page": 100}))
    return tasks


async def event_types(database: Database, campaign_id: int) -> list[str]:
    """The types of the campaign's rows in ``campaign_events``, oldest first."""
    async with database.session(write=False) as session:
        rows = await session.execute(
            select(CampaignEvent.type).where(CampaignEvent.campaign_id == campaign_id).order_by(CampaignEvent.id)
        )
        return list(rows.scalars())


async def task_rows(database: Database, campaign_id: int) -> list[CallTask]:
    async with database.session(write=False) as session:
        rows = await session.execute(select(CallTask).where(CallTask.campaign_id == campaign_id))
        return list(rows.scalars())


async def insert_contacts(database: Database, workspace_id: int, count: int, prefix: str = "+1212555") -> list[int]:
    """``count`` contacts written straight to the table (fast bulk setup); returns their ids in order."""
    now = datetime.now(UTC)
    phones = [f"{prefix}{n:04d}" for n in range(count)]
    async with database.session(write=True) as session, session.begin():
        await session.execute(
            insert(Contact),
            [
                {
                    "workspace_id": workspace_id,
                    "phone_e164": phone,
                    "country": "US",
                    "tags": [],
                    "custom_fields": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for phone in phones
            ],
        )
        rows = await session.execute(
            select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.phone_e164.in_(phones))
        )
        return sorted(rows.scalars())
