"""Phone numbers (caller IDs): one per E.164 per workspace, each reached through one connection."""

from __future__ import annotations

from typing import Any

from bulkcall.db.models import PhoneNumber
from bulkcall.db.repositories.phone_numbers import PhoneNumberRepository
from bulkcall.db.repositories.telephony import TelephonyConnectionRepository
from bulkcall.domain.phones import normalize
from bulkcall.kit.errors import Conflict, NotFound, ValidationFailed
from bulkcall.schemas.phone_numbers import PhoneNumberCreate, PhoneNumberUpdate
from bulkcall.services.context import ServiceContext


def _repo(ctx: ServiceContext) -> PhoneNumberRepository:
    return PhoneNumberRepository(ctx.session, ctx.workspace_id)


def _duplicate(existing: PhoneNumber) -> Conflict:
    return Conflict(
        f"phone number {existing.e164} already exists in this workspace (id {existing.id})",
        details={"existing_id": existing.id, "e164": existing.e164},
    )


async def _check_connection(ctx: ServiceContext, connection_id: int) -> None:
    if await TelephonyConnectionRepository(ctx.session, ctx.workspace_id).get(connection_id) is None:
        raise ValidationFailed.single(
            "telephony_connection_id", f"telephony connection {connection_id} not found in this workspace"
        )


async def get_number(ctx: ServiceContext, number_id: int) -> PhoneNumber:
    number = await _repo(ctx).get(number_id)
    if number is None:
        raise NotFound("phone number", number_id)
    return number


async def list_numbers(
    ctx: ServiceContext,
    *,
    status: str | None,
    telephony_connection_id: int | None,
    country: str | None,
    page: int,
    per_page: int,
) -> tuple[list[PhoneNumber], int]:
    repo = _repo(ctx)
    query = repo.list_query(
        status=status,
        telephony_connection_id=telephony_connection_id,
        country=country.upper() if country else None,
    )
    return await repo.page(query, page, per_page)


async def create_number(ctx: ServiceContext, body: PhoneNumberCreate) -> PhoneNumber:
    """Add a caller ID; its country comes from the number. A number already present is a 409."""
    await _check_connection(ctx, body.telephony_connection_id)
    repo = _repo(ctx)
    existing = await repo.by_e164(body.e164)
    if existing is not None:
        raise _duplicate(existing)
    number = PhoneNumber(
        workspace_id=ctx.workspace_id,
        telephony_connection_id=body.telephony_connection_id,
        e164=body.e164,
        label=body.label,
        country=normalize(body.e164).country,
        status=body.status,
        spam_flagged=body.spam_flagged,
        allowed_countries=body.allowed_countries,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    existing = await repo.save_unique(number)
    if existing is not None:
        raise _duplicate(existing)
    return number


async def update_number(ctx: ServiceContext, number_id: int, changes: PhoneNumberUpdate) -> PhoneNumber:
    number = await get_number(ctx, number_id)
    values: dict[str, Any] = changes.model_dump(exclude_unset=True)
    if not values:
        return number
    if "telephony_connection_id" in values:
        await _check_connection(ctx, values["telephony_connection_id"])
    repo = _repo(ctx)
    if "e164" in values and values["e164"] != number.e164:
        existing = await repo.by_e164(values["e164"])
        if existing is not None:
            raise _duplicate(existing)
        values["country"] = normalize(values["e164"]).country
    values["updated_at"] = ctx.now
    existing = await repo.save_unique(number, values)
    if existing is not None:
        raise _duplicate(existing)
    return number


async def set_status(ctx: ServiceContext, number_id: int, status: str) -> PhoneNumber:
    """Activate or deactivate; asking for the status the number already has changes nothing."""
    number = await get_number(ctx, number_id)
    if number.status != status:
        number.status = status
        number.updated_at = ctx.now
        await ctx.session.flush()
    return number
