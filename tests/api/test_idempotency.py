"""``Idempotency-Key`` on state-changing POSTs: replay, reuse with another body, scoping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from bulkcall.kit.clock import FixedClock
from tests.conftest import data


async def test_same_key_and_body_replays_the_original_response(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "create-agent-1"}
    first = await api.post("/agents", json={"name": "Ava"}, headers=headers)
    second = await api.post("/agents", json={"name": "Ava"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["x-request-id"] == first.json()["request_id"]
    assert data(await api.get("/agents"))[0]["id"] == first.json()["data"]["id"]
    assert len(data(await api.get("/agents"))) == 1


async def test_same_key_with_a_different_body_is_422_idempotency_key_reused(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "create-agent-2"}
    assert (await api.post("/agents", json={"name": "Ava"}, headers=headers)).status_code == 201
    response = await api.post("/agents", json={"name": "Bob"}, headers=headers)
    assert response.status_code == 422
    assert response.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(data(await api.get("/agents"))) == 1


async def test_validation_errors_are_replayed_too(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "bad-agent"}
    first = await api.post("/agents", json={"nam": "Ava"}, headers=headers)
    second = await api.post("/agents", json={"nam": "Ava"}, headers=headers)
    assert first.status_code == second.status_code == 422
    assert second.json() == first.json()


async def test_keys_of_different_api_keys_do_not_collide(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    mine = data(await api.post("/agents", json={"name": "Ava"}, headers=headers), 201)
    theirs = data(await other_api.post("/agents", json={"name": "Ava"}, headers=headers), 201)
    assert mine["id"] != theirs["id"]
    assert (await other_api.get(f"/agents/{mine['id']}")).status_code == 404


async def test_a_key_expires_after_24_hours(app: FastAPI, api: httpx.AsyncClient) -> None:
    clock = FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    app.state.clock = clock
    headers = {"Idempotency-Key": "daily"}
    assert (await api.post("/agents", json={"name": "Ava"}, headers=headers)).status_code == 201
    clock.set(clock.now() + timedelta(hours=23))
    assert (await api.post("/agents", json={"name": "Bob"}, headers=headers)).status_code == 422
    clock.set(clock.now() + timedelta(hours=2))
    assert data(await api.post("/agents", json={"name": "Bob"}, headers=headers), 201)["name"] == "Bob"


async def test_overlong_idempotency_key_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/agents", json={"name": "Ava"}, headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["errors"]


async def test_posts_without_a_key_are_not_deduplicated(api: httpx.AsyncClient) -> None:
    await api.post("/agents", json={"name": "Ava"})
    await api.post("/agents", json={"name": "Ava"})
    assert len(data(await api.get("/agents"))) == 2
