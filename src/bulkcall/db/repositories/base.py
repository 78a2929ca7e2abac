"""Shared repository plumbing: workspace-scoped lookups and pagination."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models.base import Base

ModelT = TypeVar("ModelT", bound=Base)


def dialect_of(session: AsyncSession) -> str:
    """The database a session talks to: "sqlite" or "postgresql"."""
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def rows_changed(result: Any) -> int:
    """Rows a statement changed, or -1 where the driver cannot tell (psycopg for some ``INSERT ... SELECT``)."""
    count = getattr(result, "rowcount", -1)
    return -1 if count is None else int(count)


class WorkspaceRepository(Generic[ModelT]):
    """A repository whose rows belong to one workspace; another workspace's rows do not exist for it.

    Subclasses set ``model`` to a model with ``id`` and ``workspace_id`` columns.
    """

    model: type[ModelT]

    def __init__(self, session: AsyncSession, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    @property
    def _columns(self) -> Any:
        return self.model

    def scoped(self) -> Select[Any]:
        return select(self.model).where(self._columns.workspace_id == self.workspace_id)

    async def get(self, row_id: int) -> ModelT | None:
        result = await self.session.execute(self.scoped().where(self._columns.id == row_id))
        row: ModelT | None = result.scalar_one_or_none()
        return row

    async def existing_ids(self, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        query = select(self._columns.id).where(
            self._columns.workspace_id == self.workspace_id, self._columns.id.in_(list(set(ids)))
        )
        return set((await self.session.execute(query)).scalars())

    def add(self, row: ModelT) -> ModelT:
        self.session.add(row)
        return row

    async def flush(self) -> None:
        await self.session.flush()

    async def delete(self, row: ModelT) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def page(self, query: Select[Any], page: int, per_page: int) -> tuple[list[ModelT], int]:
        """One page of ``query`` (newest first by id unless the query is ordered) and the total count."""
        counted = select(func.count()).select_from(query.order_by(None).subquery())
        total = (await self.session.execute(counted)).scalar_one()
        if not query._order_by_clauses:
            query = query.order_by(self._columns.id.desc())
        result = await self.session.execute(query.limit(per_page).offset((page - 1) * per_page))
        return list(result.scalars().all()), int(total)
