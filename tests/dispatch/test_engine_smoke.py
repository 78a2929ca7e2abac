"""A campaign runs to completion on the simulator."""

from __future__ import annotations

import httpx

from bulkcall.dispatch.engine import DispatchEngine
from tests.dispatch.conftest import campaign, make_world, settle, tasks


async def test_a_campaign_dials_every_contact_and_completes(api: httpx.AsyncClient, engine: DispatchEngine) -> None:
    world = await make_world(api, simulator={"outcomes": {"answered": 1.0}})
    await world.contacts([f"+1212555{n:04d}" for n in range(20)])
    launched = await world.launch(concurrency_limit=5)
    await settle(engine)
    found = await campaign(api, launched["id"])
    assert found["status"] == "completed", found
    rows = await tasks(api, launched["id"])
    assert {row["status"] for row in rows} == {"completed"}
    assert all(row["attempts"] == 1 and row["last_outcome"] == "answered" for row in rows)
