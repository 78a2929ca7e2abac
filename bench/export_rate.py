"""Results export benchmark: rows/s and peak memory of ``GET /{id}/results_export`` on a big dialed campaign.

Seeds N contacts, launches a campaign over them (``bench/launch.py``'s seeding), then marks it dialed with
set-based SQL: every dialable task gets one attempt, every other one a second (about 1.5 N attempts), some
with extracted data. The export is read through ``services.exports.results_chunks`` (what the endpoint
streams) and compared with a bare ``SELECT`` of the same tasks joined with their contacts written with the
``csv`` module, in the same run.

    uv run python bench/export_rate.py [--tasks 1000000] [--postgres URL] [--format csv|jsonl] [--range]

PostgreSQL runs too when --postgres or BULKCALL_TEST_POSTGRES_URL is set. ``measure_results_export`` is the
reusable part (``bench/insight.py`` can call it on its own seeded campaign).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import resource
import sqlite3
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, pg_dsn, postgres_database, postgres_url_from_env, sqlite_database, sqlite_path
from bulkcall.db.engine import Database
from bulkcall.services import exports
from bulkcall.services.context import ServiceContext
from launch import NOW, launch, seed_postgres, seed_sqlite

# Attempt 1 for every dialed task (answered when the id is odd), attempt 2 for even ids (answered, with data);
# the tasks then get what ``dispatch.outcomes`` keeps on them (outcomes in attempt order, latest data).
_ATTEMPTS = """
INSERT INTO call_attempts (workspace_id, campaign_id, task_id, attempt_number, phone_number_id, caller_e164,
    callee_e164, telephony_connection_id, provider, provider_call_id, state, caller_id_reason, queued_at,
    dialed_at, ended_at, duration_seconds, outcome, cost, extracted_data)
SELECT 1, 1, t.id, {number}, 1, '+14155550100', t.phone_e164, 1, 'simulator', 'SIM' || t.id || '-{number}',
    'ended', 'bench', {at}, {at}, {at}, {talk}, {outcome}, 0.0125, {data}
FROM call_tasks t WHERE t.campaign_id = 1 AND t.status = 'pending' {extra}
"""
_TASKS_DONE = """
UPDATE call_tasks SET
    status = 'completed',
    attempts = CASE WHEN id % 2 = 0 THEN 2 ELSE 1 END,
    last_outcome = 'answered', caller_phone_number_id = 1,
    first_called_at = {first}, last_called_at = CASE WHEN id % 2 = 0 THEN {second} ELSE {first} END,
    talk_seconds = 42.5, cost = CASE WHEN id % 2 = 0 THEN 0.025 ELSE 0.0125 END,
    attempt_outcomes = CASE WHEN id % 2 = 0 THEN 'no_answer|answered' ELSE 'answered' END,
    extracted_data = CASE WHEN id % 2 = 0 THEN {data} END,
    blocker = NULL, next_eligible_at = NULL, completed_at = {second}
WHERE campaign_id = 1 AND status = 'pending'
"""


def _dial_statements(first: str, second: str, data: str) -> list[str]:
    odd_answers = "CASE WHEN t.id % 2 = 1 THEN 'answered' ELSE 'no_answer' END"
    odd_talk = "CASE WHEN t.id % 2 = 1 THEN 42.5 ELSE 0 END"
    return [
        _ATTEMPTS.format(number=1, at=first, talk=odd_talk, outcome=odd_answers, data="NULL", extra=""),
        _ATTEMPTS.format(number=2, at=second, talk="42.5", outcome="'answered'", data=data, extra="AND t.id % 2 = 0"),
        _TASKS_DONE.format(first=first, second=second, data=data),
    ]


def dial_sqlite(url: str) -> None:
    conn = sqlite3.connect(sqlite_path(url))
    for statement in _dial_statements(
        "'2026-11-27 13:00:00.000000'", "'2026-11-28 13:00:00.000000'", """'{"interested": true, "tier": "gold"}'"""
    ):
        conn.execute(statement)
    conn.execute("UPDATE campaigns SET status = 'completed' WHERE id = 1")
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def dial_postgres(url: str) -> None:
    with psycopg.connect(pg_dsn(url)) as conn:
        for statement in _dial_statements(
            "'2026-11-27 13:00:00+00'::timestamptz",
            "'2026-11-28 13:00:00+00'::timestamptz",
            """'{"interested": true, "tier": "gold"}'::jsonb""",
        ):
            conn.execute(statement)
        conn.execute("UPDATE campaigns SET status = 'completed' WHERE id = 1")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


async def measure_results_export(
    url: str,
    campaign_id: int,
    *,
    workspace_id: int = 1,
    fmt: exports.ExportFormat = exports.ExportFormat.CSV,
    date_from: date | None = None,
    date_to: date | None = None,
) -> dict[str, Any]:
    """Stream one results export to nowhere: ``rows``, ``seconds``, ``cpu_seconds`` (this process: SQLite's work
    included, PostgreSQL's server not), ``worker_cpu_seconds`` and ``worker_peak_rss_mb`` (SQLite's export
    worker process; 0 when none ran), ``rows_per_second``, ``megabytes``,
    ``peak_rss_mb`` (this process's high-water mark, so measure in a fresh process for a clean figure)."""
    database = Database(url)
    try:
        async with database.session(write=False) as session:
            ctx = ServiceContext(session=session, workspace_id=workspace_id, now=NOW)
            export = await exports.prepare_results_export(ctx, campaign_id, fmt, None, None, date_from, date_to)
        lines = 0
        size = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        worker_peak = 0.0
        async for chunk in exports.results_chunks(database, workspace_id, export):
            lines += chunk.count(b"\n")
            size += len(chunk)
            worker_peak = max(worker_peak, children_peak_rss_mb())
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        await database.dispose()
    rows = lines - (1 if fmt is exports.ExportFormat.CSV else 0)
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rows_per_second": rows / seconds if seconds else 0.0,
        "megabytes": size / 1e6,
        "peak_rss_mb": peak_rss_mb(),
        "worker_cpu_seconds": (children.ru_utime + children.ru_stime)
        - (children_before.ru_utime + children_before.ru_stime),
        "worker_peak_rss_mb": worker_peak,
    }


def children_peak_rss_mb() -> float:
    """The largest ``VmHWM`` among this process's children now (the export worker). Not ``RUSAGE_CHILDREN``:
    a child's figure there includes this process's memory it shared until its ``exec``."""
    peak = 0.0
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue  # ended meanwhile
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
    return peak


_BARE = (
    "SELECT t.id, t.contact_id, t.phone_e164, c.first_name, c.last_name, c.email, c.company, c.country, "
    "c.timezone, c.custom_fields, t.status, t.skip_reason, t.attempts, t.last_outcome, t.caller_phone_number_id, "
    "t.first_called_at, t.last_called_at, t.talk_seconds, t.cost "
    "FROM call_tasks t LEFT JOIN contacts c ON c.id = t.contact_id WHERE t.campaign_id = 1 ORDER BY t.id"
)


def bare_select(url: str, postgres: bool) -> tuple[int, float]:
    """The same tasks (and contacts) by a bare SELECT written with ``csv``: (rows, seconds)."""
    started = time.perf_counter()
    rows = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if postgres:
        with psycopg.connect(pg_dsn(url)) as pg, pg.cursor(name="bare") as server_cursor:
            server_cursor.execute(_BARE)
            while batch := server_cursor.fetchmany(2000):
                writer.writerows(batch)
                rows += len(batch)
                buffer.seek(0)
                buffer.truncate()
    else:
        lite = sqlite3.connect(sqlite_path(url))
        cursor = lite.execute(_BARE)
        while batch := cursor.fetchmany(2000):
            writer.writerows(batch)
            rows += len(batch)
            buffer.seek(0)
            buffer.truncate()
        lite.close()
    return rows, time.perf_counter() - started


def run(
    label: str, url: str, contacts: int, postgres: bool, fmt: exports.ExportFormat, ranged: bool, repeat: int
) -> None:
    print(f"[{label}] seeding {contacts:,} contacts, launching, dialing ...", flush=True)
    (seed_postgres if postgres else seed_sqlite)(url, contacts)
    asyncio.run(launch(url))
    (dial_postgres if postgres else dial_sqlite)(url)
    rss_before = peak_rss_mb()
    window = (date(2026, 11, 27), date(2026, 11, 28)) if ranged else (None, None)
    # Export and baseline alternate ``repeat`` times and the best of each counts: on a shared machine a single
    # pair mostly measures what else was running.
    figures: dict[str, Any] = {}
    base = float("inf")
    for _ in range(repeat):
        attempt = asyncio.run(measure_results_export(url, 1, fmt=fmt, date_from=window[0], date_to=window[1]))
        if not figures or attempt["seconds"] < figures["seconds"]:
            figures = attempt
        rows, seconds = bare_select(url, postgres)
        base = min(base, seconds)
    print(
        f"[{label}] results_export ({fmt.value}{', from/to' if ranged else ''}): {figures['rows']:,} rows in "
        f"{figures['seconds']:.2f} s ({figures['rows_per_second']:,.0f} rows/s, {figures['megabytes']:.0f} MB, "
        f"process CPU {figures['cpu_seconds']:.2f} s); "
        f"bare SELECT + csv of {rows:,} rows {base:.2f} s ({rows / base:,.0f} rows/s); "
        f"ratio {figures['seconds'] / base:.1f}x; peak RSS {figures['peak_rss_mb']:.0f} MB "
        f"(before the export: {rss_before:.0f} MB)"
        + (
            f"; export worker process: CPU {figures['worker_cpu_seconds']:.2f} s, peak RSS "
            f"{figures['worker_peak_rss_mb']:.0f} MB"
            if figures["worker_cpu_seconds"]
            else ""
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--contacts", type=int, help="contacts to seed (tasks: 1%% more, the duplicate entries)")
    sizes.add_argument("--tasks", type=int, help="about this many tasks (contacts = tasks / 1.01)")
    parser.add_argument("--postgres", default=postgres_url_from_env())
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--format", default="csv", choices=[f.value for f in exports.ExportFormat])
    parser.add_argument("--range", action="store_true", help="export with from/to (the range covers every call)")
    parser.add_argument("--repeat", type=int, default=3, help="alternate export and baseline; best of each")
    args = parser.parse_args()
    fmt = exports.ExportFormat(args.format)
    contacts = args.contacts or (round(args.tasks / 1.01) if args.tasks else 200_000)
    if not args.no_sqlite:
        with sqlite_database() as url:
            run("sqlite", url, contacts, False, fmt, args.range, args.repeat)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            run("postgresql", url, contacts, True, fmt, args.range, args.repeat)


if __name__ == "__main__":
    main()
