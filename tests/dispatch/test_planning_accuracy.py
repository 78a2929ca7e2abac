"""The capacity preview's estimated duration against a campaign the engine really runs, on the test clock.

Calls last their simulated time *on the test clock*: the simulator's callbacks are held back (its ``_deliver`` is
replaced) and released when the clock reaches the moment the call would report it: ringing at the dial,
the end after the fixed ring (and talk, when someone picked up). The test jumps the clock from event to event
(the next held callback, or the next task falling due, e.g. a retry or a window opening), dispatching at each
instant until nothing more starts, so lines are busy exactly as long as the calls, as on a real network.
"Actual" is first dial to the end of the last call (``ended_at``, stamped by the engine from the same clock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bulkcall.db.engine import Database
from bulkcall.db.models import CallAttempt, CallTask, Campaign
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.kit.clock import FixedClock
from bulkcall.providers.base import CallbackRequest
from tests.conftest import data
from tests.dispatch.conftest import ALWAYS, START, make_world

RING, TALK = 20.0, 60.0
# No voicemail: every attempt not answered is retried while the budget lasts, as the preview's inputs assume.
MIX = {"answered": 0.5, "no_answer": 0.35, "busy": 0.15}
HANDLE = MIX["answered"] * (RING + TALK) + MIX["no_answer"] * RING  # busy ends at once
NINE_TO_SIX = {
    day: {"enabled": day not in ("sat", "sun"), "start": "09:00", "end": "18:00"}
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}
TOLERANCE = 0.15


@dataclass
class HeldCallbacks:
    """Callbacks the simulator sent, each released when the test clock reaches its moment."""

    clock: FixedClock
    held: list[tuple[datetime, str, CallbackRequest]] = field(default_factory=list)

    def hold(self, provider: str, request: CallbackRequest) -> None:
        payload = json.loads(request.body)
        after = 0.0
        if payload["status"] == "answered":
            after = RING
        elif payload["status"] == "completed":
            after = {"answered": RING + TALK, "voicemail": RING + TALK, "no_answer": RING}.get(payload["outcome"], 0.0)
        self.held.append((self.clock.now() + timedelta(seconds=after), provider, request))

    def due(self) -> list[tuple[str, CallbackRequest]]:
        now = self.clock.now()
        ready = [(provider, request) for at, provider, request in self.held if at <= now]
        self.held = [item for item in self.held if item[0] > now]
        return ready

    def next_at(self) -> datetime | None:
        return min((at for at, _, _ in self.held), default=None)


async def next_due_task(database: Database, campaign_id: int, after: datetime) -> datetime | None:
    async with database.session(write=False) as session:
        found: datetime | None = (
            await session.execute(
                select(func.min(CallTask.next_eligible_at)).where(
                    CallTask.campaign_id == campaign_id,
                    CallTask.status.in_(("pending", "retry_pending")),
                    CallTask.next_eligible_at > after,
                )
            )
        ).scalar_one()
    return found


async def status(database: Database, campaign_id: int) -> str:
    async with database.session(write=False) as session:
        found: str = (await session.execute(select(Campaign.status).where(Campaign.id == campaign_id))).scalar_one()
    return found


async def run_to_completion(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database, campaign_id: int
) -> timedelta:
    callbacks = HeldCallbacks(clock)
    engine.providers["simulator"]._deliver = callbacks.hold  # type: ignore[attr-defined]
    data(await api.post(f"/bulk_call_campaigns/{campaign_id}/launch"))
    for _ in range(20_000):
        released = callbacks.due()
        for provider, request in released:
            engine.deliver(provider, request)
        if released:
            await engine.drain()  # ingested: lines freed, retries scheduled, the campaign completed when done
        # Three lines and a batch of 50: one round starts every call that can start at this instant.
        if await engine.dispatch_once():
            await engine.drain()  # the new calls' callbacks reach the hold
        if not callbacks.held and await status(database, campaign_id) == "completed":
            break
        candidates = [at for at in (callbacks.next_at(), await next_due_task(database, campaign_id, clock.now())) if at]
        clock.set(min(candidates) if candidates else clock.now() + timedelta(minutes=1))
    else:
        raise AssertionError("the campaign did not complete")
    async with database.session(write=False) as session:
        first, last = (
            await session.execute(
                select(func.min(CallAttempt.dialed_at), func.max(CallAttempt.ended_at)).where(
                    CallAttempt.campaign_id == campaign_id
                )
            )
        ).one()
    assert first is not None
    assert last is not None
    elapsed: timedelta = last - first
    return elapsed


async def preview_hours(api: httpx.AsyncClient, campaign_id: int) -> float:
    preview = data(
        await api.get(
            f"/bulk_call_campaigns/{campaign_id}/capacity_preview",
            params={"avg_call_seconds": HANDLE, "expected_answer_rate": MIX["answered"]},
        )
    )
    assert preview["estimate_basis"] == "inputs"
    assert preview["effective_concurrency"] == 3
    hours: float = preview["estimated_duration_hours"]
    return hours


async def world_with(api: httpx.AsyncClient, zones: list[str], per_zone: int) -> Any:
    world = await make_world(
        api,
        simulator={"seed": 11, "outcomes": MIX, "ring_seconds": [RING, RING], "talk_seconds": [TALK, TALK]},
        connection_limit=3,
    )
    serial = 1000
    for name in zones:
        for _ in range(per_zone):
            serial += 1
            await world.contacts([f"+1212555{serial:04d}"], timezone=name)
    return world


def assert_close(estimated_hours: float, actual: timedelta) -> None:
    actual_hours = actual.total_seconds() / 3600
    assert abs(estimated_hours - actual_hours) <= TOLERANCE * actual_hours, (estimated_hours, actual_hours)


async def test_estimate_matches_a_single_zone_campaign(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    # Windows always open: the duration is all dialing (about an hour), retries 30 minutes after their attempt.
    world = await world_with(api, ["America/New_York"], 80)
    created = data(
        await api.post(
            "/bulk_call_campaigns",
            json=world.campaign(call_windows=ALWAYS, max_retries=2, retry_delay_minutes=30),
        ),
        201,
    )
    estimated = await preview_hours(api, created["id"])
    actual = await run_to_completion(api, engine, clock, database, created["id"])
    print(f"estimated {estimated:.3f} h, actual {actual.total_seconds() / 3600:.3f} h")
    assert_close(estimated, actual)

    # Afterwards the campaign's own record replaces the inputs: its calls' real length and attempts per contact.
    after = data(await api.get(f"/bulk_call_campaigns/{created['id']}/capacity_preview"))
    assert after["estimate_basis"] == "history"
    assert after["contacts"] == 0
    assert after["estimated_duration_hours"] == 0
    async with database.session(write=False) as session:
        calls, contacts = (
            await session.execute(
                select(func.count(CallAttempt.id), func.count(func.distinct(CallAttempt.task_id))).where(
                    CallAttempt.campaign_id == created["id"]
                )
            )
        ).one()
    assert after["expected_attempts_per_contact"] == pytest.approx(calls / contacts, rel=0.01)
    assert after["avg_call_seconds"] == pytest.approx(HANDLE, rel=0.15)  # the mix drawn is near MIX
    assert after["avg_call_seconds"] != pytest.approx(90.0, abs=0.5)  # not the default input


async def test_estimate_matches_a_five_zone_campaign_with_contact_local_windows(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    zones = ["America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Kolkata", "Australia/Sydney"]
    world = await world_with(api, zones, 16)
    created = data(
        await api.post(
            "/bulk_call_campaigns",
            json=world.campaign(call_windows=NINE_TO_SIX, max_retries=2, retry_delay_minutes=30),
        ),
        201,
    )
    estimated = await preview_hours(api, created["id"])
    actual = await run_to_completion(api, engine, clock, database, created["id"])
    assert clock.now() >= START
    print(f"estimated {estimated:.3f} h, actual {actual.total_seconds() / 3600:.3f} h")
    assert_close(estimated, actual)
