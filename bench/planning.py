"""Planning benchmark: audience timezone analysis and capacity preview of a draft over N contacts.

The contacts are the shared seed (all in list 1), spread over seven zone keys the way an import stores them:
a zone given on the contact (Asia/Kolkata), zones implied by the number (New York, London, Sydney, and Idaho's
two zones), and no zone at all (the campaign's zone is used). The draft campaign's audience is the list plus
1% of the contacts as explicit entries. Both helpers are called through the service functions the endpoints
use (``GET /{id}/audience_timezone_analysis``, ``GET /{id}/capacity_preview``), each timed in one read
transaction (best of ``--repeat``); the baselines, measured in the same run after them, are a bare grouped count
over the same members and a bare count of them (reading the audience once, no grouping):

    SELECT c.timezone, c.phone_timezones, c.country, count(*) FROM contact_list_members m JOIN contacts c ...
    GROUP BY 1, 2, 3
    SELECT count(*) FROM contact_list_members m JOIN contacts c ...

    uv run python bench/planning.py [--contacts 1000000] [--postgres URL] [--repeat 3]

PostgreSQL runs too when --postgres or BULKCALL_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

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
from bulkcall.services import planning
from bulkcall.services.context import ServiceContext

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
STAMP = "2026-11-27 12:00:00.000000"
WINDOWS = (
    '{"mon": {"enabled": true, "start": "09:00", "end": "18:00"}, '
    '"tue": {"enabled": true, "start": "09:00", "end": "18:00"}, '
    '"wed": {"enabled": true, "start": "09:00", "end": "18:00"}, '
    '"thu": {"enabled": true, "start": "09:00", "end": "18:00"}, '
    '"fri": {"enabled": true, "start": "09:00", "end": "18:00"}, '
    '"sat": {"enabled": false, "start": "09:00", "end": "18:00"}, '
    '"sun": {"enabled": false, "start": "09:00", "end": "18:00"}}'
)
SETUP = """
INSERT INTO workspaces (id, name, concurrency_cap, created_at, updated_at) VALUES (1, 'bench', NULL, :t, :t);
INSERT INTO agents (id, workspace_id, name, status, runtime, variables, created_at, updated_at)
    VALUES (1, 1, 'agent', 'active', '{}', '[]', :t, :t);
INSERT INTO telephony_connections (id, workspace_id, name, provider, config, secrets, concurrency_limit,
    calls_per_second, signing_secret, created_at, updated_at)
    VALUES (1, 1, 'sim', 'simulator', '{}', '{}', 50, 10, 'bench', :t, :t);
INSERT INTO phone_numbers (id, workspace_id, telephony_connection_id, e164, status, spam_flagged, country,
    created_at, updated_at) VALUES (1, 1, 1, '+14155550100', 'active', false, 'US', :t, :t);
INSERT INTO contact_lists (id, workspace_id, name, created_at, updated_at) VALUES (1, 1, 'all', :t, :t);
INSERT INTO campaigns (id, workspace_id, name, status, agent_id, timezone, timezone_mode, trigger_mode,
    call_windows, max_retries, retry_delay_minutes, retry_delays, retry_on_voicemail, priority,
    prefer_country_match, record_calls, call_variables, metadata, contact_list_id, audience_materialized_to,
    created_at, updated_at)
    VALUES (1, 1, 'bench', 'draft', 1, 'America/Chicago', 'callee_local', 'immediate', :windows, 2, 60, '{}',
    false, 5, true, true, '{}', '{}', 1, 0, :t, :t);
INSERT INTO campaign_phone_numbers (campaign_id, phone_number_id) VALUES (1, 1)
"""
# id % 10 -> the zones an import would have stored (the seed stores New York from the number).
SPREAD = [
    "UPDATE contacts SET timezone = 'Asia/Kolkata' WHERE id % 10 = 4",
    "UPDATE contacts SET phone_timezones = 'Europe/London', country = 'GB' WHERE id % 10 = 5",
    "UPDATE contacts SET phone_timezones = 'America/Boise|America/Los_Angeles' WHERE id % 10 = 6",
    "UPDATE contacts SET phone_timezones = NULL, country = NULL WHERE id % 10 = 7",
    "UPDATE contacts SET phone_timezones = 'Australia/Sydney', country = 'AU' WHERE id % 10 = 8",
    "INSERT INTO campaign_audience (campaign_id, contact_id) SELECT 1, id FROM contacts WHERE id % 100 = 3",
]
_MEMBERS = (
    "FROM contact_list_members m JOIN contacts c ON c.id = m.contact_id AND c.workspace_id = 1 "
    "WHERE m.contact_list_id = 1"
)
# The bare grouped count the helpers are compared with, and the bare read of the audience under it.
BASELINE = f"SELECT c.timezone, c.phone_timezones, c.country, count(*) {_MEMBERS} GROUP BY 1, 2, 3"
READ_ONLY = f"SELECT count(*) {_MEMBERS}"


def seed_sqlite(url: str, contacts: int) -> None:
    conn = sqlite3.connect(sqlite_path(url))
    conn.executescript(SETUP.replace(":t", f"'{STAMP}'").replace(":windows", f"'{WINDOWS}'"))
    seed_contacts_sqlite(conn, contacts, STAMP)
    for statement in SPREAD:
        conn.execute(statement)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def seed_postgres(url: str, contacts: int) -> None:
    with psycopg.connect(pg_dsn(url)) as conn:
        for statement in SETUP.replace(":t", f"'{STAMP}+00'").replace(":windows", f"'{WINDOWS}'").split(";"):
            if statement.strip():
                conn.execute(statement)
        seed_contacts_postgres(conn, contacts, NOW)
        for statement in SPREAD:
            conn.execute(statement)
        conn.commit()
    with psycopg.connect(pg_dsn(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def baseline(url: str, postgres: bool, sql: str = BASELINE) -> float:
    if postgres:
        with psycopg.connect(pg_dsn(url)) as pg, timed() as elapsed:
            pg.execute(sql).fetchall()
        return elapsed[0]
    lite = sqlite3.connect(sqlite_path(url))
    with timed() as elapsed:
        lite.execute(sql).fetchall()
    lite.close()
    return elapsed[0]


async def measure(url: str, repeat: int) -> dict[str, Any]:
    database = Database(url)
    results: dict[str, Any] = {}

    async def best(name: str, call: Callable[[ServiceContext], Awaitable[Any]]) -> None:
        times = []
        for _ in range(repeat):
            async with database.session(write=False) as session:
                ctx = ServiceContext(session=session, workspace_id=1, now=NOW)
                with timed() as elapsed:
                    results[f"{name}_result"] = await call(ctx)
                times.append(elapsed[0])
        results[name] = times

    try:
        await best("analysis", lambda ctx: planning.campaign_timezone_analysis(ctx, 1, None))
        await best(
            "preview",
            lambda ctx: planning.campaign_capacity_preview(ctx, 1, avg_call_seconds=70, expected_answer_rate=0.45),
        )
    finally:
        await database.dispose()
    return results


def run(label: str, url: str, contacts: int, postgres: bool, repeat: int) -> None:
    print(f"[{label}] seeding {contacts:,} contacts ...", flush=True)
    (seed_postgres if postgres else seed_sqlite)(url, contacts)
    results = asyncio.run(measure(url, repeat))
    base = min(baseline(url, postgres) for _ in range(repeat))
    read = min(baseline(url, postgres, READ_ONLY) for _ in range(repeat))
    analysis, preview = results["analysis_result"], results["preview_result"]
    assert analysis.total == contacts  # the explicit entries are list members too: each contact counts once
    assert preview.contacts == contacts
    fast_analysis, fast_preview = min(results["analysis"]), min(results["preview"])
    print(
        f"[{label}] audience timezone analysis over {analysis.total:,} contacts "
        f"({len(analysis.timezones)} zone keys): best {fast_analysis:.3f} s of "
        f"{', '.join(f'{t:.3f}' for t in results['analysis'])}; "
        f"baseline grouped count {base:.3f} s (ratio {fast_analysis / base:.2f}x), "
        f"bare count of the members {read:.3f} s (ratio {fast_analysis / read:.2f}x)"
    )
    print(
        f"[{label}] capacity preview of a {preview.contacts:,}-contact draft: best {fast_preview:.3f} s of "
        f"{', '.join(f'{t:.3f}' for t in results['preview'])}; ratios {fast_preview / base:.2f}x / "
        f"{fast_preview / read:.2f}x; "
        f"estimated {preview.estimated_duration_hours} h at {preview.calls_per_hour:g} calls/h "
        f"(binding {preview.binding_limit}); peak RSS {peak_rss_mb():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=postgres_url_from_env())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.skip_sqlite:
        with sqlite_database() as url:
            run("sqlite", url, args.contacts, postgres=False, repeat=args.repeat)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            run("postgresql", url, args.contacts, postgres=True, repeat=args.repeat)


if __name__ == "__main__":
    main()
