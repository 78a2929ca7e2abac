"""Launch benchmark: a campaign over N contacts (1% on the DNC list, 1% duplicate audience entries).

Launch creates every task with one INSERT ... SELECT. Printed: launch seconds, tasks/s, peak memory, and
the ratio against a bare INSERT ... SELECT of the same number of rows measured in the same run; on PostgreSQL
also the CPU time of the server backend that ran each (when the server runs on this machine) and the WAL the
launch wrote, and the load average, since wall time on a shared machine mostly measures what else runs.

    uv run python bench/launch.py [--contacts 1000000] [--postgres URL] [--backends sqlite,postgresql]

PostgreSQL runs too when --postgres or BULKCALL_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    peak_rss_mb,
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
from bulkcall.domain.lifecycle import Action
from bulkcall.services import campaigns
from bulkcall.services.context import ServiceContext

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
STAMP = "2026-11-27 12:00:00.000000"

# One workspace, an agent, a connection, a number, a list with every contact, a draft campaign over the
# list, 1% of the contacts on the DNC list and 1% of them also added as explicit entries (duplicates).
SETUP_SQLITE = """
INSERT INTO workspaces (id, name, concurrency_cap, created_at, updated_at) VALUES (1, 'bench', NULL, :t, :t);
INSERT INTO agents (id, workspace_id, name, status, runtime, variables, created_at, updated_at)
    VALUES (1, 1, 'agent', 'active', '{}', '[]', :t, :t);
INSERT INTO telephony_connections (id, workspace_id, name, provider, config, secrets, concurrency_limit,
    calls_per_second, signing_secret, created_at, updated_at)
    VALUES (1, 1, 'sim', 'simulator', '{}', '{}', 50, 10, 'bench', :t, :t);
INSERT INTO phone_numbers (id, workspace_id, telephony_connection_id, e164, status, spam_flagged, country,
    created_at, updated_at) VALUES (1, 1, 1, '+14155550100', 'active', false, 'US', :t, :t);
INSERT INTO contact_lists (id, workspace_id, name, created_at, updated_at) VALUES (1, 1, 'all', :t, :t);
"""


def seed_sqlite(url: str, contacts: int) -> None:
    conn = sqlite3.connect(sqlite_path(url))
    conn.executescript(SETUP_SQLITE.replace(":t", f"'{STAMP}'"))
    seed_contacts_sqlite(conn, contacts, STAMP)
    conn.execute(
        "INSERT INTO dnc_entries (workspace_id, phone_e164, reason, created_at) "
        "SELECT 1, phone_e164, 'bench', ? FROM contacts WHERE id % 100 = 7",
        (STAMP,),
    )
    conn.execute(_campaign_sql(), (STAMP, STAMP))
    conn.execute("INSERT INTO campaign_phone_numbers (campaign_id, phone_number_id) VALUES (1, 1)")
    conn.execute(
        "INSERT INTO campaign_audience (campaign_id, contact_id) SELECT 1, id FROM contacts WHERE id % 100 = 3"
    )
    conn.commit()
    conn.close()


def seed_postgres(url: str, contacts: int) -> None:
    with psycopg.connect(pg_dsn(url)) as conn:
        for statement in SETUP_SQLITE.replace(":t", f"'{STAMP}+00'").split(";"):
            if statement.strip():
                conn.execute(statement)
        seed_contacts_postgres(conn, contacts, NOW)
        conn.execute(
            "INSERT INTO dnc_entries (workspace_id, phone_e164, reason, created_at) "
            "SELECT 1, phone_e164, 'bench', %s FROM contacts WHERE id %% 100 = 7",
            (NOW,),
        )
        conn.execute(_campaign_sql().replace("?", "%s"), (NOW, NOW))
        conn.execute("INSERT INTO campaign_phone_numbers (campaign_id, phone_number_id) VALUES (1, 1)")
        conn.execute(
            "INSERT INTO campaign_audience (campaign_id, contact_id) SELECT 1, id FROM contacts WHERE id % 100 = 3"
        )
        for table in (
            "workspaces",
            "agents",
            "telephony_connections",
            "phone_numbers",
            "contact_lists",
            "contacts",
            "campaigns",
        ):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.execute("ANALYZE")


def _campaign_sql() -> str:
    return """
        INSERT INTO campaigns (id, workspace_id, name, status, agent_id, timezone, timezone_mode, trigger_mode,
            call_windows, max_retries, retry_delay_minutes, retry_delays, retry_on_voicemail, priority,
            prefer_country_match, record_calls, call_variables, metadata, contact_list_id,
            audience_materialized_to, created_at, updated_at)
        VALUES (1, 1, 'bench', 'draft', 1, 'UTC', 'callee_local', 'immediate',
            '{"mon": {"enabled": true, "start": "00:00", "end": "24:00"}}', 2, 60, '{}', false, 5,
            true, true, '{"offer": "spring"}', '{}', 1, 0, ?, ?)
    """


@dataclass
class Launched:
    seconds: float
    # PostgreSQL only: CPU of the server backend that ran the launch (None when /proc cannot show it, e.g. a
    # remote server) and the WAL the server wrote meanwhile.
    backend_cpu: float | None = None
    wal_mb: float | None = None


async def launch(url: str) -> Launched:
    database = Database(url)
    postgres = database.dialect == "postgresql"
    try:
        async with database.session(write=True) as session:
            pid, wal_start, cpu_start = 0, "", None
            if postgres:
                found = await session.execute(text("SELECT pg_backend_pid(), pg_current_wal_insert_lsn()::text"))
                pid, wal_start = found.one()
                cpu_start = backend_cpu_seconds(pid)
                await session.commit()
            with timed() as elapsed:
                async with session.begin():
                    ctx = ServiceContext(session=session, workspace_id=1, now=NOW)
                    campaign = await campaigns.apply_action(ctx, 1, Action.LAUNCH)
                    assert campaign.status == "running"
            if not postgres:
                return Launched(elapsed[0])
            cpu_end = backend_cpu_seconds(pid)
            wal_since = "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), CAST(:start AS pg_lsn))"
            wal = await session.execute(text(wal_since), {"start": wal_start})
            await session.commit()
            cpu = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
            return Launched(elapsed[0], cpu, float(wal.scalar_one()) / 1e6)
    finally:
        await database.dispose()


def backend_cpu_seconds(pid: int) -> float | None:
    """User + system CPU so far of a PostgreSQL backend, when the server runs on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


BASELINE = (
    "INSERT INTO bench_baseline (campaign_id, contact_id, status, created_at) "
    "SELECT 1, contact_id, 'pending', {now} FROM contact_list_members WHERE contact_list_id = 1"
)


def baseline_sqlite(url: str) -> float:
    conn = sqlite3.connect(sqlite_path(url))
    conn.execute(
        "CREATE TABLE bench_baseline (id INTEGER PRIMARY KEY, campaign_id INT, contact_id INT, "
        "status TEXT, created_at TEXT)"
    )
    with timed() as elapsed:
        conn.execute(BASELINE.format(now=f"'{STAMP}'"))
        conn.commit()
    conn.close()
    return elapsed[0]


def baseline_postgres(url: str) -> tuple[float, float | None]:
    """Seconds of the bare insert, and its server backend's CPU seconds when /proc shows them."""
    with psycopg.connect(pg_dsn(url)) as conn:
        conn.execute(
            "CREATE TABLE bench_baseline (id BIGSERIAL PRIMARY KEY, campaign_id BIGINT, contact_id BIGINT, "
            "status TEXT, created_at TIMESTAMPTZ)"
        )
        conn.commit()
        pid = conn.info.backend_pid
        cpu_start = backend_cpu_seconds(pid)
        with timed() as elapsed:
            conn.execute(BASELINE.format(now="now()"))
            conn.commit()
        cpu_end = backend_cpu_seconds(pid)
    return elapsed[0], None if cpu_start is None or cpu_end is None else cpu_end - cpu_start


def check(url: str, contacts: int, postgres: bool) -> dict[str, int]:
    query = "SELECT status, skip_reason, count(*) FROM call_tasks GROUP BY status, skip_reason"
    if postgres:
        with psycopg.connect(pg_dsn(url)) as pg:
            rows = pg.execute(query).fetchall()
    else:
        lite = sqlite3.connect(sqlite_path(url))
        rows = lite.execute(query).fetchall()
        lite.close()
    counts = {f"{status}:{reason}" if reason else status: count for status, reason, count in rows}
    assert sum(counts.values()) == contacts + contacts // 100, counts
    return counts


def run(label: str, url: str, contacts: int, postgres: bool) -> None:
    print(f"[{label}] seeding {contacts:,} contacts ...", flush=True)
    (seed_postgres if postgres else seed_sqlite)(url, contacts)
    launched = asyncio.run(launch(url))
    seconds = launched.seconds
    counts = check(url, contacts, postgres)
    tasks = sum(counts.values())
    base, base_cpu = baseline_postgres(url) if postgres else (baseline_sqlite(url), None)
    server = ""
    if launched.backend_cpu is not None and base_cpu:
        # CPU moves far less with the machine's load than wall time does.
        server += (
            f"; server backend CPU {launched.backend_cpu:.2f} s (bare insert {base_cpu:.2f} s; "
            f"ratio {launched.backend_cpu / base_cpu:.1f}x)"
        )
    if launched.wal_mb is not None:
        server += f"; WAL {launched.wal_mb:,.0f} MB"
    print(
        f"[{label}] launch created {tasks:,} tasks in {seconds:.2f} s ({tasks / seconds:,.0f} tasks/s); "
        f"bare INSERT ... SELECT of {contacts:,} rows {base:.2f} s; ratio {seconds / base:.1f}x; "
        f"peak RSS {peak_rss_mb():.0f} MB{server}; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"[{label}] tasks by status: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=postgres_url_from_env())
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    args = parser.parse_args()
    backends = set(args.backends.split(","))
    if "sqlite" in backends:
        with sqlite_database() as url:
            run("sqlite", url, args.contacts, postgres=False)
    if args.postgres and "postgresql" in backends:
        with postgres_database(args.postgres) as url:
            run("postgresql", url, args.contacts, postgres=True)


if __name__ == "__main__":
    main()
