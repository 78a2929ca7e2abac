from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bulkcall.db.engine import Database
from bulkcall.db.models import PhoneNumber
from bulkcall.db.repositories.phone_numbers import PhoneNumberRepository
from tests.conftest import data, new_key

US_NUMBER = "+14155552671"
UK_NUMBER = "+442079460958"


async def _connection(client: httpx.AsyncClient, name: str = "Sim") -> int:
    created = data(await client.post("/telephony_connections", json={"name": name, "provider": "simulator"}), 201)
    connection_id: int = created["id"]
    return connection_id


async def _number(client: httpx.AsyncClient, e164: str = US_NUMBER, **fields: Any) -> dict[str, Any]:
    if "telephony_connection_id" not in fields:
        fields["telephony_connection_id"] = await _connection(client)
    created: dict[str, Any] = data(await client.post("/phone_numbers", json={"e164": e164, **fields}), 201)
    return created


def _errors(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 422, response.text
    errors: dict[str, list[str]] = response.json()["errors"]
    return errors


# --- create and read -------------------------------------------------------------------------------


async def test_create_number_returns_201_with_defaults_and_country(api: httpx.AsyncClient) -> None:
    connection_id = await _connection(api)
    number = data(
        await api.post("/phone_numbers", json={"e164": US_NUMBER, "telephony_connection_id": connection_id}), 201
    )
    assert number["e164"] == US_NUMBER
    assert number["country"] == "US"
    assert number["telephony_connection_id"] == connection_id
    assert (number["status"], number["spam_flagged"], number["allowed_countries"], number["label"]) == (
        "active",
        False,
        None,
        None,
    )


async def test_create_number_has_no_invented_health_figures(api: httpx.AsyncClient) -> None:
    number = await _number(api)
    assert set(number) == {
        "id",
        "e164",
        "label",
        "telephony_connection_id",
        "country",
        "status",
        "spam_flagged",
        "allowed_countries",
        "created_at",
        "updated_at",
    }


async def test_create_number_normalises_international_formats(api: httpx.AsyncClient) -> None:
    number = await _number(api, "+44 (0)20 7946 0958")
    assert (number["e164"], number["country"]) == (UK_NUMBER, "GB")


async def test_create_number_stores_label_status_flag_and_countries(api: httpx.AsyncClient) -> None:
    number = await _number(
        api, label="Sales line", status="inactive", spam_flagged=True, allowed_countries=["us", "CA", "US"]
    )
    fetched = data(await api.get(f"/phone_numbers/{number['id']}"))
    assert fetched["label"] == "Sales line"
    assert fetched["status"] == "inactive"
    assert fetched["spam_flagged"] is True
    assert fetched["allowed_countries"] == ["US", "CA"]


async def test_create_number_rejects_invalid_e164(api: httpx.AsyncClient) -> None:
    connection_id = await _connection(api)
    response = await api.post("/phone_numbers", json={"e164": "+1 555", "telephony_connection_id": connection_id})
    errors = _errors(response)
    assert list(errors) == ["e164"]
    assert errors["e164"][0]


async def test_create_number_rejects_national_format_without_country_code(api: httpx.AsyncClient) -> None:
    connection_id = await _connection(api)
    response = await api.post(
        "/phone_numbers", json={"e164": "020 7946 0958", "telephony_connection_id": connection_id}
    )
    assert "country code" in _errors(response)["e164"][0]


async def test_create_number_requires_e164_and_connection(api: httpx.AsyncClient) -> None:
    assert set(_errors(await api.post("/phone_numbers", json={}))) == {"e164", "telephony_connection_id"}


async def test_create_number_rejects_unknown_connection(api: httpx.AsyncClient) -> None:
    response = await api.post("/phone_numbers", json={"e164": US_NUMBER, "telephony_connection_id": 999999})
    assert list(_errors(response)) == ["telephony_connection_id"]


async def test_create_number_rejects_other_workspace_connection(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    foreign_connection = await _connection(other_api, "Globex sim")
    response = await api.post("/phone_numbers", json={"e164": US_NUMBER, "telephony_connection_id": foreign_connection})
    assert list(_errors(response)) == ["telephony_connection_id"]
    assert data(await api.get("/phone_numbers")) == []


async def test_create_number_rejects_unknown_country_with_index_path(api: httpx.AsyncClient) -> None:
    connection_id = await _connection(api)
    response = await api.post(
        "/phone_numbers",
        json={"e164": US_NUMBER, "telephony_connection_id": connection_id, "allowed_countries": ["US", "XX", "UK"]},
    )
    assert set(_errors(response)) == {"allowed_countries.1", "allowed_countries.2"}


async def test_create_number_rejects_empty_allowed_countries(api: httpx.AsyncClient) -> None:
    connection_id = await _connection(api)
    response = await api.post(
        "/phone_numbers", json={"e164": US_NUMBER, "telephony_connection_id": connection_id, "allowed_countries": []}
    )
    assert "use null" in _errors(response)["allowed_countries"][0]


async def test_create_number_rejects_unknown_status(api: httpx.AsyncClient) -> None:
    connection_id = await _connection(api)
    response = await api.post(
        "/phone_numbers", json={"e164": US_NUMBER, "telephony_connection_id": connection_id, "status": "paused"}
    )
    assert "status" in _errors(response)


async def test_create_number_rejects_country_field(api: httpx.AsyncClient) -> None:
    connection_id = await _connection(api)
    response = await api.post(
        "/phone_numbers", json={"e164": US_NUMBER, "telephony_connection_id": connection_id, "country": "GB"}
    )
    assert _errors(response) == {"country": ["Unknown field"]}


async def test_create_duplicate_number_is_409_with_existing_id(api: httpx.AsyncClient) -> None:
    existing = await _number(api)
    response = await api.post(
        "/phone_numbers",
        json={"e164": "+1 (415) 555-2671", "telephony_connection_id": existing["telephony_connection_id"]},
    )
    assert response.status_code == 409
    body = response.json()
    assert body["error_code"] == "CONFLICT"
    assert body["details"]["existing_id"] == existing["id"]


async def test_same_number_may_exist_in_two_workspaces(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    mine = await _number(api)
    theirs = await _number(other_api)
    assert mine["e164"] == theirs["e164"]
    assert mine["id"] != theirs["id"]


async def test_get_unknown_number_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/phone_numbers/999999")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


# --- lists -------------------------------------------------------------------------------------------


async def test_list_numbers_is_newest_first_with_meta(api: httpx.AsyncClient) -> None:
    first = await _number(api, US_NUMBER)
    second = await _number(api, UK_NUMBER)
    body = (await api.get("/phone_numbers", params={"per_page": 1})).json()
    assert [row["id"] for row in body["data"]] == [second["id"]]
    assert body["meta"] == {"count": 2, "page": 1, "per_page": 1, "pages": 2}
    page_two = data(await api.get("/phone_numbers", params={"per_page": 1, "page": 2}))
    assert [row["id"] for row in page_two] == [first["id"]]


async def test_list_numbers_filters_by_status(api: httpx.AsyncClient) -> None:
    active = await _number(api, US_NUMBER)
    inactive = await _number(api, UK_NUMBER, status="inactive")
    assert [row["id"] for row in data(await api.get("/phone_numbers", params={"status": "inactive"}))] == [
        inactive["id"]
    ]
    assert [row["id"] for row in data(await api.get("/phone_numbers", params={"status": "active"}))] == [active["id"]]


async def test_list_numbers_filters_by_connection(api: httpx.AsyncClient) -> None:
    await _number(api, US_NUMBER)
    other = await _number(api, UK_NUMBER)
    rows = data(await api.get("/phone_numbers", params={"telephony_connection_id": other["telephony_connection_id"]}))
    assert [row["id"] for row in rows] == [other["id"]]


async def test_list_numbers_filters_by_country_case_insensitively(api: httpx.AsyncClient) -> None:
    await _number(api, US_NUMBER)
    uk = await _number(api, UK_NUMBER)
    assert [row["id"] for row in data(await api.get("/phone_numbers", params={"country": "gb"}))] == [uk["id"]]


async def test_list_numbers_rejects_unknown_status_filter(api: httpx.AsyncClient) -> None:
    assert "status" in _errors(await api.get("/phone_numbers", params={"status": "gone"}))


# --- patch -------------------------------------------------------------------------------------------


async def test_patch_number_flags_spam_and_relabels(api: httpx.AsyncClient) -> None:
    number = await _number(api, label="Old")
    updated = data(await api.patch(f"/phone_numbers/{number['id']}", json={"spam_flagged": True, "label": "New"}))
    assert (updated["spam_flagged"], updated["label"], updated["e164"]) == (True, "New", US_NUMBER)


async def test_patch_number_sets_and_clears_allowed_countries(api: httpx.AsyncClient) -> None:
    number = await _number(api)
    url = f"/phone_numbers/{number['id']}"
    assert data(await api.patch(url, json={"allowed_countries": ["gb", "ie"]}))["allowed_countries"] == ["GB", "IE"]
    assert data(await api.patch(url, json={"allowed_countries": None}))["allowed_countries"] is None


async def test_patch_number_clears_label_with_null(api: httpx.AsyncClient) -> None:
    number = await _number(api, label="Line")
    assert data(await api.patch(f"/phone_numbers/{number['id']}", json={"label": None}))["label"] is None


async def test_patch_number_refuses_null_spam_flag(api: httpx.AsyncClient) -> None:
    number = await _number(api)
    assert "spam_flagged" in _errors(await api.patch(f"/phone_numbers/{number['id']}", json={"spam_flagged": None}))


async def test_patch_number_moves_to_another_connection(api: httpx.AsyncClient) -> None:
    number = await _number(api)
    target = await _connection(api, "Second")
    updated = data(await api.patch(f"/phone_numbers/{number['id']}", json={"telephony_connection_id": target}))
    assert updated["telephony_connection_id"] == target


async def test_patch_number_refuses_other_workspace_connection(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    number = await _number(api)
    foreign = await _connection(other_api, "Globex sim")
    response = await api.patch(f"/phone_numbers/{number['id']}", json={"telephony_connection_id": foreign})
    assert list(_errors(response)) == ["telephony_connection_id"]
    assert (
        data(await api.get(f"/phone_numbers/{number['id']}"))["telephony_connection_id"]
        == number["telephony_connection_id"]
    )


async def test_patch_number_changes_e164_and_rederives_country(api: httpx.AsyncClient) -> None:
    number = await _number(api)
    updated = data(await api.patch(f"/phone_numbers/{number['id']}", json={"e164": "+44 20 7946 0958"}))
    assert (updated["e164"], updated["country"]) == (UK_NUMBER, "GB")


async def test_patch_number_to_existing_e164_is_409(api: httpx.AsyncClient) -> None:
    first = await _number(api, US_NUMBER)
    second = await _number(api, UK_NUMBER)
    response = await api.patch(f"/phone_numbers/{second['id']}", json={"e164": US_NUMBER})
    assert response.status_code == 409
    assert response.json()["details"]["existing_id"] == first["id"]
    assert data(await api.get(f"/phone_numbers/{second['id']}"))["e164"] == UK_NUMBER


async def test_patch_number_rejects_invalid_e164(api: httpx.AsyncClient) -> None:
    number = await _number(api)
    assert list(_errors(await api.patch(f"/phone_numbers/{number['id']}", json={"e164": "hello"}))) == ["e164"]


async def test_patch_number_rejects_country_field(api: httpx.AsyncClient) -> None:
    number = await _number(api)
    assert _errors(await api.patch(f"/phone_numbers/{number['id']}", json={"country": "GB"})) == {
        "country": ["Unknown field"]
    }


async def test_patch_unknown_number_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.patch("/phone_numbers/999999", json={"label": "x"})).status_code == 404


# --- activate / deactivate ---------------------------------------------------------------------------


async def test_deactivate_then_activate_number(api: httpx.AsyncClient) -> None:
    number = await _number(api)
    assert data(await api.post(f"/phone_numbers/{number['id']}/deactivate"))["status"] == "inactive"
    assert data(await api.get(f"/phone_numbers/{number['id']}"))["status"] == "inactive"
    assert data(await api.post(f"/phone_numbers/{number['id']}/activate"))["status"] == "active"


@pytest.mark.parametrize(("action", "status"), [("activate", "active"), ("deactivate", "inactive")])
async def test_repeating_status_action_is_200_no_op(api: httpx.AsyncClient, action: str, status: str) -> None:
    number = await _number(api)
    first = data(await api.post(f"/phone_numbers/{number['id']}/{action}"))
    second = data(await api.post(f"/phone_numbers/{number['id']}/{action}"))
    assert first["status"] == status
    assert second == first


@pytest.mark.parametrize("action", ["activate", "deactivate"])
async def test_status_action_on_unknown_number_is_404(api: httpx.AsyncClient, action: str) -> None:
    assert (await api.post(f"/phone_numbers/999999/{action}")).status_code == 404


# --- scopes and tenant isolation ---------------------------------------------------------------------


async def test_numbers_need_phone_numbers_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["agents:read", "agents:write"])
    response = await anon.get("/api/v1/phone_numbers", headers={"X-Api-Key": key})
    assert response.status_code == 403


async def test_other_workspace_cannot_get_number(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    number = await _number(api)
    assert (await other_api.get(f"/phone_numbers/{number['id']}")).status_code == 404


async def test_other_workspace_cannot_patch_number(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    number = await _number(api)
    assert (await other_api.patch(f"/phone_numbers/{number['id']}", json={"spam_flagged": True})).status_code == 404
    assert data(await api.get(f"/phone_numbers/{number['id']}"))["spam_flagged"] is False


@pytest.mark.parametrize("action", ["activate", "deactivate"])
async def test_other_workspace_cannot_change_number_status(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, action: str
) -> None:
    number = await _number(api, status="inactive" if action == "activate" else "active")
    assert (await other_api.post(f"/phone_numbers/{number['id']}/{action}")).status_code == 404
    assert data(await api.get(f"/phone_numbers/{number['id']}"))["status"] == number["status"]


async def test_number_list_shows_only_own_workspace(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    mine = await _number(api, US_NUMBER)
    theirs = await _number(other_api, UK_NUMBER)
    assert [row["id"] for row in data(await api.get("/phone_numbers"))] == [mine["id"]]
    body = (await other_api.get("/phone_numbers")).json()
    assert [row["id"] for row in body["data"]] == [theirs["id"]]
    assert body["meta"]["count"] == 1


async def test_number_list_filter_by_foreign_connection_is_empty(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    theirs = await _number(other_api)
    rows = data(await api.get("/phone_numbers", params={"telephony_connection_id": theirs["telephony_connection_id"]}))
    assert rows == []


# --- the race a check-then-insert cannot see --------------------------------------------------------


async def test_racing_duplicate_insert_reports_winner_and_keeps_transaction(
    api: httpx.AsyncClient, database: Database
) -> None:
    winner = await _number(api)
    workspace_id = data(await api.get("/workspace"))["id"]
    async with database.session(write=True) as session, session.begin():
        repo = PhoneNumberRepository(session, workspace_id)
        loser = PhoneNumber(**_row_values(winner, workspace_id))
        existing = await repo.save_unique(loser)
        assert existing is not None
        assert existing.id == winner["id"]
        assert await repo.by_e164(US_NUMBER) is not None  # the transaction is still usable


def _row_values(number: dict[str, Any], workspace_id: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "workspace_id": workspace_id,
        "telephony_connection_id": number["telephony_connection_id"],
        "e164": number["e164"],
        "label": None,
        "country": number["country"],
        "status": "active",
        "spam_flagged": False,
        "allowed_countries": None,
        "created_at": now,
        "updated_at": now,
    }


@pytest.mark.parametrize("path", ["/phone_numbers/0", "/phone_numbers/99999999999999999999"])
async def test_out_of_range_number_id_is_422(api: httpx.AsyncClient, path: str) -> None:
    assert "number_id" in _errors(await api.get(path))


async def test_create_number_rejects_out_of_range_connection_id(api: httpx.AsyncClient) -> None:
    response = await api.post("/phone_numbers", json={"e164": US_NUMBER, "telephony_connection_id": 10**20})
    assert list(_errors(response)) == ["telephony_connection_id"]
