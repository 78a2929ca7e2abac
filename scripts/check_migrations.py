"""Apply every migration to a fresh SQLite file and a fresh PostgreSQL database, then `alembic check` both."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid

import psycopg
from sqlalchemy.engine import make_url

from bulkcall.db.migrate import check, upgrade


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{tmp}/check.db"
        upgrade(sqlite_url)
        check(sqlite_url)
        print("sqlite: migrations match the models")
    postgres_url = os.environ.get("BULKCALL_TEST_POSTGRES_URL")
    if not postgres_url:
        print("postgresql: skipped (BULKCALL_TEST_POSTGRES_URL not set)")
        return 0
    admin = make_url(postgres_url).set(drivername="postgresql")
    name = f"bulkcall_migration_check_{uuid.uuid4().hex[:8]}"
    admin_dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        check(url)
        print("postgresql: migrations match the models")
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
