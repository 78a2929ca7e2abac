"""What the API does when it starts: the bootstrap key, and jobs a previous process left behind."""

from __future__ import annotations

from fastapi import FastAPI

from bulkcall.db.engine import Database
from bulkcall.kit.clock import Clock
from bulkcall.services import workspaces
from bulkcall.settings import Settings


async def on_startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    database: Database = app.state.database
    clock: Clock = app.state.clock
    if settings.bootstrap_api_key is not None:
        async with database.session(write=True) as session, session.begin():
            await workspaces.ensure_bootstrap_key(session, settings.bootstrap_api_key.get_secret_value(), clock.now())
