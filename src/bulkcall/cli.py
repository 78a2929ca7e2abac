"""The ``bulkcall`` command line (names pinned in docs/operations.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bulkcall.settings import get_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="bulkcall: bulk outbound call campaigns.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")

Host = Annotated[str, typer.Option(help="Interface to listen on")]
Port = Annotated[int, typer.Option(help="TCP port")]


def _run_server(host: str, port: int, *, background_loops: bool) -> None:
    import uvicorn

    from bulkcall.app import create_app
    from bulkcall.kit.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    application = create_app(settings, background_loops=background_loops)
    uvicorn.run(application, host=host, port=port, log_config=None, access_log=False)


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """API and background loops (the dispatcher, the webhook sender) in one process; migrates the database first."""
    from bulkcall.db.migrate import upgrade

    upgrade(get_settings().database_url)
    _run_server(host, port, background_loops=True)


@app.command()
def api(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """API only (run `bulkcall db upgrade` first); several may run behind a load balancer on PostgreSQL."""
    _run_server(host, port, background_loops=False)


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, max=10_000, help="Most calls one dispatch round starts (default BULKCALL_DISPATCH_BATCH_SIZE)"
        ),
    ] = None,
) -> None:
    """The dispatcher, its sweeps and the webhook sender without the API; run any number of them on PostgreSQL."""
    from bulkcall.kit.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(_run_worker(concurrency))


async def _run_worker(concurrency: int | None) -> None:
    import signal

    from bulkcall.db.engine import Database
    from bulkcall.dispatch.engine import DispatchEngine, engine_config
    from bulkcall.dispatch.webhooks import WebhookSender, webhook_config
    from bulkcall.kit.clock import SystemClock
    from bulkcall.kit.logging import get_logger

    settings = get_settings()
    database = Database(settings.database_url)
    engine = DispatchEngine(
        database,
        SystemClock(),
        engine_config(settings, batch_size=concurrency),
        simulator_event_log=settings.simulator_event_log,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log = get_logger("bulkcall.worker")
    log.info("worker_started", worker=engine.config.worker_name, batch_size=engine.config.batch_size)
    sender = WebhookSender(database, SystemClock(), webhook_config(settings))
    try:
        await asyncio.gather(engine.run(stop), sender.run(stop))
    finally:
        await database.dispose()
        log.info("worker_stopped", worker=engine.config.worker_name, dialed=engine.dialed)


@app.command()
def demo(
    database: Annotated[
        Path,
        typer.Option(help="SQLite file for the demo; deleted and created afresh on every run (only a demo database)"),
    ] = Path("bulkcall-demo.db"),
    contacts: Annotated[int, typer.Option(min=50, max=10_000, help="Contacts in the campaign")] = 2000,
    rate: Annotated[
        float,
        typer.Option(
            min=1, max=20_000, help="Service-clock seconds per wall second (the default run takes about a minute)"
        ),
    ] = 1500.0,
    seed: Annotated[int, typer.Option(help="Seed of the audience and of the simulated network")] = 7,
    no_live: Annotated[
        bool, typer.Option("--no-live", help="Plain progress lines instead of the live display (CI, logs)")
    ] = False,
    results: Annotated[Path, typer.Option(help="Where the results CSV (one row per task) is written")] = Path(
        "bulkcall-demo-results.csv"
    ),
) -> None:
    """A whole campaign end to end on a fresh SQLite file and the simulator, on a fast service clock."""
    from bulkcall.demo import DemoOptions, main

    code = main(
        DemoOptions(database=database, contacts=contacts, rate=rate, seed=seed, live=not no_live, results=results)
    )
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from bulkcall.db.migrate import upgrade

    upgrade(get_settings().database_url)
    typer.echo("database is up to date")


@keys_app.command("create")
def keys_create(
    workspace: Annotated[str, typer.Option(help="Workspace name (created if it does not exist)")],
    scope: Annotated[list[str] | None, typer.Option(help="Scope to grant (repeat); default: all scopes")] = None,
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
) -> None:
    """Create an API key; the key alone is printed on the last line of stdout."""
    from bulkcall.db.engine import Database
    from bulkcall.db.migrate import upgrade
    from bulkcall.kit.clock import SystemClock
    from bulkcall.kit.errors import ValidationFailed
    from bulkcall.services.workspaces import create_key

    settings = get_settings()
    upgrade(settings.database_url)

    async def run() -> str:
        database = Database(settings.database_url)
        try:
            async with database.session(write=True) as session, session.begin():
                ws, plain = await create_key(session, workspace, scope, SystemClock().now(), name)
                typer.echo(f"workspace {ws.name} (id {ws.id}); scopes: {', '.join(scope or ['all'])}")
                return plain
        finally:
            await database.dispose()

    try:
        plain_key = asyncio.run(run())
    except ValidationFailed as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(plain_key)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
