"""Queries on ``contacts`` (one row per phone per workspace)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, exists, func, literal, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from bulkcall.db.models import Contact, ContactListMember
from bulkcall.db.repositories.base import WorkspaceRepository, dialect_of
from bulkcall.db.repositories.dnc import BATCH_SIZE, phone_search
from bulkcall.domain.phones import ZONE_SEPARATOR


@dataclass(frozen=True)
class ContactFilter:
    """What ``GET /contacts`` narrows by; every value is already validated."""

    search: str | None = None
    tag: str | None = None
    contact_list_id: int | None = None
    timezone: str | None = None


class ContactRepository(WorkspaceRepository[Contact]):
    model = Contact

    def list_query(self, where: ContactFilter) -> Select[Any]:
        query = self.scoped()
        term = (where.search or "").strip()
        if term:
            full_name = func.coalesce(Contact.first_name, "") + " " + func.coalesce(Contact.last_name, "")
            query = query.where(
                or_(
                    full_name.icontains(term, autoescape=True),
                    Contact.email.icontains(term, autoescape=True),
                    Contact.company.icontains(term, autoescape=True),
                    phone_search(Contact.phone_e164, term),
                )
            )
        if where.tag is not None:
            query = query.where(self._has_tag(where.tag))
        if where.contact_list_id is not None:
            members = select(ContactListMember.contact_id).where(
                ContactListMember.contact_list_id == where.contact_list_id
            )
            query = query.where(Contact.id.in_(members))
        if where.timezone is not None:
            # The zone given for the contact wins; without one, any zone its number implies matches.
            wrapped = literal(ZONE_SEPARATOR) + Contact.phone_timezones + literal(ZONE_SEPARATOR)
            implied = wrapped.contains(f"{ZONE_SEPARATOR}{where.timezone}{ZONE_SEPARATOR}", autoescape=True)
            query = query.where(or_(Contact.timezone == where.timezone, and_(Contact.timezone.is_(None), implied)))
        return query

    def _has_tag(self, tag: str) -> Any:
        if dialect_of(self.session) == "postgresql":
            return type_coerce(Contact.tags, JSONB).contains([tag])
        elements = func.json_each(Contact.tags).table_valued("value")
        return exists(select(literal(1)).select_from(elements).where(elements.c.value == tag))

    async def by_phone(self, e164: str) -> Contact | None:
        result = await self.session.execute(self.scoped().where(Contact.phone_e164 == e164))
        row: Contact | None = result.scalar_one_or_none()
        return row

    async def existing_ids(self, ids: Sequence[int]) -> set[int]:
        """The ids of ``ids`` that are contacts of this workspace (queried in batches)."""
        distinct = list(dict.fromkeys(ids))
        found: set[int] = set()
        for start in range(0, len(distinct), BATCH_SIZE):
            found |= await super().existing_ids(distinct[start : start + BATCH_SIZE])
        return found

    async def save_unique(self, row: Contact) -> bool:
        """Flush ``row`` (new or changed) inside a savepoint; False when another contact holds its phone.

        The caller checks first; this covers a concurrent request winning in between without
        aborting the request's transaction.
        """
        try:
            async with self.session.begin_nested():
                self.session.add(row)
                await self.session.flush()
        except IntegrityError:
            return False
        return True
