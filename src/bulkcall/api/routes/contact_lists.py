"""``/contact_lists``: named static audiences and their membership."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from bulkcall.api.deps import ContactsRead, ContactsWrite, Pagination, PathId
from bulkcall.api.responses import error_responses, ok, paged
from bulkcall.schemas.base import Envelope, ListEnvelope
from bulkcall.schemas.contact_lists import (
    ContactIds,
    ContactListCreate,
    ContactListOut,
    ContactListUpdate,
    MembersAdded,
    MembersRemoved,
)
from bulkcall.services import contact_lists

router = APIRouter(prefix="/contact_lists", tags=["contact_lists"])


@router.get("", operation_id="list_contact_lists", summary="List contact lists, newest first")
async def list_contact_lists(
    ctx: ContactsRead,
    pagination: Pagination,
    search: Annotated[str | None, Query(max_length=200, description="Substring of the list name")] = None,
) -> ListEnvelope[ContactListOut]:
    rows, total = await contact_lists.list_contact_lists(ctx, search, pagination.page, pagination.per_page)
    return paged(rows, total, pagination.page, pagination.per_page)


@router.post("", status_code=201, operation_id="create_contact_list", summary="Create an empty contact list")
async def create_contact_list(ctx: ContactsWrite, body: ContactListCreate) -> Envelope[ContactListOut]:
    return ok(await contact_lists.create_contact_list(ctx, body))


@router.get(
    "/{contact_list_id}",
    operation_id="get_contact_list",
    summary="Get a contact list with its contacts_count",
    responses=error_responses(404),
)
async def get_contact_list(ctx: ContactsRead, contact_list_id: PathId) -> Envelope[ContactListOut]:
    return ok(await contact_lists.get_contact_list(ctx, contact_list_id))


@router.patch(
    "/{contact_list_id}",
    operation_id="update_contact_list",
    summary="Rename a contact list or change its description",
    responses=error_responses(404),
)
async def update_contact_list(
    ctx: ContactsWrite, contact_list_id: PathId, body: ContactListUpdate
) -> Envelope[ContactListOut]:
    return ok(await contact_lists.update_contact_list(ctx, contact_list_id, body))


@router.delete(
    "/{contact_list_id}",
    status_code=204,
    operation_id="delete_contact_list",
    summary="Delete a contact list (its contacts stay); answers 204 with no body",
    responses=error_responses(404),
)
async def delete_contact_list(ctx: ContactsWrite, contact_list_id: PathId) -> None:
    await contact_lists.delete_contact_list(ctx, contact_list_id)


@router.post(
    "/{contact_list_id}/contacts",
    operation_id="add_contact_list_members",
    summary="Add contacts to a list (idempotent; unknown ids → 422 and nothing is added)",
    responses=error_responses(404),
)
async def add_contact_list_members(
    ctx: ContactsWrite, contact_list_id: PathId, body: ContactIds
) -> Envelope[MembersAdded]:
    return ok(await contact_lists.add_members(ctx, contact_list_id, body.contact_ids))


@router.delete(
    "/{contact_list_id}/contacts",
    operation_id="remove_contact_list_members",
    summary="Take contacts out of a list (ids that are not members are counted, not refused)",
    responses=error_responses(404),
)
async def remove_contact_list_members(
    ctx: ContactsWrite, contact_list_id: PathId, body: ContactIds
) -> Envelope[MembersRemoved]:
    return ok(await contact_lists.remove_members(ctx, contact_list_id, body.contact_ids))
