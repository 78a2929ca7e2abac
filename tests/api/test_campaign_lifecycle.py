"""The campaign lifecycle through the API: every transition, its stamps, no-ops, 409s, events and the sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkcall.db.engine import Database
from bulkcall.dispatch.sweeps import start_scheduled_campaigns
from bulkcall.domain.lifecycle import USER_ACTIONS, CampaignStatus, InvalidTransition, transition
from bulkcall.kit.clock import FixedClock
from tests.api.campaign_fixtures import (
    CAMPAIGNS,
    Setup,
    act,
    all_tasks,
    create_campaign,
    event_types,
    launched,
    make_setup,
)
from tests.conftest import data

T0 = datetime(2030, 3, 4, 12, 0, tzinfo=UTC)
STAMP = "2030-03-04T12:00:00Z"


def iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def clock(app: FastAPI) -> FixedClock:
    """A fixed clock the API reads for every request."""
    fixed = FixedClock(T0)
    app.state.clock = fixed
    return fixed


async def _scheduled(api: httpx.AsyncClient, setup: Setup, at: datetime) -> dict[str, Any]:
    return await launched(api, setup, trigger_mode="scheduled", scheduled_at=iso(at))


async def test_launch_moves_a_draft_to_running_with_stamps(api: httpx.AsyncClient, clock: FixedClock) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    assert campaign["status"] == "running"
    assert campaign["launched_at"] == STAMP
    assert campaign["started_at"] == STAMP
    assert campaign["launch_readiness"] is None
    assert campaign["counts"]["pending"] == 3


async def test_launch_with_future_scheduled_at_is_scheduled(api: httpx.AsyncClient, clock: FixedClock) -> None:
    setup = await make_setup(api)
    campaign = await _scheduled(api, setup, T0 + timedelta(hours=2))
    assert campaign["status"] == "scheduled"
    assert campaign["launched_at"] == STAMP
    assert campaign["started_at"] is None
    tasks = await all_tasks(api, campaign["id"])
    assert {task["blocker"] for task in tasks} == {"campaign_scheduled"}


async def test_pause_with_reason_records_it(api: httpx.AsyncClient, clock: FixedClock) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    clock.set(T0 + timedelta(minutes=5))
    paused = data(await act(api, campaign["id"], "pause", json={"reason": "script review"}))
    assert (paused["status"], paused["pause_reason"]) == ("paused", "script review")
    assert paused["paused_at"] == "2030-03-04T12:05:00Z"


async def test_pause_without_body_records_manual(api: httpx.AsyncClient, clock: FixedClock) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    paused = data(await act(api, campaign["id"], "pause"))
    assert (paused["status"], paused["pause_reason"], paused["paused_at"]) == ("paused", "manual", STAMP)


async def test_pause_rejects_an_unknown_body_field(api: httpx.AsyncClient, clock: FixedClock) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    response = await act(api, campaign["id"], "pause", json={"why": "x"})
    assert response.status_code == 422
    assert data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))["status"] == "running"


async def test_pause_a_scheduled_campaign(api: httpx.AsyncClient, clock: FixedClock) -> None:
    setup = await make_setup(api)
    campaign = await _scheduled(api, setup, T0 + timedelta(hours=2))
    assert data(await act(api, campaign["id"], "pause"))["status"] == "paused"


async def test_resume_moves_paused_to_running_and_clears_reason(api: httpx.AsyncClient, clock: FixedClock) -> None:
    setup = await make_setup(api)
    campaign = await launched(api, setup)
    data(await act(api, campaign["id"], "pause", json={"reason": "tuning"}))
    clock.set(T0 + timedelta(minutes=10))
    resumed = data(await act(api, campaign["id"], "resume"))
    assert resumed["status"] == "running"
    assert resumed["resumed_at"] == "2030-03-04T12:10:00Z"
    assert resumed["pause_reason"] is None
    assert resumed["paused_at"] == STAMP


@pytest.mark.parametrize("state", ["running", "paused", "scheduled"])
async def test_cancel_cancels_every_undialed_task(api: httpx.AsyncClient, clock: FixedClock, state: str) -> None:
    setup = await make_setup(api)
    if state == "scheduled":
        campaign = await _scheduled(api, setup, T0 + timedelta(hours=2))
    else:
        campaign = await launched(api, setup)
    if state == "paused":
        data(await act(api, campaign["id"], "pause"))
    clock.set(T0 + timedelta(minutes=1))
    cancelled = data(await act(api, campaign["id"], "cancel"))
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] == "2030-03-04T12:01:00Z"
    assert cancelled["counts"]["cancelled"] == 3
    assert sum(cancelled["counts"].values()) == cancelled["total_contacts"] == 3
    tasks = await all_tasks(api, cancelled["id"])
    assert {(task["status"], task["blocker"]) for task in tasks} == {("cancelled", None)}


async def test_cancel_keeps_skipped_tasks_skipped(api: httpx.AsyncClient, clock: FixedClock) -> None:
    setup = await make_setup(api)
    data(await api.post("/dnc", json={"phone_e164": "+14155552000"}), 201)
    campaign = await launched(api, setup)
    counts = data(await act(api, campaign["id"], "cancel"))["counts"]
    assert (counts["skipped"], counts["cancelled"]) == (1, 2)


@pytest.mark.parametrize(
    ("setup_actions", "repeat"),
    [
        (["launch"], "launch"),
        (["launch", "pause"], "pause"),
        (["launch", "pause", "resume"], "resume"),
        (["launch", "cancel"], "cancel"),
        (["launch"], "resume"),
    ],
)
async def test_repeating_an_action_is_a_no_op_with_unchanged_stamps(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, setup_actions: list[str], repeat: str
) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    for action in setup_actions:
        before = data(await act(api, campaign["id"], action))
    events = await event_types(database, campaign["id"])
    clock.set(T0 + timedelta(hours=1))
    after = data(await act(api, campaign["id"], repeat))
    stamps = ("status", "launched_at", "started_at", "paused_at", "pause_reason", "resumed_at", "cancelled_at")
    assert {key: after[key] for key in stamps} == {key: before[key] for key in stamps}
    assert after["updated_at"] == before["updated_at"]
    assert await event_types(database, campaign["id"]) == events


@pytest.mark.parametrize(
    ("setup_actions", "illegal", "status", "allowed"),
    [
        ([], "pause", "draft", ["launch"]),
        ([], "resume", "draft", ["launch"]),
        ([], "cancel", "draft", ["launch"]),
        (["launch", "pause"], "launch", "paused", ["resume", "cancel"]),
        (["launch", "cancel"], "launch", "cancelled", []),
        (["launch", "cancel"], "pause", "cancelled", []),
        (["launch", "cancel"], "resume", "cancelled", []),
    ],
)
async def test_illegal_action_is_409_with_status_and_allowed_actions(
    api: httpx.AsyncClient,
    database: Database,
    setup_actions: list[str],
    illegal: str,
    status: str,
    allowed: list[str],
) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    for action in setup_actions:
        data(await act(api, campaign["id"], action))
    events = await event_types(database, campaign["id"])
    response = await act(api, campaign["id"], illegal)
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error_code"] == "INVALID_STATE_TRANSITION"
    assert body["details"] == {"current_status": status, "allowed_actions": allowed}
    assert await event_types(database, campaign["id"]) == events


async def test_resume_a_scheduled_campaign_is_409(api: httpx.AsyncClient, clock: FixedClock) -> None:
    setup = await make_setup(api)
    campaign = await _scheduled(api, setup, T0 + timedelta(hours=2))
    response = await act(api, campaign["id"], "resume")
    assert response.status_code == 409
    assert response.json()["details"] == {"current_status": "scheduled", "allowed_actions": ["pause", "cancel"]}


async def test_resume_before_the_scheduled_start_goes_back_to_scheduled(
    api: httpx.AsyncClient, clock: FixedClock
) -> None:
    setup = await make_setup(api)
    campaign = await _scheduled(api, setup, T0 + timedelta(hours=2))
    data(await act(api, campaign["id"], "pause"))
    resumed = data(await act(api, campaign["id"], "resume"))
    assert resumed["status"] == "scheduled"
    assert resumed["started_at"] is None


async def test_resume_after_the_scheduled_start_passed_runs_and_stamps_the_start(
    api: httpx.AsyncClient, clock: FixedClock
) -> None:
    setup = await make_setup(api)
    campaign = await _scheduled(api, setup, T0 + timedelta(hours=2))
    data(await act(api, campaign["id"], "pause"))
    clock.set(T0 + timedelta(hours=3))
    resumed = data(await act(api, campaign["id"], "resume"))
    assert resumed["status"] == "running"
    assert resumed["started_at"] == iso(T0 + timedelta(hours=3))


async def test_a_scheduled_campaign_can_be_renamed_but_not_reconfigured(
    api: httpx.AsyncClient, clock: FixedClock
) -> None:
    setup = await make_setup(api)
    campaign = await _scheduled(api, setup, T0 + timedelta(hours=2))
    assert data(await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"name": "Renamed"}))["name"] == "Renamed"
    refused = await api.patch(f"{CAMPAIGNS}/{campaign['id']}", json={"max_retries": 1})
    assert refused.status_code == 409


async def test_every_action_on_a_completed_campaign_is_409(api: httpx.AsyncClient) -> None:
    setup = await make_setup(api, contacts=1)
    data(await api.post("/dnc", json={"phone_e164": "+14155552000"}), 201)
    campaign = await launched(api, setup)
    for action in ("pause", "resume", "cancel"):
        response = await act(api, campaign["id"], action)
        assert response.status_code == 409, action
        assert response.json()["details"] == {"current_status": "completed", "allowed_actions": []}


async def test_campaign_whose_every_task_is_skipped_completes_at_launch(
    api: httpx.AsyncClient, database: Database, clock: FixedClock
) -> None:
    setup = await make_setup(api, contacts=2)
    for phone in ("+14155552000", "+14155552001"):
        data(await api.post("/dnc", json={"phone_e164": phone}), 201)
    campaign = await launched(api, setup)
    assert campaign["status"] == "completed"
    assert campaign["completed_at"] == STAMP
    assert campaign["counts"]["skipped"] == campaign["total_contacts"] == 2
    assert await event_types(database, campaign["id"]) == [
        "campaign.launched",
        "task.completed",
        "task.completed",
        "campaign.completed",
    ]


async def test_every_transition_writes_one_campaign_event(
    api: httpx.AsyncClient, database: Database, clock: FixedClock
) -> None:
    setup = await make_setup(api)
    campaign = await create_campaign(api, setup)
    assert await event_types(database, campaign["id"]) == []
    expected: list[str] = []
    for action, event in (
        ("launch", "campaign.launched"),
        ("pause", "campaign.paused"),
        ("resume", "campaign.resumed"),
        ("cancel", "campaign.cancelled"),
    ):
        data(await act(api, campaign["id"], action))
        expected.append(event)
        lifecycle_events = [kind for kind in await event_types(database, campaign["id"]) if kind != "task.completed"]
        assert lifecycle_events == expected


async def test_failed_launch_writes_no_event_and_changes_nothing(api: httpx.AsyncClient, database: Database) -> None:
    setup = await make_setup(api, contacts=0)
    campaign = await create_campaign(api, setup)
    response = await act(api, campaign["id"], "launch")
    assert response.status_code == 422
    assert await event_types(database, campaign["id"]) == []
    after = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))
    assert (after["status"], after["launched_at"]) == ("draft", None)


async def test_sweep_starts_a_due_scheduled_campaign(
    api: httpx.AsyncClient, database: Database, clock: FixedClock
) -> None:
    setup = await make_setup(api)
    start = T0 + timedelta(hours=2)
    campaign = await _scheduled(api, setup, start)
    assert await start_scheduled_campaigns(database, clock) == 0
    assert data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))["status"] == "scheduled"
    clock.set(start + timedelta(seconds=1))
    assert await start_scheduled_campaigns(database, clock) == 1
    started = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))
    assert started["status"] == "running"
    assert started["started_at"] == iso(start + timedelta(seconds=1))
    assert started["launched_at"] == STAMP
    assert await event_types(database, campaign["id"]) == ["campaign.launched", "campaign.started"]
    assert await start_scheduled_campaigns(database, clock) == 0


async def test_sweep_leaves_a_paused_scheduled_campaign_alone(
    api: httpx.AsyncClient, database: Database, clock: FixedClock
) -> None:
    setup = await make_setup(api)
    start = T0 + timedelta(hours=2)
    campaign = await _scheduled(api, setup, start)
    data(await act(api, campaign["id"], "pause"))
    clock.set(start + timedelta(minutes=1))
    assert await start_scheduled_campaigns(database, clock) == 0
    assert data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))["status"] == "paused"


@pytest.fixture
async def ready_setup(api: httpx.AsyncClient) -> Setup:
    """One setup shared by every hypothesis example of a test (each example makes its own campaign)."""
    return await make_setup(api, contacts=2)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    scheduled=st.booleans(),
    actions=st.lists(st.sampled_from([action.value for action in USER_ACTIONS]), min_size=1, max_size=6),
)
async def test_random_action_sequences_follow_the_transition_table(
    api: httpx.AsyncClient, ready_setup: Setup, scheduled: bool, actions: list[str]
) -> None:
    """The API's status always equals domain.lifecycle.transition's prediction; 409 exactly when it refuses."""
    overrides: dict[str, Any] = (
        {"trigger_mode": "scheduled", "scheduled_at": "2099-01-01T00:00:00Z"} if scheduled else {}
    )
    campaign = await create_campaign(api, ready_setup, **overrides)
    model = CampaignStatus.DRAFT
    for action in actions:
        response = await act(api, campaign["id"], action)
        try:
            # scheduled_at is far ahead, so a scheduled campaign never starts within the test.
            step = next(a for a in USER_ACTIONS if a.value == action)
            model = transition(model, step, waits_for_start=scheduled).status
        except InvalidTransition:
            assert response.status_code == 409, (action, model, response.text)
            body = response.json()
            assert body["error_code"] == "INVALID_STATE_TRANSITION"
            assert body["details"]["current_status"] == model.value
            continue
        got = data(response)
        assert got["status"] == model.value, (actions, action)
        assert sum(got["counts"].values()) == got["total_contacts"] == 2
    final = data(await api.get(f"{CAMPAIGNS}/{campaign['id']}"))
    assert final["status"] == model.value
    assert sum(final["counts"].values()) == final["total_contacts"] == 2
