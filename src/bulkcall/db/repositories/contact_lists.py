"""Queries on ``contact_lists`` and their members."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select

from bulkcall.db.models import ContactList, ContactListMember
from bulkcall.db.repositories.base import WorkspaceRepository
from bulkcall.db.repositories.dnc import BATCH_SIZE, insert_ignoring_duplicates


class ContactListRepository(WorkspaceRepository[ContactList]):
    model = ContactList

    def list_query(self, search: str | None = None) -> Select[Any]:
        query = self.scoped()
        term = (search or "").strip()
        if term:
            query = query.where(ContactList.name.icontains(term, autoescape=True))
        return query

    async def count_members(self, contact_list_ids: Sequence[int]) -> dict[int, int]:
        """Members per list for the given lists (lists without members are absent)."""
        if not contact_list_ids:
            return {}
        result = await self.session.execute(
            select(ContactListMember.contact_list_id, func.count())
            .where(ContactListMember.contact_list_id.in_(list(contact_list_ids)))
            .group_by(ContactListMember.contact_list_id)
        )
        return {list_id: int(count) for list_id, count in result.all()}

    async def member_count(self, contact_list_id: int) -> int:
        return (await self.count_members([contact_list_id])).get(contact_list_id, 0)

    async def add_members(self, contact_list_id: int, contact_ids: Sequence[int], now: datetime) -> int:
        """Add contacts (already checked to be this workspace's); returns how many were not members yet."""
        rows = [
            {"contact_list_id": contact_list_id, "contact_id": contact_id, "added_at": now}
            for contact_id in dict.fromkeys(contact_ids)
        ]
        return await insert_ignoring_duplicates(
            self.session, ContactListMember, rows, ("contact_list_id", "contact_id")
        )

    async def remove_members(self, contact_list_id: int, contact_ids: Sequence[int]) -> int:
        """Take contacts out of a list; returns how many were members."""
        distinct = list(dict.fromkeys(contact_ids))
        removed = 0
        for start in range(0, len(distinct), BATCH_SIZE):
            statement = (
                delete(ContactListMember)
                .where(
                    ContactListMember.contact_list_id == contact_list_id,
                    ContactListMember.contact_id.in_(distinct[start : start + BATCH_SIZE]),
                )
                .returning(ContactListMember.contact_id)
            )
            removed += len((await self.session.execute(statement)).all())
        return removed
