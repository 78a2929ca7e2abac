from __future__ import annotations

import uuid

import httpx

from bulkcall.db.engine import Database
from tests.conftest import data, new_key


async def test_every_response_carries_request_id_header_matching_body(api: httpx.AsyncClient) -> None:
    response = await api.get("/workspace")
    body = response.json()
    assert response.headers["x-request-id"] == body["request_id"]
    uuid.UUID(body["request_id"])
    assert set(body) == {"data", "meta", "message", "request_id"}


async def test_missing_key_is_401_envelope(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/api/v1/workspace")
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "UNAUTHORIZED"
    assert response.headers["x-request-id"] == body["request_id"]


async def test_unknown_key_is_401(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/api/v1/workspace", headers={"X-Api-Key": "sk_" + "x" * 40})
    assert response.status_code == 401


async def test_bearer_token_is_accepted(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database)
    response = await anon.get("/api/v1/workspace", headers={"Authorization": f"Bearer {key}"})
    assert data(response)["name"] == "acme"


async def test_key_without_scope_is_403(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["contacts:read"])
    response = await anon.patch("/api/v1/workspace", json={"concurrency_cap": 5}, headers={"X-Api-Key": key})
    assert response.status_code == 403
    assert response.json()["error_code"] == "FORBIDDEN"


async def test_malformed_json_is_400(api: httpx.AsyncClient) -> None:
    response = await api.patch("/workspace", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"


async def test_unknown_field_is_422_with_path(api: httpx.AsyncClient) -> None:
    response = await api.patch("/workspace", json={"concurency_cap": 3})
    assert response.status_code == 422
    assert response.json()["errors"] == {"concurency_cap": ["Unknown field"]}


async def test_null_for_required_field_is_422(api: httpx.AsyncClient) -> None:
    response = await api.patch("/workspace", json={"name": None})
    assert response.status_code == 422
    assert "name" in response.json()["errors"]


async def test_patch_workspace_sets_and_clears_cap(api: httpx.AsyncClient) -> None:
    assert data(await api.patch("/workspace", json={"concurrency_cap": 7}))["concurrency_cap"] == 7
    assert data(await api.patch("/workspace", json={"concurrency_cap": None}))["concurrency_cap"] is None


async def test_nul_in_body_is_422(api: httpx.AsyncClient) -> None:
    response = await api.patch("/workspace", json={"name": "a\x00b"})
    assert response.status_code == 422


async def test_nul_in_query_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/workspace", params={"x": "a\x00"})
    assert response.status_code == 422


async def test_unknown_route_is_404_envelope(api: httpx.AsyncClient) -> None:
    response = await api.get("/nope")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


async def test_oversized_json_body_is_413(api: httpx.AsyncClient) -> None:
    response = await api.patch(
        "/workspace",
        content=b'{"name": "' + b"a" * (11 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error_code"] == "PAYLOAD_TOO_LARGE"


async def test_openapi_documents_error_envelope(anon: httpx.AsyncClient) -> None:
    schema = (await anon.get("/openapi.json")).json()
    operation = schema["paths"]["/api/v1/workspace"]["patch"]
    assert {"401", "403", "422", "500"} <= set(operation["responses"])
    assert (await anon.get("/docs")).status_code == 200


async def test_lone_surrogate_in_body_is_422(api: httpx.AsyncClient) -> None:
    response = await api.patch(
        "/workspace", content=b'{"name": "a\\ud800b"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_paired_surrogates_are_ordinary_text(api: httpx.AsyncClient) -> None:
    response = await api.patch(
        "/workspace", content=b'{"name": "smile \\ud83d\\ude00"}', headers={"Content-Type": "application/json"}
    )
    assert data(response)["name"] == "smile \U0001f600"


async def test_invalid_utf8_in_query_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/contacts?search=%FF")
    assert response.status_code == 422
