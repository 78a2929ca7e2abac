"""What the API does when it starts: the bootstrap key, and jobs a previous process left behind."""

from __future__ import annotations

from fastapi import FastAPI

from bulkcall.db.engine import Database
from bulkcall.kit.clock import Clock
from bulkcall.kit.logging import get_logger
from bulkcall.services import contact_imports, workspaces
from bulkcall.services.background import BackgroundJobs
from bulkcall.settings import Settings

log = get_logger("bulkcall.startup")

# How often a running API looks for imports whose process died (see contact_imports.ABANDONED_AFTER).
ABANDONED_IMPORT_SWEEP_SECONDS = 30.0


async def on_startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    database: Database = app.state.database
    clock: Clock = app.state.clock
    if settings.bootstrap_api_key is not None:
        async with database.session(write=True) as session, session.begin():
            await workspaces.ensure_bootstrap_key(session, settings.bootstrap_api_key.get_secret_value(), clock.now())
    # Imports a dead process left queued/running: nobody will finish them. A job advances its row at
    # least once a batch, so "not advanced for ABANDONED_AFTER" means its process is gone, even when
    # several API processes share one PostgreSQL database (a live job elsewhere is left alone).
    await _fail_abandoned_imports(database, clock)
    jobs: BackgroundJobs = app.state.jobs
    jobs.every(
        ABANDONED_IMPORT_SWEEP_SECONDS,
        "contact_import_sweeper",
        lambda: _fail_abandoned_imports(database, clock),
        first_after=ABANDONED_IMPORT_SWEEP_SECONDS,
    )


async def _fail_abandoned_imports(database: Database, clock: Clock) -> None:
    failed = await contact_imports.fail_abandoned_imports(database, clock.now())
    if failed:
        log.warning("contact_imports_interrupted", count=failed)
