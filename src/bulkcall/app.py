"""The FastAPI application: conventions, routers, start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import State

from bulkcall import __version__
from bulkcall.api.bodies import add_body_schemas
from bulkcall.api.errors import install_error_handlers
from bulkcall.api.middleware import (
    BodySizeLimitMiddleware,
    IdempotencyMiddleware,
    RequestContextMiddleware,
    UnstorableTextMiddleware,
)
from bulkcall.api.responses import COMMON_ERRORS
from bulkcall.api.routes import ROUTERS
from bulkcall.db.engine import Database
from bulkcall.dispatch.engine import DispatchEngine, engine_config
from bulkcall.dispatch.ingestion import Ingestion
from bulkcall.dispatch.webhooks import WebhookSender, webhook_config
from bulkcall.kit.clock import Clock, SystemClock
from bulkcall.providers.registry import ProviderRuntime, build_providers
from bulkcall.services.background import BackgroundJobs
from bulkcall.settings import Settings

API_PREFIX = "/api/v1"
ENGINE_STOP_GRACE_SECONDS = 10.0

DESCRIPTION = """
bulkcall runs bulk outbound call campaigns. Every response is an envelope:
`{"data", "meta", "message", "request_id"}` on success and
`{"error", "error_code", "details", "errors", "request_id"}` on failure, with an `X-Request-Id` header.
Authenticate with `X-Api-Key: sk_...` or `Authorization: Bearer sk_...`. POSTs accept an
`Idempotency-Key` header (replayed for 24 h).
"""


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
    background_loops: bool = False,
) -> FastAPI:
    """Build the app. ``database`` and ``clock`` are injectable for tests and the demo.

    ``background_loops`` runs the engine and the webhook sender in this process (``bulkcall serve``; not
    ``bulkcall api``).
    """
    owns_database = database is None
    db = database or Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from bulkcall.services.startup import on_startup

        # Everything comes from app.state as it is at start-up (see install_state), as requests read it.
        state = app.state
        await on_startup(app)
        stop = asyncio.Event()
        engine_task = None
        jobs: BackgroundJobs = state.jobs
        if background_loops:
            engine = DispatchEngine(
                state.database,
                state.clock,
                engine_config(state.settings),
                simulator_event_log=state.settings.simulator_event_log,
            )
            state.engine = engine
            state.ingestion = engine.ingestion
            engine_task = jobs.start_daemon("dispatch", engine.run(stop))
            sender = WebhookSender(state.database, state.clock, webhook_config(state.settings))
            state.webhooks = sender
            jobs.start_daemon("webhooks", sender.run(stop))
        try:
            yield
        finally:
            stop.set()
            if engine_task is not None:  # let it finish its round and give back unsent claims
                await asyncio.wait([engine_task], timeout=ENGINE_STOP_GRACE_SECONDS)
            await jobs.shutdown()
            if owns_database:
                await db.dispose()

    app = FastAPI(
        title="bulkcall",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=COMMON_ERRORS,
    )
    install_state(app, settings, db, clock or SystemClock())
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)

    # Bodies read leniently (api/bodies.py) are documented by a $ref; their schemas join the components here.
    build_openapi = app.openapi

    def openapi_with_body_schemas() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build_openapi()  # cached by FastAPI after the first call
        if fresh:
            add_body_schemas(schema)
        return schema

    app.openapi = openapi_with_body_schemas  # type: ignore[method-assign]

    @app.get("/healthz", tags=["meta"], operation_id="healthz", summary="Liveness probe (no auth)")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    # Added innermost first: the request context must wrap everything else.
    app.add_middleware(IdempotencyMiddleware, database=lambda: app.state.database, clock=lambda: app.state.clock)
    app.add_middleware(UnstorableTextMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, settings=lambda: app.state.settings)
    app.add_middleware(RequestContextMiddleware)
    return app


def install_state(app: FastAPI, settings: Settings, database: Database, clock: Clock) -> None:
    """Give ``app`` what its requests and its lifespan use: settings, database, clock, jobs, ingestion.

    Call it before the app starts. ``create_app`` does; the tests build one app and give it fresh state
    for each test, because FastAPI prepares an app's routes on its first requests (~90 ms an app).
    """
    app.state = State()  # nothing of a previous state is left
    app.state.settings = settings
    app.state.database = database
    app.state.clock = clock
    app.state.jobs = BackgroundJobs()
    # Callbacks arriving over HTTP; a process that dials replaces this with its engine's (same path).
    parsers = build_providers(ProviderRuntime(deliver=None, now=clock.now))
    app.state.ingestion = Ingestion(database, clock, parsers.get)
