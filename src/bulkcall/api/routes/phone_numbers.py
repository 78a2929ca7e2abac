"""``/phone_numbers``: the workspace's caller IDs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from bulkcall.api.deps import NumbersRead, NumbersWrite, Pagination
from bulkcall.api.responses import error_responses, ok, paged
from bulkcall.schemas.base import MAX_ROW_ID, Envelope, ListEnvelope
from bulkcall.schemas.phone_numbers import PhoneNumberCreate, PhoneNumberOut, PhoneNumberStatus, PhoneNumberUpdate
from bulkcall.services import phone_numbers

NumberId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Phone number id")]

router = APIRouter(prefix="/phone_numbers", tags=["phone_numbers"])


@router.get("", operation_id="list_phone_numbers", summary="List phone numbers, newest first")
async def list_numbers(
    ctx: NumbersRead,
    pagination: Pagination,
    status: Annotated[PhoneNumberStatus | None, Query(description="Only numbers with this status")] = None,
    telephony_connection_id: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="Only numbers of this connection")
    ] = None,
    country: Annotated[
        str | None, Query(min_length=2, max_length=2, description="Only numbers of this country (ISO alpha-2)")
    ] = None,
) -> ListEnvelope[PhoneNumberOut]:
    rows, total = await phone_numbers.list_numbers(
        ctx,
        status=status,
        telephony_connection_id=telephony_connection_id,
        country=country,
        page=pagination.page,
        per_page=pagination.per_page,
    )
    return paged([PhoneNumberOut.model_validate(row) for row in rows], total, pagination.page, pagination.per_page)


@router.post(
    "",
    status_code=201,
    operation_id="create_phone_number",
    summary="Add a caller ID (normalised to E.164; unique per workspace)",
    responses=error_responses(409),
)
async def create_number(ctx: NumbersWrite, body: PhoneNumberCreate) -> Envelope[PhoneNumberOut]:
    return ok(PhoneNumberOut.model_validate(await phone_numbers.create_number(ctx, body)))


@router.get(
    "/{number_id}", operation_id="get_phone_number", summary="Get a phone number", responses=error_responses(404)
)
async def get_number(ctx: NumbersRead, number_id: NumberId) -> Envelope[PhoneNumberOut]:
    return ok(PhoneNumberOut.model_validate(await phone_numbers.get_number(ctx, number_id)))


@router.patch(
    "/{number_id}",
    operation_id="update_phone_number",
    summary="Change a phone number's label, connection, spam flag or allowed countries",
    responses=error_responses(404, 409),
)
async def update_number(ctx: NumbersWrite, number_id: NumberId, body: PhoneNumberUpdate) -> Envelope[PhoneNumberOut]:
    return ok(PhoneNumberOut.model_validate(await phone_numbers.update_number(ctx, number_id, body)))


@router.post(
    "/{number_id}/activate",
    operation_id="activate_phone_number",
    summary="Make a number available for dialing (a no-op if already active)",
    responses=error_responses(404),
)
async def activate_number(ctx: NumbersWrite, number_id: NumberId) -> Envelope[PhoneNumberOut]:
    return ok(PhoneNumberOut.model_validate(await phone_numbers.set_status(ctx, number_id, "active")))


@router.post(
    "/{number_id}/deactivate",
    operation_id="deactivate_phone_number",
    summary="Stop using a number for new calls (a no-op if already inactive)",
    responses=error_responses(404),
)
async def deactivate_number(ctx: NumbersWrite, number_id: NumberId) -> Envelope[PhoneNumberOut]:
    return ok(PhoneNumberOut.model_validate(await phone_numbers.set_status(ctx, number_id, "inactive")))
