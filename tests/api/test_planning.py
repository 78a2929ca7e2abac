"""The planning helpers over HTTP: capacity preview and audience timezone analysis (shapes, maths, errors)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.campaign_fixtures import CAMPAIGNS, Setup, create_campaign, errors, launched, make_setup
from tests.conftest import data

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = {day: {"enabled": True, "start": "00:00", "end": "24:00"} for day in DAYS}
NINE_TO_SIX = {day: {"enabled": day not in ("sat", "sun"), "start": "09:00", "end": "18:00"} for day in DAYS}
# A Monday far enough ahead to be a valid start whatever the test machine's clock says.
MONDAY = "2030-06-03T00:00:00Z"
PREVIEW = f"{CAMPAIGNS}/capacity_preview"
ANALYSIS = f"{CAMPAIGNS}/audience_timezone_analysis"


async def connection(api: httpx.AsyncClient, limit: int, cps: float = 100, phones: tuple[str, ...] = ()) -> list[int]:
    created = data(
        await api.post(
            "/telephony_connections",
            json={"name": "sim", "provider": "simulator", "concurrency_limit": limit, "calls_per_second": cps},
        ),
        201,
    )
    return [
        data(await api.post("/phone_numbers", json={"e164": e164, "telephony_connection_id": created["id"]}), 201)["id"]
        for e164 in phones
    ]


async def preview(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    found: dict[str, Any] = data(await api.post(PREVIEW, json=body))
    return found


# -- capacity preview ----------------------------------------------------------------------------------------------


async def test_pool_capacity_counts_each_connection_once_and_a_limit_above_it_is_clamped(
    api: httpx.AsyncClient,
) -> None:
    first = await connection(api, 5, phones=("+14155550100", "+14155550101", "+14155550102"))
    second = await connection(api, 7, phones=("+14155550103",))
    body = {
        "campaign_phone_number_ids": first + second,
        "concurrency_limit": 20,
        "contacts": 1000,
        "max_retries": 2,
        "retry_delay_minutes": 0,
        "expected_answer_rate": 0.5,
        "avg_call_seconds": 60,
        "call_windows": ALWAYS,
        "scheduled_at": MONDAY,
    }
    result = await preview(api, **body)
    assert result["pool_capacity"] == 12  # 5 + 7, not 5 × 3 + 7
    assert result["effective_concurrency"] == 12
    assert result["binding_limit"] == "pool_capacity"
    assert result["calls_per_second"] == 200
    assert [(c["concurrency_limit"], len(c["numbers"])) for c in result["connections"]] == [(5, 3), (7, 1)]
    assert result["expected_attempts_per_contact"] == pytest.approx(1.75)  # 1 + 0.5 + 0.25
    assert result["expected_calls"] == pytest.approx(1750)
    assert result["max_possible_calls"] == 3000
    assert result["calls_per_hour"] == pytest.approx(12 * 60)
    assert result["weekly_callable_hours"] == 168  # touching windows are one stretch: no last minute
    assert result["estimated_start_at"] == "2030-06-03T00:00:00Z"
    # 1750 calls at 720 an hour, every window open, retries due at once: ~2.4 h.
    assert result["estimated_duration_hours"] == pytest.approx(1750 / 720, rel=0.05)
    # Retries an hour after a first pass of 1.4 hours trickle in as they fall due: longer.
    delayed = await preview(api, **{**body, "retry_delay_minutes": 60})
    assert delayed["estimated_duration_hours"] > result["estimated_duration_hours"] + 0.5
    codes = {w["code"] for w in result["warnings"]}
    assert "concurrency_limit_clamped" in codes
    assert "audience_zones_assumed" in codes

    lower = await preview(api, **{**body, "concurrency_limit": 4})
    assert (lower["effective_concurrency"], lower["binding_limit"]) == (4, "concurrency_limit")
    assert "concurrency_limit_clamped" not in {w["code"] for w in lower["warnings"]}
    assert lower["estimated_duration_hours"] == pytest.approx(3 * result["estimated_duration_hours"], rel=0.05)


async def test_calls_per_second_can_bind(api: httpx.AsyncClient) -> None:
    numbers = await connection(api, 100, cps=0.5, phones=("+14155550100",))
    result = await preview(
        api, campaign_phone_number_ids=numbers, contacts=10, avg_call_seconds=60, scheduled_at=MONDAY
    )
    # 0.5 calls/s × 60 s keeps only 30 lines busy, of 100.
    assert result["effective_concurrency"] == 100
    assert result["binding_limit"] == "calls_per_second"
    assert result["calls_per_hour"] == pytest.approx(1800)
    assert "cps_binding" in {w["code"] for w in result["warnings"]}


async def test_windows_shape_the_estimate_and_ends_at_is_warned(api: httpx.AsyncClient) -> None:
    numbers = await connection(api, 1, phones=("+14155550100",))
    body = {
        "campaign_phone_number_ids": numbers,
        "contacts": 60,
        "max_retries": 0,
        "avg_call_seconds": 600,  # 6 calls an hour: 10 hours of dialing
        "timezone": "America/New_York",
        "call_windows": NINE_TO_SIX,
        "scheduled_at": "2030-06-03T13:00:00Z",  # Monday 09:00 in New York
    }
    result = await preview(api, **body)
    assert result["weekly_callable_hours"] == pytest.approx(5 * (9 - 1 / 60), abs=0.01)
    # 9 hours on Monday (less the last minute), the last hour on Tuesday from 09:00: ends Tuesday ~10:00 local.
    assert result["estimated_completion_at"].startswith("2030-06-04T14:")
    assert 24 < result["estimated_duration_hours"] < 26
    late = await preview(api, **body, ends_at="2030-06-03T22:00:00Z")
    assert "completion_after_ends_at" in {w["code"] for w in late["warnings"]}
    assert "completion_after_ends_at" not in {w["code"] for w in result["warnings"]}


async def test_audience_zones_drive_the_preview(api: httpx.AsyncClient) -> None:
    numbers = await connection(api, 2, phones=("+14155550100",))
    ids = [data(await api.post("/contacts", json={"phone_e164": f"+1212555{n:04d}"}), 201)["id"] for n in range(3)]
    ids.append(
        data(await api.post("/contacts", json={"phone_e164": "+919876543210", "timezone": "Asia/Calcutta"}), 201)["id"]
    )
    closed_days = {**NINE_TO_SIX, **{day: {"enabled": False} for day in DAYS}}
    result = await preview(
        api, campaign_phone_number_ids=numbers, contact_ids=ids, call_windows=NINE_TO_SIX, scheduled_at=MONDAY
    )
    assert result["contacts"] == 4
    assert {z["timezone"]: z["contacts"] for z in result["zones"]} == {"America/New_York": 3, "Asia/Kolkata": 1}
    assert result["estimated_duration_hours"] is not None
    never = await preview(
        api, campaign_phone_number_ids=numbers, contact_ids=ids, call_windows=closed_days, scheduled_at=MONDAY
    )
    warning = next(w for w in never["warnings"] if w["code"] == "windows_never_open")
    assert warning["count"] == 4
    assert never["estimated_duration_hours"] is None


async def test_zero_contacts_take_no_time(api: httpx.AsyncClient) -> None:
    numbers = await connection(api, 2, phones=("+14155550100",))
    result = await preview(api, campaign_phone_number_ids=numbers, contacts=0, scheduled_at=MONDAY)
    assert result["estimated_duration_hours"] == 0
    assert result["expected_calls"] == 0


async def test_preview_validation_and_isolation(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    numbers = await connection(api, 2, phones=("+14155550199",))
    problems = errors(
        await api.post(
            PREVIEW,
            json={"campaign_phone_number_ids": numbers, "call_windows": {"mon": {"start": "25:00"}}, "contacts": 1},
        )
    )
    assert "call_windows.mon.start" in problems
    assert "contacts" in errors(await api.post(PREVIEW, json={"campaign_phone_number_ids": numbers}))
    both = await api.post(PREVIEW, json={"campaign_phone_number_ids": numbers, "contacts": 1, "contact_ids": [1]})
    assert "contacts" in errors(both)
    assert "expected_answer_rate" in errors(
        await api.post(PREVIEW, json={"campaign_phone_number_ids": numbers, "contacts": 1, "expected_answer_rate": 2})
    )
    far = {"campaign_phone_number_ids": numbers, "contacts": 1, "scheduled_at": "9999-12-31T00:00:00Z"}
    assert "scheduled_at" in errors(await api.post(PREVIEW, json=far))
    # Another workspace's numbers and campaigns are not found.
    assert (
        await other_api.post(PREVIEW, json={"campaign_phone_number_ids": numbers, "contacts": 1})
    ).status_code == 404
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    assert (await other_api.get(f"{CAMPAIGNS}/{campaign['id']}/capacity_preview")).status_code == 404
    assert (await other_api.get(f"{CAMPAIGNS}/{campaign['id']}/audience_timezone_analysis")).status_code == 404


async def test_campaign_preview_uses_its_settings_and_audience(api: httpx.AsyncClient) -> None:
    setup: Setup = await make_setup(api, contacts=5)
    campaign = await create_campaign(api, setup, call_windows=ALWAYS, max_retries=1)
    result = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/capacity_preview", params={"expected_answer_rate": 0.5}))
    assert result["contacts"] == 5
    assert result["concurrency_limit"] == 3
    assert (result["pool_capacity"], result["effective_concurrency"]) == (5, 3)
    assert result["binding_limit"] == "concurrency_limit"
    assert result["max_possible_calls"] == 10
    assert result["expected_calls"] == pytest.approx(7.5)
    assert result["estimate_basis"] == "inputs"
    running = await launched(api, setup, call_windows=ALWAYS)
    after = data(await api.get(f"{CAMPAIGNS}/{running['id']}/capacity_preview"))
    assert after["contacts"] == 5  # nothing dialed yet: every task is still to do


# -- audience timezone analysis -----------------------------------------------------------------------------------


async def test_analysis_groups_by_zone_with_sources_countries_and_the_grid(api: httpx.AsyncClient) -> None:
    new_york = [data(await api.post("/contacts", json={"phone_e164": f"+1212555{n:04d}"}), 201)["id"] for n in range(3)]
    kolkata = data(await api.post("/contacts", json={"phone_e164": "+919876543210", "timezone": "Asia/Calcutta"}), 201)
    idaho = data(await api.post("/contacts", json={"phone_e164": "+12085550123"}), 201)
    at = "2030-06-05T15:00:00Z"  # Wednesday: 11:00 in New York, 20:30 in Kolkata, 09:00 in Boise, 08:00 in LA
    result = data(
        await api.post(
            ANALYSIS,
            json={
                "contact_ids": [*new_york, kolkata["id"], idaho["id"]],
                "phones": ["+442071838750", "not a phone", "+12125550000"],  # London (new), invalid, a known contact
                "call_windows": NINE_TO_SIX,
                "timezone": "UTC",
                "at": at,
            },
        )
    )
    assert result["at"] == at
    assert result["total"] == 8
    assert result["invalid"] == 1
    assert result["ambiguous"] == 1
    assert result["fallback"] == 0
    zones = {row["timezone"]: row for row in result["timezones"]}
    assert set(zones) == {"America/New_York", "Asia/Kolkata", "America/Boise|America/Los_Angeles", "Europe/London"}
    assert zones["America/New_York"]["contacts"] == 4
    assert zones["America/New_York"]["sources"] == {"contact_field": 0, "phone_number": 4, "fallback": 0}
    assert zones["Asia/Kolkata"]["sources"]["contact_field"] == 1
    assert zones["Asia/Kolkata"]["utc_offset"] == "+05:30"
    assert zones["Asia/Kolkata"]["local_time"] == "2030-06-05T20:30:00+05:30"
    assert zones["Asia/Kolkata"]["callable_now"] is False
    assert zones["Asia/Kolkata"]["next_window_opens_at"] == "2030-06-06T03:30:00Z"
    assert zones["America/New_York"]["callable_now"] is True
    assert zones["America/New_York"]["next_window_opens_at"] == at
    # Idaho's number spans Boise (open at 09:00) and Los Angeles (08:00, closed): not callable until LA opens.
    assert zones["America/Boise|America/Los_Angeles"]["callable_now"] is False
    assert zones["America/Boise|America/Los_Angeles"]["next_window_opens_at"] == "2030-06-05T16:00:00Z"
    assert zones["Europe/London"]["callable_now"] is True  # 16:00 BST
    assert result["callable_now"] == 5
    assert {c["country"]: c["contacts"] for c in result["countries"]} == {"US": 5, "IN": 1, "GB": 1}
    grid = result["grid"]
    assert len(grid) == 7
    assert all(len(row) == 24 for row in grid)
    # Wednesday 14:00–15:00 UTC: New York (4) and London (1) open the whole hour; Kolkata closed; Idaho closed.
    assert grid[2][14] == pytest.approx(5 / 7, abs=1e-4)
    # Saturday: nobody.
    assert grid[5] == [0.0] * 24
    codes = {w["code"]: w["count"] for w in result["warnings"]}
    assert codes["ambiguous_timezone"] == 1
    assert codes["invalid_numbers"] == 1


async def test_campaign_analysis_before_and_after_launch(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=3)  # San Francisco numbers
    campaign = await create_campaign(api, setup, call_windows=NINE_TO_SIX, timezone="Asia/Kolkata")
    at = "2030-06-05T17:00:00Z"  # Wednesday: 10:00 in Los Angeles, 22:30 in Kolkata
    draft = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/audience_timezone_analysis", params={"at": at}))
    assert draft["total"] == 3
    assert [row["timezone"] for row in draft["timezones"]] == ["America/Los_Angeles"]
    assert draft["callable_now"] == 3
    running = await launched(api, setup, call_windows=NINE_TO_SIX, timezone="Asia/Kolkata")
    after = data(await api.get(f"{CAMPAIGNS}/{running['id']}/audience_timezone_analysis", params={"at": at}))
    assert after["timezones"] == draft["timezones"]
    assert after["grid"] == draft["grid"]
    # In campaign_timezone mode the campaign's windows apply to everyone: Kolkata is closed at 22:30.
    local = await create_campaign(
        api, setup, call_windows=NINE_TO_SIX, timezone="Asia/Kolkata", timezone_mode="campaign_timezone"
    )
    shifted = data(await api.get(f"{CAMPAIGNS}/{local['id']}/audience_timezone_analysis", params={"at": at}))
    assert shifted["timezones"][0]["timezone"] == "America/Los_Angeles"
    assert shifted["timezones"][0]["utc_offset"] == "-07:00"
    assert shifted["callable_now"] == 0
    assert shifted["timezones"][0]["next_window_opens_at"] == "2030-06-06T03:30:00Z"


async def test_a_draft_counts_each_contact_once_across_its_entries_and_its_list(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=4)
    members, others = setup.contact_ids[:2], setup.contact_ids[2:]
    contact_list = data(await api.post("/contact_lists", json={"name": "preflight"}), 201)
    data(await api.post(f"/contact_lists/{contact_list['id']}/contacts", json={"contact_ids": members}))
    # One entry is also a member, one entry is given twice: 2 members + 2 others, as launch would dial them.
    entries = [members[0], *others, others[0]]
    campaign = await create_campaign(api, setup, contact_ids=entries, contact_list_id=contact_list["id"])
    analysis = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/audience_timezone_analysis"))
    assert analysis["total"] == 4
    preview = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}/capacity_preview"))
    assert preview["contacts"] == 4


async def test_analysis_validation(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    assert "contact_ids" in errors(await api.post(ANALYSIS, json={}))
    assert "call_windows.xyz" in errors(
        await api.post(ANALYSIS, json={"phones": ["+12125550000"], "call_windows": {"xyz": {}}})
    )
    assert "timezone" in errors(await api.post(ANALYSIS, json={"phones": ["+12125550000"], "timezone": "Mars/Base"}))
    ancient = {"phones": ["+12125550000"], "at": "0001-01-01T00:00:00Z"}
    assert "at" in errors(await api.post(ANALYSIS, json=ancient))
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    far = await api.get(
        f"{CAMPAIGNS}/{campaign['id']}/audience_timezone_analysis", params={"at": "9999-12-31T00:00:00Z"}
    )
    assert "at" in errors(far)
    contact = data(await api.post("/contacts", json={"phone_e164": "+12125550000"}), 201)
    assert (await other_api.post(ANALYSIS, json={"contact_ids": [contact["id"]]})).status_code == 404
    assert (await api.post(ANALYSIS, json={"contact_list_id": 999999})).status_code == 404
