"""``/contacts``: one contact per phone number per workspace."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from bulkcall.api.deps import ContactsRead, ContactsWrite, Pagination, PathId
from bulkcall.api.responses import error_responses, ok, paged
from bulkcall.db.repositories.contacts import ContactFilter
from bulkcall.schemas.base import MAX_ROW_ID, Envelope, ListEnvelope
from bulkcall.schemas.contacts import ContactCreate, ContactOut, ContactUpdate
from bulkcall.services import contacts

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.get("", operation_id="list_contacts", summary="List contacts, newest first, with optional filters")
async def list_contacts(
    ctx: ContactsRead,
    pagination: Pagination,
    search: Annotated[
        str | None, Query(max_length=200, description="Substring of the name, phone, email or company")
    ] = None,
    tag: Annotated[str | None, Query(max_length=100, description="Contacts carrying this tag")] = None,
    contact_list_id: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="Contacts in this list (of this workspace)")
    ] = None,
    timezone: Annotated[
        str | None,
        Query(
            max_length=64,
            description="IANA zone: contacts whose `timezone` is this zone, or who have none and whose number "
            "implies it",
        ),
    ] = None,
) -> ListEnvelope[ContactOut]:
    where = ContactFilter(search=search, tag=tag, contact_list_id=contact_list_id, timezone=timezone)
    rows, total = await contacts.list_contacts(ctx, where, pagination.page, pagination.per_page)
    return paged([ContactOut.model_validate(row) for row in rows], total, pagination.page, pagination.per_page)


@router.post(
    "",
    status_code=201,
    operation_id="create_contact",
    summary="Create a contact (phone normalised to E.164; 409 if the phone already has a contact)",
    responses=error_responses(409),
)
async def create_contact(ctx: ContactsWrite, body: ContactCreate) -> Envelope[ContactOut]:
    return ok(ContactOut.model_validate(await contacts.create_contact(ctx, body)))


@router.get("/{contact_id}", operation_id="get_contact", summary="Get a contact", responses=error_responses(404))
async def get_contact(ctx: ContactsRead, contact_id: PathId) -> Envelope[ContactOut]:
    return ok(ContactOut.model_validate(await contacts.get_contact(ctx, contact_id)))


@router.patch(
    "/{contact_id}",
    operation_id="update_contact",
    summary="Change a contact (tags and custom_fields are replaced whole; a new phone must stay unique)",
    responses=error_responses(404, 409),
)
async def update_contact(ctx: ContactsWrite, contact_id: PathId, body: ContactUpdate) -> Envelope[ContactOut]:
    return ok(ContactOut.model_validate(await contacts.update_contact(ctx, contact_id, body)))


@router.delete(
    "/{contact_id}",
    status_code=204,
    operation_id="delete_contact",
    summary="Delete a contact and its list memberships; answers 204 with no body",
    responses=error_responses(404),
)
async def delete_contact(ctx: ContactsWrite, contact_id: PathId) -> None:
    await contacts.delete_contact(ctx, contact_id)
