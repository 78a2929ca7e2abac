"""Engine and session set-up for SQLite (WAL, ``BEGIN IMMEDIATE`` writes) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

# Execution option that makes the next transaction take SQLite's write lock up front, so two
# writers never deadlock upgrading a read lock; PostgreSQL ignores it.
WRITE_TRANSACTION = {"bulkcall_write": True}


def async_url(database_url: str) -> URL:
    """Map the user-facing URL (``sqlite:///...``, ``postgresql://...``) to the async driver."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database URL {url.render_as_string(hide_password=True)!r}")


def sync_url(database_url: str) -> URL:
    """The blocking-driver URL for Alembic and scripts."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+pysqlite")
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database URL {url.render_as_string(hide_password=True)!r}")


def sqlite_file(database_url: str | URL) -> str | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return url.database
    return None


def ensure_sqlite_directory(database_url: str) -> None:
    path = sqlite_file(database_url)
    if path is not None:
        Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def configure_sqlite(sync_engine: Any) -> None:
    """WAL, foreign keys and a busy timeout on every connection; we emit BEGIN ourselves."""

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let our BEGIN statements through untouched
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("bulkcall_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    url = async_url(database_url)
    # Keep statement parameters (they may carry secrets) out of exception messages and logs.
    kwargs.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        ensure_sqlite_directory(database_url)
        engine = create_async_engine(url, **kwargs)
        configure_sqlite(engine.sync_engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


class Database:
    """The engine plus two session factories: reads, and writes that lock SQLite up front."""

    def __init__(self, database_url: str, **engine_kwargs: Any) -> None:
        self.url = database_url
        self.engine = create_engine(database_url, **engine_kwargs)
        self.dialect = self.engine.dialect.name
        self.read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.write_sessions = async_sessionmaker(
            self.engine.execution_options(**WRITE_TRANSACTION), expire_on_commit=False
        )

    def session(self, *, write: bool) -> AsyncSession:
        return (self.write_sessions if write else self.read_sessions)()

    async def dispose(self) -> None:
        await self.engine.dispose()
