"""Shared helpers for the benchmarks: databases to run on, timing and peak memory."""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
