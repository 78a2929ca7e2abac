"""Shared fixtures: every API test runs on SQLite, and on PostgreSQL when BULKCALL_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import structlog
from fastapi import FastAPI

from bulkcall.app import create_app, install_state
from bulkcall.db.admin import libpq_dsn, scratch_postgres_database
from bulkcall.db.engine import Database
from bulkcall.db.migrate import upgrade
from bulkcall.db.models import Base
from bulkcall.kit.clock import Clock, SystemClock
from bulkcall.services.workspaces import create_key
from bulkcall.settings import Settings

POSTGRES_URL = os.environ.get("BULKCALL_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_URL, reason="BULKCALL_TEST_POSTGRES_URL is not set"),
        ],
    ),
]


@pytest.fixture(scope="session", autouse=True)
def plain_logged_tracebacks() -> Iterator[None]:
    """structlog's default console renderer draws a logged exception with rich, every frame's locals shown.

    That took seconds for one error inside the app (7 s for the export test whose stream fails); tests log
    tracebacks plainly instead, as ``configure_logging`` does in production. The rest stays the default.
    """
    saved = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
            if isinstance(processor, structlog.dev.ConsoleRenderer)
            else processor
            for processor in saved["processors"]
        ]
    )
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (much faster than migrating again)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session (and xdist worker), dropped at the end."""
    assert POSTGRES_URL is not None
    with scratch_postgres_database(POSTGRES_URL, "bulkcall_test") as url:
        upgrade(url)
        yield url


def _empty_postgres(url: str) -> None:
    """Empty the tables a test filled and restart every sequence, as a fresh database would be.

    ``TRUNCATE`` of all tables cost 0.1-0.4 s per test; deleting the few rows of the tables that have any
    costs milliseconds. Triggers (and foreign-key checks) are off for the deletes: every row goes.
    """
    names = [table.name for table in Base.metadata.sorted_tables]
    probe = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in names)
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        filled = [name for (name,) in conn.execute(probe)]
        if filled:
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                for name in filled:
                    conn.execute(f'DELETE FROM "{name}"')
        conn.execute("SELECT setval(oid, 1, false) FROM pg_class WHERE relkind = 'S'")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "bulkcall.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    return url


def settings_for(database_url: str) -> Settings:
    return Settings(database_url=database_url, allow_private_webhook_urls=True)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
def shared_app() -> FastAPI:
    """One app for the whole session, given fresh state by ``started_app`` for each test.

    FastAPI prepares an app's routes on its first requests (~4 ms a route, ~90 ms an app): most of an API
    test's time on SQLite when every test built its own app. Requests and the lifespan read everything else
    from ``app.state``. Its placeholder database is never connected to: each test installs its own.
    """
    placeholder = settings_for("sqlite://")
    return create_app(placeholder, database=Database(placeholder.database_url))


_started_apps: set[FastAPI] = set()


@asynccontextmanager
async def started_app(
    application: FastAPI, settings: Settings, database: Database, clock: Clock | None = None
) -> AsyncIterator[FastAPI]:
    """``application`` with fresh state (this test's settings, database, clock; new jobs and ingestion), started."""
    # A second start within one test would swap the state under the first's clients (e.g. its clock).
    assert application not in _started_apps, "the shared app is already started for this test: use one fixture"
    _started_apps.add(application)
    try:
        install_state(application, settings, database, clock or SystemClock())
        async with application.router.lifespan_context(application):
            yield application
    finally:
        _started_apps.discard(application)


@pytest.fixture
async def app(shared_app: FastAPI, settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    async with started_app(shared_app, settings, database) as application:
        yield application


@pytest.fixture
async def anon(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


async def new_key(database: Database, workspace: str = "acme", scopes: list[str] | None = None) -> str:
    async with database.session(write=True) as session, session.begin():
        _, plain = await create_key(session, workspace, scopes, SystemClock().now())
    return plain


@pytest.fixture
async def api(app: FastAPI, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client authenticated as workspace ``acme`` with every scope."""
    key = await new_key(database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/api/v1",
        headers={"X-Api-Key": key},
    ) as client:
        yield client


@pytest.fixture
async def other_api(app: FastAPI, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another workspace (``globex``), for tenant-isolation tests."""
    key = await new_key(database, "globex")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/api/v1",
        headers={"X-Api-Key": key},
    ) as client:
        yield client


def data(response: httpx.Response, status: int = 200) -> Any:
    """The ``data`` of a success envelope, asserting the status first (with the body on failure)."""
    assert response.status_code == status, response.text
    return response.json()["data"]
