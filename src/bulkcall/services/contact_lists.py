"""Contact lists: named static audiences, and their membership."""

from __future__ import annotations

from collections.abc import Sequence

from bulkcall.db.models import ContactList
from bulkcall.db.repositories.contact_lists import ContactListRepository
from bulkcall.db.repositories.contacts import ContactRepository
from bulkcall.kit.errors import FieldErrors, NotFound
from bulkcall.schemas.contact_lists import (
    ContactListCreate,
    ContactListOut,
    ContactListUpdate,
    MembersAdded,
    MembersRemoved,
)
from bulkcall.services.context import ServiceContext


async def _get(repo: ContactListRepository, contact_list_id: int) -> ContactList:
    row = await repo.get(contact_list_id)
    if row is None:
        raise NotFound("contact_list", contact_list_id)
    return row


async def _out(repo: ContactListRepository, row: ContactList) -> ContactListOut:
    return ContactListOut.of(row, await repo.member_count(row.id))


async def list_contact_lists(
    ctx: ServiceContext, search: str | None, page: int, per_page: int
) -> tuple[list[ContactListOut], int]:
    repo = ContactListRepository(ctx.session, ctx.workspace_id)
    rows, total = await repo.page(repo.list_query(search), page, per_page)
    counts = await repo.count_members([row.id for row in rows])
    return [ContactListOut.of(row, counts.get(row.id, 0)) for row in rows], total


async def get_contact_list(ctx: ServiceContext, contact_list_id: int) -> ContactListOut:
    repo = ContactListRepository(ctx.session, ctx.workspace_id)
    return await _out(repo, await _get(repo, contact_list_id))


async def create_contact_list(ctx: ServiceContext, body: ContactListCreate) -> ContactListOut:
    repo = ContactListRepository(ctx.session, ctx.workspace_id)
    row = repo.add(
        ContactList(
            workspace_id=ctx.workspace_id,
            name=body.name,
            description=body.description,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
    )
    await repo.flush()
    return ContactListOut.of(row, 0)


async def update_contact_list(ctx: ServiceContext, contact_list_id: int, body: ContactListUpdate) -> ContactListOut:
    repo = ContactListRepository(ctx.session, ctx.workspace_id)
    row = await _get(repo, contact_list_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(row, field, value)
    row.updated_at = ctx.now
    await repo.flush()
    return await _out(repo, row)


async def delete_contact_list(ctx: ServiceContext, contact_list_id: int) -> None:
    """Delete a list and its memberships; the contacts themselves stay."""
    repo = ContactListRepository(ctx.session, ctx.workspace_id)
    await repo.delete(await _get(repo, contact_list_id))


async def add_members(ctx: ServiceContext, contact_list_id: int, contact_ids: Sequence[int]) -> MembersAdded:
    """Add contacts to a list, idempotently; any id that is not a contact of this workspace → 422, nothing added."""
    repo = ContactListRepository(ctx.session, ctx.workspace_id)
    row = await _get(repo, contact_list_id)
    known = await ContactRepository(ctx.session, ctx.workspace_id).existing_ids(contact_ids)
    problems = FieldErrors()
    for index, contact_id in enumerate(contact_ids):
        if contact_id not in known:
            problems.add(f"contact_ids.{index}", f"contact {contact_id} not found")
    problems.raise_if_any()
    added = await repo.add_members(row.id, contact_ids, ctx.now)
    if added:
        row.updated_at = ctx.now
        await repo.flush()
    return MembersAdded(added=added, already_members=len(known) - added, contact_list=await _out(repo, row))


async def remove_members(ctx: ServiceContext, contact_list_id: int, contact_ids: Sequence[int]) -> MembersRemoved:
    """Take contacts out of a list; ids that are not members (or not contacts at all) are counted, not refused."""
    repo = ContactListRepository(ctx.session, ctx.workspace_id)
    row = await _get(repo, contact_list_id)
    removed = await repo.remove_members(row.id, contact_ids)
    if removed:
        row.updated_at = ctx.now
        await repo.flush()
    distinct = len(set(contact_ids))
    return MembersRemoved(removed=removed, not_members=distinct - removed, contact_list=await _out(repo, row))
