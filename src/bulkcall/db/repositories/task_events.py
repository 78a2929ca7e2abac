"""Tasks that reach a terminal status outside an attempt's end, each with its ``task.completed`` event.

Every statement is set-based: the event rows are written by ``INSERT ... SELECT`` in the same transaction as
the status change (PostgreSQL: one statement, the ``UPDATE ... RETURNING`` feeding the insert; SQLite has
one writer at a time, so the insert reads the same rows the update then changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, insert, literal, literal_column, null, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import CallTask, CampaignEvent
from bulkcall.db.models.campaign import NOT_PENDING_SQL
from bulkcall.db.repositories.base import dialect_of, rows_changed
from bulkcall.db.types import UTCDateTime

TASK_COMPLETED = "task.completed"
_EVENTS = cast(Table, CampaignEvent.__table__)
_EVENT_COLUMNS = ("workspace_id", "campaign_id", "type", "data", "created_at", "txid")
# The keys of ``task.completed`` data, as ``dispatch/outcomes.py`` writes them when an attempt ends a task.
_DATA_KEYS = ("campaign_id", "task_id", "contact_id", "status", "skip_reason", "last_outcome", "attempts")


def _postgres(session: AsyncSession) -> bool:
    return dialect_of(session) == "postgresql"


def txid_expression(session: AsyncSession) -> ColumnElement[Any]:
    """The writing transaction's id on PostgreSQL (see ``CampaignEvent.txid``); NULL on SQLite."""
    if _postgres(session):
        return literal_column("CAST(CAST(pg_current_xact_id() AS text) AS bigint)")
    return null()


async def current_txid(session: AsyncSession) -> int | None:
    if not _postgres(session):
        return None
    return int((await session.execute(select(txid_expression(session)))).scalar_one())


def _data(session: AsyncSession, columns: dict[str, Any]) -> ColumnElement[Any]:
    build = func.jsonb_build_object if _postgres(session) else func.json_object
    args: list[Any] = []
    for key in _DATA_KEYS:
        args.extend((literal_column(f"'{key}'"), columns[key]))
    return cast(ColumnElement[Any], build(*args))


def _row_columns(source: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    columns = {
        "campaign_id": source.campaign_id,
        "task_id": source.id,
        "contact_id": source.contact_id,
        "status": source.status,
        "skip_reason": source.skip_reason,
        "last_outcome": source.last_outcome,
        "attempts": source.attempts,
    }
    for key, value in overrides.items():
        if key in columns:
            columns[key] = literal(value) if value is not None else null()
    return columns


async def end_tasks(
    session: AsyncSession, where: Sequence[ColumnElement[bool]], values: dict[str, Any], now: datetime
) -> int:
    """``UPDATE call_tasks SET values WHERE where`` plus one ``task.completed`` event per task it changed."""
    created_at = literal(now, UTCDateTime())
    if _postgres(session):
        ended = (
            update(CallTask)
            .where(*where)
            .values(**values)
            .returning(
                CallTask.workspace_id,
                CallTask.campaign_id,
                CallTask.id,
                CallTask.contact_id,
                CallTask.status,
                CallTask.skip_reason,
                CallTask.last_outcome,
                CallTask.attempts,
            )
            .cte("ended")
        )
        source = select(
            ended.c.workspace_id,
            ended.c.campaign_id,
            literal(TASK_COMPLETED),
            _data(session, _row_columns(ended.c, {})),
            created_at,
            txid_expression(session),
        )
        # The driver reports no row count for a statement led by a data-modifying CTE: count what it returns.
        inserted = insert(_EVENTS).from_select(_EVENT_COLUMNS, source).returning(_EVENTS.c.id).cte("inserted")
        counted = await session.execute(select(func.count()).select_from(inserted))
        return int(counted.scalar_one())
    source = select(
        CallTask.workspace_id,
        CallTask.campaign_id,
        literal(TASK_COMPLETED),
        _data(session, _row_columns(CallTask, {"status": values["status"], "skip_reason": values.get("skip_reason")})),
        created_at,
        null(),
    ).where(*where)
    await session.execute(insert(_EVENTS).from_select(_EVENT_COLUMNS, source))
    result = await session.execute(
        update(CallTask).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return rows_changed(result)


async def last_task_id(session: AsyncSession, campaign_id: int) -> int:
    """The campaign's highest task id (an index probe), to find the tasks a launch is about to add."""
    found = await session.execute(select(func.max(CallTask.id)).where(CallTask.campaign_id == campaign_id))
    return int(found.scalar_one() or 0)


async def record_skipped_since(session: AsyncSession, campaign_id: int, after_task_id: int, now: datetime) -> int:
    """A ``task.completed`` event for each task created skipped (dnc, invalid or duplicate phone) after
    ``after_task_id``: read through the status index, so a launch pays only for its skips."""
    source = select(
        CallTask.workspace_id,
        CallTask.campaign_id,
        literal(TASK_COMPLETED),
        _data(session, _row_columns(CallTask, {})),
        literal(now, UTCDateTime()),
        txid_expression(session),
    ).where(
        CallTask.campaign_id == campaign_id,
        text(NOT_PENDING_SQL),  # literal, as the status index states it, so SQLite reads that index
        CallTask.status == "skipped",
        CallTask.id > after_task_id,
    )
    await session.execute(insert(_EVENTS).from_select(_EVENT_COLUMNS, source))
    # Counted, not taken from the insert's rowcount (psycopg reports -1 for this INSERT ... SELECT).
    counted = select(func.count()).select_from(source.subquery())
    return int((await session.execute(counted)).scalar_one())
