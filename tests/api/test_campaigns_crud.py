"""``/bulk_call_campaigns`` core CRUD: defaults, validation, listing, deleting and the PATCH rules per state."""

from __future__ import annotations

import httpx
import pytest

from tests.api.campaign_fixtures import CAMPAIGNS, act, create_campaign, errors, launched, make_setup
from tests.conftest import data

WEEKDAY = {"enabled": True, "start": "09:00", "end": "18:00"}
WEEKEND = {"enabled": False, "start": "09:00", "end": "18:00"}


async def test_create_is_a_draft_with_every_documented_default(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = data(await api.post(CAMPAIGNS, json={"name": "Bare", "agent_id": setup.agent_id}), 201)
    assert campaign["status"] == "draft"
    assert campaign["call_windows"] == {
        "mon": WEEKDAY,
        "tue": WEEKDAY,
        "wed": WEEKDAY,
        "thu": WEEKDAY,
        "fri": WEEKDAY,
        "sat": WEEKEND,
        "sun": WEEKEND,
    }
    expected = {
        "timezone_mode": "callee_local",
        "max_retries": 2,
        "retry_delay_minutes": 60,
        "priority": 5,
        "prefer_country_match": True,
        "record_calls": True,
        "timezone": "UTC",
        "trigger_mode": "immediate",
        "retry_on_voicemail": False,
        "max_voicemail_attempts": None,
        "concurrency_limit": None,
        "campaign_phone_number_ids": [],
        "scheduled_at": None,
        "ends_at": None,
        "call_variables": {},
        "metadata": {},
        "launched_at": None,
        "total_contacts": 0,
    }
    assert {key: campaign[key] for key in expected} == expected


async def test_create_reports_every_cross_check_problem_at_once(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    setup = await make_setup(api, contacts=0)
    theirs = await make_setup(other_api, contacts=0, phones=("+14155550200", "+14155550201"))
    body = setup.body(
        agent_id=theirs.agent_id,
        campaign_phone_number_ids=[setup.number_ids[0], 99_999, theirs.number_ids[0]],
        call_windows={"mon": {"enabled": True, "start": "25:00", "end": "18:00"}},
        trigger_mode="scheduled",
        scheduled_at="2030-01-02T10:00:00Z",
        ends_at="2030-01-01T10:00:00Z",
    )
    found = errors(await api.post(CAMPAIGNS, json=body))
    assert set(found) == {
        "agent_id",
        "campaign_phone_number_ids.1",
        "campaign_phone_number_ids.2",
        "call_windows.mon.start",
        "ends_at",
    }


async def test_create_reports_every_field_problem_at_once(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    body = setup.body(
        timezone="Mars/Olympus",
        concurrency_limit=0,
        max_retries=11,
        priority=0,
        scheduled_at="2030-01-01T10:00:00",
        colour="blue",
    )
    found = errors(await api.post(CAMPAIGNS, json=body))
    assert set(found) == {"timezone", "concurrency_limit", "max_retries", "priority", "scheduled_at", "colour"}
    assert found["colour"] == ["Unknown field"]


async def test_create_rejects_an_unknown_agent(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    assert "agent_id" in errors(await api.post(CAMPAIGNS, json=setup.body(agent_id=99_999)))


async def test_create_rejects_an_archived_agent(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    data(await api.post(f"/agents/{setup.agent_id}/archive"))
    found = errors(await api.post(CAMPAIGNS, json=setup.body()))
    assert "archived" in found["agent_id"][0]


async def test_create_rejects_another_workspaces_agent(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    foreign = data(await other_api.post("/agents", json={"name": "Theirs"}), 201)
    assert "agent_id" in errors(await api.post(CAMPAIGNS, json=setup.body(agent_id=foreign["id"])))


async def test_create_rejects_an_unknown_number_at_its_index(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    body = setup.body(campaign_phone_number_ids=[setup.number_ids[0], 99_999])
    assert set(errors(await api.post(CAMPAIGNS, json=body))) == {"campaign_phone_number_ids.1"}


@pytest.mark.parametrize("value", [0, 11])
async def test_create_rejects_priority_out_of_range(api: httpx.AsyncClient, value: int) -> None:
    setup = await make_setup(api, contacts=0)
    assert set(errors(await api.post(CAMPAIGNS, json=setup.body(priority=value)))) == {"priority"}


async def test_create_rejects_a_bad_timezone(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    assert set(errors(await api.post(CAMPAIGNS, json=setup.body(timezone="Nowhere/Town")))) == {"timezone"}


async def test_create_rejects_concurrency_zero(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    assert set(errors(await api.post(CAMPAIGNS, json=setup.body(concurrency_limit=0)))) == {"concurrency_limit"}


async def test_create_rejects_max_retries_above_ten(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    assert set(errors(await api.post(CAMPAIGNS, json=setup.body(max_retries=11)))) == {"max_retries"}


async def test_create_rejects_a_window_hour_of_25(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    windows = {"tue": {"enabled": True, "start": "09:00", "end": "25:00"}}
    assert set(errors(await api.post(CAMPAIGNS, json=setup.body(call_windows=windows)))) == {"call_windows.tue.end"}


async def test_create_accepts_24_00_as_a_window_end(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    windows = {"mon": {"enabled": True, "start": "20:00", "end": "24:00"}}
    campaign = await create_campaign(api, setup, call_windows=windows)
    assert campaign["call_windows"]["mon"] == {"enabled": True, "start": "20:00", "end": "24:00"}
    assert campaign["call_windows"]["tue"]["enabled"] is False


async def test_create_accepts_a_window_across_midnight(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    windows = {"fri": {"enabled": True, "start": "22:00", "end": "02:00"}}
    campaign = await create_campaign(api, setup, call_windows=windows)
    assert campaign["call_windows"]["fri"] == {"enabled": True, "start": "22:00", "end": "02:00"}


async def test_create_rejects_an_unknown_field(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    assert errors(await api.post(CAMPAIGNS, json=setup.body(max_retry=3))) == {"max_retry": ["Unknown field"]}


async def test_create_rejects_a_naive_scheduled_at(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    body = setup.body(trigger_mode="scheduled", scheduled_at="2030-01-01T10:00:00")
    assert set(errors(await api.post(CAMPAIGNS, json=body))) == {"scheduled_at"}


async def test_create_rejects_ends_at_before_scheduled_at(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    body = setup.body(trigger_mode="scheduled", scheduled_at="2030-01-02T10:00:00Z", ends_at="2030-01-01T10:00:00Z")
    assert set(errors(await api.post(CAMPAIGNS, json=body))) == {"ends_at"}


async def test_create_merges_the_primary_number_into_the_pool(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    first, second = setup.number_ids
    campaign = await create_campaign(api, setup, campaign_phone_number_ids=[first], primary_phone_number_id=second)
    assert campaign["primary_phone_number_id"] == second
    assert sorted(campaign["campaign_phone_number_ids"]) == sorted([first, second])


async def test_get_returns_the_campaign(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    fetched = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))
    assert fetched["id"] == campaign["id"]
    assert fetched["name"] == "Q2 Pipeline Reactivation"
    assert fetched["total_contacts"] == 3


async def test_get_unknown_campaign_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{CAMPAIGNS}/99999")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


async def test_list_is_newest_first_and_paginated_with_meta(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    ids = [(await create_campaign(api, setup, name=f"Campaign {n}"))["id"] for n in range(3)]
    response = await api.get(CAMPAIGNS, params={"page": 2, "per_page": 2})
    assert [row["id"] for row in data(response)] == [ids[0]]
    assert response.json()["meta"] == {"count": 3, "page": 2, "per_page": 2, "pages": 2}
    first_page = data(await api.get(CAMPAIGNS, params={"page": 1, "per_page": 2}))
    assert [row["id"] for row in first_page] == [ids[2], ids[1]]


async def test_list_filters_by_status(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    draft = await create_campaign(api, setup, name="Draft one")
    running = await launched(api, setup, name="Running one")
    assert [row["id"] for row in data(await api.get(CAMPAIGNS, params={"status": "running"}))] == [running["id"]]
    assert [row["id"] for row in data(await api.get(CAMPAIGNS, params={"status": "draft"}))] == [draft["id"]]


async def test_list_rejects_an_unknown_status_filter(api: httpx.AsyncClient) -> None:
    assert "status" in errors(await api.get(CAMPAIGNS, params={"status": "sleeping"}))


async def test_list_searches_names_case_insensitively(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    wanted = await create_campaign(api, setup, name="Spring Renewal")
    await create_campaign(api, setup, name="Winter Winback")
    response = await api.get(CAMPAIGNS, params={"search": "renew"})
    assert [row["id"] for row in data(response)] == [wanted["id"]]
    assert response.json()["meta"]["count"] == 1


async def test_delete_draft_is_204_and_then_404(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    campaign = await create_campaign(api, setup)
    assert (await api.delete(f"{CAMPAIGNS}/{campaign['id']}")).status_code == 204
    assert (await api.get(f"{CAMPAIGNS}/{campaign['id']}")).status_code == 404


async def test_delete_launched_campaign_is_409(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    campaign = await launched(api, setup)
    response = await api.delete(f"{CAMPAIGNS}/{campaign['id']}")
    assert response.status_code == 409
    assert response.json()["details"]["current_status"] == "running"
    assert data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))["status"] == "running"


async def test_patch_draft_changes_any_field(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    changes = {
        "timezone": "Europe/Paris",
        "max_retries": 4,
        "record_calls": False,
        "call_windows": {"sat": {"enabled": True, "start": "10:00", "end": "14:00"}},
        "contact_ids": setup.contact_ids[:1],
    }
    updated = data(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json=changes))
    assert updated["timezone"] == "Europe/Paris"
    assert updated["max_retries"] == 4
    assert updated["record_calls"] is False
    assert updated["call_windows"]["sat"]["enabled"] is True
    assert updated["call_windows"]["mon"]["enabled"] is False
    assert updated["total_contacts"] == 1


async def test_patch_paused_changes_any_config_field(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    data(await act(api, campaign["id"], "pause"))
    updated = data(
        await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"timezone": "Asia/Tokyo", "retry_delay_minutes": 5})
    )
    assert (updated["timezone"], updated["retry_delay_minutes"], updated["status"]) == ("Asia/Tokyo", 5, "paused")


async def test_patch_running_changes_name_priority_concurrency_and_metadata(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    changes = {"name": "Renamed", "priority": 9, "concurrency_limit": 1, "metadata": {"owner": "ops"}}
    updated = data(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json=changes))
    assert {key: updated[key] for key in changes} == changes
    assert updated["status"] == "running"


async def test_patch_running_refuses_other_fields_with_409(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    response = await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"name": "Fine", "max_retries": 5})
    assert response.status_code == 409
    assert response.json()["details"]["current_status"] == "running"
    unchanged = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))
    assert (unchanged["name"], unchanged["max_retries"]) == ("Q2 Pipeline Reactivation", 2)


@pytest.mark.parametrize("action", ["cancel", "complete"])
async def test_patch_finished_campaign_is_409(api: httpx.AsyncClient, action: str) -> None:
    setup = await make_setup(api, contacts=1)
    if action == "cancel":
        campaign = await launched(api, setup)
        data(await act(api, campaign["id"], "cancel"))
        expected = "cancelled"
    else:
        data(await api.post("/dnc", json={"phone_e164": "+14155552000"}), 201)
        campaign = await launched(api, setup)
        expected = "completed"
    response = await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"name": "Too late"})
    assert response.status_code == 409
    assert response.json()["details"]["current_status"] == expected


async def test_patch_null_for_a_non_nullable_field_is_422(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(api, setup)
    assert "max_retries" in errors(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"max_retries": None}))


async def test_patch_null_for_a_nullable_field_clears_it(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(api, setup)
    assert (
        data(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"concurrency_limit": None}))["concurrency_limit"]
        is None
    )


async def test_patch_validates_like_create(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(api, setup)
    response = await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"campaign_phone_number_ids": [99_999]})
    assert set(errors(response)) == {"campaign_phone_number_ids.0"}


async def test_create_with_the_same_idempotency_key_makes_one_campaign(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    headers = {"Idempotency-Key": "create-campaign-1"}
    first = data(await api.post(CAMPAIGNS, json=setup.body(), headers=headers), 201)
    second = data(await api.post(CAMPAIGNS, json=setup.body(), headers=headers), 201)
    assert first["id"] == second["id"]
    assert len(data(await api.get(CAMPAIGNS))) == 1


async def test_patch_running_name_still_works_after_its_agent_was_archived(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    data(await api.post(f"/agents/{setup.agent_id}/archive"))
    updated = data(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"name": "Renamed", "concurrency_limit": 1}))
    assert (updated["name"], updated["concurrency_limit"]) == ("Renamed", 1)


async def test_patch_to_an_archived_agent_is_422(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(api, setup)
    other = data(await api.post("/agents", json={"name": "Old"}), 201)
    data(await api.post(f"/agents/{other['id']}/archive"))
    assert set(errors(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"agent_id": other["id"]}))) == {"agent_id"}


async def test_create_reports_shape_and_cross_record_problems_in_one_422(api: httpx.AsyncClient) -> None:
    body = {"name": "x", "agent_id": 999_999, "priority": 0, "campaign_phone_number_ids": [888_888]}
    found = errors(await api.post(CAMPAIGNS, json=body))
    assert set(found) == {"priority", "agent_id", "campaign_phone_number_ids.0"}
    assert found["agent_id"] == ["agent 999999 not found"]


async def test_create_skips_the_cross_record_check_of_a_field_whose_shape_failed(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    body = setup.body(agent_id="seven", contact_ids=[99_999], colour="blue")
    found = errors(await api.post(CAMPAIGNS, json=body))
    assert set(found) == {"agent_id", "contact_ids.0", "colour"}
    assert len(found["agent_id"]) == 1
    assert found["colour"] == ["Unknown field"]


async def test_create_with_shape_and_cross_record_problems_saves_nothing(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    body = setup.body(priority=0, contact_ids=[99_999], contacts=[{"phone_e164": "+14155559999"}])
    errors(await api.post(CAMPAIGNS, json=body))
    assert data(await api.get(CAMPAIGNS)) == []
    assert data(await api.get("/contacts")) == []


async def test_create_malformed_json_is_400(api: httpx.AsyncClient) -> None:
    response = await api.post(CAMPAIGNS, content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"


async def test_create_non_object_body_is_422(api: httpx.AsyncClient) -> None:
    assert set(errors(await api.post(CAMPAIGNS, json=[1, 2]))) == {"body"}


async def test_patch_reports_shape_and_cross_record_problems_in_one_422(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(api, setup)
    body = {"max_retries": None, "timezone": "Mars/Olympus", "agent_id": 999_999, "contact_list_id": 999_999}
    found = errors(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json=body))
    assert set(found) == {"max_retries", "timezone", "agent_id", "contact_list_id"}


async def test_patch_with_shape_problems_leaves_the_campaign_unchanged(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(api, setup)
    errors(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"name": "Renamed", "priority": 99}))
    assert data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))["name"] == campaign["name"]


async def test_openapi_documents_the_create_and_update_bodies(anon: httpx.AsyncClient) -> None:
    document = (await anon.get("/openapi.json")).json()
    for operation, model in (("post", "CampaignCreate"), ("patch", "CampaignUpdate")):
        path = "/api/v1/bulk_call_campaigns" + ("/{campaign_id}" if operation == "patch" else "")
        schema = document["paths"][path][operation]["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}
        assert "priority" in document["components"]["schemas"][model]["properties"]
