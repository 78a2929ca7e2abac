"""Queries on ``phone_numbers`` (one row per E.164 per workspace)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError

from bulkcall.db.models import PhoneNumber
from bulkcall.db.repositories.base import WorkspaceRepository


class PhoneNumberRepository(WorkspaceRepository[PhoneNumber]):
    model = PhoneNumber

    def list_query(
        self,
        *,
        status: str | None = None,
        telephony_connection_id: int | None = None,
        country: str | None = None,
    ) -> Select[Any]:
        query = self.scoped()
        if status is not None:
            query = query.where(PhoneNumber.status == status)
        if telephony_connection_id is not None:
            query = query.where(PhoneNumber.telephony_connection_id == telephony_connection_id)
        if country is not None:
            query = query.where(PhoneNumber.country == country)
        return query

    async def by_e164(self, e164: str) -> PhoneNumber | None:
        result = await self.session.execute(self.scoped().where(PhoneNumber.e164 == e164))
        row: PhoneNumber | None = result.scalar_one_or_none()
        return row

    async def save_unique(self, row: PhoneNumber, changes: Mapping[str, Any] | None = None) -> PhoneNumber | None:
        """Insert ``row`` (or apply ``changes`` to it) inside a savepoint.

        Returns None on success, or the row that already holds the E.164: the caller checks first,
        and this covers a concurrent request winning in between without aborting the transaction.
        """
        e164 = row.e164 if changes is None else changes.get("e164", row.e164)
        try:
            async with self.session.begin_nested():
                if changes is None:
                    self.session.add(row)
                else:
                    for field, value in changes.items():
                        setattr(row, field, value)
        except IntegrityError:
            existing = await self.by_e164(e164)
            if existing is None:
                raise
            return existing
        return None
