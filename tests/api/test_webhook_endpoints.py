"""``/webhook_endpoints``: validation, the secret shown once, private URLs, tenant isolation, re-enabling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from bulkcall.app import create_app
from bulkcall.db.engine import Database
from bulkcall.db.models import WebhookEndpoint
from bulkcall.kit import net
from bulkcall.settings import Settings
from tests.conftest import data, new_key, started_app

URL = "http://127.0.0.1:9/hooks"


def _errors(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 422, response.text
    errors: dict[str, list[str]] = response.json()["errors"]
    return errors


async def test_create_returns_the_secret_once_and_never_again(
    api: httpx.AsyncClient, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # (DEBUG is the drivers' own statement trace, off in production)
    created = data(
        await api.post("/webhook_endpoints", json={"url": URL, "events": ["task.completed"], "description": "crm"}),
        201,
    )
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) > 20
    assert (created["url"], created["events"], created["enabled"], created["description"]) == (
        URL,
        ["task.completed"],
        True,
        "crm",
    )
    endpoint_id = created["id"]
    responses = [
        await api.get(f"/webhook_endpoints/{endpoint_id}"),
        await api.get("/webhook_endpoints"),
        await api.patch(f"/webhook_endpoints/{endpoint_id}", json={"description": "changed"}),
        await api.get(f"/webhook_endpoints/{endpoint_id}/deliveries"),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        assert secret not in response.text
        assert "secret" not in response.text
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err + caplog.text


async def test_empty_or_omitted_events_mean_every_event(api: httpx.AsyncClient) -> None:
    created = data(await api.post("/webhook_endpoints", json={"url": URL}), 201)
    assert created["events"] == []
    repeated = data(
        await api.post("/webhook_endpoints", json={"url": URL, "events": ["call.completed", "call.completed"]}), 201
    )
    assert repeated["events"] == ["call.completed"]


async def test_bad_input_is_a_422_with_field_paths(api: httpx.AsyncClient) -> None:
    assert "events.1" in _errors(
        await api.post("/webhook_endpoints", json={"url": URL, "events": ["call.completed", "call.finished"]})
    )
    assert "url" in _errors(await api.post("/webhook_endpoints", json={"url": "ftp://example.com/x"}))
    assert "url" in _errors(await api.post("/webhook_endpoints", json={"url": "example.com/hooks"}))
    assert "secret" in _errors(await api.post("/webhook_endpoints", json={"url": URL, "secret": "whsec_mine"}))
    endpoint = data(await api.post("/webhook_endpoints", json={"url": URL}), 201)
    assert "enabled" in _errors(await api.patch(f"/webhook_endpoints/{endpoint['id']}", json={"enabled": None}))
    assert "events.0" in _errors(await api.patch(f"/webhook_endpoints/{endpoint['id']}", json={"events": ["nope"]}))


async def test_another_workspace_sees_404(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    endpoint = data(await api.post("/webhook_endpoints", json={"url": URL}), 201)
    path = f"/webhook_endpoints/{endpoint['id']}"
    assert (await other_api.get(path)).status_code == 404
    assert (await other_api.patch(path, json={"enabled": False})).status_code == 404
    assert (await other_api.get(f"{path}/deliveries")).status_code == 404
    assert (await other_api.delete(path)).status_code == 404
    assert data(await other_api.get("/webhook_endpoints")) == []
    assert (await other_api.post("/webhook_deliveries/1/redeliver")).status_code == 404
    assert data(await api.get(path))["id"] == endpoint["id"]


async def test_scopes_are_enforced(app: FastAPI, database: Database) -> None:
    key = await new_key(database, "readonly", ["webhooks:read"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver/api/v1", headers={"X-Api-Key": key}
    ) as client:
        assert (await client.get("/webhook_endpoints")).status_code == 200
        assert (await client.post("/webhook_endpoints", json={"url": URL})).status_code == 403


async def test_delete_removes_the_endpoint(api: httpx.AsyncClient) -> None:
    endpoint = data(await api.post("/webhook_endpoints", json={"url": URL}), 201)
    assert (await api.delete(f"/webhook_endpoints/{endpoint['id']}")).status_code == 204
    assert (await api.get(f"/webhook_endpoints/{endpoint['id']}")).status_code == 404


async def test_enabling_again_clears_an_automatic_disable(api: httpx.AsyncClient, database: Database) -> None:
    endpoint = data(await api.post("/webhook_endpoints", json={"url": URL}), 201)
    async with database.session(write=True) as session, session.begin():
        row = await session.get(WebhookEndpoint, endpoint["id"])
        assert row is not None
        row.enabled, row.consecutive_failures, row.disabled_reason = False, 20, "20 deliveries in a row failed"
        row.disabled_at = row.created_at
    disabled = data(await api.get(f"/webhook_endpoints/{endpoint['id']}"))
    assert (disabled["enabled"], disabled["consecutive_failures"]) == (False, 20)
    assert disabled["disabled_reason"]
    assert disabled["disabled_at"]
    enabled = data(await api.patch(f"/webhook_endpoints/{endpoint['id']}", json={"enabled": True}))
    assert (
        enabled["enabled"],
        enabled["consecutive_failures"],
        enabled["disabled_at"],
        enabled["disabled_reason"],
    ) == (
        True,
        0,
        None,
        None,
    )


# -- private destinations --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def strict_shared_app() -> FastAPI:
    """A second shared app (see ``shared_app``): a test may use both it and ``api``."""
    placeholder = Settings(database_url="sqlite://")
    return create_app(placeholder, database=Database(placeholder.database_url))


@pytest.fixture
async def strict_api(
    strict_shared_app: FastAPI, database_url: str, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app where private webhook URLs are refused (the production default)."""
    async with started_app(strict_shared_app, Settings(database_url=database_url), database) as application:
        key = await new_key(database)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://testserver/api/v1",
            headers={"X-Api-Key": key},
        ) as client:
            yield client


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "https://10.1.2.3/hooks",
        "http://192.168.0.10/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8000/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://0.0.0.0/hooks",
        "http://100.64.0.1/hooks",
    ],
)
async def test_private_destinations_are_refused(strict_api: httpx.AsyncClient, url: str) -> None:
    errors = _errors(await strict_api.post("/webhook_endpoints", json={"url": url}))
    assert "private" in errors["url"][0]


async def test_a_public_address_is_accepted_and_a_patch_is_checked_too(strict_api: httpx.AsyncClient) -> None:
    endpoint = data(await strict_api.post("/webhook_endpoints", json={"url": "https://93.184.216.34/hooks"}), 201)
    errors = _errors(await strict_api.patch(f"/webhook_endpoints/{endpoint['id']}", json={"url": URL}))
    assert "private" in errors["url"][0]


async def test_no_database_lock_is_held_while_the_url_resolves(
    strict_api: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow resolver must not stall the service: on SQLite the request's write lock would block every
    other writer (the dispatcher above all) until the name resolved."""
    asked, answer = asyncio.Event(), asyncio.Event()

    async def slow_resolve(host: str, port: int, within_seconds: float) -> list[str]:
        asked.set()
        await answer.wait()
        return ["93.184.216.34"]

    monkeypatch.setattr(net, "resolve", slow_resolve)
    created = asyncio.create_task(strict_api.post("/webhook_endpoints", json={"url": "https://hooks.example/in"}))
    await asyncio.wait_for(asked.wait(), timeout=10)

    async def write_elsewhere() -> None:
        async with database.session(write=True) as session, session.begin():
            await session.execute(text("UPDATE workspaces SET name = name"))

    # While the name resolves, another writer gets through (it would wait 30 s for the lock).
    await asyncio.wait_for(write_elsewhere(), timeout=10)
    answer.set()
    assert data(await created, 201)["url"] == "https://hooks.example/in"


async def test_private_destinations_are_allowed_with_the_setting(api: httpx.AsyncClient) -> None:
    # The ``settings`` fixture sets BULKCALL_ALLOW_PRIVATE_WEBHOOK_URLS=true, as local receivers need.
    assert data(await api.post("/webhook_endpoints", json={"url": "http://localhost:9/hooks"}), 201)["url"]


async def test_create_is_idempotent_and_a_replay_is_the_callers_own_retry(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "create-hook-1"}
    first = await api.post("/webhook_endpoints", json={"url": URL}, headers=headers)
    again = await api.post("/webhook_endpoints", json={"url": URL}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["data"] == first.json()["data"]  # the same endpoint (and secret), not a second one
    assert len(data(await api.get("/webhook_endpoints"))) == 1
    reused = await api.post("/webhook_endpoints", json={"url": URL + "/other"}, headers=headers)
    assert reused.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_an_invalid_port_or_an_unresolvable_host_is_a_422(
    api: httpx.AsyncClient, strict_api: httpx.AsyncClient
) -> None:
    assert "port" in _errors(await api.post("/webhook_endpoints", json={"url": "http://127.0.0.1:99999/x"}))["url"][0]
    errors = _errors(await strict_api.post("/webhook_endpoints", json={"url": "https://nowhere.invalid/hooks"}))
    assert "resolve" in errors["url"][0]  # "does not resolve", or "did not resolve within 3 s" without DNS
