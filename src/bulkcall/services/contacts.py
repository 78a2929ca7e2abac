"""Contacts: one per phone number per workspace, with the country and zones the number implies."""

from __future__ import annotations

from typing import Any

from bulkcall.db.models import Contact
from bulkcall.db.repositories.contact_lists import ContactListRepository
from bulkcall.db.repositories.contacts import ContactFilter, ContactRepository
from bulkcall.domain.phones import normalize
from bulkcall.domain.timezones import canonical_zone
from bulkcall.kit.errors import Conflict, FieldErrors, NotFound, ValidationFailed
from bulkcall.schemas.contacts import ContactCreate, ContactUpdate
from bulkcall.services.context import ServiceContext


def _duplicate(existing: Contact | None, e164: str) -> Conflict:
    return Conflict(
        f"A contact with phone {e164} already exists in this workspace",
        details={"existing_id": existing.id if existing else None, "phone_e164": e164},
    )


def _derive_from_phone(contact: Contact, e164: str) -> None:
    """Set the phone and what it implies; ``e164`` was validated by the request schema."""
    phone = normalize(e164)
    contact.phone_e164 = phone.e164
    contact.country = phone.country
    contact.phone_timezones = phone.timezones_key


async def list_contacts(
    ctx: ServiceContext, where: ContactFilter, page: int, per_page: int
) -> tuple[list[Contact], int]:
    """One page of the workspace's contacts matching ``where`` (raw filter values, validated here)."""
    problems = FieldErrors()
    if where.timezone is not None:
        zone = canonical_zone(where.timezone)
        if zone is None:
            problems.add("timezone", f"unknown time zone {where.timezone!r}: use an IANA name")
        else:
            where = ContactFilter(where.search, where.tag, where.contact_list_id, zone)
    if where.contact_list_id is not None:
        lists = ContactListRepository(ctx.session, ctx.workspace_id)
        if await lists.get(where.contact_list_id) is None:
            problems.add("contact_list_id", f"contact list {where.contact_list_id} not found")
    problems.raise_if_any()
    repo = ContactRepository(ctx.session, ctx.workspace_id)
    return await repo.page(repo.list_query(where), page, per_page)


async def get_contact(ctx: ServiceContext, contact_id: int) -> Contact:
    contact = await ContactRepository(ctx.session, ctx.workspace_id).get(contact_id)
    if contact is None:
        raise NotFound("contact", contact_id)
    return contact


async def create_contact(ctx: ServiceContext, body: ContactCreate) -> Contact:
    """Create a contact; 409 (with the existing id) when the workspace already has one for the phone."""
    repo = ContactRepository(ctx.session, ctx.workspace_id)
    if (existing := await repo.by_phone(body.phone_e164)) is not None:
        raise _duplicate(existing, body.phone_e164)
    contact = Contact(
        workspace_id=ctx.workspace_id,
        first_name=body.first_name,
        last_name=body.last_name,
        email=body.email,
        company=body.company,
        timezone=body.timezone,
        tags=body.tags,
        custom_fields=body.custom_fields,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    _derive_from_phone(contact, body.phone_e164)
    if not await repo.save_unique(contact):
        raise _duplicate(await repo.by_phone(body.phone_e164), body.phone_e164)
    return contact


async def update_contact(ctx: ServiceContext, contact_id: int, body: ContactUpdate) -> Contact:
    """Apply a partial update; a new phone re-derives country and zones and must stay unique."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "default_region" in changes and "phone_e164" not in changes:
        raise ValidationFailed.single("default_region", "only used together with phone_e164")
    changes.pop("default_region", None)
    repo = ContactRepository(ctx.session, ctx.workspace_id)
    contact = await get_contact(ctx, contact_id)
    new_phone: str | None = changes.pop("phone_e164", None)
    if new_phone is not None and new_phone != contact.phone_e164:
        if (existing := await repo.by_phone(new_phone)) is not None:
            raise _duplicate(existing, new_phone)
        _derive_from_phone(contact, new_phone)
    for field, value in changes.items():
        setattr(contact, field, value)
    contact.updated_at = ctx.now
    phone = contact.phone_e164
    if not await repo.save_unique(contact):
        raise _duplicate(await repo.by_phone(phone), phone)
    return contact


async def delete_contact(ctx: ServiceContext, contact_id: int) -> None:
    """Delete a contact; its list memberships go with it (the lists stay)."""
    contact = await get_contact(ctx, contact_id)
    await ContactRepository(ctx.session, ctx.workspace_id).delete(contact)
