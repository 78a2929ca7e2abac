"""``/telephony_connections``: carrier accounts and trunks. Secrets are write-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from bulkcall.api.deps import NumbersRead, NumbersWrite, Pagination
from bulkcall.api.responses import error_responses, ok, paged
from bulkcall.schemas.base import MAX_ROW_ID, Envelope, ListEnvelope
from bulkcall.schemas.telephony import (
    ConnectionTestOut,
    ProviderName,
    TelephonyConnectionCreate,
    TelephonyConnectionOut,
    TelephonyConnectionUpdate,
)
from bulkcall.services import telephony

ConnectionId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Telephony connection id")]

router = APIRouter(prefix="/telephony_connections", tags=["telephony_connections"])


@router.get("", operation_id="list_telephony_connections", summary="List telephony connections, newest first")
async def list_connections(
    ctx: NumbersRead,
    pagination: Pagination,
    provider: Annotated[ProviderName | None, Query(description="Only connections of this provider")] = None,
) -> ListEnvelope[TelephonyConnectionOut]:
    rows, total = await telephony.list_connections(
        ctx, provider=provider, page=pagination.page, per_page=pagination.per_page
    )
    return paged([TelephonyConnectionOut.from_row(row) for row in rows], total, pagination.page, pagination.per_page)


@router.post(
    "",
    status_code=201,
    operation_id="create_telephony_connection",
    summary="Create a telephony connection (config checked per provider; secrets never returned)",
)
async def create_connection(ctx: NumbersWrite, body: TelephonyConnectionCreate) -> Envelope[TelephonyConnectionOut]:
    return ok(TelephonyConnectionOut.from_row(await telephony.create_connection(ctx, body)))


@router.get(
    "/{connection_id}",
    operation_id="get_telephony_connection",
    summary="Get a telephony connection (without its secrets)",
    responses=error_responses(404),
)
async def get_connection(ctx: NumbersRead, connection_id: ConnectionId) -> Envelope[TelephonyConnectionOut]:
    return ok(TelephonyConnectionOut.from_row(await telephony.get_connection(ctx, connection_id)))


@router.patch(
    "/{connection_id}",
    operation_id="update_telephony_connection",
    summary="Change a connection; config keys are merged, omitted secrets are kept",
    responses=error_responses(404),
)
async def update_connection(
    ctx: NumbersWrite, connection_id: ConnectionId, body: TelephonyConnectionUpdate
) -> Envelope[TelephonyConnectionOut]:
    return ok(TelephonyConnectionOut.from_row(await telephony.update_connection(ctx, connection_id, body)))


@router.post(
    "/{connection_id}/test",
    operation_id="test_telephony_connection",
    summary="Check a connection without placing a call: credentials and reachability",
    description=(
        "twilio: fetches the account (`GET /2010-04-01/Accounts/{sid}.json`); http_agent: a signed `ping` to "
        "the agent's URL; simulator: always ok. Answers 200 with `ok: false` and a `detail` when the provider "
        "says no or cannot be reached; credentials never appear in the answer."
    ),
    responses=error_responses(404),
)
async def check_connection(ctx: NumbersWrite, connection_id: ConnectionId) -> Envelope[ConnectionTestOut]:
    return ok(await telephony.check_connection(ctx, connection_id))
