"""Invariant 1 in the engine: a contact is dialed only inside an enabled window of its own local time.

The clock is driven by the test. An independent oracle (``zoneinfo`` wall clocks, not the engine's schedule
module) says when each zone's window is open; the engine must dial exactly then and never otherwise: zones
a whole day apart and half-hour zones, the campaign zone in ``campaign_timezone`` mode, numbers that span
several zones (open in all of them), an invalid zone (never dialed), a window across midnight, a window
starting in the hour DST skips, and the last minute of a window.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import update

from bulkcall.db.engine import Database
from bulkcall.db.models import CallTask
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.kit.clock import FixedClock
from tests.dispatch.conftest import attempts_by_task, make_world, settle, tasks

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NINE_TO_SIX = {day: {"enabled": day not in ("sat", "sun"), "start": "09:00", "end": "18:00"} for day in DAYS}
NO_ANSWER = {"outcomes": {"no_answer": 1.0}}
ANSWERED = {"outcomes": {"answered": 1.0}}
STEP = timedelta(minutes=30)  # the test's clock grid; every opening here falls on it

NEW_YORK, KOLKATA, ST_JOHNS = "America/New_York", "Asia/Kolkata", "America/St_Johns"


def utc(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone: str, day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A wall-clock time in ``zone`` as a UTC instant (unambiguous times only)."""
    return datetime.combine(day, time(hour, minute, second), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- the oracle: plain weekday windows that do not cross midnight, last minute excluded ------------------------


def open_in(zone: str, windows: dict[str, dict[str, Any]], instant: datetime) -> bool:
    wall = instant.astimezone(ZoneInfo(zone))
    spec = windows[DAYS[wall.weekday()]]
    if not spec["enabled"]:
        return False
    start = time.fromisoformat(spec["start"])
    last_start = (datetime.combine(wall.date(), time.fromisoformat(spec["end"])) - timedelta(minutes=1)).time()
    return start <= wall.time().replace(tzinfo=None) < last_start


def next_opening(zone: str, windows: dict[str, dict[str, Any]], after: datetime) -> datetime:
    """The first window start strictly after ``after`` (``after`` being outside every window)."""
    day = after.astimezone(ZoneInfo(zone)).date()
    for offset in range(8):
        candidate_day = day + timedelta(days=offset)
        spec = windows[DAYS[candidate_day.weekday()]]
        start = time.fromisoformat(spec["start"])
        opens = local(zone, candidate_day, start.hour, start.minute)
        if spec["enabled"] and opens > after:
            return opens
    raise AssertionError("no opening within a week")


def first_open_step(
    zone: str, windows: dict[str, dict[str, Any]], not_before: datetime, grid_from: datetime
) -> datetime:
    """The first instant of the test's clock grid, at or after ``not_before``, where ``zone``'s window is open."""
    steps = max(0, -(-(not_before - grid_from) // STEP))
    instant = grid_from + steps * STEP
    for _ in range(8 * 24 * 2):
        if open_in(zone, windows, instant):
            return instant
        instant += STEP
    raise AssertionError("the window never opens")


# -- helpers ---------------------------------------------------------------------------------------------------


async def dialed_times(database: Database, campaign_id: int) -> dict[int, list[datetime]]:
    found = await attempts_by_task(database, campaign_id)
    return {task_id: [a.dialed_at for a in attempts if a.dialed_at is not None] for task_id, attempts in found.items()}


async def task_by_phone(api: httpx.AsyncClient, campaign_id: int) -> dict[str, dict[str, Any]]:
    return {row["phone_e164"]: row for row in await tasks(api, campaign_id)}


async def launch_with(
    api: httpx.AsyncClient, contacts: dict[str, str | None], simulator: dict[str, Any], **campaign: Any
) -> int:
    """A world whose contacts are ``phone -> explicit timezone (or None)``; returns the launched campaign id."""
    world = await make_world(api, simulator=simulator)
    for phone, zone in contacts.items():
        await world.contacts([phone], **({"timezone": zone} if zone else {}))
    launched = await world.launch(**campaign)
    campaign_id: int = launched["id"]
    return campaign_id


# -- callee-local windows over two days ------------------------------------------------------------------------

CONTACT_ZONES = {
    "+12125550101": NEW_YORK,
    "+12125550102": NEW_YORK,
    "+919876543210": KOLKATA,
    "+919876543211": KOLKATA,
    "+17097221234": ST_JOHNS,
    "+17097221235": ST_JOHNS,
}


async def test_each_contact_is_dialed_only_inside_its_own_local_window(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    # Wed 20:30 UTC: 16:30 in New York (open), 18:00 in St. John's (just closed), Thu 02:00 in Kolkata (closed).
    launch_at = utc(2026, 6, 3, 20, 30)
    clock.set(launch_at)
    delay = timedelta(hours=5)
    campaign_id = await launch_with(
        api,
        dict(CONTACT_ZONES),
        NO_ANSWER,
        call_windows=NINE_TO_SIX,
        max_retries=2,
        retry_delay_minutes=int(delay.total_seconds() // 60),
    )

    rows = await task_by_phone(api, campaign_id)
    for phone, zone in CONTACT_ZONES.items():
        assert rows[phone]["timezones"] == [zone]
        assert rows[phone]["timezone_source"] == "contact_field"
        if zone != NEW_YORK:
            assert not open_in(zone, NINE_TO_SIX, launch_at)
            assert rows[phone]["blocker"] == "outside_call_window", rows[phone]
            assert parse(rows[phone]["next_eligible_at"]) == next_opening(zone, NINE_TO_SIX, launch_at)

    await settle(engine)
    rows = await task_by_phone(api, campaign_id)
    for phone, zone in CONTACT_ZONES.items():
        if zone == NEW_YORK:
            # Dialed now; its retry (at 21:30 local) lands outside the window, so it waits for Thursday 09:00.
            assert rows[phone]["attempts"] == 1, rows[phone]
            assert rows[phone]["status"] == "retry_pending", rows[phone]
            assert rows[phone]["blocker"] == "outside_call_window"
            assert parse(rows[phone]["next_eligible_at"]) == local(NEW_YORK, date(2026, 6, 4), 9)
        else:
            assert rows[phone]["attempts"] == 0, rows[phone]
            assert rows[phone]["status"] == "pending", rows[phone]
            assert rows[phone]["blocker"] == "outside_call_window"
            assert parse(rows[phone]["next_eligible_at"]) == next_opening(zone, NINE_TO_SIX, launch_at)

    until = utc(2026, 6, 5, 14)  # Friday afternoon UTC: every contact has used its three attempts
    while clock.now() < until:
        clock.set(clock.now() + STEP)
        await settle(engine)

    dialed = await dialed_times(database, campaign_id)
    rows = await task_by_phone(api, campaign_id)
    for phone, zone in CONTACT_ZONES.items():
        row = rows[phone]
        times = dialed[row["id"]]
        for instant in times:
            assert open_in(zone, NINE_TO_SIX, instant), (phone, zone, instant.astimezone(ZoneInfo(zone)))
        # Exactly when the oracle says: the first grid instant the window is open, after the retry delay.
        expected = [first_open_step(zone, NINE_TO_SIX, launch_at, launch_at)]
        while len(expected) < 3:
            expected.append(first_open_step(zone, NINE_TO_SIX, expected[-1] + delay, launch_at))
        assert times == expected, (phone, zone, times, expected)
        assert row["status"] == "failed", row
        assert row["attempts"] == 3, row


# -- campaign timezone mode ------------------------------------------------------------------------------------


async def test_campaign_timezone_mode_uses_the_campaign_zone_for_every_contact(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    # START (Wed 15:00 UTC) is 11:00 in New York but 20:30 in Kolkata, the campaign's zone: nobody is called.
    campaign_id = await launch_with(
        api,
        {"+12125550101": NEW_YORK, "+919876543210": KOLKATA},
        ANSWERED,
        call_windows=NINE_TO_SIX,
        timezone=KOLKATA,
        timezone_mode="campaign_timezone",
    )
    await settle(engine)
    opens = local(KOLKATA, date(2026, 6, 4), 9)  # Thu 03:30 UTC: 23:30 on Wednesday in New York
    for row in await tasks(api, campaign_id):
        assert row["attempts"] == 0, row
        assert row["blocker"] == "outside_call_window", row
        assert parse(row["next_eligible_at"]) == opens

    clock.set(opens - timedelta(seconds=1))
    await settle(engine)
    assert await dialed_times(database, campaign_id) == {}

    clock.set(opens)
    await settle(engine)
    dialed = await dialed_times(database, campaign_id)
    assert sorted(dialed.values()) == [[opens], [opens]]


# -- a number spanning several zones ---------------------------------------------------------------------------


async def test_a_number_in_several_zones_is_dialed_only_where_every_zone_is_open(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    import phonenumbers
    from phonenumbers import timezone as phone_timezones

    phone = "+12085550123"  # Idaho: Mountain (Boise) and Pacific (Los Angeles) time
    zones = sorted(phone_timezones.time_zones_for_number(phonenumbers.parse(phone)))
    assert zones == ["America/Boise", "America/Los_Angeles"]
    nine_to_five = {day: {**spec, "end": "17:00"} for day, spec in NINE_TO_SIX.items()}

    def open_everywhere(instant: datetime) -> bool:
        return all(open_in(name, nine_to_five, instant) for name in zones)

    # Wed 15:30 UTC: 09:30 in Boise, 08:30 in Los Angeles.
    clock.set(utc(2026, 6, 3, 15, 30))
    campaign_id = await launch_with(api, {phone: None}, ANSWERED, call_windows=nine_to_five)
    [row] = await tasks(api, campaign_id)
    assert row["timezones"] == zones
    assert row["timezone_source"] == "phone_number"
    assert open_in("America/Boise", nine_to_five, clock.now())
    assert not open_everywhere(clock.now())
    await settle(engine)
    [row] = await tasks(api, campaign_id)
    assert row["attempts"] == 0, row
    assert row["blocker"] == "outside_call_window", row
    assert parse(row["next_eligible_at"]) == local("America/Los_Angeles", date(2026, 6, 3), 9)

    # Wed 23:30 UTC: 16:30 in Los Angeles, but 17:30 (closed) in Boise.
    clock.set(utc(2026, 6, 3, 23, 30))
    assert open_in("America/Los_Angeles", nine_to_five, clock.now())
    assert not open_everywhere(clock.now())
    await settle(engine)
    [row] = await tasks(api, campaign_id)
    assert row["attempts"] == 0, row
    assert row["blocker"] == "outside_call_window", row
    both_open = local("America/Los_Angeles", date(2026, 6, 4), 9)
    assert parse(row["next_eligible_at"]) == both_open

    clock.set(both_open)
    assert open_everywhere(both_open)
    await settle(engine)
    assert list((await dialed_times(database, campaign_id)).values()) == [[both_open]]


# -- an invalid zone fails closed ------------------------------------------------------------------------------


async def test_an_invalid_zone_is_never_dialed_and_says_why(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    valid, broken = "+12125550101", "+12125550102"
    campaign_id = await launch_with(api, {valid: NEW_YORK, broken: NEW_YORK}, NO_ANSWER, max_retries=0)
    broken_id = (await task_by_phone(api, campaign_id))[broken]["id"]
    async with database.session(write=True) as session, session.begin():
        await session.execute(update(CallTask).where(CallTask.id == broken_id).values(timezones="Invalid/Zone"))

    for _ in range(26):  # a day in hours, every window of the day included
        await settle(engine)
        clock.set(clock.now() + timedelta(hours=1))

    dialed = await dialed_times(database, campaign_id)
    assert broken_id not in dialed
    assert len(dialed) == 1  # the valid contact was dialed: the engine was not simply idle
    row = (await task_by_phone(api, campaign_id))[broken]
    assert row["status"] == "pending", row
    assert row["attempts"] == 0, row
    assert row["blocker"] == "invalid_timezone", row


# -- a window across midnight ----------------------------------------------------------------------------------


async def test_a_window_across_midnight_stays_open_past_midnight_and_no_further(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    # Only Wednesday is enabled, 22:00 to 02:00: the window runs into Thursday, a disabled day.
    windows = {day: {"enabled": day == "wed", "start": "22:00", "end": "02:00"} for day in DAYS}
    wednesday, thursday = date(2026, 6, 3), date(2026, 6, 4)
    clock.set(local(NEW_YORK, wednesday, 21))
    campaign_id = await launch_with(
        api, {"+12125550101": NEW_YORK}, NO_ANSWER, call_windows=windows, max_retries=4, retry_delay_minutes=60
    )
    until = local(NEW_YORK, thursday, 3)
    await settle(engine)
    while clock.now() < until:
        clock.set(clock.now() + STEP)
        await settle(engine)

    [times] = (await dialed_times(database, campaign_id)).values()
    assert times == [
        local(NEW_YORK, wednesday, 22),
        local(NEW_YORK, wednesday, 23),
        local(NEW_YORK, thursday, 0),
        local(NEW_YORK, thursday, 1),
    ]
    # The fifth attempt would be at 02:00: the window has closed, and Thursday night is not a window.
    [row] = await tasks(api, campaign_id)
    assert row["status"] == "retry_pending", row
    assert row["blocker"] == "outside_call_window", row
    assert parse(row["next_eligible_at"]) == local(NEW_YORK, wednesday + timedelta(days=7), 22)
    clock.set(local(NEW_YORK, thursday, 23))
    await settle(engine)
    assert len((await dialed_times(database, campaign_id))[row["id"]]) == 4


# -- DST: a window starting in the skipped hour ----------------------------------------------------------------


async def test_a_window_starting_in_the_skipped_dst_hour_opens_at_the_first_valid_instant(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    # 2026-03-08, Sunday: New York jumps from 02:00 EST (07:00 UTC) to 03:00 EDT; 02:30 never happens.
    windows = {day: {"enabled": day == "sun", "start": "02:30", "end": "04:00"} for day in DAYS}
    jump = utc(2026, 3, 8, 7)
    assert (jump - timedelta(seconds=1)).astimezone(ZoneInfo(NEW_YORK)).hour == 1
    assert jump.astimezone(ZoneInfo(NEW_YORK)).hour == 3
    clock.set(utc(2026, 3, 8, 6))
    campaign_id = await launch_with(api, {"+12125550101": NEW_YORK}, ANSWERED, call_windows=windows)
    await settle(engine)
    [row] = await tasks(api, campaign_id)
    assert row["blocker"] == "outside_call_window", row
    assert parse(row["next_eligible_at"]) == jump, row

    # 06:30 UTC would be 02:30 read with the summer offset, 07:30 UTC with the winter one: neither is right.
    for instant in (utc(2026, 3, 8, 6, 30), jump - timedelta(seconds=1)):
        clock.set(instant)
        await settle(engine)
        assert await dialed_times(database, campaign_id) == {}, instant
    clock.set(jump)
    await settle(engine)
    assert list((await dialed_times(database, campaign_id)).values()) == [[jump]]


# -- the last minute of a window -------------------------------------------------------------------------------


async def test_no_call_starts_in_the_last_minute_of_a_window(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    wednesday = date(2026, 6, 3)
    world = await make_world(api, simulator=ANSWERED)
    early, late = "+12125550101", "+12125550102"
    await world.contacts([early], timezone=NEW_YORK)
    clock.set(local(NEW_YORK, wednesday, 17, 58, 59))  # just before the last minute: dialed
    before = await world.launch(call_windows=NINE_TO_SIX)
    await settle(engine)
    assert list((await dialed_times(database, before["id"])).values()) == [[clock.now()]]

    world.contact_ids.clear()
    await world.contacts([late], timezone=NEW_YORK)
    clock.set(local(NEW_YORK, wednesday, 17, 59, 30))
    inside_last_minute = await world.launch(call_windows=NINE_TO_SIX)
    await settle(engine)
    assert await dialed_times(database, inside_last_minute["id"]) == {}
    [row] = await tasks(api, inside_last_minute["id"])
    thursday_nine = local(NEW_YORK, date(2026, 6, 4), 9)
    assert row["blocker"] == "outside_call_window", row
    assert parse(row["next_eligible_at"]) == thursday_nine, row
    clock.set(thursday_nine)
    await settle(engine)
    assert list((await dialed_times(database, inside_last_minute["id"])).values()) == [[thursday_nine]]


async def test_a_window_closing_between_claim_and_dial_starts_no_call(
    api: httpx.AsyncClient,
    engine: DispatchEngine,
    clock: FixedClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim sees the window open; by the dial the last minute has begun: the call must not start."""
    wednesday = date(2026, 6, 3)
    clock.set(local(NEW_YORK, wednesday, 17, 58, 30))
    campaign_id = await launch_with(api, {"+12125550101": NEW_YORK}, ANSWERED, call_windows=NINE_TO_SIX)
    claim = engine._claim
    claims: list[int] = []

    async def claim_then_tick(*args: Any, **kwargs: Any) -> Any:
        claimed = await claim(*args, **kwargs)
        claims.append(len(claimed))
        clock.set(local(NEW_YORK, wednesday, 17, 59))
        return claimed

    monkeypatch.setattr(engine, "_claim", claim_then_tick)
    assert await engine.dispatch_once() == 0
    assert claims == [1]  # the task was claimed: the race was really run
    await settle(engine)
    assert await dialed_times(database, campaign_id) == {}
    [row] = await tasks(api, campaign_id)
    assert row["status"] == "pending", row
    assert row["blocker"] == "outside_call_window", row
    assert parse(row["next_eligible_at"]) == local(NEW_YORK, date(2026, 6, 4), 9)


def test_the_oracle_itself() -> None:
    """The oracle's reading of the windows, on instants worked out by hand."""
    assert open_in(NEW_YORK, NINE_TO_SIX, utc(2026, 6, 3, 13))  # 09:00 EDT
    assert not open_in(NEW_YORK, NINE_TO_SIX, utc(2026, 6, 3, 12, 59))
    assert open_in(NEW_YORK, NINE_TO_SIX, utc(2026, 6, 3, 21, 58, 59))  # 17:58:59
    assert not open_in(NEW_YORK, NINE_TO_SIX, utc(2026, 6, 3, 21, 59))  # 17:59, the last minute
    assert open_in(KOLKATA, NINE_TO_SIX, utc(2026, 6, 4, 3, 30))
    assert not open_in(KOLKATA, NINE_TO_SIX, utc(2026, 6, 4, 3))
    assert open_in(ST_JOHNS, NINE_TO_SIX, utc(2026, 6, 3, 11, 30))  # 09:00 NDT (UTC-2:30)
    assert not open_in(ST_JOHNS, NINE_TO_SIX, utc(2026, 6, 3, 11, 29))
    assert not open_in(NEW_YORK, NINE_TO_SIX, utc(2026, 6, 6, 15))  # Saturday
    assert next_opening(KOLKATA, NINE_TO_SIX, utc(2026, 6, 5, 20)) == utc(2026, 6, 8, 3, 30)  # Fri -> Mon
