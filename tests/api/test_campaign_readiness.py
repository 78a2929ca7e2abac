"""Launch readiness: each check failing alone, several at once, and the draft's launch_readiness."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from bulkcall.db.engine import Database
from bulkcall.db.models import Campaign
from tests.api.campaign_fixtures import CAMPAIGNS, act, check_names, create_campaign, make_setup
from tests.conftest import data

ALL_DISABLED = {"mon": {"enabled": False, "start": "09:00", "end": "18:00"}}
BASE_CHECKS = {
    "agent_active",
    "active_phone_number",
    "has_contacts",
    "enabled_window",
    "valid_timezone",
    "retry_policy",
}


async def test_ready_draft_lists_every_base_check_as_passed(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    readiness = (await create_campaign(api, setup))["launch_readiness"]
    assert readiness["ready"] is True
    assert {check["check"] for check in readiness["checks"]} == BASE_CHECKS
    assert all(check["passed"] for check in readiness["checks"])


async def test_launch_fails_agent_active_when_the_agent_was_archived(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    data(await api.post(f"/agents/{setup.agent_id}/archive"))
    assert check_names(await act(api, campaign["id"], "launch")) == {"agent_active"}


async def test_launch_fails_active_phone_number_when_numbers_are_inactive(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    for number_id in setup.number_ids:
        data(await api.post(f"/phone_numbers/{number_id}/deactivate"))
    assert check_names(await act(api, campaign["id"], "launch")) == {"active_phone_number"}


async def test_launch_fails_active_phone_number_when_numbers_are_spam_flagged(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    for number_id in setup.number_ids:
        data(await api.patch(f"/phone_numbers/{number_id}", json={"spam_flagged": True}))
    assert check_names(await act(api, campaign["id"], "launch")) == {"active_phone_number"}


async def test_launch_passes_with_one_usable_number_left(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    data(await api.patch(f"/phone_numbers/{setup.number_ids[0]}", json={"spam_flagged": True}))
    assert data(await act(api, campaign["id"], "launch"))["status"] == "running"


async def test_launch_fails_active_phone_number_with_an_empty_pool(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup, campaign_phone_number_ids=[])
    assert check_names(await act(api, campaign["id"], "launch")) == {"active_phone_number"}


async def test_launch_fails_has_contacts_with_an_empty_audience(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(api, setup)
    assert check_names(await act(api, campaign["id"], "launch")) == {"has_contacts"}


async def test_launch_fails_enabled_window_when_every_day_is_off(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup, call_windows=ALL_DISABLED)
    assert check_names(await act(api, campaign["id"], "launch")) == {"enabled_window"}


async def test_launch_fails_valid_timezone_for_a_bogus_stored_zone(api: httpx.AsyncClient, database: Database) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    async with database.session(write=True) as session, session.begin():
        await session.execute(update(Campaign).where(Campaign.id == campaign["id"]).values(timezone="Bogus/Zone"))
    assert check_names(await act(api, campaign["id"], "launch")) == {"valid_timezone"}


async def test_launch_fails_retry_policy_when_voicemail_attempts_exceed_the_budget(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup, retry_on_voicemail=True, max_voicemail_attempts=4, max_retries=2)
    assert check_names(await act(api, campaign["id"], "launch")) == {"retry_policy"}


async def test_voicemail_attempts_equal_to_the_budget_pass(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup, retry_on_voicemail=True, max_voicemail_attempts=3, max_retries=2)
    assert data(await act(api, campaign["id"], "launch"))["status"] == "running"


async def test_launch_fails_scheduled_at_in_future_when_it_has_passed(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup, trigger_mode="scheduled", scheduled_at="2020-01-01T09:00:00Z")
    assert check_names(await act(api, campaign["id"], "launch")) == {"scheduled_at_in_future"}


async def test_launch_fails_scheduled_at_in_future_when_it_is_missing(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup, trigger_mode="scheduled")
    assert check_names(await act(api, campaign["id"], "launch")) == {"scheduled_at_in_future"}


async def test_launch_fails_ends_at_in_future_when_it_has_passed(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup, ends_at="2020-01-01T09:00:00Z")
    assert check_names(await act(api, campaign["id"], "launch")) == {"ends_at_in_future"}


async def test_launch_lists_every_failed_check_at_once(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(
        api,
        setup,
        campaign_phone_number_ids=[],
        call_windows=ALL_DISABLED,
        trigger_mode="scheduled",
        scheduled_at="2020-01-01T09:00:00Z",
    )
    data(await api.post(f"/agents/{setup.agent_id}/archive"))
    assert check_names(await act(api, campaign["id"], "launch")) == {
        "agent_active",
        "active_phone_number",
        "has_contacts",
        "enabled_window",
        "scheduled_at_in_future",
    }


async def test_draft_get_shows_the_same_failed_checks_as_launch(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(api, setup, call_windows=ALL_DISABLED, ends_at="2020-01-01T09:00:00Z")
    response = await act(api, campaign["id"], "launch")
    failed_at_launch = response.json()["details"]["checks"]
    readiness = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))["launch_readiness"]
    assert readiness["ready"] is False
    assert [check for check in readiness["checks"] if not check["passed"]] == failed_at_launch
    assert {check["check"] for check in failed_at_launch} == {"has_contacts", "enabled_window", "ends_at_in_future"}


async def test_launched_campaign_has_no_launch_readiness(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    assert data(await act(api, campaign["id"], "launch"))["launch_readiness"] is None
