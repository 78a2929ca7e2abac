"""``bulkcall demo``: a whole campaign, end to end, on a fresh SQLite file and the simulator, in about a minute.

Everything goes through the real pieces: the HTTP API (in process, over ASGI) creates the agent, a simulator
connection with caller IDs in three countries, the contacts (a CSV import), the do-not-call entries and the
campaign; the dispatch engine dials it on a fast service clock (:class:`~bulkcall.kit.clock.ScaledClock`,
``--rate`` service seconds per wall second) and the simulator's calls last as long in service time as they
would on a real network. The clock starts on a Monday at 00:00 UTC, so calling windows open zone after
zone (Auckland and Tokyo first, Honolulu last) while the run is watched live; retries wait their delay, opt-outs added
after the launch are caught right before dialing, and the run ends with a summary and a results CSV.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import math
import random
import shlex
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from sqlalchemy import and_, case, func, select

from bulkcall.app import create_app
from bulkcall.db.engine import Database
from bulkcall.db.migrate import upgrade
from bulkcall.db.models import CallAttempt, CallTask, Campaign
from bulkcall.dispatch.engine import DispatchEngine, EngineConfig
from bulkcall.domain.phones import InvalidPhone, normalize
from bulkcall.domain.schedule import calendar_for
from bulkcall.kit.clock import ScaledClock
from bulkcall.providers.simulator.config import SimulatorConfig
from bulkcall.services.workspaces import create_key
from bulkcall.settings import Settings

DEMO_WORKSPACE = "bulkcall-demo"
DEFAULT_DATABASE = Path("bulkcall-demo.db")
DEFAULT_RESULTS = Path("bulkcall-demo-results.csv")
DEFAULT_CONTACTS = 2000
MIN_CONTACTS = 50  # enough for every slice of the audience (zones, unreadable numbers, opt-outs) to be there
MAX_CONTACTS = 10_000  # the fictional number ranges the audience is drawn from run out beyond this
# Service seconds per wall second: the campaign spans about one simulated day, so a minute of wall time.
DEFAULT_RATE = 1500.0
CAMPAIGN_TIMEZONE = "America/New_York"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
CALL_WINDOWS: dict[str, dict[str, object]] = {
    day: {"enabled": True, "start": "09:00", "end": "18:00"} for day in WEEKDAYS
}
MAX_RETRIES = 2
RETRY_DELAY_MINUTES = 45
RETRY_DELAYS = {"busy": 10, "no_answer": 60}
# A run that has not completed after this much service time is reported as stuck (exit 1).
SERVICE_TIME_LIMIT = timedelta(days=4)
REFRESH_SECONDS = 0.25
PLAIN_LOG_SECONDS = 2.0
TERMINAL = ("completed", "failed", "skipped", "cancelled")
IN_FLIGHT = ("queued", "placing_call", "calling")
WAITING = ("pending", "retry_pending")
# Caller IDs: two per country, on one simulated carrier.
CALLER_IDS = ("+14155552671", "+12125550143", "+442079460123", "+441614960456", "+919876543210", "+919812345678")

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Priya", "Arjun", "Mei", "Kenji", "Sofia", "Liam", "Olivia", "Noah", "Aisha",
    "Mateo", "Chloe", "Ravi", "Hannah", "Omar", "Yuki", "Lucas", "Isla", "Ananya", "Ethan", "Zara", "Leo",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Sharma", "Patel", "Chen", "Tanaka", "Rossi", "Murphy", "Smith", "Khan",
    "Garcia", "Martin", "Singh", "Brown", "Wilson", "Sato", "Silva", "Taylor", "Nguyen", "Iyer", "Cohen",
)  # fmt: skip
PLANS = ("basic", "plus", "pro")
# Phones that cannot be dialed: each becomes a task skipped as ``invalid_number`` (kept, not dropped).
INVALID_PHONES = ("+1 (212) 555-01", "+44 20 7946", "+91 12345 6789", "0800-FLOWERS", "+999 123 456", "n/a")


@dataclass(frozen=True)
class Profile:
    """A slice of the audience: numbers drawn from ``prefixes`` (+ ``digits`` random digits), maybe an explicit
    zone on the contact (which wins over the zone(s) the number implies)."""

    prefixes: tuple[str, ...]
    digits: int
    weight: float
    timezone: str | None = None


# Fictional ranges where they exist (NANP 555, Ofcom drama numbers, ACMA's), so no real line is ever listed.
PROFILES: tuple[Profile, ...] = (
    # The zone comes from the number.
    Profile(("+1212555", "+1646555", "+1718555"), 4, 12),  # New York
    Profile(("+1312555", "+1773555"), 4, 7),  # Chicago
    Profile(("+1303555",), 4, 4),  # Denver
    Profile(("+1415555", "+1213555", "+1310555"), 4, 9),  # Los Angeles
    Profile(("+1808555",), 4, 2),  # Honolulu
    Profile(("+1907555",), 4, 2),  # Alaska: two zones (Adak, Anchorage), dialed only when both are open
    Profile(("+1416555", "+1647555"), 4, 5),  # Toronto
    Profile(("+1604555",), 4, 3),  # Vancouver
    Profile(("+1709555",), 4, 2),  # Newfoundland numbers: Halifax and St John's
    Profile(("+442079460", "+441134960", "+441614960"), 3, 10),  # London, Leeds, Manchester
    Profile(("+9198", "+9197", "+9199"), 8, 12),  # India (Asia/Kolkata, +05:30)
    Profile(("+6125550",), 4, 4),  # Sydney
    Profile(("+61491570",), 3, 1),  # Australian mobiles: eight zones, from Christmas Island to Lord Howe
    Profile(("+8131",), 7, 4),  # Tokyo
    # The zone is given on the contact.
    Profile(("+1709555",), 4, 3, "America/St_Johns"),  # -03:30
    Profile(("+1408555",), 4, 3, "Asia/Kolkata"),  # a Californian number, its owner in India
    Profile(("+442079460", "+441614960"), 3, 3, "Europe/Berlin"),
    Profile(("+9198",), 8, 2, "Asia/Dubai"),
    Profile(("+1305555",), 4, 2, "America/Sao_Paulo"),
    Profile(("+6125550",), 4, 1, "Pacific/Auckland"),
)
# Zones whose windows open last: opt-outs of these contacts, added after the launch, are caught before dialing.
LATE_PREFIXES = ("+1415555", "+1213555", "+1310555", "+1808555", "+1907555", "+1604555")


@dataclass(frozen=True)
class DemoOptions:
    database: Path = DEFAULT_DATABASE
    contacts: int = DEFAULT_CONTACTS
    rate: float = DEFAULT_RATE
    seed: int = 7
    live: bool = True
    results: Path = DEFAULT_RESULTS


class DemoRefused(Exception):
    """The demo will not run as asked (e.g. the database path holds something that is not a demo database)."""


# -- the audience -------------------------------------------------------------------------------------------


@dataclass
class Audience:
    rows: list[dict[str, str]]  # CSV rows for the contact import
    invalid_phones: list[str]  # inline audience rows whose phone cannot be read
    dnc: list[str]  # on the do-not-call list before the launch
    late_opt_outs: list[str]  # added to the list after the launch, before their window opens

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.invalid_phones)


def _shares(total: int, weights: list[float]) -> list[int]:
    """``total`` split by ``weights`` (largest remainder), so the parts add up exactly."""
    exact = [total * weight / sum(weights) for weight in weights]
    parts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda index: exact[index] - parts[index], reverse=True)
    for index in by_remainder[: total - sum(parts)]:
        parts[index] += 1
    return parts


def make_audience(total: int, rng: random.Random) -> Audience:
    invalid_count = max(1, round(total * 0.02))
    valid_count = total - invalid_count
    used: set[str] = set()
    rows: list[dict[str, str]] = []
    for profile, count in zip(PROFILES, _shares(valid_count, [p.weight for p in PROFILES]), strict=True):
        for _ in range(count):
            phone = _fresh_number(profile, rng, used)
            rows.append(
                {
                    "phone": phone,
                    "first_name": rng.choice(FIRST_NAMES),
                    "last_name": rng.choice(LAST_NAMES),
                    "timezone": profile.timezone or "",
                    "cf:plan": rng.choice(PLANS),
                }
            )
    rng.shuffle(rows)
    invalid = [f"{rng.choice(INVALID_PHONES)} #{index}" for index in range(invalid_count)]
    phones = [row["phone"] for row in rows]
    dnc = rng.sample(phones, max(1, round(valid_count * 0.02)))
    blocked = set(dnc)
    late = [row["phone"] for row in rows if row["phone"].startswith(LATE_PREFIXES) and not row["timezone"]]
    late = [phone for phone in late if phone not in blocked]
    late_opt_outs = rng.sample(late, min(len(late), max(1, round(valid_count * 0.005))))
    return Audience(rows=rows, invalid_phones=invalid, dnc=dnc, late_opt_outs=late_opt_outs)


def _fresh_number(profile: Profile, rng: random.Random, used: set[str]) -> str:
    for _ in range(10_000):
        candidate = rng.choice(profile.prefixes) + "".join(rng.choice("0123456789") for _ in range(profile.digits))
        if candidate in used:
            continue
        try:
            phone = normalize(candidate)
        except InvalidPhone:
            continue
        used.add(phone.e164)
        return phone.e164
    raise DemoRefused(f"ran out of demo numbers under {profile.prefixes}; ask for fewer contacts")


def contacts_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["phone", "first_name", "last_name", "timezone", "cf:plan"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def concurrency_for(contacts: int) -> int:
    """Simultaneous calls on the simulated carrier: enough to finish in about a simulated day, few enough that
    the limit binds when windows open (and the display shows the campaign working against it)."""
    return max(4, round(contacts / 100))


def coming_monday(today: datetime) -> datetime:
    """00:00 UTC of the next Monday after ``today`` (a week ahead when today is a Monday)."""
    days = (7 - today.weekday()) % 7 or 7
    return datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=days)


# -- the database file --------------------------------------------------------------------------------------


def fresh_database(path: Path) -> str:
    """Remove a previous demo database at ``path`` (never anything else) and migrate a new one."""
    if path.exists():
        if not _is_demo_database(path):
            raise DemoRefused(
                f"{path} exists and is not a bulkcall demo database; remove it yourself or pass another --database"
            )
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def _is_demo_database(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            names = {row[0] for row in connection.execute("SELECT name FROM workspaces")}
    except sqlite3.Error:
        return False
    return names <= {DEMO_WORKSPACE}


# -- progress -----------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    now: datetime
    status: str
    by_zone: dict[str, Counter[str]]  # zone key -> task status -> count
    reached: Counter[str]  # zone key -> tasks whose last call was answered
    dialed: int
    answered: int
    in_flight: int

    def statuses(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_zone.values():
            total.update(counts)
        return total


async def read_snapshot(database: Database, campaign_id: int, now: datetime) -> Snapshot:
    """Three small reads: the campaign's status, its tasks grouped by zone and status, its attempts' counts."""
    async with database.session(write=False) as session:
        status = (await session.execute(select(Campaign.status).where(Campaign.id == campaign_id))).scalar_one()
        grouped = await session.execute(
            select(
                CallTask.timezones,
                CallTask.status,
                func.count(),
                func.count(case((CallTask.last_outcome == "answered", 1))),
            )
            .where(CallTask.campaign_id == campaign_id)
            .group_by(CallTask.timezones, CallTask.status)
        )
        by_zone: dict[str, Counter[str]] = defaultdict(Counter)
        reached: Counter[str] = Counter()
        for zone_key, task_status, count, answered_tasks in grouped:
            by_zone[zone_key or ""][task_status] += int(count)
            reached[zone_key or ""] += int(answered_tasks)
        dialed, answered, in_flight = (
            await session.execute(
                select(
                    func.count(CallAttempt.dialed_at),
                    func.count(case((CallAttempt.outcome == "answered", 1))),
                    func.count(case((and_(CallAttempt.dialed_at.is_not(None), CallAttempt.ended_at.is_(None)), 1))),
                ).where(CallAttempt.campaign_id == campaign_id)
            )
        ).one()
    return Snapshot(now, str(status), dict(by_zone), reached, int(dialed), int(answered), int(in_flight))


@dataclass
class Watch:
    """What the display needs besides the snapshot: the campaign's windows, limits and the run's start."""

    campaign_id: int
    campaign_name: str
    rate: float
    concurrency: int
    wall_start: float
    service_start: datetime

    def window(self, zone_key: str, now: datetime) -> tuple[bool, str]:
        """Whether the zone key's window is open at ``now``, and when it closes or opens next (local time)."""
        calendar = calendar_for(
            zone_key or None,
            windows=CALL_WINDOWS,
            mode="callee_local",
            campaign_timezone=CAMPAIGN_TIMEZONE,
            ends_at=None,
        )
        if calendar is None:
            return False, "never: unknown zone"
        local = ZoneInfo((zone_key or CAMPAIGN_TIMEZONE).split("|")[0])
        until = calendar.open_until(now)
        if until is not None:
            return True, f"open to {until.astimezone(local):%H:%M}"
        opens = calendar.next_eligible(now).at
        return False, f"opens {opens.astimezone(local):%a %H:%M}" if opens is not None else "closed"


def zone_label(zone_key: str) -> str:
    """``America/Halifax, St_Johns``; ``Australia/Adelaide +7`` for a long list."""
    zones = zone_key.split("|") if zone_key else [CAMPAIGN_TIMEZONE]
    if len(zones) == 1:
        return zones[0]
    if len(zones) == 2:
        return f"{zones[0]}, {zones[1].rsplit('/', 1)[-1]}"
    return f"{zones[0]} +{len(zones) - 1}"


def utc_offset(zone_key: str, now: datetime) -> timedelta:
    first = (zone_key or CAMPAIGN_TIMEZONE).split("|")[0]
    return now.astimezone(ZoneInfo(first)).utcoffset() or timedelta(0)


@dataclass(frozen=True)
class Tally:
    total: int
    done: int
    reached: int
    waiting_window: int
    retry_pending: int
    ready: int
    calling: int

    @property
    def waiting(self) -> int:
        return self.waiting_window + self.retry_pending + self.ready


@dataclass(frozen=True)
class ZoneRow:
    zone_key: str
    is_open: bool
    window: str
    tally: Tally


def tally(watch: Watch, snapshot: Snapshot) -> tuple[Tally, list[ZoneRow]]:
    """Totals, and per zone key (east to west): its window now, and its tasks by what they wait for."""
    zones: list[ZoneRow] = []
    for zone_key, counts in snapshot.by_zone.items():
        is_open, window = watch.window(zone_key, snapshot.now)
        waiting = sum(counts[s] for s in WAITING)
        counted = Tally(
            total=sum(counts.values()),
            done=sum(counts[s] for s in TERMINAL),
            reached=snapshot.reached[zone_key],
            waiting_window=0 if is_open else waiting,
            retry_pending=counts["retry_pending"] if is_open else 0,
            ready=counts["pending"] if is_open else 0,
            calling=sum(counts[s] for s in IN_FLIGHT),
        )
        zones.append(ZoneRow(zone_key, is_open, window, counted))
    zones.sort(key=lambda row: (-utc_offset(row.zone_key, snapshot.now), row.zone_key))
    tallies = [row.tally for row in zones]
    total = Tally(
        total=sum(t.total for t in tallies),
        done=sum(t.done for t in tallies),
        reached=sum(t.reached for t in tallies),
        waiting_window=sum(t.waiting_window for t in tallies),
        retry_pending=sum(t.retry_pending for t in tallies),
        ready=sum(t.ready for t in tallies),
        calling=sum(t.calling for t in tallies),
    )
    return total, zones


def render_live(watch: Watch, snapshot: Snapshot, width: int = 120) -> RenderableType:
    total, zones = tally(watch, snapshot)
    statuses = snapshot.statuses()
    wall = time.monotonic() - watch.wall_start
    header = Text.assemble(
        ("bulkcall demo", "bold"),
        f"  campaign #{watch.campaign_id} {watch.campaign_name!r} ",
        (snapshot.status, "bold green" if snapshot.status == "completed" else "bold cyan"),
        "\nservice clock ",
        (snapshot.now.strftime("%a %d %b %H:%M UTC"), "bold"),
        f"  (×{watch.rate:g}: simulated {_duration(snapshot.now - watch.service_start)} in {wall:.0f} s of wall time)",
    )
    counters = Table.grid(padding=(0, 3))
    for _ in range(4):
        counters.add_column(justify="left")
    counters.add_row(
        f"dialed [bold]{snapshot.dialed}[/]",
        f"answered [bold]{snapshot.answered}[/]",
        f"in flight [bold]{snapshot.in_flight}[/] / {watch.concurrency}",
        f"waiting for a window [bold]{total.waiting_window}[/]",
    )
    counters.add_row(
        f"retry pending [bold]{total.retry_pending}[/]",
        f"due now [bold]{total.ready}[/]",
        f"completed [bold green]{statuses['completed']}[/]",
        f"failed [bold red]{statuses['failed']}[/]  skipped [bold yellow]{statuses['skipped']}[/]",
    )
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(total.total, 1), completed=total.done, width=50),
        f"{total.done}/{total.total} tasks done",
    )
    # A narrow terminal drops the local-time column (the window column says when it opens) and ellipsizes zones.
    wide = width >= 96
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 1), collapse_padding=True)
    table.add_column("time zone", no_wrap=True, overflow="ellipsis", max_width=26 if wide else 20)
    if wide:
        table.add_column("local", no_wrap=True)
    table.add_column("window", no_wrap=True)
    for name in ("tasks", "done", "reached", "calling", "waiting"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    for row in zones:
        first = (row.zone_key or CAMPAIGN_TIMEZONE).split("|")[0]
        local = [snapshot.now.astimezone(ZoneInfo(first)).strftime("%a %H:%M")] if wide else []
        table.add_row(
            zone_label(row.zone_key),
            *local,
            f"[green]{row.window}[/]" if row.is_open else f"[dim]{row.window}[/]",
            str(row.tally.total),
            str(row.tally.done),
            str(row.tally.reached),
            str(row.tally.calling),
            str(row.tally.waiting),
        )
    return Group(header, counters, bar, Text("by time zone, east to west", style="bold"), table)


def plain_line(watch: Watch, snapshot: Snapshot) -> str:
    total, zones = tally(watch, snapshot)
    statuses = snapshot.statuses()
    open_zones = sum(1 for row in zones if row.is_open)
    return (
        f"[wall {time.monotonic() - watch.wall_start:5.1f} s] {snapshot.now:%a %H:%M} UTC {snapshot.status}: "
        f"dialed {snapshot.dialed}, answered {snapshot.answered}, in flight {snapshot.in_flight}, "
        f"waiting for a window {total.waiting_window}, retry pending {total.retry_pending}, due now {total.ready}, "
        f"completed {statuses['completed']}, failed {statuses['failed']}, skipped {statuses['skipped']}; "
        f"{total.done}/{total.total} done; windows open in {open_zones} of {len(zones)} zones"
    )


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days} d {hours} h {minutes:02d} min" if days else f"{hours} h {minutes:02d} min"


# -- the run ------------------------------------------------------------------------------------------------


def plain(console: Console, line: str) -> None:
    """A line as it is: no markup, no highlighting, never wrapped (logs and pipes keep it whole)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def data(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()["data"]


@dataclass
class Setup:
    campaign: dict[str, Any]
    numbers: dict[int, str]  # caller id -> E.164
    connection_id: int
    concurrency: int
    audience: Audience
    api_key: str


async def set_up(api: httpx.AsyncClient, options: DemoOptions, api_key: str, say: Callable[[str], None]) -> Setup:
    rng = random.Random(options.seed)
    audience = make_audience(options.contacts, rng)
    concurrency = concurrency_for(options.contacts)
    agent = data(await api.post("/agents", json={"name": "Ava (renewals agent)", "variables": ["first_name"]}), 201)
    connection = data(
        await api.post(
            "/telephony_connections",
            json={
                "name": "Simulated carrier",
                "provider": "simulator",
                "concurrency_limit": concurrency,
                # Per service second; each dispatch round may start up to this many calls on the connection.
                "calls_per_second": max(25, concurrency),
                # speed = the clock's rate: a simulated 60 s call lasts 60 service seconds.
                "config": {"seed": options.seed, "speed": options.rate, "callback_faults": {"duplicate": 0.02}},
            },
        ),
        201,
    )
    numbers = {}
    for e164 in CALLER_IDS:
        number = data(
            await api.post("/phone_numbers", json={"e164": e164, "telephony_connection_id": connection["id"]}), 201
        )
        numbers[int(number["id"])] = str(number["e164"])
    say(
        f"agent #{agent['id']}, simulator connection #{connection['id']} (limit {concurrency} calls), "
        "caller IDs in US, GB, IN"
    )

    contact_list = data(await api.post("/contact_lists", json={"name": "Renewals due"}), 201)
    started = time.monotonic()
    queued = data(
        await api.post(
            "/contacts/import",
            files={"file": ("contacts.csv", contacts_csv(audience.rows), "text/csv")},
            data={"contact_list_id": str(contact_list["id"])},
        ),
        202,
    )
    job = queued
    while job["status"] in ("queued", "running"):
        await asyncio.sleep(0.05)
        job = data(await api.get(f"/contact_imports/{queued['id']}"))
    if job["status"] != "completed" or job["created"] != len(audience.rows):
        raise RuntimeError(f"the contact import did not complete as expected: {job}")
    say(
        f"imported {job['created']} contacts from CSV in {time.monotonic() - started:.1f} s "
        f"(list #{contact_list['id']})"
    )

    for phone in audience.dnc:
        data(await api.post("/dnc", json={"phone_e164": phone, "reason": "asked not to be called"}), 201)
    say(f"{len(audience.dnc)} of them on the do-not-call list")

    campaign = data(
        await api.post(
            "/bulk_call_campaigns",
            json={
                "name": "Renewal reminders",
                "agent_id": agent["id"],
                "timezone": CAMPAIGN_TIMEZONE,
                "timezone_mode": "callee_local",
                "call_windows": CALL_WINDOWS,
                "campaign_phone_number_ids": list(numbers),
                "contact_list_id": contact_list["id"],
                # Rows typed in by hand with phones that cannot be dialed: kept, and skipped at launch.
                "contacts": [{"phone_e164": phone, "first_name": "Unreadable"} for phone in audience.invalid_phones],
                "max_retries": MAX_RETRIES,
                "retry_delay_minutes": RETRY_DELAY_MINUTES,
                "retry_delays": RETRY_DELAYS,
                "prefer_country_match": True,
                "call_variables": {"offer": "10% off when renewing this week"},
            },
        ),
        201,
    )
    return Setup(campaign, numbers, int(connection["id"]), concurrency, audience, api_key)


async def run_demo(options: DemoOptions, console: Console) -> int:
    if not MIN_CONTACTS <= options.contacts <= MAX_CONTACTS:
        raise DemoRefused(f"--contacts must be between {MIN_CONTACTS} and {MAX_CONTACTS}")
    database_path = options.database.resolve()
    results_path = options.results.resolve()

    def say(line: str) -> None:
        plain(console, line)

    url = fresh_database(database_path)
    say(f"database: {database_path} (a fresh SQLite file, recreated on every run)")
    monday = coming_monday(datetime.now(UTC))
    clock = ScaledClock(monday, rate=1.0)  # real speed while the data is created
    settings = Settings(database_url=url)
    database = Database(url)
    app = create_app(settings, database=database, clock=clock, background_loops=False)
    try:
        async with app.router.lifespan_context(app):
            async with database.session(write=True) as session, session.begin():
                _, api_key = await create_key(session, DEMO_WORKSPACE, None, clock.now(), "demo")
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://demo/api/v1",
                headers={"X-Api-Key": api_key},
                timeout=60,
            ) as api:
                setup = await set_up(api, options, api_key, say)
                return await _dial(
                    api, app.state, database, clock, options, setup, console, results_path, database_path
                )
    finally:
        await database.dispose()


async def _dial(
    api: httpx.AsyncClient,
    state: Any,
    database: Database,
    clock: ScaledClock,
    options: DemoOptions,
    setup: Setup,
    console: Console,
    results_path: Path,
    database_path: Path,
) -> int:
    campaign_id = int(setup.campaign["id"])
    engine = DispatchEngine(
        database,
        clock,
        EngineConfig(batch_size=50, poll_seconds=0.05, result_timeout=timedelta(hours=2)),
    )
    state.ingestion = engine.ingestion  # HTTP callbacks, if any, take the engine's path
    stop = asyncio.Event()
    await preflight(api, campaign_id, console)
    clock.set_rate(options.rate)
    service_start = clock.now()
    wall_start = time.monotonic()
    engine_task = asyncio.create_task(engine.run(stop), name="demo_engine")
    try:
        launched = data(await api.post(f"/bulk_call_campaigns/{campaign_id}/launch"))
        counts = launched["counts"]
        plain(
            console,
            f"launched campaign #{campaign_id} at {clock.now():%a %d %b %H:%M} UTC with {launched['total_contacts']} "
            f"tasks ({counts.get('skipped', 0)} skipped at launch: do-not-call and unreadable numbers); "
            f"service clock ×{options.rate:g}, a simulated call lasts as long in service time as a real one",
        )
        for phone in setup.audience.late_opt_outs:
            data(await api.post("/dnc", json={"phone_e164": phone, "reason": "opted out after launch"}), 201)
        plain(
            console,
            f"{len(setup.audience.late_opt_outs)} more contacts opted out after the launch, before their window opened",
        )
        watch = Watch(
            campaign_id, str(setup.campaign["name"]), options.rate, setup.concurrency, wall_start, service_start
        )
        finished = await _watch(database, clock, watch, options.live, console, engine_task)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(engine_task, 30)
    wall = time.monotonic() - wall_start
    campaign = data(await api.get(f"/bulk_call_campaigns/{campaign_id}"))
    tasks = await _all_tasks(api, campaign_id)
    write_results(results_path, tasks, setup.numbers)
    attempts = await _attempt_totals(database, campaign_id)
    summary = summarize(
        campaign, tasks, attempts, wall, service_start, clock.now(), options.rate, set(setup.audience.late_opt_outs)
    )
    plain(console, summary)
    plain(console, f"database: {database_path}")
    plain(console, f"results:  {results_path}")
    plain(
        console,
        f"explore it: BULKCALL_DATABASE_URL={shlex.quote(f'sqlite:///{database_path}')} uv run bulkcall serve, "
        f"then curl -H 'X-Api-Key: {setup.api_key}' http://127.0.0.1:8000/api/v1/bulk_call_campaigns/{campaign_id}",
    )
    if not finished:
        plain(console, f"error: the campaign did not complete within {SERVICE_TIME_LIMIT.days} simulated days")
        return 1
    return 0


def simulator_inputs() -> tuple[float, float]:
    """The simulator's default network as preview inputs: seconds an attempt holds a line (ring and talk
    averaged over its outcomes), and the share of attempts that end the task without a retry."""
    config = SimulatorConfig()
    mix = config.outcomes
    ring = sum(config.ring_seconds) / 2
    talk = sum(config.talk_seconds) / 2
    handle = (mix.answered + mix.voicemail) * (ring + talk) + mix.no_answer * ring
    return handle, mix.answered + mix.voicemail  # the demo does not retry voicemail


async def preflight(api: httpx.AsyncClient, campaign_id: int, console: Console) -> None:
    """Step 2 of the walkthrough before the launch: the capacity preview and the audience's time zones."""
    handle, answer_rate = simulator_inputs()
    capacity = data(
        await api.get(
            f"/bulk_call_campaigns/{campaign_id}/capacity_preview",
            params={"avg_call_seconds": f"{handle:.1f}", "expected_answer_rate": f"{answer_rate:.2f}"},
        )
    )
    zones = data(await api.get(f"/bulk_call_campaigns/{campaign_id}/audience_timezone_analysis"))
    completion = capacity["estimated_completion_at"]
    ends = f"{datetime.fromisoformat(completion.replace('Z', '+00:00')):%a %d %b %H:%M} UTC" if completion else "never"
    lines = [
        "preflight (capacity preview):",
        f"  {capacity['effective_concurrency']} lines (bound by {capacity['binding_limit']}; pool "
        f"{capacity['pool_capacity']}, {capacity['calls_per_second']:g} calls/s); {capacity['calls_per_hour']:g} "
        f"calls an hour at {capacity['avg_call_seconds']:g} s a call",
        f"  {capacity['contacts']} contacts, {capacity['expected_calls']:g} calls expected "
        f"(at most {capacity['max_possible_calls']}); {capacity['weekly_callable_hours']:g} callable hours a week "
        f"per contact; estimated {capacity['estimated_duration_hours']} h, done {ends}",
    ]
    lines += [f"  warning: {warning['message']}" for warning in capacity["warnings"]]
    busiest = ", ".join(
        f"{row['timezone']} {row['contacts']} (opens {_opens(row['next_window_opens_at'])})"
        for row in zones["timezones"][:4]
    )
    lines += [
        "preflight (audience time zones):",
        f"  {zones['total']} contacts in {len(zones['timezones'])} zone keys and {len(zones['countries'])} countries; "
        f"{zones['callable_now']} callable now; {zones['invalid']} invalid, {zones['ambiguous']} on numbers "
        f"spanning several zones, {zones['fallback']} in the campaign's zone for want of one",
        f"  largest: {busiest}",
    ]
    lines += [f"  warning: {warning['message']}" for warning in zones["warnings"]]
    for line in lines:
        plain(console, line)


def _opens(value: str | None) -> str:
    if value is None:
        return "not within two weeks"
    return f"{datetime.fromisoformat(value.replace('Z', '+00:00')):%a %H:%M} UTC"


async def _watch(
    database: Database,
    clock: ScaledClock,
    watch: Watch,
    live: bool,
    console: Console,
    engine_task: asyncio.Task[None],
) -> bool:
    """Show progress until the campaign completes (True), or it gives up (False)."""
    deadline = watch.service_start + SERVICE_TIME_LIMIT

    async def snapshots() -> AsyncIterator[Snapshot]:
        while True:
            snapshot = await read_snapshot(database, watch.campaign_id, clock.now())
            yield snapshot
            if snapshot.status in ("completed", "cancelled") or snapshot.now > deadline or engine_task.done():
                return
            await asyncio.sleep(REFRESH_SECONDS)

    last: Snapshot | None = None
    if live and console.is_terminal:  # redirected output gets the plain lines
        with Live(console=console, refresh_per_second=4, transient=False) as display:
            async for snapshot in snapshots():
                display.update(render_live(watch, snapshot, console.width))
                last = snapshot
    else:
        logged = 0.0
        async for snapshot in snapshots():
            last = snapshot
            if time.monotonic() - logged >= PLAIN_LOG_SECONDS or snapshot.status == "completed":
                logged = time.monotonic()
                plain(console, plain_line(watch, snapshot))
    return last is not None and last.status == "completed"


async def _all_tasks(api: httpx.AsyncClient, campaign_id: int) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await api.get(f"/bulk_call_campaigns/{campaign_id}/tasks", params={"page": page, "per_page": 100})
        tasks.extend(data(response))
        if page >= int(response.json()["meta"]["pages"]):
            return tasks
        page += 1


@dataclass(frozen=True)
class AttemptTotals:
    by_outcome: dict[str, int]
    talk_seconds: float
    cost: float

    @property
    def calls(self) -> int:
        return sum(self.by_outcome.values())


async def _attempt_totals(database: Database, campaign_id: int) -> AttemptTotals:
    async with database.session(write=False) as session:
        rows = await session.execute(
            select(
                CallAttempt.outcome, func.count(), func.sum(CallAttempt.duration_seconds), func.sum(CallAttempt.cost)
            )
            .where(CallAttempt.campaign_id == campaign_id, CallAttempt.dialed_at.is_not(None))
            .group_by(CallAttempt.outcome)
        )
        by_outcome: dict[str, int] = {}
        talk = 0.0
        cost = 0.0
        for outcome, count, seconds, spent in rows:
            by_outcome[outcome or "in flight"] = int(count)
            talk += float(seconds or 0)
            cost += float(spent or 0)
    return AttemptTotals(by_outcome, talk, cost)


RESULT_COLUMNS = (
    "task_id",
    "phone_e164",
    "timezones",
    "timezone_source",
    "status",
    "skip_reason",
    "attempts",
    "last_outcome",
    "caller_phone_number_id",
    "caller_e164",
    "first_called_at",
    "last_called_at",
    "talk_seconds",
    "cost",
)


def result_rows(tasks: list[dict[str, Any]], numbers: dict[int, str]) -> Iterator[dict[str, Any]]:
    for task in tasks:
        caller = task["caller_phone_number_id"]
        yield {
            "task_id": task["id"],
            "phone_e164": task["phone_e164"] or "",
            "timezones": "|".join(task["timezones"]),
            "timezone_source": task["timezone_source"] or "",
            "status": task["status"],
            "skip_reason": task["skip_reason"] or "",
            "attempts": task["attempts"],
            "last_outcome": task["last_outcome"] or "",
            "caller_phone_number_id": caller or "",
            "caller_e164": numbers.get(caller, "") if caller else "",
            "first_called_at": task["first_called_at"] or "",
            "last_called_at": task["last_called_at"] or "",
            "talk_seconds": round(float(task["talk_seconds"]), 1),
            "cost": task["cost"],
        }


def write_results(path: Path, tasks: list[dict[str, Any]], numbers: dict[int, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(result_rows(tasks, numbers))


def summarize(
    campaign: dict[str, Any],
    tasks: list[dict[str, Any]],
    attempts: AttemptTotals,
    wall_seconds: float,
    service_start: datetime,
    service_now: datetime,
    rate: float,
    late_opt_outs: set[str],
) -> str:
    statuses = Counter(task["status"] for task in tasks)
    caught = sum(1 for task in tasks if task["skip_reason"] == "dnc" and task["phone_e164"] in late_opt_outs)
    skipped = Counter(task["skip_reason"] for task in tasks if task["status"] == "skipped")
    last_outcomes = Counter(task["last_outcome"] for task in tasks if task["last_outcome"])
    zones = {"|".join(task["timezones"]) for task in tasks}
    reached = sum(1 for task in tasks if task["last_outcome"] == "answered")
    called = sum(1 for task in tasks if task["attempts"])
    ended = (
        datetime.fromisoformat(str(campaign["completed_at"]).replace("Z", "+00:00"))
        if campaign.get("completed_at")
        else service_now
    )

    def listing(counter: Counter[str]) -> str:
        return ", ".join(f"{name} {count}" for name, count in counter.most_common()) or "none"

    answered = attempts.by_outcome.get("answered", 0)
    lines = [
        "",
        f"campaign #{campaign['id']} {campaign['name']!r}: {campaign['status']}",
        f"  wall time {wall_seconds:.1f} s; simulated {_duration(ended - service_start)} "
        f"({service_start:%a %d %b %H:%M} → {ended:%a %d %b %H:%M} UTC, clock ×{rate:g})",
        f"  tasks {len(tasks)}: {listing(statuses)}",
        f"  skipped by reason: {listing(skipped)}; of the {len(late_opt_outs)} opt-outs added after the launch, "
        f"{caught} were skipped right before dialing",
        f"  calls {attempts.calls}: {listing(Counter(attempts.by_outcome))}",
        f"  answer rate {answered / max(attempts.calls, 1):.1%} of calls; "
        f"{reached} of {called} contacts called were reached ({reached / max(called, 1):.1%}); "
        f"{attempts.calls / max(called, 1):.2f} calls per contact called",
        f"  last outcome per task: {listing(last_outcomes)}",
        f"  talk time {_duration(timedelta(seconds=attempts.talk_seconds))}; cost {attempts.cost:.2f}",
        f"  {len(zones)} time-zone keys, e.g. {', '.join(sorted(zones)[:4])}",
    ]
    return "\n".join(lines)


def main(options: DemoOptions) -> int:
    """Entry point of ``bulkcall demo``; returns the exit code."""
    from bulkcall.kit.logging import configure_logging

    # The engine's routine info lines would tear through the live display; warnings still show.
    configure_logging("WARNING")
    console = Console(highlight=False)
    try:
        return asyncio.run(run_demo(options, console))
    except DemoRefused as exc:
        plain(console, f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        plain(console, f"interrupted; the database is at {options.database.resolve()}")
        return 130
