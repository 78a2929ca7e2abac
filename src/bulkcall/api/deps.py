"""Dependencies every endpoint shares: the transaction, the caller, pagination, the clock."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import BeforeValidator
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.engine import Database
from bulkcall.kit.clock import Clock
from bulkcall.kit.errors import Forbidden, Unauthorized
from bulkcall.schemas.base import MAX_ROW_ID
from bulkcall.services.context import ServiceContext
from bulkcall.services.workspaces import Principal, authenticate
from bulkcall.settings import Settings


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent.

    Reads begin a plain transaction; anything else takes SQLite's write lock up front.
    """
    database = get_database(request)
    async with database.session(write=request.method not in ("GET", "HEAD", "OPTIONS")) as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


Session = Annotated[AsyncSession, Depends(_session, scope="function")]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


async def _principal(request: Request, session: Session) -> Principal:
    key = _presented_key(request)
    if key is None:
        raise Unauthorized("Missing API key: send X-Api-Key or Authorization: Bearer")
    principal = await authenticate(session, key)
    if principal is None:
        raise Unauthorized("Unknown or revoked API key")
    return principal


def require(scope: str | None) -> Callable[..., Coroutine[Any, Any, ServiceContext]]:
    """A dependency giving the workspace context of a caller whose key holds ``scope``."""

    async def dependency(
        principal: Annotated[Principal, Depends(_principal)], session: Session, clock: ClockDep
    ) -> ServiceContext:
        if scope is not None and scope not in principal.scopes:
            raise Forbidden(f"This API key lacks the scope {scope}", details={"required_scope": scope})
        return ServiceContext(session=session, workspace_id=principal.workspace_id, now=clock.now())

    dependency.__name__ = f"require_{(scope or 'any').replace(':', '_')}"
    return dependency


AnyKey = Annotated[ServiceContext, Depends(require(None))]
CampaignsRead = Annotated[ServiceContext, Depends(require("bulk_call_campaigns:read"))]
CampaignsWrite = Annotated[ServiceContext, Depends(require("bulk_call_campaigns:write"))]
ContactsRead = Annotated[ServiceContext, Depends(require("contacts:read"))]
ContactsWrite = Annotated[ServiceContext, Depends(require("contacts:write"))]
NumbersRead = Annotated[ServiceContext, Depends(require("phone_numbers:read"))]
NumbersWrite = Annotated[ServiceContext, Depends(require("phone_numbers:write"))]
AgentsRead = Annotated[ServiceContext, Depends(require("agents:read"))]
AgentsWrite = Annotated[ServiceContext, Depends(require("agents:write"))]
WebhooksRead = Annotated[ServiceContext, Depends(require("webhooks:read"))]
WebhooksWrite = Annotated[ServiceContext, Depends(require("webhooks:write"))]


@dataclass(frozen=True)
class PageParams:
    page: int
    per_page: int


def _page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    per_page: Annotated[int, Query(ge=1, le=100, description="Rows per page (1..100)")] = 20,
) -> PageParams:
    return PageParams(page=page, per_page=per_page)


Pagination = Annotated[PageParams, Depends(_page_params)]


PathId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Resource id")]


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: Any) -> Any:
    """Only ``YYYY-MM-DD`` (pydantic alone would also take timestamps and datetimes at midnight)."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("Input should be a date in the format YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
DateFrom = Annotated[
    IsoDate | None,
    Query(alias="from", description="First day (YYYY-MM-DD, inclusive) in the campaign timezone"),
]
DateTo = Annotated[
    IsoDate | None,
    Query(alias="to", description="Last day (YYYY-MM-DD, inclusive) in the campaign timezone; not before `from`"),
]
