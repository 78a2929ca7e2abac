from __future__ import annotations

from typing import Any

import httpx
import pytest

from bulkcall.db.engine import Database
from tests.conftest import data, new_key

US_PHONE = "+14155552671"
GB_PHONE = "+442079460958"
IN_PHONE = "+919876543210"


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"phone_e164": US_PHONE, **fields}
    result: dict[str, Any] = data(await api.post("/contacts", json=body), 201)
    return result


def errors(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    result: dict[str, list[str]] = body["errors"]
    return result


# --- create ---------------------------------------------------------------------------------------


async def test_create_contact_returns_201_with_every_field(api: httpx.AsyncClient) -> None:
    contact = await create(
        api,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        company="Analytical Engines",
        timezone="America/Los_Angeles",
        tags=["vip", "beta"],
        custom_fields={"plan": "pro", "seats": 12, "ratio": 0.5, "trial": False, "note": None},
    )
    assert contact["phone_e164"] == US_PHONE
    assert contact["first_name"] == "Ada"
    assert contact["last_name"] == "Lovelace"
    assert contact["email"] == "ada@example.com"
    assert contact["company"] == "Analytical Engines"
    assert contact["timezone"] == "America/Los_Angeles"
    assert contact["tags"] == ["vip", "beta"]
    assert contact["custom_fields"] == {"plan": "pro", "seats": 12, "ratio": 0.5, "trial": False, "note": None}
    assert isinstance(contact["id"], int)
    assert contact["created_at"].endswith("Z")
    assert "default_region" not in contact


async def test_create_contact_derives_country_and_phone_timezones(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    assert contact["country"] == "US"
    assert contact["phone_timezones"] == ["America/Los_Angeles"]


async def test_create_contact_defaults_optional_fields(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    assert contact["tags"] == []
    assert contact["custom_fields"] == {}
    assert contact["first_name"] is None
    assert contact["timezone"] is None


async def test_create_contact_normalises_formatted_international_number(api: httpx.AsyncClient) -> None:
    contact = await create(api, phone_e164="+1 (415) 555-2671")
    assert contact["phone_e164"] == US_PHONE


async def test_create_contact_reads_national_number_with_default_region(api: httpx.AsyncClient) -> None:
    contact = await create(api, phone_e164="020 7946 0958", default_region="GB")
    assert contact["phone_e164"] == GB_PHONE
    assert contact["country"] == "GB"
    assert contact["phone_timezones"] == ["Europe/London"]


async def test_create_contact_accepts_lowercase_default_region(api: httpx.AsyncClient) -> None:
    contact = await create(api, phone_e164="020 7946 0958", default_region="gb")
    assert contact["phone_e164"] == GB_PHONE


async def test_create_contact_national_number_without_region_is_422_at_phone(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"phone_e164": "020 7946 0958"})
    assert "country code" in errors(response)["phone_e164"][0]


async def test_create_contact_invalid_phone_is_422_with_reason(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"phone_e164": "+1 555"})
    assert errors(response)["phone_e164"] == ["not a valid phone number for its country"]


async def test_create_contact_requires_phone(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"first_name": "Ada"})
    assert "phone_e164" in errors(response)


async def test_create_contact_unknown_default_region_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "default_region": "XX"})
    assert "default_region" in errors(response)


async def test_create_contact_stores_legacy_timezone_canonically(api: httpx.AsyncClient) -> None:
    contact = await create(api, phone_e164=IN_PHONE, timezone="Asia/Calcutta")
    assert contact["timezone"] == "Asia/Kolkata"
    fetched = data(await api.get(f"/contacts/{contact['id']}"))
    assert fetched["timezone"] == "Asia/Kolkata"


async def test_create_contact_accepts_timezone_in_any_case(api: httpx.AsyncClient) -> None:
    contact = await create(api, timezone="america/new_york")
    assert contact["timezone"] == "America/New_York"


async def test_create_contact_indian_number_implies_canonical_kolkata(api: httpx.AsyncClient) -> None:
    contact = await create(api, phone_e164=IN_PHONE)
    assert contact["phone_timezones"] == ["Asia/Kolkata"]


async def test_create_contact_invalid_timezone_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "timezone": "Mars/Olympus"})
    assert "unknown time zone" in errors(response)["timezone"][0]


@pytest.mark.parametrize("email", ["no-at-sign", "two@@example.com", "a@b@c", "with space@example.com", "@x", "x@"])
async def test_create_contact_rejects_malformed_email(api: httpx.AsyncClient, email: str) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "email": email})
    assert "email" in errors(response)


async def test_create_contact_accepts_unusual_but_plausible_email(api: httpx.AsyncClient) -> None:
    contact = await create(api, email="o'brien+tag@sub.example.co.uk")
    assert contact["email"] == "o'brien+tag@sub.example.co.uk"


async def test_create_contact_rejects_duplicate_tags(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "tags": ["vip", "vip"]})
    assert "duplicate tag" in errors(response)["tags"][0]


async def test_create_contact_rejects_empty_tag(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "tags": ["vip", "  "]})
    assert "tags.1" in errors(response)


@pytest.mark.parametrize("key", ["1abc", "has-dash", "has space", "a" * 65, ""])
async def test_create_contact_rejects_bad_custom_field_key(api: httpx.AsyncClient, key: str) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "custom_fields": {key: "x"}})
    assert "custom_fields" in errors(response)


@pytest.mark.parametrize("value", [{"nested": 1}, [1, 2]])
async def test_create_contact_rejects_nested_custom_field_value(api: httpx.AsyncClient, value: Any) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "custom_fields": {"k": value}})
    assert "custom_fields" in errors(response)


async def test_create_contact_rejects_custom_fields_that_are_not_an_object(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "custom_fields": ["a"]})
    assert "custom_fields" in errors(response)


async def test_create_contact_keeps_custom_field_types(api: httpx.AsyncClient) -> None:
    contact = await create(api, custom_fields={"_id": "7", "n": 7, "b": True})
    fetched = data(await api.get(f"/contacts/{contact['id']}"))
    assert fetched["custom_fields"] == {"_id": "7", "n": 7, "b": True}


async def test_create_contact_reports_every_problem_at_once(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/contacts",
        json={"phone_e164": "nope", "email": "bad", "timezone": "Nowhere/Land", "tags": ["a", "a"]},
    )
    assert {"phone_e164", "email", "timezone", "tags"} <= set(errors(response))


async def test_create_contact_rejects_unknown_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "nickname": "Ada"})
    assert errors(response) == {"nickname": ["Unknown field"]}


async def test_create_contact_rejects_country_as_input(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts", json={"phone_e164": US_PHONE, "country": "FR"})
    assert "country" in errors(response)


async def test_create_contact_blank_name_is_stored_as_null(api: httpx.AsyncClient) -> None:
    contact = await create(api, first_name="  ", company="")
    assert contact["first_name"] is None
    assert contact["company"] is None


async def test_create_duplicate_phone_is_409_with_existing_id(api: httpx.AsyncClient) -> None:
    first = await create(api)
    response = await api.post("/contacts", json={"phone_e164": "(415) 555-2671", "default_region": "US"})
    assert response.status_code == 409
    body = response.json()
    assert body["error_code"] == "CONFLICT"
    assert body["details"]["existing_id"] == first["id"]


async def test_same_phone_in_another_workspace_is_allowed(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    await create(api)
    other = data(await other_api.post("/contacts", json={"phone_e164": US_PHONE}), 201)
    assert other["phone_e164"] == US_PHONE


async def test_create_contact_needs_contacts_write_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["contacts:read"])
    response = await anon.post("/api/v1/contacts", json={"phone_e164": US_PHONE}, headers={"X-Api-Key": key})
    assert response.status_code == 403


async def test_list_contacts_needs_contacts_read_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["agents:read"])
    response = await anon.get("/api/v1/contacts", headers={"X-Api-Key": key})
    assert response.status_code == 403


# --- get / list -----------------------------------------------------------------------------------


async def test_get_contact_returns_it(api: httpx.AsyncClient) -> None:
    contact = await create(api, first_name="Ada")
    assert data(await api.get(f"/contacts/{contact['id']}")) == contact


async def test_get_unknown_contact_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/contacts/999999")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


async def test_get_contact_with_out_of_range_id_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/contacts/{2**64}")
    assert response.status_code == 422


async def test_list_contacts_newest_first_with_meta(api: httpx.AsyncClient) -> None:
    first = await create(api)
    second = await create(api, phone_e164=GB_PHONE)
    response = await api.get("/contacts", params={"per_page": 1})
    assert [row["id"] for row in data(response)] == [second["id"]]
    assert response.json()["meta"] == {"count": 2, "page": 1, "per_page": 1, "pages": 2}
    page_two = data(await api.get("/contacts", params={"per_page": 1, "page": 2}))
    assert [row["id"] for row in page_two] == [first["id"]]


async def test_list_contacts_search_matches_full_name_case_insensitively(api: httpx.AsyncClient) -> None:
    ada = await create(api, first_name="Ada", last_name="Lovelace")
    await create(api, phone_e164=GB_PHONE, first_name="Grace", last_name="Hopper")
    found = data(await api.get("/contacts", params={"search": "ada love"}))
    assert [row["id"] for row in found] == [ada["id"]]


async def test_list_contacts_search_matches_email_and_company(api: httpx.AsyncClient) -> None:
    by_email = await create(api, email="grace@navy.mil")
    by_company = await create(api, phone_e164=GB_PHONE, company="Navy Yard")
    await create(api, phone_e164=IN_PHONE, company="Other")
    found = data(await api.get("/contacts", params={"search": "NAVY"}))
    assert {row["id"] for row in found} == {by_email["id"], by_company["id"]}


async def test_list_contacts_search_matches_phone_digits_in_any_format(api: httpx.AsyncClient) -> None:
    us = await create(api)
    await create(api, phone_e164=GB_PHONE)
    found = data(await api.get("/contacts", params={"search": "(415) 555-26"}))
    assert [row["id"] for row in found] == [us["id"]]


async def test_list_contacts_search_treats_like_wildcards_literally(api: httpx.AsyncClient) -> None:
    await create(api, company="Acme")
    assert data(await api.get("/contacts", params={"search": "%"})) == []


async def test_list_contacts_filters_by_tag(api: httpx.AsyncClient) -> None:
    vip = await create(api, tags=["vip", "beta"])
    await create(api, phone_e164=GB_PHONE, tags=["vipx"])
    await create(api, phone_e164=IN_PHONE)
    found = data(await api.get("/contacts", params={"tag": "vip"}))
    assert [row["id"] for row in found] == [vip["id"]]


async def test_list_contacts_filters_by_contact_list(api: httpx.AsyncClient) -> None:
    member = await create(api)
    await create(api, phone_e164=GB_PHONE)
    contact_list = data(await api.post("/contact_lists", json={"name": "Q3"}), 201)
    data(await api.post(f"/contact_lists/{contact_list['id']}/contacts", json={"contact_ids": [member["id"]]}))
    found = data(await api.get("/contacts", params={"contact_list_id": contact_list["id"]}))
    assert [row["id"] for row in found] == [member["id"]]


async def test_list_contacts_unknown_contact_list_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/contacts", params={"contact_list_id": 424242})
    assert "contact_list_id" in errors(response)


async def test_list_contacts_filters_by_given_timezone(api: httpx.AsyncClient) -> None:
    given = await create(api, timezone="Asia/Kolkata")
    await create(api, phone_e164=GB_PHONE)
    found = data(await api.get("/contacts", params={"timezone": "Asia/Calcutta"}))
    assert [row["id"] for row in found] == [given["id"]]


async def test_list_contacts_timezone_filter_matches_zone_implied_by_number(api: httpx.AsyncClient) -> None:
    implied = await create(api, phone_e164=GB_PHONE)
    await create(api, timezone="Europe/Paris", phone_e164="+447400123456")
    found = data(await api.get("/contacts", params={"timezone": "Europe/London"}))
    assert [row["id"] for row in found] == [implied["id"]]


async def test_list_contacts_invalid_timezone_filter_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/contacts", params={"timezone": "Nowhere/Land"})
    assert "timezone" in errors(response)


async def test_list_contacts_per_page_out_of_range_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/contacts", params={"per_page": 101})
    assert response.status_code == 422


# --- update ---------------------------------------------------------------------------------------


async def test_patch_contact_changes_only_given_fields(api: httpx.AsyncClient) -> None:
    contact = await create(api, first_name="Ada", last_name="Lovelace")
    updated = data(await api.patch(f"/contacts/{contact['id']}", json={"first_name": "Augusta"}))
    assert updated["first_name"] == "Augusta"
    assert updated["last_name"] == "Lovelace"
    assert updated["phone_e164"] == US_PHONE


async def test_patch_contact_clears_nullable_field(api: httpx.AsyncClient) -> None:
    contact = await create(api, email="ada@example.com", timezone="Europe/London")
    updated = data(await api.patch(f"/contacts/{contact['id']}", json={"email": None, "timezone": None}))
    assert updated["email"] is None
    assert updated["timezone"] is None


async def test_patch_contact_refuses_null_phone(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    response = await api.patch(f"/contacts/{contact['id']}", json={"phone_e164": None})
    assert "phone_e164" in errors(response)


async def test_patch_contact_new_phone_rederives_country_and_zones(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    updated = data(
        await api.patch(f"/contacts/{contact['id']}", json={"phone_e164": "020 7946 0958", "default_region": "GB"})
    )
    assert updated["phone_e164"] == GB_PHONE
    assert updated["country"] == "GB"
    assert updated["phone_timezones"] == ["Europe/London"]


async def test_patch_contact_to_another_contacts_phone_is_409(api: httpx.AsyncClient) -> None:
    first = await create(api)
    second = await create(api, phone_e164=GB_PHONE)
    response = await api.patch(f"/contacts/{second['id']}", json={"phone_e164": US_PHONE})
    assert response.status_code == 409
    assert response.json()["details"]["existing_id"] == first["id"]


async def test_patch_contact_to_its_own_phone_in_another_format_is_fine(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    updated = data(await api.patch(f"/contacts/{contact['id']}", json={"phone_e164": "+1 415-555-2671"}))
    assert updated["phone_e164"] == US_PHONE


async def test_patch_contact_default_region_without_phone_is_422(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    response = await api.patch(f"/contacts/{contact['id']}", json={"default_region": "GB"})
    assert "default_region" in errors(response)


async def test_patch_contact_replaces_tags_and_custom_fields(api: httpx.AsyncClient) -> None:
    contact = await create(api, tags=["a"], custom_fields={"x": 1})
    updated = data(await api.patch(f"/contacts/{contact['id']}", json={"tags": ["b"], "custom_fields": {"y": 2}}))
    assert updated["tags"] == ["b"]
    assert updated["custom_fields"] == {"y": 2}


async def test_patch_contact_canonicalises_timezone(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    updated = data(await api.patch(f"/contacts/{contact['id']}", json={"timezone": "US/Pacific"}))
    assert updated["timezone"] == "America/Los_Angeles"


async def test_patch_contact_invalid_timezone_is_422(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    response = await api.patch(f"/contacts/{contact['id']}", json={"timezone": "Etc/Nowhere"})
    assert "timezone" in errors(response)


async def test_patch_contact_rejects_unknown_field(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    response = await api.patch(f"/contacts/{contact['id']}", json={"phone_timezones": ["UTC"]})
    assert errors(response) == {"phone_timezones": ["Unknown field"]}


async def test_patch_unknown_contact_is_404(api: httpx.AsyncClient) -> None:
    response = await api.patch("/contacts/999999", json={"first_name": "X"})
    assert response.status_code == 404


# --- delete ---------------------------------------------------------------------------------------


async def test_delete_contact_is_204_and_gone(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    response = await api.delete(f"/contacts/{contact['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await api.get(f"/contacts/{contact['id']}")).status_code == 404


async def test_delete_contact_frees_its_phone(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    await api.delete(f"/contacts/{contact['id']}")
    assert (await create(api))["phone_e164"] == US_PHONE


async def test_delete_contact_removes_it_from_lists(api: httpx.AsyncClient) -> None:
    contact = await create(api)
    contact_list = data(await api.post("/contact_lists", json={"name": "L"}), 201)
    data(await api.post(f"/contact_lists/{contact_list['id']}/contacts", json={"contact_ids": [contact["id"]]}))
    await api.delete(f"/contacts/{contact['id']}")
    assert data(await api.get(f"/contact_lists/{contact_list['id']}"))["contacts_count"] == 0


async def test_delete_unknown_contact_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.delete("/contacts/999999")).status_code == 404


# --- tenant isolation -----------------------------------------------------------------------------


async def test_other_workspace_cannot_get_contact(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    contact = await create(api)
    assert (await other_api.get(f"/contacts/{contact['id']}")).status_code == 404


async def test_other_workspace_cannot_patch_contact(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    contact = await create(api, first_name="Ada")
    response = await other_api.patch(f"/contacts/{contact['id']}", json={"first_name": "Mallory"})
    assert response.status_code == 404
    assert data(await api.get(f"/contacts/{contact['id']}"))["first_name"] == "Ada"


async def test_other_workspace_cannot_delete_contact(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    contact = await create(api)
    assert (await other_api.delete(f"/contacts/{contact['id']}")).status_code == 404
    assert (await api.get(f"/contacts/{contact['id']}")).status_code == 200


async def test_list_contacts_shows_only_own_workspace(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    mine = await create(api)
    await other_api.post("/contacts", json={"phone_e164": GB_PHONE})
    response = await api.get("/contacts")
    assert [row["id"] for row in data(response)] == [mine["id"]]
    assert response.json()["meta"]["count"] == 1


async def test_list_contacts_cannot_filter_by_other_workspaces_list(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    foreign = data(await other_api.post("/contact_lists", json={"name": "theirs"}), 201)
    response = await api.get("/contacts", params={"contact_list_id": foreign["id"]})
    assert "contact_list_id" in errors(response)


async def test_patch_to_phone_used_in_other_workspace_is_allowed(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    await other_api.post("/contacts", json={"phone_e164": GB_PHONE})
    contact = await create(api)
    updated = data(await api.patch(f"/contacts/{contact['id']}", json={"phone_e164": GB_PHONE}))
    assert updated["phone_e164"] == GB_PHONE
