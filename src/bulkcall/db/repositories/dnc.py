"""Queries on ``dnc_entries`` (one row per phone per workspace), and the bulk insert-or-skip they use."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ARRAY, Select, Table, bindparam, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import DncEntry
from bulkcall.db.models.base import Base
from bulkcall.db.repositories.base import WorkspaceRepository, dialect_of

# Rows per INSERT statement: few round trips, and well under both drivers' bound-parameter limits.
BATCH_SIZE = 1000

_PHONE_LIKE = re.compile(r"[\d\s()+.\-]+")


async def insert_ignoring_duplicates(
    session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]], conflict_columns: Sequence[str]
) -> int:
    """``INSERT ... ON CONFLICT DO NOTHING`` in batches; returns how many rows were really inserted.

    Every row has the same keys. Duplicates inside ``rows`` are fine too: the first one wins, the
    others count as skipped. Inserted rows are counted with RETURNING, because drivers disagree on
    rowcount for multi-row inserts (psycopg gives -1).
    """
    if not rows:
        return 0
    table = cast(Table, model.__table__)
    conflict = [table.c[name] for name in conflict_columns]
    names = list(rows[0])
    inserted = 0
    if dialect_of(session) == "postgresql":
        # One array parameter per column, unnested server-side: a 4-parameter statement instead of
        # 4000 (psycopg parses long parameter lists slowly, and the plan is reused between batches).
        arrays = [bindparam(f"column_{name}", type_=ARRAY(table.c[name].type)) for name in names]
        source = func.unnest(*arrays).table_valued(*names).render_derived()
        pg_statement = (
            postgresql.insert(table)
            .from_select(names, select(*(source.c[name] for name in names)))
            .on_conflict_do_nothing(index_elements=conflict)
            .returning(*conflict)
        )
        for start in range(0, len(rows), BATCH_SIZE):
            batch = rows[start : start + BATCH_SIZE]
            params = {f"column_{name}": [row[name] for row in batch] for name in names}
            inserted += len((await session.execute(pg_statement, params)).all())
        return inserted
    # SQLite: one statement, many parameter sets; SQLAlchemy compiles it once and sends multi-row
    # INSERTs ("insertmanyvalues").
    statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict).returning(*conflict)
    for start in range(0, len(rows), BATCH_SIZE):
        result = await session.execute(statement, list(rows[start : start + BATCH_SIZE]))
        inserted += len(result.all())
    return inserted


def phone_search(column: Any, term: str) -> Any:
    """Match ``term`` inside an E.164 column; phone-looking input is matched on its digits alone."""
    digits = re.sub(r"\D", "", term)
    if digits and _PHONE_LIKE.fullmatch(term):
        return column.contains(digits, autoescape=True)
    return column.contains(term, autoescape=True)


class DncRepository(WorkspaceRepository[DncEntry]):
    model = DncEntry

    def list_query(self, search: str | None = None) -> Select[Any]:
        query = self.scoped()
        term = (search or "").strip()
        if term:
            query = query.where(
                or_(phone_search(DncEntry.phone_e164, term), DncEntry.reason.icontains(term, autoescape=True))
            )
        return query

    async def by_phone(self, e164: str) -> DncEntry | None:
        result = await self.session.execute(self.scoped().where(DncEntry.phone_e164 == e164))
        row: DncEntry | None = result.scalar_one_or_none()
        return row

    async def add_many(self, entries: Sequence[tuple[str, str | None]], now: datetime) -> int:
        """Add ``(e164, reason)`` pairs, skipping numbers already listed; returns how many were new."""
        rows = [
            {"workspace_id": self.workspace_id, "phone_e164": e164, "reason": reason, "created_at": now}
            for e164, reason in entries
        ]
        return await insert_ignoring_duplicates(self.session, DncEntry, rows, ("workspace_id", "phone_e164"))
