"""Apply every migration to a fresh SQLite file and a fresh PostgreSQL database, then `alembic check` both."""

from __future__ import annotations

import os
import sys
import tempfile

from bulkcall.db.admin import scratch_postgres_database
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
    with scratch_postgres_database(postgres_url, "bulkcall_migration_check") as url:
        upgrade(url)
        check(url)
        print("postgresql: migrations match the models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
