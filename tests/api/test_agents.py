from __future__ import annotations

from typing import Any

import httpx

from bulkcall.db.engine import Database
from tests.conftest import data, new_key


async def _agent(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Reactivation bot", **fields}
    created: dict[str, Any] = data(await api.post("/agents", json=body), 201)
    return created


async def test_create_agent_returns_201_with_defaults(api: httpx.AsyncClient) -> None:
    agent = await _agent(api)
    assert agent["name"] == "Reactivation bot"
    assert agent["status"] == "active"
    assert agent["runtime"] == {}
    assert agent["variables"] == []
    assert agent["post_call_webhook_url"] is None
    assert agent["created_at"].endswith("Z")


async def test_create_agent_stores_runtime_variables_and_webhook(api: httpx.AsyncClient) -> None:
    runtime = {"twiml_url": "https://example.com/twiml", "voice": {"speed": 1.1}}
    agent = await _agent(
        api,
        runtime=runtime,
        variables=["first_name", "_plan", "due2"],
        post_call_webhook_url="https://hooks.example.com/after-call?x=1",
    )
    fetched = data(await api.get(f"/agents/{agent['id']}"))
    assert fetched["runtime"] == runtime
    assert fetched["variables"] == ["first_name", "_plan", "due2"]
    assert fetched["post_call_webhook_url"] == "https://hooks.example.com/after-call?x=1"


async def test_create_agent_requires_name(api: httpx.AsyncClient) -> None:
    response = await api.post("/agents", json={"runtime": {}})
    assert response.status_code == 422
    assert "name" in response.json()["errors"]


async def test_create_agent_rejects_blank_name(api: httpx.AsyncClient) -> None:
    response = await api.post("/agents", json={"name": "   "})
    assert response.status_code == 422
    assert "name" in response.json()["errors"]


async def test_create_agent_rejects_status_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/agents", json={"name": "a", "status": "archived"})
    assert response.status_code == 422
    assert response.json()["errors"] == {"status": ["Unknown field"]}


async def test_create_agent_rejects_non_identifier_variable_with_index_path(api: httpx.AsyncClient) -> None:
    response = await api.post("/agents", json={"name": "a", "variables": ["ok", "first name", "9lives"]})
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"variables.1", "variables.2"}


async def test_create_agent_rejects_duplicate_variables(api: httpx.AsyncClient) -> None:
    response = await api.post("/agents", json={"name": "a", "variables": ["plan", "name", "plan"]})
    assert response.status_code == 422
    assert "repeated: plan" in response.json()["errors"]["variables"][0]


async def test_create_agent_rejects_non_http_webhook_url(api: httpx.AsyncClient) -> None:
    response = await api.post("/agents", json={"name": "a", "post_call_webhook_url": "ftp://example.com/x"})
    assert response.status_code == 422
    assert "post_call_webhook_url" in response.json()["errors"]


async def test_create_agent_rejects_runtime_that_is_not_an_object(api: httpx.AsyncClient) -> None:
    response = await api.post("/agents", json={"name": "a", "runtime": ["x"]})
    assert response.status_code == 422
    assert "runtime" in response.json()["errors"]


async def test_create_agent_reports_every_problem_at_once(api: httpx.AsyncClient) -> None:
    response = await api.post("/agents", json={"name": "", "variables": ["a b"], "post_call_webhook_url": "x"})
    assert set(response.json()["errors"]) == {"name", "variables.0", "post_call_webhook_url"}


async def test_list_agents_is_newest_first_and_paginated(api: httpx.AsyncClient) -> None:
    ids = [(await _agent(api, name=f"agent {n}"))["id"] for n in range(3)]
    response = await api.get("/agents", params={"per_page": 2})
    body = response.json()
    assert [row["id"] for row in body["data"]] == [ids[2], ids[1]]
    assert body["meta"] == {"count": 3, "page": 1, "per_page": 2, "pages": 2}


async def test_list_agents_filters_by_status(api: httpx.AsyncClient) -> None:
    active = await _agent(api, name="active one")
    archived = await _agent(api, name="archived one")
    data(await api.post(f"/agents/{archived['id']}/archive"))
    assert [row["id"] for row in data(await api.get("/agents", params={"status": "archived"}))] == [archived["id"]]
    assert [row["id"] for row in data(await api.get("/agents", params={"status": "active"}))] == [active["id"]]


async def test_list_agents_rejects_unknown_status_filter(api: httpx.AsyncClient) -> None:
    response = await api.get("/agents", params={"status": "deleted"})
    assert response.status_code == 422
    assert "status" in response.json()["errors"]


async def test_get_unknown_agent_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/agents/999999")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


async def test_patch_agent_changes_only_given_fields(api: httpx.AsyncClient) -> None:
    agent = await _agent(api, variables=["first_name"], runtime={"assistant_id": "a1"})
    updated = data(await api.patch(f"/agents/{agent['id']}", json={"name": "Renamed"}))
    assert updated["name"] == "Renamed"
    assert updated["variables"] == ["first_name"]
    assert updated["runtime"] == {"assistant_id": "a1"}


async def test_patch_agent_replaces_runtime_and_variables(api: httpx.AsyncClient) -> None:
    agent = await _agent(api, variables=["a"], runtime={"assistant_id": "a1"})
    updated = data(
        await api.patch(f"/agents/{agent['id']}", json={"variables": ["b", "c"], "runtime": {"stream_url": "wss://x"}})
    )
    assert updated["variables"] == ["b", "c"]
    assert updated["runtime"] == {"stream_url": "wss://x"}


async def test_patch_agent_clears_webhook_url_with_null(api: httpx.AsyncClient) -> None:
    agent = await _agent(api, post_call_webhook_url="https://example.com/hook")
    updated = data(await api.patch(f"/agents/{agent['id']}", json={"post_call_webhook_url": None}))
    assert updated["post_call_webhook_url"] is None


async def test_patch_agent_refuses_null_name(api: httpx.AsyncClient) -> None:
    agent = await _agent(api)
    response = await api.patch(f"/agents/{agent['id']}", json={"name": None})
    assert response.status_code == 422
    assert "name" in response.json()["errors"]


async def test_patch_agent_refuses_status_change(api: httpx.AsyncClient) -> None:
    agent = await _agent(api)
    response = await api.patch(f"/agents/{agent['id']}", json={"status": "archived"})
    assert response.status_code == 422
    assert response.json()["errors"] == {"status": ["Unknown field"]}


async def test_patch_agent_refuses_duplicate_variables(api: httpx.AsyncClient) -> None:
    agent = await _agent(api)
    response = await api.patch(f"/agents/{agent['id']}", json={"variables": ["x", "x"]})
    assert response.status_code == 422
    assert "variables" in response.json()["errors"]


async def test_patch_unknown_agent_is_404(api: httpx.AsyncClient) -> None:
    response = await api.patch("/agents/999999", json={"name": "x"})
    assert response.status_code == 404


async def test_archive_agent_sets_status_archived(api: httpx.AsyncClient) -> None:
    agent = await _agent(api)
    archived = data(await api.post(f"/agents/{agent['id']}/archive"))
    assert archived["status"] == "archived"
    assert data(await api.get(f"/agents/{agent['id']}"))["status"] == "archived"


async def test_archive_archived_agent_is_200_no_op(api: httpx.AsyncClient) -> None:
    agent = await _agent(api)
    first = data(await api.post(f"/agents/{agent['id']}/archive"))
    second = data(await api.post(f"/agents/{agent['id']}/archive"))
    assert second == first


async def test_archive_unknown_agent_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.post("/agents/999999/archive")).status_code == 404


async def test_agents_need_agents_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["agents:read"])
    headers = {"X-Api-Key": key}
    assert (await anon.get("/api/v1/agents", headers=headers)).status_code == 200
    response = await anon.post("/api/v1/agents", json={"name": "a"}, headers=headers)
    assert response.status_code == 403


async def test_other_workspace_cannot_get_agent(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    agent = await _agent(api)
    response = await other_api.get(f"/agents/{agent['id']}")
    assert response.status_code == 404


async def test_other_workspace_cannot_patch_agent(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    agent = await _agent(api)
    assert (await other_api.patch(f"/agents/{agent['id']}", json={"name": "Hijacked"})).status_code == 404
    assert data(await api.get(f"/agents/{agent['id']}"))["name"] == "Reactivation bot"


async def test_other_workspace_cannot_archive_agent(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    agent = await _agent(api)
    assert (await other_api.post(f"/agents/{agent['id']}/archive")).status_code == 404
    assert data(await api.get(f"/agents/{agent['id']}"))["status"] == "active"


async def test_agent_list_shows_only_own_workspace(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    mine = await _agent(api)
    theirs = await _agent(other_api, name="Globex bot")
    assert [row["id"] for row in data(await api.get("/agents"))] == [mine["id"]]
    body = (await other_api.get("/agents")).json()
    assert [row["id"] for row in body["data"]] == [theirs["id"]]
    assert body["meta"]["count"] == 1


async def test_out_of_range_agent_id_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/agents/99999999999999999999")
    assert response.status_code == 422
    assert "agent_id" in response.json()["errors"]
