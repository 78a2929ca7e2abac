"""Helpers for the multi-worker tests: real ``bulkcall worker`` processes, the simulator's event log, and one
function that checks a finished run against dialing.md from the network's own point of view.

The simulator appends a ``start`` line when a call's request reaches it and an ``end`` line when the call
hangs up (also when its status callback goes missing), each with the instant and the worker's pid. Nothing
here trusts the engine's bookkeeping: limits, windows and duplicates are judged from those lines, with the
database consulted only for what the network cannot know (limits configured, a call whose worker died).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bulkcall.db.engine import Database
from bulkcall.db.models import (
    CallAttempt,
    CallTask,
    Campaign,
    CampaignEvent,
    CampaignPhoneNumber,
    PhoneNumber,
    ProviderCallback,
    TelephonyConnection,
    Workspace,
)

TERMINAL = frozenset({"completed", "failed", "skipped", "cancelled"})
# Log lines that mean a worker hit an error it did not expect.
WORKER_ERROR_MARKERS = ("Traceback", "dispatch_round_failed", "ingest_failed", "release_claims_failed")


# -- worker processes ----------------------------------------------------------------------------------------


@dataclass
class Worker:
    number: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def engine_name(self) -> str:
        """The name the engine stamps on this worker's claims (``EngineConfig.worker_name``)."""
        return f"{socket.gethostname()}:{self.pid}"


@dataclass
class WorkerFleet:
    """``bulkcall worker`` processes sharing one database and one simulator event log; stdout and stderr of
    each go to its own file, so a failing test can print what every worker said."""

    directory: Path
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)
    killed: list[Worker] = field(default_factory=list)

    def start(self) -> Worker:
        number = len(self.workers) + 1
        log_path = self.directory / f"worker-{number}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bulkcall", "worker"],
                env={**os.environ, **self.env},
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(number, process, log_path)
        self.workers.append(worker)
        return worker

    def kill(self, worker: Worker) -> None:
        """SIGKILL: no shutdown code runs, unsent claims and calls in flight are simply abandoned."""
        os.kill(worker.pid, signal.SIGKILL)
        worker.process.wait(timeout=10)
        self.killed.append(worker)

    def assert_running(self) -> None:
        for worker in self.workers:
            if worker not in self.killed and worker.process.poll() is not None:
                raise AssertionError(f"worker {worker.number} exited with {worker.process.returncode}\n{self.logs()}")

    def stop_all(self) -> None:
        """Stop every process this fleet started (SIGTERM, then SIGKILL after a grace period)."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.terminate()
        for worker in self.workers:
            try:
                worker.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()

    def logs(self) -> str:
        parts = []
        for worker in self.workers:
            state = "killed" if worker in self.killed else f"exit {worker.process.poll()}"
            text = worker.log_path.read_text(errors="replace") if worker.log_path.exists() else ""
            parts.append(f"----- worker {worker.number} (pid {worker.pid}, {state}) -----\n{text}")
        return "\n".join(parts)

    def errors(self) -> list[str]:
        """Log lines of any worker that show an unexpected error."""
        found = []
        for worker in self.workers:
            for line in worker.log_path.read_text(errors="replace").splitlines():
                if any(marker in line for marker in WORKER_ERROR_MARKERS):
                    found.append(f"worker {worker.number}: {line}")
        return found


# -- what the network saw --------------------------------------------------------------------------------------


@dataclass
class SimulatedCall:
    """One call as the simulator saw it: its ``start`` line, and its ``end`` line if the worker lived."""

    attempt_id: int
    task_id: int
    campaign_id: int
    attempt_number: int
    connection_id: int
    to: str
    pid: int
    started_at: datetime
    ended_at: datetime | None = None


def read_event_log(path: Path) -> tuple[list[SimulatedCall], list[dict[str, Any]]]:
    """Every ``start`` line as a call (in file order, duplicates kept), with its ``end`` attached; and the
    ``end`` lines that match no start (which a correct simulator never writes)."""
    calls: list[SimulatedCall] = []
    by_attempt: dict[int, SimulatedCall] = {}
    orphans: list[dict[str, Any]] = []
    if not path.exists():
        return calls, orphans
    for raw in path.read_text().splitlines():
        line = json.loads(raw)
        at = datetime.fromisoformat(line["at"]).astimezone(UTC)
        if line["event"] == "start":
            call = SimulatedCall(
                attempt_id=int(line["attempt_id"]),
                task_id=int(line["task_id"]),
                campaign_id=int(line["campaign_id"]),
                attempt_number=int(line["attempt_number"]),
                connection_id=int(line["telephony_connection_id"]),
                to=str(line["to"]),
                pid=int(line["pid"]),
                started_at=at,
            )
            calls.append(call)
            by_attempt.setdefault(call.attempt_id, call)
        elif line["event"] == "end":
            started = by_attempt.get(int(line["attempt_id"]))
            if started is None or started.ended_at is not None:
                orphans.append(line)
            else:
                started.ended_at = at
    return calls, orphans


# -- what the database says ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    campaign: dict[int, int]  # effective: concurrency_limit clamped to the pool's capacity
    connection: dict[int, int]
    calls_per_second: dict[int, float]
    workspace: int | None


@dataclass
class DatabaseFacts:
    limits: Limits
    campaign_status: dict[int, str]
    max_retries: dict[int, int]
    attempts: dict[int, CallAttempt]
    tasks: dict[int, CallTask]
    call_completed_events: Counter[int]
    duplicate_callbacks: int


async def read_database(database: Database, campaign_ids: list[int]) -> DatabaseFacts:
    async with database.session(write=False) as session:
        campaigns = {
            c.id: c for c in (await session.execute(select(Campaign).where(Campaign.id.in_(campaign_ids)))).scalars()
        }
        pool_rows = await session.execute(
            select(CampaignPhoneNumber.campaign_id, TelephonyConnection)
            .join(PhoneNumber, PhoneNumber.id == CampaignPhoneNumber.phone_number_id)
            .join(TelephonyConnection, TelephonyConnection.id == PhoneNumber.telephony_connection_id)
            .where(CampaignPhoneNumber.campaign_id.in_(campaign_ids))
        )
        pools: dict[int, dict[int, TelephonyConnection]] = defaultdict(dict)
        for campaign_id, connection in pool_rows:
            pools[int(campaign_id)][connection.id] = connection
        workspace_ids = {c.workspace_id for c in campaigns.values()}
        assert len(workspace_ids) == 1, "the checks assume one workspace"
        cap = (await session.execute(select(Workspace.concurrency_cap).where(Workspace.id.in_(workspace_ids)))).scalar()
        attempts = {
            a.id: a
            for a in (
                await session.execute(select(CallAttempt).where(CallAttempt.campaign_id.in_(campaign_ids)))
            ).scalars()
        }
        tasks = {
            t.id: t
            for t in (await session.execute(select(CallTask).where(CallTask.campaign_id.in_(campaign_ids)))).scalars()
        }
        events = await session.execute(
            select(CampaignEvent.data).where(
                CampaignEvent.campaign_id.in_(campaign_ids), CampaignEvent.type == "call.completed"
            )
        )
        completed_events: Counter[int] = Counter(int(data["attempt_id"]) for (data,) in events)
        duplicates = (
            await session.execute(
                select(func.count()).where(
                    ProviderCallback.campaign_id.in_(campaign_ids), ProviderCallback.verdict == "duplicate"
                )
            )
        ).scalar_one()
    connections = {cid: conn for pool in pools.values() for cid, conn in pool.items()}
    campaign_limits = {}
    for campaign_id, campaign in campaigns.items():
        capacity = sum(conn.concurrency_limit for conn in pools[campaign_id].values())
        limit = campaign.concurrency_limit
        campaign_limits[campaign_id] = capacity if limit is None else min(limit, capacity)
    return DatabaseFacts(
        limits=Limits(
            campaign=campaign_limits,
            connection={cid: conn.concurrency_limit for cid, conn in connections.items()},
            calls_per_second={cid: conn.calls_per_second for cid, conn in connections.items()},
            workspace=None if cap is None else int(cap),
        ),
        campaign_status={cid: c.status for cid, c in campaigns.items()},
        max_retries={cid: c.max_retries for cid, c in campaigns.items()},
        attempts=attempts,
        tasks=tasks,
        call_completed_events=completed_events,
        duplicate_callbacks=int(duplicates),
    )


# -- the oracle for windows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyWindow:
    """The same local window every day, ``start``..``end`` minutes of the day (``end`` < ``start`` crosses
    midnight). Judged independently of the engine: wall clock read with zoneinfo, last minute excluded."""

    start_minute: int
    end_minute: int  # 1..1440

    def as_call_windows(self) -> dict[str, dict[str, Any]]:
        def hhmm(minute: int) -> str:
            return f"{minute // 60:02d}:{minute % 60:02d}"

        spec = {"enabled": True, "start": hhmm(self.start_minute), "end": hhmm(self.end_minute)}
        return {day: dict(spec) for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

    def allows(self, instant: datetime, zone: str) -> bool:
        """Whether a call may start at ``instant`` for a callee in ``zone`` (not in the window's last minute)."""
        local = instant.astimezone(ZoneInfo(zone))
        minute_of_day = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        length = (self.end_minute - self.start_minute) % 1440 or 1440
        into = (minute_of_day - self.start_minute) % 1440
        return into < length - 1


# -- the checks ----------------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    calls: int
    peaks: dict[str, int]
    busiest_second: dict[int, int]
    tasks_by_calls: dict[int, int]  # how many tasks had 0, 1, 2... calls
    unknown_attempts: int
    duplicate_callbacks: int
    outcomes: dict[str, int]

    def __str__(self) -> str:
        return (
            f"calls={self.calls} peaks={self.peaks} busiest_second={self.busiest_second} "
            f"tasks_by_calls={self.tasks_by_calls} unknown={self.unknown_attempts} "
            f"duplicate_callbacks={self.duplicate_callbacks} outcomes={self.outcomes}"
        )


def peak_overlap(intervals: Iterable[tuple[datetime, datetime]]) -> tuple[int, datetime | None]:
    """Most intervals [start, end) open at one instant, and the first instant it happened."""
    points: list[tuple[datetime, int]] = []
    for start, end in intervals:
        points.append((start, 1))
        points.append((end, -1))
    points.sort(key=lambda point: (point[0], point[1]))  # at a tie an end frees its slot before a start takes it
    peak, current, when = 0, 0, None
    for instant, delta in points:
        current += delta
        if current > peak:
            peak, when = current, instant
    return peak, when


def busiest_second(starts: list[datetime]) -> tuple[int, datetime | None]:
    """Most starts inside any half-open one-second window [t, t + 1 s)."""
    ordered = sorted(starts)
    best, when = 0, None
    for index, instant in enumerate(ordered):
        inside = bisect_left(ordered, instant + timedelta(seconds=1)) - index
        if inside > best:
            best, when = inside, instant
    return best, when


def check_run(
    calls: list[SimulatedCall],
    orphan_ends: list[dict[str, Any]],
    facts: DatabaseFacts,
    window: DailyWindow,
    zone_of_phone: dict[str, str],
    killed_workers: frozenset[str] = frozenset(),
) -> RunSummary:
    """Every invariant a finished multi-worker run must satisfy; raises AssertionError listing what broke.

    ``killed_workers`` (engine worker names, ``host:pid``) may leave attempts with no ``start`` line: killed
    after the attempt was marked dialing, before its request left. Such an attempt may have been sent as far
    as the engine knows, so it must end ``unknown`` and stay its task's last attempt, like any cut-off call.
    """
    problems: list[str] = []

    def fail(message: str) -> None:
        if len(problems) < 40:
            problems.append(message)

    # No duplicate dial: one start per attempt id, whatever process sent it.
    per_attempt = Counter(call.attempt_id for call in calls)
    for attempt_id, count in per_attempt.items():
        if count > 1:
            pids = sorted({c.pid for c in calls if c.attempt_id == attempt_id})
            fail(f"attempt {attempt_id} was dialed {count} times (pids {pids})")
    if orphan_ends:
        fail(f"{len(orphan_ends)} end lines match no start, e.g. {orphan_ends[0]}")

    # Agreement with the database: one row per call, the same task, number, connection and phone.
    unsent = {attempt_id for attempt_id in facts.attempts if attempt_id not in per_attempt}
    for attempt_id in sorted(unsent):
        unsent_row = facts.attempts[attempt_id]
        if unsent_row.worker not in killed_workers or unsent_row.outcome != "unknown":
            fail(f"attempt {attempt_id} ({unsent_row.worker}, {unsent_row.outcome}) never reached the network")
    for call in calls:
        row = facts.attempts.get(call.attempt_id)
        if row is None:
            fail(f"attempt {call.attempt_id} reached the network but has no row")
            continue
        seen = (call.task_id, call.attempt_number, call.connection_id, call.to)
        stored = (row.task_id, row.attempt_number, row.telephony_connection_id, row.callee_e164)
        if seen != stored:
            fail(f"attempt {call.attempt_id}: the network saw {seen}, the database has {stored}")
        task = facts.tasks.get(call.task_id)
        if task is not None and task.phone_e164 != call.to:
            fail(f"attempt {call.attempt_id} dialed {call.to}, its task's phone is {task.phone_e164}")
    for attempt_id, row in facts.attempts.items():
        if row.ended_at is None or row.state != "ended":
            fail(f"attempt {attempt_id} never ended (state {row.state})")
        if facts.call_completed_events[attempt_id] != 1:
            fail(f"attempt {attempt_id} has {facts.call_completed_events[attempt_id]} call.completed events")

    def call_end(call: SimulatedCall) -> datetime:
        if call.ended_at is not None:
            return call.ended_at
        row = facts.attempts.get(call.attempt_id)  # its worker died: the slot is held until the database ends it
        if row is None or row.ended_at is None:
            return datetime.max.replace(tzinfo=UTC)
        return row.ended_at

    # Per task: one call at a time, attempt numbers 1..n, within the budget, nothing after an unknown.
    by_task: dict[int, list[SimulatedCall]] = defaultdict(list)
    for call in calls:
        by_task[call.task_id].append(call)
    rows_by_task: dict[int, list[CallAttempt]] = defaultdict(list)
    for row in facts.attempts.values():
        rows_by_task[row.task_id].append(row)
    for task_id, task in facts.tasks.items():
        mine = sorted(by_task.get(task_id, []), key=lambda c: c.started_at)
        rows = rows_by_task.get(task_id, [])
        numbers = sorted(c.attempt_number for c in mine)
        if numbers != list(range(1, len(mine) + 1)):
            fail(f"task {task_id}: attempt numbers {numbers}")
        for earlier, later in pairwise(mine):
            if call_end(earlier) > later.started_at:
                fail(f"task {task_id}: attempt {later.attempt_id} started while {earlier.attempt_id} was in flight")
        budget = 1 + facts.max_retries[task.campaign_id]
        if len(mine) > budget:
            fail(f"task {task_id}: {len(mine)} calls, budget {budget}")
        cut_off = sum(1 for row in rows if row.id in unsent)
        if task.attempts != len(mine) + cut_off:
            fail(f"task {task_id}: attempts={task.attempts}, the network saw {len(mine)} calls (+{cut_off} unsent)")
        if task.status not in TERMINAL:
            fail(f"task {task_id} ended the run {task.status}")
        last = max((row.attempt_number for row in rows), default=0)
        for row in rows:
            if row.outcome == "unknown" and row.attempt_number != last:
                fail(f"task {task_id}: redialed after attempt {row.attempt_number} ended unknown")
        zone = zone_of_phone.get(task.phone_e164 or "")
        for call in mine:
            if zone is None or not window.allows(call.started_at, zone):
                local = call.started_at.astimezone(ZoneInfo(zone)) if zone else None
                fail(f"attempt {call.attempt_id} started at {call.started_at} = {local} local ({zone}), off window")

    # Limits at every instant, swept over the calls' start and end instants.
    peaks: dict[str, int] = {}

    def check_peak(label: str, group: list[SimulatedCall], limit: int | None) -> None:
        peak, when = peak_overlap((c.started_at, call_end(c)) for c in group)
        peaks[label] = peak
        if limit is not None and peak > limit:
            fail(f"{label}: {peak} calls at once at {when}, limit {limit}")

    for campaign_id, limit in facts.limits.campaign.items():
        check_peak(f"campaign {campaign_id}", [c for c in calls if c.campaign_id == campaign_id], limit)
    for connection_id, limit in facts.limits.connection.items():
        check_peak(f"connection {connection_id}", [c for c in calls if c.connection_id == connection_id], limit)
    check_peak("workspace", calls, facts.limits.workspace)
    busiest: dict[int, int] = {}
    for connection_id, cps in facts.limits.calls_per_second.items():
        allowed = max(1, int(cps + 1e-9)) if cps >= 1 else 1
        count, when = busiest_second([c.started_at for c in calls if c.connection_id == connection_id])
        busiest[connection_id] = count
        if count > allowed:
            fail(f"connection {connection_id}: {count} dials in the second from {when}, limit {allowed} per second")

    for campaign_id, status in facts.campaign_status.items():
        if status != "completed":
            fail(f"campaign {campaign_id} is {status}")

    if problems:
        raise AssertionError("dialing invariants broken:\n  " + "\n  ".join(problems))
    outcome_counts = Counter(str(row.outcome) for row in facts.attempts.values())
    return RunSummary(
        calls=len(calls),
        peaks=peaks,
        busiest_second=busiest,
        tasks_by_calls=dict(sorted(Counter(len(by_task.get(task_id, [])) for task_id in facts.tasks).items())),
        unknown_attempts=outcome_counts.get("unknown", 0),
        duplicate_callbacks=facts.duplicate_callbacks,
        outcomes=dict(outcome_counts),
    )
