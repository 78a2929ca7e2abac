"""Dispatch benchmark: dials per second with the simulator at full speed, at 10,000 and 1,000,000 waiting tasks.

A dial is the whole path: claim (limits counted, due tasks taken), caller-ID choice, the attempt row, the
provider request, and the status callbacks (ringing, answered, completed) coming back through ingestion
(signature check, raw receipt, dedupe, attempt and task updates, events). The campaign is set up with bulk
SQL (as ``bench/launch.py`` does) and launched through the service layer, so the tasks are the product's.
Its simulator connections play calls out instantly (``speed`` 100,000, zero ring and talk seconds, every
call answered, so no retries); the windows are always open and the campaign has no concurrency limit. The
schema caps a connection at 1,000 calls per second, so the pool has several connections at that cap.

SQLite runs the engine in one process (``DispatchEngine.run`` with a ``SystemClock``, in a child process
of this script so its peak memory is its own); PostgreSQL runs ``bulkcall worker --concurrency N``
processes. Throughput is counted from the database (attempts ended) over ``--dials`` dials after
``--warmup`` dials. Printed: dials/s, CPU per dial of the engine process(es) and (PostgreSQL) of the
database's server processes, the cost per dial at each size divided by the cost at the smallest (the
baseline, measured in the same run; flat is 1.0), and peak RSS of the engine processes (VmHWM).
``--history N`` first gives the campaign N finished calls (attempts, receipts, events), so the tables a
dial writes to and reads from are that much bigger.

    uv run python bench/dispatch.py [--sizes 10000,1000000] [--backends sqlite,postgresql] [--workers 1,4]
        [--dials 6000] [--concurrency 1000] [--history 0] [--postgres-url URL] [--profile DIR]

PostgreSQL runs when --postgres-url or BULKCALL_TEST_POSTGRES_URL is set. ``--profile DIR`` runs the engine
in-process under cProfile (PostgreSQL: one engine instead of the worker processes) and prints the top costs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    pg_dsn,
    postgres_database,
    postgres_url_from_env,
    seed_contacts_postgres,
    seed_contacts_sqlite,
    sqlite_database,
    sqlite_path,
    timed,
)
from bulkcall.db.engine import Database
from bulkcall.db.types import sqlite_timestamp
from bulkcall.domain.lifecycle import Action
from bulkcall.services import campaigns
from bulkcall.services.context import ServiceContext

STAMP = "2026-11-27 12:00:00.000000"
# The schema's most per connection (src/bulkcall/schemas/telephony.py).
CONNECTION_CALLS_PER_SECOND = 1000
CONNECTION_CONCURRENCY = 10_000
SIMULATOR = {
    "speed": 100_000,
    "ring_seconds": [0, 0],
    "talk_seconds": [0, 0],
    "outcomes": {"answered": 1.0},
}
ALWAYS = {
    day: {"enabled": True, "start": "00:00", "end": "24:00"}
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}
# Attempts ended during the run (ids above the history's; a primary-key range, cheap to poll).
ENDED = "SELECT count(*) FROM call_attempts WHERE id > {skip} AND ended_at IS NOT NULL"
POLL_SECONDS = 0.02


# -- seeding ------------------------------------------------------------------------------------------------


def _setup_statements(connections: int, stamp: str) -> list[str]:
    """Workspace, agent, simulator connections with one caller number each, a list, a draft campaign."""
    config = json.dumps(SIMULATOR)
    windows = json.dumps(ALWAYS)
    statements = [
        f"INSERT INTO workspaces (id, name, concurrency_cap, created_at, updated_at) VALUES (1, 'bench', NULL, "
        f"{stamp}, {stamp})",
        "INSERT INTO agents (id, workspace_id, name, status, runtime, variables, created_at, updated_at) "
        f"VALUES (1, 1, 'agent', 'active', '{{}}', '[]', {stamp}, {stamp})",
        f"INSERT INTO contact_lists (id, workspace_id, name, created_at, updated_at) VALUES (1, 1, 'all', {stamp}, "
        f"{stamp})",
        """INSERT INTO campaigns (id, workspace_id, name, status, agent_id, timezone, timezone_mode, trigger_mode,
            call_windows, max_retries, retry_delay_minutes, retry_delays, retry_on_voicemail, priority,
            prefer_country_match, record_calls, call_variables, metadata, contact_list_id,
            audience_materialized_to, created_at, updated_at)
        """
        f"VALUES (1, 1, 'bench', 'draft', 1, 'UTC', 'callee_local', 'immediate', '{windows}', 2, 60, '{{}}', "
        f"false, 5, true, true, '{{\"offer\": \"spring\"}}', '{{}}', 1, 0, {stamp}, {stamp})",
    ]
    for n in range(1, connections + 1):
        statements += [
            "INSERT INTO telephony_connections (id, workspace_id, name, provider, config, secrets, "
            "concurrency_limit, calls_per_second, signing_secret, created_at, updated_at) "
            f"VALUES ({n}, 1, 'sim{n}', 'simulator', '{config}', '{{}}', {CONNECTION_CONCURRENCY}, "
            f"{CONNECTION_CALLS_PER_SECOND}, 'bench-secret-{n}', {stamp}, {stamp})",
            "INSERT INTO phone_numbers (id, workspace_id, telephony_connection_id, e164, status, spam_flagged, "
            f"country, created_at, updated_at) VALUES ({n}, 1, {n}, '+1415555{n:04d}', 'active', false, 'US', "
            f"{stamp}, {stamp})",
            f"INSERT INTO campaign_phone_numbers (campaign_id, phone_number_id) VALUES (1, {n})",
        ]
    return statements


def seed_sqlite(url: str, tasks: int, connections: int) -> None:
    conn = sqlite3.connect(sqlite_path(url))
    for statement in _setup_statements(connections, f"'{STAMP}'"):
        conn.execute(statement)
    seed_contacts_sqlite(conn, tasks, STAMP)
    conn.commit()
    conn.close()


def seed_postgres(url: str, tasks: int, connections: int) -> None:
    with psycopg.connect(pg_dsn(url)) as conn:
        for statement in _setup_statements(connections, f"'{STAMP}+00'"):
            conn.execute(statement)
        seed_contacts_postgres(conn, tasks, datetime.now(UTC))
        for table in ("workspaces", "agents", "telephony_connections", "phone_numbers", "contact_lists", "contacts"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.execute("SELECT setval(pg_get_serial_sequence('campaigns', 'id'), 1)")


async def launch(url: str) -> None:
    """Create the tasks the product's way: the launch action the API calls, at the real time."""
    database = Database(url)
    try:
        async with database.session(write=True) as session, session.begin():
            ctx = ServiceContext(session=session, workspace_id=1, now=datetime.now(UTC))
            campaign = await campaigns.apply_action(ctx, 1, Action.LAUNCH)
            assert campaign.status == "running", campaign.status
    finally:
        await database.dispose()


# ``--history``: calls the campaign already made, so each dial runs against tables that hold them (attempts,
# receipts, events): the cost of a dial should not grow with the calls before it either.
HISTORY = [
    """UPDATE call_tasks SET status = 'completed', attempts = 1, last_outcome = 'answered',
        attempt_outcomes = 'answered', caller_phone_number_id = 1, sticky_phone_number_id = 1,
        next_eligible_at = NULL, first_called_at = @T, last_called_at = @T,
        completed_at = @T, updated_at = @T WHERE id <= @H""",
    """INSERT INTO call_attempts (workspace_id, campaign_id, task_id, attempt_number, phone_number_id, caller_e164,
        callee_e164, telephony_connection_id, provider, provider_call_id, state, caller_id_reason, worker, queued_at,
        dialed_at, answered_at, ended_at, duration_seconds, outcome, answered_by, cost)
        SELECT 1, 1, id, 1, 1, '+14155550001', phone_e164, 1, 'simulator', 'HIST' || id, 'ended', 'history', 'bench',
            @T, @T, @T, @T, 0, 'answered', 'human', 0 FROM call_tasks WHERE id <= @H ORDER BY id""",
    """INSERT INTO provider_callbacks (workspace_id, provider, telephony_connection_id, dedupe_key, event_type, verdict,
        campaign_id, task_id, attempt_id, payload, received_at)
        SELECT 1, 'simulator', 1, a.provider_call_id || ':' || s.status, s.status, 'applied', 1, a.task_id, a.id, '{}',
            @T FROM call_attempts a CROSS JOIN (SELECT 'ringing' AS status UNION ALL SELECT 'answered'
            UNION ALL SELECT 'completed') s ORDER BY a.id""",
    """INSERT INTO campaign_events (workspace_id, campaign_id, type, data, created_at)
        SELECT 1, 1, e.type, '{}', @T FROM call_attempts a CROSS JOIN (SELECT 'call.completed' AS type
            UNION ALL SELECT 'task.completed') e ORDER BY a.id""",
]


def add_history(url: str, calls: int) -> None:
    """The first ``calls`` tasks were called three hours ago: answered, three receipts and two events each."""
    at = datetime.now(UTC) - timedelta(hours=3)
    if url.startswith("sqlite"):
        lite = sqlite3.connect(sqlite_path(url))
        for statement in HISTORY:
            lite.execute(statement.replace("@T", ":t").replace("@H", ":h"), {"t": sqlite_timestamp(at), "h": calls})
        lite.commit()
        lite.close()
        return
    with psycopg.connect(pg_dsn(url)) as pg:
        for statement in HISTORY:
            pg.execute(statement.replace("@T", "%(t)s").replace("@H", "%(h)s"), {"t": at, "h": calls})


def analyze_postgres(url: str) -> None:
    with psycopg.connect(pg_dsn(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# -- measuring ----------------------------------------------------------------------------------------------


@dataclass
class Window:
    """Ended-attempt counts sampled over time; the throughput is taken between two samples."""

    warmup: int
    dials: int
    samples: list[tuple[float, int]] = field(default_factory=list)

    def add(self, count: int) -> bool:
        """Record a sample; True once the measured window is complete."""
        self.samples.append((time.perf_counter(), count))
        return count >= self.warmup + self.dials

    def span(self) -> tuple[float, int]:
        start = next(s for s in self.samples if s[1] >= self.warmup)
        end = next(s for s in self.samples if s[1] >= self.warmup + self.dials)
        return end[0] - start[0], end[1] - start[1]


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of a live process (VmHWM; Linux reports KiB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_memory() -> None:
    """Start VmHWM again from the current RSS (Linux), so the peak is the engine's, not the imports'."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


@dataclass
class Result:
    seconds: float
    dials: int
    peak_mb: list[float]
    cpu_seconds: float  # of the engine process(es) during the measured window
    check: dict[str, int]
    server_cpu_seconds: float | None = None  # PostgreSQL: of this database's server processes, same window

    @property
    def rate(self) -> float:
        return self.dials / self.seconds


def sanity(fetch: Callable[[str], list[tuple[Any, ...]]]) -> dict[str, int]:
    """What the run did, to show nothing was skipped: attempts by outcome, receipts by verdict."""
    counts: dict[str, int] = {}
    for outcome, count in fetch("SELECT coalesce(outcome, 'open'), count(*) FROM call_attempts GROUP BY 1"):
        counts[f"attempts:{outcome}"] = int(count)
    for verdict, count in fetch("SELECT verdict, count(*) FROM provider_callbacks GROUP BY verdict"):
        counts[f"receipts:{verdict}"] = int(count)
    for kind, count in fetch("SELECT type, count(*) FROM campaign_events GROUP BY type"):
        counts[f"events:{kind}"] = int(count)
    return counts


def _ended_counter(
    url: str, skip: int
) -> tuple[Callable[[], int], Callable[[str], list[tuple[Any, ...]]], Callable[[], None]]:
    ended = ENDED.format(skip=int(skip))
    if url.startswith("sqlite"):
        lite = sqlite3.connect(sqlite_path(url), check_same_thread=False)
        return (
            lambda: int(lite.execute(ended).fetchone()[0]),
            lambda sql: list(lite.execute(sql).fetchall()),
            lite.close,
        )
    pg = psycopg.connect(pg_dsn(url), autocommit=True)

    def pg_count() -> int:
        row = pg.execute(ended).fetchone()
        assert row is not None
        return int(row[0])

    return pg_count, lambda sql: list(pg.execute(sql).fetchall()), pg.close


def engine_in_process(url: str, skip: int, warmup: int, dials: int, batch_size: int, profile: str | None) -> Result:
    """The engine in this process (a child of the bench): ``DispatchEngine.run`` on the real clock."""
    from bulkcall.dispatch.engine import DispatchEngine, EngineConfig
    from bulkcall.kit.clock import SystemClock
    from bulkcall.kit.logging import configure_logging

    configure_logging("WARNING", False)
    count, fetch, close = _ended_counter(url, skip)
    window = Window(warmup, dials)
    profiler = cProfile.Profile() if profile is not None else None
    postgres = url.startswith("postgresql")
    server_at_start: dict[int, float] = {}
    server: list[float] = []

    async def main() -> float:
        database = Database(url)
        engine = DispatchEngine(database, SystemClock(), EngineConfig(batch_size=batch_size))
        stop = asyncio.Event()
        reset_peak_memory()
        runner = asyncio.create_task(engine.run(stop))
        cpu_at_start = 0.0
        try:
            while not window.add(await asyncio.to_thread(count)):
                if cpu_at_start == 0.0 and window.samples[-1][1] >= warmup:
                    cpu_at_start = time.process_time()
                    if postgres:
                        server_at_start.update(await asyncio.to_thread(server_cpu, url))
                    if profiler is not None:
                        profiler.enable()
                await asyncio.sleep(POLL_SECONDS)
            if profiler is not None:
                profiler.disable()
            if postgres:
                server.append(server_cpu_between(server_at_start, await asyncio.to_thread(server_cpu, url)))
            return time.process_time() - cpu_at_start
        finally:
            stop.set()
            await runner
            await database.dispose()

    cpu = asyncio.run(main())
    seconds, measured = window.span()
    check = sanity(fetch)
    close()
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    return Result(seconds, measured, [vm_hwm_mb(os.getpid())], cpu, check, server[0] if server else None)


def _child(url: str, skip: int, warmup: int, dials: int, batch_size: int, profile: str | None, queue: Any) -> None:
    queue.put(asdict(engine_in_process(url, skip, warmup, dials, batch_size, profile)))


def run_in_child(url: str, skip: int, warmup: int, dials: int, batch_size: int, profile: str | None) -> Result:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(url, skip, warmup, dials, batch_size, profile, queue))
    process.start()
    result = Result(**queue.get())
    process.join()
    return result


def server_cpu(url: str) -> dict[int, float]:
    """CPU so far of each PostgreSQL backend connected to this database (the server runs on this machine)."""
    with psycopg.connect(pg_dsn(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    found: dict[int, float] = {}
    for (pid,) in rows:
        with suppress(OSError):
            found[int(pid)] = cpu_seconds(int(pid))
    return found


def server_cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """Backends that connected during the window count from zero; ones that left are missed (pools keep theirs)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def workers(url: str, count: int, skip: int, warmup: int, dials: int, batch_size: int) -> Result:
    """``bulkcall worker`` processes on PostgreSQL; the bench only watches the database."""
    env = {**os.environ, "BULKCALL_DATABASE_URL": url, "BULKCALL_LOG_LEVEL": "WARNING"}
    env.pop("BULKCALL_SIMULATOR_EVENT_LOG", None)
    command = [str(Path(sys.executable).parent / "bulkcall"), "worker", "--concurrency", str(batch_size)]
    processes = [subprocess.Popen(command, env=env) for _ in range(count)]
    ended, fetch, close = _ended_counter(url, skip)
    window = Window(warmup, dials)
    cpu_at_start: list[float] = []
    server_at_start: dict[int, float] = {}
    try:
        while not window.add(ended()):
            if not cpu_at_start and window.samples[-1][1] >= warmup:
                cpu_at_start = [cpu_seconds(p.pid) for p in processes]
                server_at_start = server_cpu(url)
            if any(p.poll() is not None for p in processes):
                raise RuntimeError("a worker exited early")
            time.sleep(POLL_SECONDS)
        cpu = sum(cpu_seconds(p.pid) for p in processes) - sum(cpu_at_start)
        server = server_cpu_between(server_at_start, server_cpu(url))
        peaks = [vm_hwm_mb(p.pid) for p in processes]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    seconds, measured = window.span()
    check = sanity(fetch)
    close()
    return Result(seconds, measured, peaks, cpu, check, server)


def print_profile(label: str, path: str) -> None:
    """The top costs of the engine's own thread (SQLite's work in aiosqlite's thread shows as waiting)."""
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.sort_stats("tottime").print_stats(30)
    text = out.getvalue()
    Path(path).with_suffix(".txt").write_text(text)
    print(f"[{label}] profile in {path} (top costs in {Path(path).with_suffix('.txt')}):")
    print("\n".join(text.splitlines()[:45]), flush=True)


# -- the runs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    backend: str
    size: int
    workers: int
    history: int = 0

    @property
    def label(self) -> str:
        earlier = f" after {self.history:,} calls" if self.history else ""
        if self.backend == "sqlite":
            return f"sqlite, 1 process, {self.size:,} tasks{earlier}"
        return f"postgresql, {self.workers} worker{'s' if self.workers > 1 else ''}, {self.size:,} tasks{earlier}"


@contextmanager
def database_for(backend: str, postgres_url: str | None) -> Iterator[str]:
    if backend == "sqlite":
        with sqlite_database() as url:
            yield url
    else:
        assert postgres_url is not None
        with postgres_database(postgres_url) as url:
            yield url


def run(setup: Setup, args: argparse.Namespace) -> Result:
    warmup = min(args.warmup, setup.size // 10)
    dials = min(args.dials, setup.size - warmup - setup.size // 20)
    with database_for(setup.backend, args.postgres_url) as url:
        with timed() as seeding:
            if setup.backend == "sqlite":
                seed_sqlite(url, setup.size + args.history, args.connections)
            else:
                seed_postgres(url, setup.size + args.history, args.connections)
            asyncio.run(launch(url))
            if args.history:
                add_history(url, args.history)
            if setup.backend == "postgresql":
                analyze_postgres(url)
        print(f"[{setup.label}] seeded and launched in {seeding[0]:.1f} s; dialing ...", flush=True)
        profile = None
        if args.profile is not None:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            profile = str(Path(args.profile) / f"{setup.backend}-{setup.size}.prof")
        if setup.backend == "sqlite" or profile is not None:
            result = run_in_child(url, args.history, warmup, dials, args.concurrency, profile)
        else:
            result = workers(url, setup.workers, args.history, warmup, dials, args.concurrency)
    server = ""
    if result.server_cpu_seconds is not None:
        server = f", database server CPU {1000 * result.server_cpu_seconds / result.dials:.2f} ms/dial"
    print(
        f"[{setup.label}] {result.dials:,} dials in {result.seconds:.2f} s = {result.rate:,.0f} dials/s; "
        f"engine CPU {1000 * result.cpu_seconds / result.dials:.2f} ms/dial{server}; "
        f"peak RSS {' + '.join(f'{mb:.0f}' for mb in result.peak_mb)} MB",
        flush=True,
    )
    print(f"[{setup.label}] after stopping: {result.check}", flush=True)
    if profile is not None:
        print_profile(setup.label, profile)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000", help="waiting tasks per run, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,4", help="PostgreSQL worker processes per run, comma-separated")
    parser.add_argument(
        "--dials", type=int, default=6000, help="dials measured (capped below the size, answered calls never retry)"
    )
    parser.add_argument("--warmup", type=int, default=1000, help="dials before the measurement starts")
    parser.add_argument("--concurrency", type=int, default=1000, help="most calls one round starts (per worker)")
    parser.add_argument("--connections", type=int, default=8, help="simulator connections (1,000 calls/s each)")
    parser.add_argument(
        "--history", type=int, default=0, help="calls already made before the run (extra tasks, already completed)"
    )
    parser.add_argument("--postgres-url", default=postgres_url_from_env())
    parser.add_argument("--profile", help="directory for cProfile reports (runs the engine in-process)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    backends = [name for name in args.backends.split(",") if name == "sqlite" or args.postgres_url]
    worker_counts = [int(count) for count in args.workers.split(",")]
    if args.profile is not None:
        worker_counts = [1]
    print(f"load average at start: {os.getloadavg()[0]:.2f}; nproc {os.cpu_count()}", flush=True)
    results: dict[Setup, Result] = {}
    for backend in backends:
        for count in worker_counts if backend == "postgresql" else [1]:
            for size in sizes:
                setup = Setup(backend, size, count, args.history)
                results[setup] = run(setup, args)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("\nsummary (cost per dial at each size / at the smallest size; flat = 1.0):")
    smallest = min(sizes)
    for setup, result in results.items():
        base = results.get(Setup(setup.backend, smallest, setup.workers, setup.history))
        ratio = f"{base.rate / result.rate:.2f}" if base is not None else "-"
        print(
            f"  {setup.label:<44} {result.rate:>8,.0f} dials/s   cost ratio {ratio:>5}   "
            f"peak RSS {sum(result.peak_mb):.0f} MB"
        )


if __name__ == "__main__":
    main()
