from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog

from bulkcall.db.engine import Database
from bulkcall.db.models import TelephonyConnection
from bulkcall.kit.logging import configure_logging
from tests.conftest import data, new_key

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "tw-auth-token-3f9a1c7e-never-shown"
# A Standard Webhooks secret (whsec_ + base64), as http_agent requires.
SIGNING_SECRET = "whsec_YWdlbnQtc2lnbmluZy1zZWNyZXQtOGQyYi1uZXZlci1zaG93bg=="


def _twilio(**config: Any) -> dict[str, Any]:
    return {
        "name": "Twilio main",
        "provider": "twilio",
        "config": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, **config},
    }


async def _create(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = data(await api.post("/telephony_connections", json=body), 201)
    return created


async def _errors(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 422, response.text
    errors: dict[str, list[str]] = response.json()["errors"]
    return errors


# --- create and read -------------------------------------------------------------------------------


async def test_create_simulator_with_empty_config_fills_defaults(api: httpx.AsyncClient) -> None:
    connection = await _create(api, {"name": "Sim", "provider": "simulator"})
    assert connection["concurrency_limit"] == 10
    assert connection["calls_per_second"] == 1
    assert connection["secrets_set"] == []
    config = connection["config"]
    assert config["speed"] == 1
    assert config["callback_faults"] == {"duplicate": 0, "missing": 0, "reordered": 0}
    assert sum(config["outcomes"].values()) == pytest.approx(1)
    assert config["ring_seconds"][0] <= config["ring_seconds"][1]


async def test_create_simulator_stores_given_config(api: httpx.AsyncClient) -> None:
    config = {
        "seed": 42,
        "outcomes": {"answered": 0.7, "no_answer": 0.3},
        "ring_seconds": [1, 5],
        "talk_seconds": [20, 20],
        "speed": 100,
        "callback_faults": {"duplicate": 0.1, "missing": 0.01},
        "number_answer_rates": {"+44 20 7946 0958": 0.9},
    }
    connection = await _create(api, {"name": "Sim", "provider": "simulator", "config": config})
    stored = data(await api.get(f"/telephony_connections/{connection['id']}"))["config"]
    assert stored["seed"] == 42
    assert stored["outcomes"] == {"answered": 0.7, "voicemail": 0, "no_answer": 0.3, "busy": 0, "failed": 0}
    assert stored["ring_seconds"] == [1, 5]
    assert stored["talk_seconds"] == [20, 20]
    assert stored["speed"] == 100
    assert stored["callback_faults"] == {"duplicate": 0.1, "missing": 0.01, "reordered": 0}
    assert stored["number_answer_rates"] == {"+442079460958": 0.9}


async def test_create_twilio_reports_secret_names_not_values(api: httpx.AsyncClient) -> None:
    connection = await _create(api, _twilio(machine_detection="DetectMessageEnd"))
    assert connection["provider"] == "twilio"
    assert connection["secrets_set"] == ["auth_token"]
    assert connection["config"] == {
        "account_sid": ACCOUNT_SID,
        "api_base_url": "https://api.twilio.com",
        "machine_detection": "DetectMessageEnd",
    }


async def test_create_http_agent_reports_signing_secret_as_set(api: httpx.AsyncClient) -> None:
    body = {
        "name": "Own agent",
        "provider": "http_agent",
        "config": {"url": "https://agent.example.com/calls", "signing_secret": SIGNING_SECRET},
    }
    connection = await _create(api, body)
    assert connection["config"] == {"url": "https://agent.example.com/calls"}
    assert connection["secrets_set"] == ["signing_secret"]


async def test_create_connection_sets_limits(api: httpx.AsyncClient) -> None:
    body = {"name": "Sim", "provider": "simulator", "concurrency_limit": 250, "calls_per_second": 2.5}
    connection = await _create(api, body)
    assert (connection["concurrency_limit"], connection["calls_per_second"]) == (250, 2.5)


async def test_list_connections_is_newest_first_with_meta(api: httpx.AsyncClient) -> None:
    first = await _create(api, {"name": "A", "provider": "simulator"})
    second = await _create(api, _twilio())
    body = (await api.get("/telephony_connections")).json()
    assert [row["id"] for row in body["data"]] == [second["id"], first["id"]]
    assert body["meta"]["count"] == 2


async def test_list_connections_filters_by_provider(api: httpx.AsyncClient) -> None:
    await _create(api, {"name": "A", "provider": "simulator"})
    twilio = await _create(api, _twilio())
    rows = data(await api.get("/telephony_connections", params={"provider": "twilio"}))
    assert [row["id"] for row in rows] == [twilio["id"]]


async def test_get_unknown_connection_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/telephony_connections/999999")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


# --- validation --------------------------------------------------------------------------------------


async def test_create_rejects_unknown_provider_listing_known_ones(api: httpx.AsyncClient) -> None:
    errors = await _errors(await api.post("/telephony_connections", json={"name": "x", "provider": "vonage"}))
    message = errors["provider"][0]
    assert all(name in message for name in ("simulator", "twilio", "http_agent"))


async def test_create_rejects_unknown_config_key_with_path(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "simulator", "config": {"sped": 2}}
    assert await _errors(await api.post("/telephony_connections", json=body)) == {"config.sped": ["Unknown field"]}


async def test_create_rejects_outcomes_not_summing_to_one(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "simulator", "config": {"outcomes": {"answered": 0.5, "busy": 0.4}}}
    errors = await _errors(await api.post("/telephony_connections", json=body))
    assert "sum to 1" in errors["config.outcomes"][0]


async def test_create_rejects_probability_above_one(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "simulator", "config": {"callback_faults": {"missing": 1.5}}}
    errors = await _errors(await api.post("/telephony_connections", json=body))
    assert "config.callback_faults.missing" in errors


async def test_create_rejects_unknown_outcome(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "simulator", "config": {"outcomes": {"answered": 0.5, "hung_up": 0.5}}}
    errors = await _errors(await api.post("/telephony_connections", json=body))
    assert errors["config.outcomes.hung_up"] == ["Unknown field"]


async def test_create_rejects_reversed_ring_range(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "simulator", "config": {"ring_seconds": [30, 5]}}
    errors = await _errors(await api.post("/telephony_connections", json=body))
    assert errors["config.ring_seconds"] == ["min must not exceed max"]


async def test_create_rejects_negative_talk_seconds(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "simulator", "config": {"talk_seconds": [-1, 5]}}
    errors = await _errors(await api.post("/telephony_connections", json=body))
    assert "config.talk_seconds.0" in errors


async def test_create_rejects_zero_speed(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "simulator", "config": {"speed": 0}}
    assert "config.speed" in await _errors(await api.post("/telephony_connections", json=body))


async def test_create_rejects_invalid_number_in_answer_rates(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "simulator", "config": {"number_answer_rates": {"12": 0.5}}}
    assert "config.number_answer_rates" in await _errors(await api.post("/telephony_connections", json=body))


async def test_create_twilio_requires_account_sid_and_auth_token(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "twilio", "config": {}}
    errors = await _errors(await api.post("/telephony_connections", json=body))
    assert set(errors) == {"config.account_sid", "config.auth_token"}


async def test_create_twilio_rejects_malformed_account_sid(api: httpx.AsyncClient) -> None:
    body = _twilio(account_sid="AC123")
    errors = await _errors(await api.post("/telephony_connections", json=body))
    assert errors["config.account_sid"] == ["must be 'AC' followed by 32 hexadecimal digits"]


async def test_create_twilio_rejects_unknown_machine_detection(api: httpx.AsyncClient) -> None:
    errors = await _errors(await api.post("/telephony_connections", json=_twilio(machine_detection="Always")))
    assert "config.machine_detection" in errors


async def test_create_twilio_rejects_non_http_api_base_url(api: httpx.AsyncClient) -> None:
    errors = await _errors(await api.post("/telephony_connections", json=_twilio(api_base_url="file:///etc")))
    assert "config.api_base_url" in errors


async def test_create_http_agent_requires_url_and_signing_secret(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "http_agent", "config": {"url": "not a url"}}
    errors = await _errors(await api.post("/telephony_connections", json=body))
    assert set(errors) == {"config.url", "config.signing_secret"}


@pytest.mark.parametrize("limit", [0, 10_001])
async def test_create_rejects_concurrency_limit_out_of_range(api: httpx.AsyncClient, limit: int) -> None:
    body = {"name": "x", "provider": "simulator", "concurrency_limit": limit}
    assert "concurrency_limit" in await _errors(await api.post("/telephony_connections", json=body))


@pytest.mark.parametrize("cps", [0, -1, 1000.5])
async def test_create_rejects_calls_per_second_out_of_range(api: httpx.AsyncClient, cps: float) -> None:
    body = {"name": "x", "provider": "simulator", "calls_per_second": cps}
    assert "calls_per_second" in await _errors(await api.post("/telephony_connections", json=body))


async def test_create_rejects_unknown_top_level_field(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "provider": "simulator", "credentials": {}}
    assert await _errors(await api.post("/telephony_connections", json=body)) == {"credentials": ["Unknown field"]}


# --- patch -------------------------------------------------------------------------------------------


async def test_patch_config_merges_and_keeps_omitted_secret(api: httpx.AsyncClient) -> None:
    connection = await _create(api, _twilio())
    updated = data(
        await api.patch(f"/telephony_connections/{connection['id']}", json={"config": {"machine_detection": "Enable"}})
    )
    assert updated["config"]["machine_detection"] == "Enable"
    assert updated["config"]["account_sid"] == ACCOUNT_SID
    assert updated["secrets_set"] == ["auth_token"]


async def test_patch_config_keeps_other_simulator_settings(api: httpx.AsyncClient) -> None:
    connection = await _create(api, {"name": "Sim", "provider": "simulator", "config": {"seed": 7, "speed": 50}})
    updated = data(await api.patch(f"/telephony_connections/{connection['id']}", json={"config": {"speed": 5}}))
    assert (updated["config"]["seed"], updated["config"]["speed"]) == (7, 5)


async def test_patch_config_is_validated_against_provider(api: httpx.AsyncClient) -> None:
    connection = await _create(api, {"name": "Sim", "provider": "simulator"})
    response = await api.patch(
        f"/telephony_connections/{connection['id']}", json={"config": {"outcomes": {"answered": 2}}}
    )
    errors = await _errors(response)
    assert "config.outcomes.answered" in errors
    assert data(await api.get(f"/telephony_connections/{connection['id']}"))["config"] == connection["config"]


async def test_patch_refuses_provider_change(api: httpx.AsyncClient) -> None:
    connection = await _create(api, {"name": "Sim", "provider": "simulator"})
    response = await api.patch(f"/telephony_connections/{connection['id']}", json={"provider": "twilio"})
    errors = await _errors(response)
    assert "cannot be changed" in errors["provider"][0]


async def test_patch_accepts_unchanged_provider(api: httpx.AsyncClient) -> None:
    connection = await _create(api, {"name": "Sim", "provider": "simulator"})
    updated = data(
        await api.patch(f"/telephony_connections/{connection['id']}", json={"provider": "simulator", "name": "B"})
    )
    assert (updated["provider"], updated["name"]) == ("simulator", "B")


async def test_patch_changes_limits_and_name(api: httpx.AsyncClient) -> None:
    connection = await _create(api, {"name": "Sim", "provider": "simulator"})
    updated = data(
        await api.patch(
            f"/telephony_connections/{connection['id']}",
            json={"name": "Renamed", "concurrency_limit": 3, "calls_per_second": 0.5},
        )
    )
    assert (updated["name"], updated["concurrency_limit"], updated["calls_per_second"]) == ("Renamed", 3, 0.5)
    assert updated["config"] == connection["config"]


async def test_patch_refuses_null_concurrency_limit(api: httpx.AsyncClient) -> None:
    connection = await _create(api, {"name": "Sim", "provider": "simulator"})
    response = await api.patch(f"/telephony_connections/{connection['id']}", json={"concurrency_limit": None})
    assert "concurrency_limit" in await _errors(response)


async def test_patch_unknown_connection_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.patch("/telephony_connections/999999", json={"name": "x"})).status_code == 404


# --- write-only secrets ------------------------------------------------------------------------------


async def test_secret_never_appears_in_any_response(api: httpx.AsyncClient) -> None:
    connection = await _create(api, _twilio())
    url = f"/telephony_connections/{connection['id']}"
    responses = [
        await api.get(url),
        await api.get("/telephony_connections"),
        await api.patch(url, json={"name": "Renamed"}),
        await api.patch(url, json={"config": {"auth_token": AUTH_TOKEN + "-rotated"}}),
        await api.patch(url, json={"config": {"account_sid": "bad"}}),
        await api.post("/telephony_connections", json=_twilio(account_sid="bad")),
        await api.post("/telephony_connections", json={**_twilio(), "extra": AUTH_TOKEN}),
    ]
    assert all(AUTH_TOKEN not in response.text for response in responses)
    assert "secrets" not in responses[0].json()["data"]


async def test_rotated_secret_is_stored(api: httpx.AsyncClient, database: Database) -> None:
    connection = await _create(api, _twilio())
    await api.patch(f"/telephony_connections/{connection['id']}", json={"config": {"auth_token": "rotated-token"}})
    async with database.session(write=False) as session:
        row = await session.get(TelephonyConnection, connection["id"])
        assert row is not None
        assert row.secrets == {"auth_token": "rotated-token"}
        assert "auth_token" not in row.config


@pytest.fixture
def debug_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The production logging set-up at DEBUG, writing what it would send to stderr into a buffer."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog_config = structlog.get_config()
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("DEBUG")
    try:
        yield buffer
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        structlog.configure(**structlog_config)  # the tests' own set-up (conftest), not structlog's defaults


async def test_secret_never_appears_in_logs(api: httpx.AsyncClient, debug_log: io.StringIO) -> None:
    connection = await _create(api, _twilio())
    url = f"/telephony_connections/{connection['id']}"
    await api.get(url)
    await api.get("/telephony_connections")
    await api.patch(url, json={"config": {"auth_token": AUTH_TOKEN + "-rotated", "machine_detection": "Enable"}})
    await api.post("/telephony_connections", json=_twilio(account_sid="bad"))
    logged = debug_log.getvalue()
    assert "path=/api/v1/telephony_connections" in logged  # the capture works: request lines were logged
    assert AUTH_TOKEN not in logged


# --- scopes and tenant isolation ---------------------------------------------------------------------


async def test_connections_need_phone_numbers_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["phone_numbers:read"])
    headers = {"X-Api-Key": key}
    assert (await anon.get("/api/v1/telephony_connections", headers=headers)).status_code == 200
    body = {"name": "Sim", "provider": "simulator"}
    assert (await anon.post("/api/v1/telephony_connections", json=body, headers=headers)).status_code == 403


async def test_other_workspace_cannot_get_connection(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    connection = await _create(api, _twilio())
    assert (await other_api.get(f"/telephony_connections/{connection['id']}")).status_code == 404


async def test_other_workspace_cannot_patch_connection(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    connection = await _create(api, _twilio())
    url = f"/telephony_connections/{connection['id']}"
    assert (await other_api.patch(url, json={"name": "Hijacked"})).status_code == 404
    assert data(await api.get(url))["name"] == "Twilio main"


async def test_connection_list_shows_only_own_workspace(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    mine = await _create(api, _twilio())
    theirs = await _create(other_api, {"name": "Globex sim", "provider": "simulator"})
    assert [row["id"] for row in data(await api.get("/telephony_connections"))] == [mine["id"]]
    assert [row["id"] for row in data(await other_api.get("/telephony_connections"))] == [theirs["id"]]


async def test_out_of_range_connection_id_is_422(api: httpx.AsyncClient) -> None:
    assert "connection_id" in await _errors(await api.get("/telephony_connections/99999999999999999999"))
