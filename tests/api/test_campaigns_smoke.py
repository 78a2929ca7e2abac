from __future__ import annotations

import httpx

from tests.api.campaign_fixtures import make_setup
from tests.conftest import data


async def test_create_launch_and_list_tasks(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = data(await api.post("/bulk_call_campaigns", json=setup.body()), 201)
    assert campaign["status"] == "draft"
    assert campaign["launch_readiness"]["ready"], campaign["launch_readiness"]
    launched = data(await api.post(f"/bulk_call_campaigns/{campaign['id']}/launch"))
    assert launched["status"] == "running"
    assert launched["counts"]["pending"] == 3
    tasks = data(await api.get(f"/bulk_call_campaigns/{campaign['id']}/tasks"))
    assert len(tasks) == 3
    assert tasks[0]["variables"]["phone_e164"] == "+14155552000"
