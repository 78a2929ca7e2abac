from __future__ import annotations

from typing import Any

import httpx

from bulkcall.db.engine import Database
from tests.conftest import data, new_key

PHONES = ["+14155552671", "+442079460958", "+919876543210", "+33142685300"]


async def new_list(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = data(await api.post("/contact_lists", json={"name": "Q3 leads", **fields}), 201)
    return result


async def new_contacts(api: httpx.AsyncClient, count: int) -> list[int]:
    return [data(await api.post("/contacts", json={"phone_e164": phone}), 201)["id"] for phone in PHONES[:count]]


async def add(api: httpx.AsyncClient, list_id: int, ids: list[int]) -> httpx.Response:
    return await api.post(f"/contact_lists/{list_id}/contacts", json={"contact_ids": ids})


async def remove(api: httpx.AsyncClient, list_id: int, ids: list[int]) -> httpx.Response:
    return await api.request("DELETE", f"/contact_lists/{list_id}/contacts", json={"contact_ids": ids})


# --- CRUD -----------------------------------------------------------------------------------------


async def test_create_contact_list_returns_201_with_zero_count(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api, description="From the fair")
    assert contact_list["name"] == "Q3 leads"
    assert contact_list["description"] == "From the fair"
    assert contact_list["contacts_count"] == 0
    assert contact_list["created_at"].endswith("Z")


async def test_create_contact_list_requires_name(api: httpx.AsyncClient) -> None:
    response = await api.post("/contact_lists", json={"description": "x"})
    assert response.status_code == 422
    assert "name" in response.json()["errors"]


async def test_create_contact_list_rejects_blank_name(api: httpx.AsyncClient) -> None:
    response = await api.post("/contact_lists", json={"name": "   "})
    assert response.status_code == 422
    assert "name" in response.json()["errors"]


async def test_create_contact_list_rejects_unknown_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/contact_lists", json={"name": "L", "contacts_count": 3})
    assert response.status_code == 422
    assert response.json()["errors"] == {"contacts_count": ["Unknown field"]}


async def test_get_contact_list_returns_it(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    assert data(await api.get(f"/contact_lists/{contact_list['id']}")) == contact_list


async def test_get_unknown_contact_list_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/contact_lists/999999")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


async def test_list_contact_lists_newest_first_with_counts(api: httpx.AsyncClient) -> None:
    older = await new_list(api, name="older")
    newer = await new_list(api, name="newer")
    ids = await new_contacts(api, 2)
    await add(api, older["id"], ids)
    response = await api.get("/contact_lists")
    rows = data(response)
    assert [(row["id"], row["contacts_count"]) for row in rows] == [(newer["id"], 0), (older["id"], 2)]
    assert response.json()["meta"]["count"] == 2


async def test_list_contact_lists_search_by_name(api: httpx.AsyncClient) -> None:
    wanted = await new_list(api, name="Spring Fair")
    await new_list(api, name="Newsletter")
    found = data(await api.get("/contact_lists", params={"search": "fair"}))
    assert [row["id"] for row in found] == [wanted["id"]]


async def test_patch_contact_list_renames_and_clears_description(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api, description="old")
    updated = data(
        await api.patch(f"/contact_lists/{contact_list['id']}", json={"name": "Renamed", "description": None})
    )
    assert updated["name"] == "Renamed"
    assert updated["description"] is None


async def test_patch_contact_list_refuses_null_name(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    response = await api.patch(f"/contact_lists/{contact_list['id']}", json={"name": None})
    assert response.status_code == 422


async def test_patch_unknown_contact_list_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.patch("/contact_lists/999999", json={"name": "x"})).status_code == 404


async def test_delete_contact_list_is_204_and_keeps_contacts(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    ids = await new_contacts(api, 2)
    await add(api, contact_list["id"], ids)
    response = await api.delete(f"/contact_lists/{contact_list['id']}")
    assert response.status_code == 204
    assert (await api.get(f"/contact_lists/{contact_list['id']}")).status_code == 404
    assert [row["id"] for row in data(await api.get("/contacts"))] == sorted(ids, reverse=True)


async def test_delete_unknown_contact_list_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.delete("/contact_lists/999999")).status_code == 404


async def test_changing_lists_needs_contacts_write_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["contacts:read"])
    response = await anon.post("/api/v1/contact_lists", json={"name": "L"}, headers={"X-Api-Key": key})
    assert response.status_code == 403


async def test_reading_lists_needs_contacts_read_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["contacts:write"])
    response = await anon.get("/api/v1/contact_lists", headers={"X-Api-Key": key})
    assert response.status_code == 403


# --- membership -----------------------------------------------------------------------------------


async def test_add_members_reports_counts_and_list(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    ids = await new_contacts(api, 3)
    result = data(await add(api, contact_list["id"], ids))
    assert result["added"] == 3
    assert result["already_members"] == 0
    assert result["contact_list"]["contacts_count"] == 3


async def test_add_members_is_idempotent(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    ids = await new_contacts(api, 3)
    await add(api, contact_list["id"], ids[:2])
    result = data(await add(api, contact_list["id"], ids))
    assert (result["added"], result["already_members"]) == (1, 2)
    assert result["contact_list"]["contacts_count"] == 3


async def test_add_members_counts_repeated_ids_once(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    ids = await new_contacts(api, 1)
    result = data(await add(api, contact_list["id"], [ids[0], ids[0]]))
    assert (result["added"], result["already_members"]) == (1, 0)


async def test_add_unknown_contact_is_422_with_index_paths_and_adds_nothing(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    ids = await new_contacts(api, 1)
    response = await add(api, contact_list["id"], [ids[0], 999998, 999999])
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"contact_ids.1", "contact_ids.2"}
    assert data(await api.get(f"/contact_lists/{contact_list['id']}"))["contacts_count"] == 0


async def test_add_members_requires_at_least_one_id(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    response = await add(api, contact_list["id"], [])
    assert response.status_code == 422
    assert "contact_ids" in response.json()["errors"]


async def test_add_members_refuses_more_than_ten_thousand_ids(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    response = await add(api, contact_list["id"], list(range(1, 10_002)))
    assert response.status_code == 422
    assert "contact_ids" in response.json()["errors"]


async def test_add_ten_thousand_unknown_ids_is_422_listing_each(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    response = await add(api, contact_list["id"], list(range(500_000, 510_000)))
    assert response.status_code == 422
    assert len(response.json()["errors"]) == 10_000


async def test_add_members_rejects_non_positive_id(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    response = await add(api, contact_list["id"], [0])
    assert response.status_code == 422
    assert "contact_ids.0" in response.json()["errors"]


async def test_add_members_to_unknown_list_is_404(api: httpx.AsyncClient) -> None:
    ids = await new_contacts(api, 1)
    assert (await add(api, 999999, ids)).status_code == 404


async def test_remove_members_reports_counts(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    ids = await new_contacts(api, 3)
    await add(api, contact_list["id"], ids[:2])
    result = data(await remove(api, contact_list["id"], [ids[0], ids[2], 999999]))
    assert (result["removed"], result["not_members"]) == (1, 2)
    assert result["contact_list"]["contacts_count"] == 1


async def test_remove_members_keeps_the_contacts(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    ids = await new_contacts(api, 1)
    await add(api, contact_list["id"], ids)
    await remove(api, contact_list["id"], ids)
    assert (await api.get(f"/contacts/{ids[0]}")).status_code == 200


async def test_remove_members_from_unknown_list_is_404(api: httpx.AsyncClient) -> None:
    assert (await remove(api, 999999, [1])).status_code == 404


async def test_membership_shows_in_contact_filter_after_add_and_remove(api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    ids = await new_contacts(api, 2)
    await add(api, contact_list["id"], ids)
    await remove(api, contact_list["id"], [ids[0]])
    found = data(await api.get("/contacts", params={"contact_list_id": contact_list["id"]}))
    assert [row["id"] for row in found] == [ids[1]]


# --- tenant isolation -----------------------------------------------------------------------------


async def test_other_workspace_cannot_get_list(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    assert (await other_api.get(f"/contact_lists/{contact_list['id']}")).status_code == 404


async def test_other_workspace_cannot_patch_list(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    assert (await other_api.patch(f"/contact_lists/{contact_list['id']}", json={"name": "x"})).status_code == 404
    assert data(await api.get(f"/contact_lists/{contact_list['id']}"))["name"] == "Q3 leads"


async def test_other_workspace_cannot_delete_list(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    assert (await other_api.delete(f"/contact_lists/{contact_list['id']}")).status_code == 404
    assert (await api.get(f"/contact_lists/{contact_list['id']}")).status_code == 200


async def test_other_workspace_cannot_add_to_list(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    their_ids = await new_contacts(other_api, 1)
    assert (await add(other_api, contact_list["id"], their_ids)).status_code == 404


async def test_other_workspace_cannot_remove_from_list(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    ids = await new_contacts(api, 1)
    await add(api, contact_list["id"], ids)
    assert (await remove(other_api, contact_list["id"], ids)).status_code == 404
    assert data(await api.get(f"/contact_lists/{contact_list['id']}"))["contacts_count"] == 1


async def test_list_contact_lists_shows_only_own(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    mine = await new_list(api)
    await new_list(other_api, name="theirs")
    assert [row["id"] for row in data(await api.get("/contact_lists"))] == [mine["id"]]


async def test_cannot_add_other_workspaces_contacts(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    contact_list = await new_list(api)
    mine = await new_contacts(api, 1)
    theirs = data(await other_api.post("/contacts", json={"phone_e164": PHONES[3]}), 201)["id"]
    response = await add(api, contact_list["id"], [mine[0], theirs])
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"contact_ids.1"}
    assert data(await api.get(f"/contact_lists/{contact_list['id']}"))["contacts_count"] == 0
