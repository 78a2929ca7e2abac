"""Shared helpers for the benchmarks: databases to run on, timing and peak memory."""

from __future__ import annotations

import os
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bulkcall.db.admin import libpq_dsn, scratch_postgres_database
from bulkcall.db.migrate import upgrade


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        yield url


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    with scratch_postgres_database(admin_url, "bulkcall_bench") as url:
        upgrade(url)
        yield url


def postgres_url_from_env() -> str | None:
    return os.environ.get("BULKCALL_BENCH_POSTGRES_URL") or os.environ.get("BULKCALL_TEST_POSTGRES_URL")


def sqlite_path(url: str) -> str:
    database = make_url(url).database
    assert database is not None
    return database


def pg_dsn(url: str) -> str:
    return libpq_dsn(url)


# N contacts (ids 1..N, +1212 numbers in New York) in workspace 1 and all of them in contact list 1: the
# audience both the launch and the dispatch benchmarks start from. ``:n`` and ``:t`` are bound per database.
_CONTACTS_SQL = """
    INSERT INTO contacts (id, workspace_id, phone_e164, first_name, country, phone_timezones, tags,
                          custom_fields, created_at, updated_at)
    SELECT n, 1, '+1212' || {digits}, 'Name' || n, 'US', 'America/New_York', '[]', '{{"plan": "pro"}}', {t}, {t}
    FROM {series}
"""
_MEMBERS_SQL = (
    "INSERT INTO contact_list_members (contact_list_id, contact_id, added_at) SELECT 1, id, {t} FROM contacts"
)


def seed_contacts_sqlite(conn: sqlite3.Connection, count: int, stamp: str) -> None:
    series = "(WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n) SELECT n FROM seq)"
    conn.execute(_CONTACTS_SQL.format(digits="printf('%07d', n)", t=":t", series=series), {"n": count, "t": stamp})
    conn.execute(_MEMBERS_SQL.format(t=":t"), {"t": stamp})


def seed_contacts_postgres(conn: psycopg.Connection[Any], count: int, stamp: datetime) -> None:
    series = "generate_series(1, %(n)s) n"
    sql = _CONTACTS_SQL.format(digits="lpad(n::text, 7, '0')", t="%(t)s", series=series)
    conn.execute(sql, {"n": count, "t": stamp})
    conn.execute(_MEMBERS_SQL.format(t="%(t)s"), {"t": stamp})
