"""Telephony connections: a provider, its settings, and its write-only secrets.

A connection's ``config`` is validated by its provider's model (``bulkcall.providers``), then split:
secret fields go to the ``secrets`` column and are never returned or logged; everything else is
stored with defaults filled in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from secrets import token_hex
from typing import Any

from pydantic import ValidationError

from bulkcall.db.models import TelephonyConnection
from bulkcall.db.repositories.telephony import TelephonyConnectionRepository
from bulkcall.kit.errors import NotFound, ValidationFailed
from bulkcall.kit.logging import get_logger
from bulkcall.providers import ProviderConfig, get_provider, load_config, parse_config
from bulkcall.providers.base import ConnectionInfo
from bulkcall.providers.registry import ProviderRuntime
from bulkcall.schemas.telephony import ConnectionTestOut, TelephonyConnectionCreate, TelephonyConnectionUpdate
from bulkcall.services.context import ServiceContext

log = get_logger("bulkcall.telephony")


def _repo(ctx: ServiceContext) -> TelephonyConnectionRepository:
    return TelephonyConnectionRepository(ctx.session, ctx.workspace_id)


def _config_errors(exc: ValidationError) -> ValidationFailed:
    """Pydantic's errors as ``config.<path>`` field errors; input values are left out (they may be secrets)."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_input=False, include_url=False):
        path = ".".join(["config", *(str(part) for part in error["loc"])])
        message = "Unknown field" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
        errors.setdefault(path, []).append(message)
    first_field, first_messages = next(iter(errors.items()))
    return ValidationFailed(errors, message=f"{first_field}: {first_messages[0]}")


def _validated(provider: str, raw: Mapping[str, Any]) -> ProviderConfig:
    try:
        return parse_config(provider, raw)
    except ValidationError as exc:
        raise _config_errors(exc) from None


async def get_connection(ctx: ServiceContext, connection_id: int) -> TelephonyConnection:
    connection = await _repo(ctx).get(connection_id)
    if connection is None:
        raise NotFound("telephony connection", connection_id)
    return connection


async def list_connections(
    ctx: ServiceContext, *, provider: str | None, page: int, per_page: int
) -> tuple[list[TelephonyConnection], int]:
    repo = _repo(ctx)
    return await repo.page(repo.list_query(provider=provider), page, per_page)


async def create_connection(ctx: ServiceContext, body: TelephonyConnectionCreate) -> TelephonyConnection:
    config = _validated(body.provider, body.config)
    repo = _repo(ctx)
    connection = repo.add(
        TelephonyConnection(
            workspace_id=ctx.workspace_id,
            name=body.name,
            provider=body.provider,
            config=config.public(),
            secrets=config.secrets(),
            concurrency_limit=body.concurrency_limit,
            calls_per_second=body.calls_per_second,
            signing_secret=token_hex(32),
            created_at=ctx.now,
            updated_at=ctx.now,
        )
    )
    await repo.flush()
    return connection


async def update_connection(
    ctx: ServiceContext, connection_id: int, changes: TelephonyConnectionUpdate
) -> TelephonyConnection:
    """Apply ``changes``; ``config`` is merged key by key into the stored config and secrets."""
    connection = await get_connection(ctx, connection_id)
    values = changes.model_dump(exclude_unset=True)
    provider = values.pop("provider", connection.provider)
    if provider != connection.provider:
        raise ValidationFailed.single(
            "provider",
            f"cannot be changed (this connection uses {connection.provider}); create a new connection instead",
        )
    if "config" in values:
        merged = {**connection.config, **connection.secrets, **values.pop("config")}
        config = _validated(connection.provider, merged)
        connection.config = config.public()
        connection.secrets = config.secrets()
    for field, value in values.items():
        setattr(connection, field, value)
    if changes.model_fields_set - {"provider"}:
        connection.updated_at = ctx.now
        await ctx.session.flush()
    return connection


async def check_connection(ctx: ServiceContext, connection_id: int) -> ConnectionTestOut:
    """Ask the provider whether the connection works, without placing a call (credentials never in the answer)."""
    row = await get_connection(ctx, connection_id)
    spec = get_provider(row.provider)
    info = ConnectionInfo(
        id=row.id,
        workspace_id=row.workspace_id,
        provider=row.provider,
        config=load_config(row.provider, row.config, row.secrets),
        signing_secret=row.signing_secret,
    )
    await ctx.release_locks()  # the provider may take seconds to answer
    started = time.perf_counter()
    if spec.factory is None:
        ok, detail = False, f"provider {row.provider!r} cannot be checked"
    else:
        provider = spec.factory(ProviderRuntime(deliver=None, now=lambda: ctx.now))
        try:
            check = await provider.check_connection(info)
            ok, detail = check.ok, check.detail
        finally:
            await provider.aclose()
    latency_ms = round((time.perf_counter() - started) * 1000)
    log.info("connection_tested", connection_id=row.id, provider=row.provider, ok=ok, latency_ms=latency_ms)
    return ConnectionTestOut(ok=ok, provider=row.provider, detail=detail, latency_ms=latency_ms)
