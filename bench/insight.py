"""Runtime insight benchmark: analytics and dispatch health of a campaign with 1,000,000 tasks and 1,500,000 ended
attempts, on SQLite and PostgreSQL.

``seed_insight_campaign(url, tasks)`` builds the campaign with set-based SQL (no engine, no HTTP): workspace 1,
an agent, two simulator connections, four caller numbers, N contacts (``_common.seed_contacts_*``) and a
*running* campaign 1 in America/New_York with one task per contact. Every task has one ended attempt, every
even-numbered task a second one (N + N/2 attempts), ended over the 14 days before ``NOW`` inside 09:00-18:00
New York time, with a realistic outcome mix (about 36 % answered, talk 10-300 s, cost 0.013 a started minute)
and several caller numbers. Tasks whose last outcome is retryable wait (``retry_pending``): a third due now, a
third for a retry, a third for the next window. The statistics analytics reads are then filled by the code's
own backfill (``db.repositories.insight.rebuild_stats``, the same figures the engine adds call by call); on
PostgreSQL every key then gets a zero row in each of the other shards, the most rows concurrent workers can
leave (``STAT_SHARDS`` per key). Other
benchmarks over such a campaign (the results export) can import ``seed_insight_campaign``.

Then it times ``services.insight.analytics`` (the whole campaign, and one week) and
``services.insight.dispatch_health``, called directly (not over HTTP), each in a fresh read transaction,
``--runs`` times; the first run is reported apart (cold caches). The baseline, measured in the same run, is
a bare grouped count over the campaign's attempts: ``SELECT outcome, count(*) FROM call_attempts WHERE
campaign_id = 1 GROUP BY outcome``.

    uv run python bench/insight.py [--tasks 1000000] [--runs 5] [--postgres URL] [--skip-sqlite]

PostgreSQL runs when --postgres or BULKCALL_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
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
from bulkcall.db.repositories.insight import STAT_SHARDS, rebuild_stats
from bulkcall.services import insight
from bulkcall.services.context import ServiceContext

# Friday 2026-11-27 18:00 UTC (13:00 in New York): the campaign has run for two weeks.
NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
BASE = NOW.replace(hour=0) - timedelta(days=14)  # midnight UTC, 14 days earlier
WINDOW_OPENS = 14 * 3600  # 09:00 EST in seconds after midnight UTC
WINDOW_SECONDS = 9 * 3600
STAMP = "2026-11-13 00:00:00.000000"

_SETUP = [
    "INSERT INTO workspaces (id, name, concurrency_cap, created_at, updated_at) VALUES (1, 'bench', NULL, @t, @t)",
    "INSERT INTO agents (id, workspace_id, name, status, runtime, variables, created_at, updated_at) "
    "VALUES (1, 1, 'agent', 'active', '{}', '[]', @t, @t)",
    "INSERT INTO contact_lists (id, workspace_id, name, created_at, updated_at) VALUES (1, 1, 'all', @t, @t)",
    *(
        "INSERT INTO telephony_connections (id, workspace_id, name, provider, config, secrets, concurrency_limit, "
        f"calls_per_second, signing_secret, created_at, updated_at) VALUES ({n}, 1, 'sim{n}', 'simulator', '{{}}', "
        f"'{{}}', 50, 10, 'bench-{n}', @t, @t)"
        for n in (1, 2)
    ),
    *(
        "INSERT INTO phone_numbers (id, workspace_id, telephony_connection_id, e164, status, spam_flagged, country, "
        f"created_at, updated_at) VALUES ({n}, 1, {1 + (n - 1) % 2}, '+1415555010{n}', 'active', false, 'US', @t, @t)"
        for n in (1, 2, 3, 4)
    ),
    """INSERT INTO campaigns (id, workspace_id, name, status, agent_id, timezone, timezone_mode, trigger_mode,
        call_windows, max_retries, retry_delay_minutes, retry_delays, retry_on_voicemail, priority,
        prefer_country_match, record_calls, call_variables, metadata, contact_list_id, audience_materialized_to,
        launched_at, started_at, first_dialed_at, created_at, updated_at)
       VALUES (1, 1, 'insight bench', 'running', 1, 'America/New_York', 'callee_local', 'immediate',
        '{"mon": {"enabled": true, "start": "09:00", "end": "18:00"}, "tue": {"enabled": true, "start": "09:00",
        "end": "18:00"}, "wed": {"enabled": true, "start": "09:00", "end": "18:00"}, "thu": {"enabled": true,
        "start": "09:00", "end": "18:00"}, "fri": {"enabled": true, "start": "09:00", "end": "18:00"}}',
        2, 60, '{}', false, 5, true, true, '{}', '{"budget_cap": "1000000"}', 1, 0, @t, @t, @t, @t, @t)""",
    *(f"INSERT INTO campaign_phone_numbers (campaign_id, phone_number_id) VALUES (1, {n})" for n in (1, 2, 3, 4)),
]

# Deterministic per-task choices from the task id ``n`` (a cheap hash each).
_FINAL_MIX = """CASE WHEN {h} < 50 THEN 'answered' WHEN {h} < 62 THEN 'voicemail' WHEN {h} < 65 THEN 'rejected'
    WHEN {h} < 67 THEN 'invalid_number' WHEN {h} < 68 THEN 'unknown' WHEN {h} < 84 THEN 'no_answer'
    WHEN {h} < 94 THEN 'busy' ELSE 'failed' END"""
_RETRY_MIX = "CASE WHEN {g} < 60 THEN 'no_answer' WHEN {g} < 85 THEN 'busy' ELSE 'failed' END"
H1, H2, G = "((n * 7919) % 100)", "((n * 6007) % 100)", "((n * 31) % 100)"
OUTCOME_1 = f"CASE WHEN n % 2 = 0 THEN {_RETRY_MIX.format(g=G)} ELSE {_FINAL_MIX.format(h=H1)} END"
OUTCOME_2 = _FINAL_MIX.format(h=H2)
LAST_OUTCOME = f"CASE WHEN n % 2 = 0 THEN {OUTCOME_2} ELSE {_FINAL_MIX.format(h=H1)} END"
RETRYABLE = "('no_answer', 'busy', 'failed')"
# Seconds after BASE: attempt 1 on day n % 13, attempt 2 the next day, both inside the window.
END_1 = f"((n % 13) * 86400 + {WINDOW_OPENS} + (n * 104729) % {WINDOW_SECONDS})"
END_2 = f"((n % 13 + 1) * 86400 + {WINDOW_OPENS} + (n * 104729 + 7200) % {WINDOW_SECONDS})"
DURATION = "CASE WHEN {o} = 'answered' THEN 10.5 + (n * 31) % 290 WHEN {o} = 'voicemail' THEN 25.0 ELSE NULL END"
COST = (
    "CASE WHEN {o} = 'answered' THEN 0.013 * (1 + ((n * 31) % 290 + 10) / 60)"
    " WHEN {o} = 'voicemail' THEN 0.013 ELSE 0 END"
)


def _sql(statement: str, postgres: bool) -> str:
    """``@t`` and ``:name`` placeholders for the driver at hand."""
    if postgres:
        escaped = statement.replace("%", "%%").replace("@t", f"'{STAMP}+00'")
        return re.sub(r"(?<![:\w]):([a-z_]+)", r"%(\1)s", escaped)
    return statement.replace("@t", f"'{STAMP}'")


def _ts(seconds: str, postgres: bool) -> str:
    """BASE + ``seconds`` as the column stores it."""
    if postgres:
        return f"(CAST(:base AS timestamptz) + ({seconds}) * interval '1 second')"
    return f"strftime('%Y-%m-%d %H:%M:%f000', :base, '+' || ({seconds}) || ' seconds')"


def _statements(postgres: bool) -> list[str]:
    status = (
        f"CASE WHEN o IN {RETRYABLE} THEN 'retry_pending' WHEN o IN ('invalid_number', 'unknown') THEN 'failed' "
        "ELSE 'completed' END"
    )
    waiting_at = _ts(
        f"CASE n % 3 WHEN 0 THEN {int((NOW - BASE).total_seconds())} - n % 3600 "
        f"WHEN 1 THEN {int((NOW - BASE).total_seconds())} + 600 + n % 3600 "
        f"ELSE {int((NOW - BASE).total_seconds()) + 86400 - 4 * 3600} END",
        postgres,
    )
    last_end = _ts(f"CASE WHEN n % 2 = 0 THEN {END_2} ELSE {END_1} END", postgres)
    tasks = f"""
        INSERT INTO call_tasks (id, workspace_id, campaign_id, contact_id, phone_e164, status, blocker,
            next_eligible_at, timezones, timezone_source, country, attempts, voicemail_attempts, last_outcome,
            caller_phone_number_id, cost, first_called_at, last_called_at, talk_seconds, created_at, updated_at,
            completed_at)
        SELECT n, 1, 1, n, phone_e164, {status},
            CASE WHEN o IN {RETRYABLE} THEN (CASE n % 3 WHEN 1 THEN 'waiting_retry' WHEN 2 THEN 'outside_call_window'
                ELSE NULL END) ELSE NULL END,
            CASE WHEN o IN {RETRYABLE} THEN {waiting_at} ELSE NULL END,
            'America/New_York', 'phone_number', 'US', 2 - n % 2, 0, o,
            CASE WHEN n % 2 = 0 THEN 1 + (n + 1) % 4 ELSE 1 + n % 4 END,
            0, {_ts(END_1, postgres)}, {last_end}, 0, @t, @t,
            CASE WHEN o IN {RETRYABLE} THEN NULL ELSE {last_end} END
        FROM (SELECT n, phone_e164, {LAST_OUTCOME} AS o
              FROM (SELECT id AS n, phone_e164 FROM contacts WHERE workspace_id = 1) AS c) AS picked
        ORDER BY n"""
    attempt = """
        INSERT INTO call_attempts (workspace_id, campaign_id, task_id, attempt_number, phone_number_id, caller_e164,
            callee_e164, telephony_connection_id, provider, provider_call_id, state, caller_id_reason, worker,
            queued_at, dialed_at, answered_at, ended_at, duration_seconds, outcome, cost)
        SELECT 1, 1, n, {number_of_attempt}, p, '+1415555010' || p, phone_e164, 1 + (p - 1) % 2, 'simulator',
            'B{number_of_attempt}-' || n, 'ended', 'bench', 'bench', {dialed}, {dialed},
            CASE WHEN o IN ('answered', 'voicemail') THEN {dialed} ELSE NULL END, {ended},
            {duration}, o, {cost}
        FROM (SELECT n, phone_e164, {outcome} AS o, 1 + (n + {shift}) % 4 AS p
              FROM (SELECT id AS n, phone_e164 FROM call_tasks WHERE campaign_id = 1 {only}) AS c) AS picked
        ORDER BY n"""
    statements = [tasks]
    for number, outcome, end, only in ((1, OUTCOME_1, END_1, ""), (2, OUTCOME_2, END_2, "AND id % 2 = 0")):
        statements.append(
            attempt.format(
                number_of_attempt=number,
                outcome=outcome,
                dialed=_ts(f"{end} - 60", postgres),
                ended=_ts(end, postgres),
                duration=DURATION.format(o="o"),
                cost=COST.format(o="o"),
                shift=number - 1,
                only=only,
            )
        )
    # The tasks' money, talk time and outcomes in attempt order, as the engine keeps them per task.
    statements.append(
        """UPDATE call_tasks SET cost = s.cost, talk_seconds = s.talk, attempt_outcomes = s.outcomes FROM (
               SELECT task_id, sum(cost) AS cost,
                   sum(CASE WHEN outcome IN ('answered', 'voicemail') THEN duration_seconds ELSE 0 END) AS talk,
                   min(CASE WHEN attempt_number = 1 THEN outcome END)
                       || coalesce('|' || min(CASE WHEN attempt_number = 2 THEN outcome END), '') AS outcomes
               FROM call_attempts WHERE campaign_id = 1 GROUP BY task_id) AS s
           WHERE call_tasks.id = s.task_id"""
    )
    return [_sql(statement, postgres) for statement in statements]


_STAT_TABLES = (
    (
        "campaign_call_stats",
        "campaign_id, bucket, phone_number_id, attempt_number, outcome",
        "attempts, talk_seconds, cost",
    ),
    ("campaign_reach_stats", "campaign_id, bucket, kind, prev_bucket", "tasks"),
    ("campaign_talk_stats", "campaign_id, bucket, bin", "calls"),
)


def seed_insight_campaign(url: str, tasks: int) -> dict[str, float]:
    """Seed campaign 1 (see the module docstring) into the migrated, empty database at ``url``; returns the
    seconds each phase took."""
    postgres = url.startswith("postgresql")
    phases: dict[str, float] = {}
    params = {"base": BASE if postgres else BASE.strftime("%Y-%m-%d %H:%M:%S")}
    started = time.perf_counter()
    if postgres:
        with psycopg.connect(pg_dsn(url)) as conn:
            for statement in _SETUP:
                conn.execute(_sql(statement, True))
            seed_contacts_postgres(conn, tasks, BASE)
            phases["contacts"] = time.perf_counter() - started
            for statement in _statements(True):
                conn.execute(statement, params)
            for table in ("workspaces", "agents", "telephony_connections", "phone_numbers", "contacts", "campaigns"):
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    else:
        conn_lite = sqlite3.connect(sqlite_path(url))
        for statement in _SETUP:
            conn_lite.execute(_sql(statement, False))
        seed_contacts_sqlite(conn_lite, tasks, STAMP)
        phases["contacts"] = time.perf_counter() - started
        for statement in _statements(False):
            conn_lite.execute(statement, params)
        conn_lite.commit()
        conn_lite.close()
    phases["tasks_and_attempts"] = time.perf_counter() - started - phases["contacts"]
    with timed() as elapsed:
        asyncio.run(_rebuild(url))  # with the task counts launch would have written
    phases["rebuild_stats"] = elapsed[0]
    if postgres:
        with psycopg.connect(pg_dsn(url), autocommit=True) as conn:
            # The engine's workers spread each key over up to STAT_SHARDS rows; the rebuild writes one. Give every
            # key a row in every shard (adding zeros: the sums stay) so analytics reads its worst case.
            for table, keys, sums in _STAT_TABLES:
                zeros = ", ".join("0" for _ in sums.split(","))
                conn.execute(
                    f"INSERT INTO {table} ({keys}, shard, {sums}) SELECT {keys}, s, {zeros} "
                    f"FROM {table}, generate_series(1, {STAT_SHARDS - 1}) AS s"
                )
            conn.execute("VACUUM ANALYZE")
    return phases


async def _rebuild(url: str) -> None:
    database = Database(url)
    try:
        async with database.session(write=True) as session, session.begin():
            await rebuild_stats(session, 1)
    finally:
        await database.dispose()


# -- measuring ----------------------------------------------------------------------------------------------


async def _time_calls(url: str, runs: int) -> dict[str, list[float]]:
    database = Database(url)
    week_from, week_to = (NOW - timedelta(days=7)).date(), NOW.date()
    calls: dict[str, Callable[[ServiceContext], Awaitable[Any]]] = {
        "analytics (whole campaign)": lambda ctx: insight.analytics(ctx, 1, None, None),
        "analytics (one week)": lambda ctx: insight.analytics(ctx, 1, week_from, week_to),
        "dispatch_health": lambda ctx: insight.dispatch_health(ctx, 1),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    try:
        for _ in range(runs):
            for name, call in calls.items():
                started = time.perf_counter()
                async with database.session(write=False) as session:
                    result = await call(ServiceContext(session=session, workspace_id=1, now=NOW))
                times[name].append(time.perf_counter() - started)
                if name == "analytics (whole campaign)":
                    times.setdefault("_check", []).append(float(result.totals.attempts))
    finally:
        await database.dispose()
    return times


BASELINE = "SELECT outcome, count(*) FROM call_attempts WHERE campaign_id = 1 GROUP BY outcome"


def baseline(url: str, runs: int) -> list[float]:
    times: list[float] = []
    if url.startswith("postgresql"):
        with psycopg.connect(pg_dsn(url)) as conn:
            for _ in range(runs):
                with timed() as elapsed:
                    conn.execute(BASELINE).fetchall()
                times.append(elapsed[0])
        return times
    conn_lite = sqlite3.connect(sqlite_path(url))
    for _ in range(runs):
        with timed() as elapsed:
            conn_lite.execute(BASELINE).fetchall()
        times.append(elapsed[0])
    conn_lite.close()
    return times


def run(label: str, url: str, tasks: int, runs: int) -> None:
    print(f"[{label}] seeding {tasks:,} tasks and {tasks + tasks // 2:,} ended attempts ...", flush=True)
    phases = seed_insight_campaign(url, tasks)
    print(f"[{label}] seeded: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()))
    times = asyncio.run(_time_calls(url, runs))
    counted = times.pop("_check")
    assert counted[0] == tasks + tasks // 2, counted
    base = baseline(url, max(3, runs))
    base_ms = statistics.median(base) * 1000
    print(f"[{label}] baseline (bare grouped count over the attempts): median {base_ms:.0f} ms of {len(base)} runs")
    for name, values in times.items():
        warm = [v * 1000 for v in values[1:]] or [values[0] * 1000]
        print(
            f"[{label}] {name}: first {values[0] * 1000:.0f} ms, then median {statistics.median(warm):.0f} ms, "
            f"max {max(warm):.0f} ms over {len(warm)} runs; median / baseline {statistics.median(warm) / base_ms:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", default=postgres_url_from_env())
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.skip_sqlite:
        with sqlite_database() as url:
            run("sqlite", url, args.tasks, args.runs)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            run("postgresql", url, args.tasks, args.runs)


if __name__ == "__main__":
    main()
