"""Creating and dropping whole PostgreSQL databases (tests, benchmarks and the migration check use it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url


def libpq_dsn(database_url: str) -> str:
    """A ``postgresql://`` URL psycopg accepts directly (no SQLAlchemy driver suffix)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def scratch_postgres_database(server_url: str, prefix: str = "bulkcall_scratch") -> Iterator[str]:
    """Create a uniquely named, empty database on ``server_url``'s server; yield its URL; drop it afterwards."""
    admin = libpq_dsn(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
