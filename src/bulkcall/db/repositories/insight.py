"""Queries behind analytics, dispatch health, the failure-spike breaker and the budget cap.

Writes add to the quarter-hour statistics (``db/models/insight.py``) in the transaction that ends attempts:
one upsert per table and batch, keys pre-aggregated and sorted (concurrent writers lock rows in one order).
Reads sum those statistics over a bucket range, or probe indexes; none of them reads every attempt or task.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import BigInteger, Table, case, delete, func, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from bulkcall.db.models import (
    CallAttempt,
    CallTask,
    CampaignCallStat,
    CampaignReachStat,
    CampaignTalkStat,
    CampaignTaskCount,
    PhoneNumber,
)
from bulkcall.db.models.campaign import WAITING_SQL
from bulkcall.db.repositories.base import dialect_of
from bulkcall.db.repositories.dispatch import _json_rows, _one_of, _recordset
from bulkcall.db.triggers import SHARDS
from bulkcall.db.types import sqlite_timestamp
from bulkcall.domain.insight import LAST_BIN, RecentAttempt

_CALL_STATS = cast(Table, CampaignCallStat.__table__)
_REACH_STATS = cast(Table, CampaignReachStat.__table__)
_TALK_STATS = cast(Table, CampaignTalkStat.__table__)
_TASK_COUNTS = cast(Table, CampaignTaskCount.__table__)

# Rows per statistics key on PostgreSQL, as for the task counters: two transactions of one campaign and
# quarter-hour wait on each other only when they draw the same shard.
STAT_SHARDS = SHARDS
CALL_KEYS = ("campaign_id", "bucket", "phone_number_id", "attempt_number", "outcome")
CALL_SUMS = ("attempts", "talk_seconds", "cost")
REACH_KEYS = ("campaign_id", "bucket", "kind", "prev_bucket")
REACH_SUMS = ("tasks",)
TALK_KEYS = ("campaign_id", "bucket", "bin")
TALK_SUMS = ("calls",)


# -- writing ------------------------------------------------------------------------------------------------


async def previous_ends(session: AsyncSession, task_ids: Iterable[int]) -> dict[int, tuple[datetime | None, ...]]:
    """Per task: when its last ended attempt ended, and its last answered one (before this batch ends any)."""
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    answered = case((CallAttempt.outcome == "answered", CallAttempt.ended_at))
    rows = await session.execute(
        select(CallAttempt.task_id, func.max(CallAttempt.ended_at), func.max(answered))
        .where(_one_of(session, CallAttempt.task_id, ids, BigInteger()), CallAttempt.ended_at.is_not(None))
        .group_by(CallAttempt.task_id)
    )
    return {int(task_id): (_aware(last), _aware(last_answered)) for task_id, last, last_answered in rows}


def _aware(value: Any) -> datetime | None:
    """max() over a UTCDateTime column comes back raw on SQLite (text): read it as the column would."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@functools.lru_cache(maxsize=16)
def _upsert_sql(table: Table, keys: tuple[str, ...], sums: tuple[str, ...], dialect: Dialect) -> TextClause:
    names = (*keys, *sums)
    columns = ", ".join(f'"{table.c[name].name}"' for name in names)
    conflict = ", ".join(f'"{table.c[name].name}"' for name in keys)
    adds = ", ".join(f'"{name}" = {table.name}."{name}" + EXCLUDED."{name}"' for name in sums)
    relation = _recordset(table, names, dialect)
    return text(
        f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {relation} ORDER BY v.ordinality "  # noqa: S608
        f"ON CONFLICT ({conflict}) DO UPDATE SET {adds}"
    )


async def _add(
    session: AsyncSession, table: Table, keys: tuple[str, ...], sums: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """Add ``rows`` (unique keys) to the counters, creating missing rows; keys in one order for every writer."""
    if not rows:
        return
    rows = sorted(rows, key=lambda row: tuple(row[key] for key in keys))
    if dialect_of(session) == "postgresql":
        statement = _upsert_sql(table, keys, sums, session.get_bind().dialect)
        await session.execute(statement, {"rows": _json_rows(rows)})
        return
    insert = sqlite_insert(table)
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c[key] for key in keys],
        set_={name: table.c[name] + insert.excluded[name] for name in sums},
    )
    await session.execute(upsert, rows)


async def add_stats(
    session: AsyncSession, calls: list[dict[str, Any]], reach: list[dict[str, Any]], talk: list[dict[str, Any]]
) -> None:
    """Add to the statistics, in the rows of one shard for the whole transaction (see ``models.insight``)."""
    shard = random.randrange(STAT_SHARDS) if dialect_of(session) == "postgresql" else 0
    for table, keys, sums, rows in (
        (_CALL_STATS, CALL_KEYS, CALL_SUMS, calls),
        (_REACH_STATS, REACH_KEYS, REACH_SUMS, reach),
        (_TALK_STATS, TALK_KEYS, TALK_SUMS, talk),
    ):
        await _add(session, table, (*keys, "shard"), sums, [{**row, "shard": shard} for row in rows])


async def recent_attempts(session: AsyncSession, campaign_id: int, limit: int) -> list[RecentAttempt]:
    """The campaign's last ``limit`` attempts by id (newest first): an index read of ``limit`` rows."""
    rows = await session.execute(
        select(
            CallAttempt.phone_number_id,
            CallAttempt.ended_at,
            CallAttempt.outcome,
            CallAttempt.queued_at,
            CallAttempt.error,
        )
        .where(CallAttempt.campaign_id == campaign_id)
        .order_by(CallAttempt.id.desc())
        .limit(limit)
    )
    return [
        RecentAttempt(ended_at=ended, outcome=outcome, queued_at=queued, phone_number_id=int(number), error=error)
        for number, ended, outcome, queued, error in rows
    ]


async def spent(session: AsyncSession, campaign_id: int) -> Decimal:
    """What the campaign's ended attempts cost (from the statistics)."""
    result = await session.execute(
        select(func.coalesce(func.sum(CampaignCallStat.cost), 0)).where(CampaignCallStat.campaign_id == campaign_id)
    )
    return Decimal(str(result.scalar_one()))


# -- analytics ----------------------------------------------------------------------------------------------


def _in_range(column: Any, campaign_column: Any, campaign_id: int, lo: int | None, hi: int | None) -> list[Any]:
    conditions = [campaign_column == campaign_id]
    if lo is not None:
        conditions.append(column >= lo)
    if hi is not None:
        conditions.append(column < hi)
    return conditions


_ANSWERED = func.sum(case((CampaignCallStat.outcome == "answered", CampaignCallStat.attempts), else_=0))


@dataclass(frozen=True)
class CallFigures:
    """The statistics of a bucket range, grouped four ways."""

    by_outcome: list[tuple[str, int, float, Decimal]]  # outcome, attempts, talk seconds, cost
    by_attempt_number: list[tuple[int, int, int]]  # attempt number, attempts, answered
    by_number: list[tuple[int, int, int, float, Decimal]]  # phone number id, attempts, answered, talk, cost
    by_bucket: list[tuple[int, int, int, float]]  # bucket, attempts, answered, talk seconds


async def call_figures(session: AsyncSession, campaign_id: int, lo: int | None, hi: int | None) -> CallFigures:
    where = _in_range(CampaignCallStat.bucket, CampaignCallStat.campaign_id, campaign_id, lo, hi)
    stat = CampaignCallStat
    by_outcome = await session.execute(
        select(stat.outcome, func.sum(stat.attempts), func.sum(stat.talk_seconds), func.sum(stat.cost))
        .where(*where)
        .group_by(stat.outcome)
    )
    by_attempt = await session.execute(
        select(stat.attempt_number, func.sum(stat.attempts), _ANSWERED)
        .where(*where)
        .group_by(stat.attempt_number)
        .order_by(stat.attempt_number)
    )
    by_number = await session.execute(
        select(
            stat.phone_number_id, func.sum(stat.attempts), _ANSWERED, func.sum(stat.talk_seconds), func.sum(stat.cost)
        )
        .where(*where)
        .group_by(stat.phone_number_id)
        .order_by(stat.phone_number_id)
    )
    by_bucket = await session.execute(
        select(stat.bucket, func.sum(stat.attempts), _ANSWERED, func.sum(stat.talk_seconds))
        .where(*where)
        .group_by(stat.bucket)
        .order_by(stat.bucket)
    )
    return CallFigures(
        by_outcome=[(o, int(a), float(t or 0), Decimal(str(c or 0))) for o, a, t, c in by_outcome],
        by_attempt_number=[(int(n), int(a), int(ans or 0)) for n, a, ans in by_attempt],
        by_number=[
            (int(p), int(a), int(ans or 0), float(t or 0), Decimal(str(c or 0))) for p, a, ans, t, c in by_number
        ],
        by_bucket=[(int(b), int(a), int(ans or 0), float(t or 0)) for b, a, ans, t in by_bucket],
    )


async def reach(session: AsyncSession, campaign_id: int, lo: int | None, hi: int | None) -> dict[str, int]:
    """Distinct tasks with an attempt (``contact``) and with an answered attempt (``reached``) in the range."""
    stat = CampaignReachStat
    where = _in_range(stat.bucket, stat.campaign_id, campaign_id, lo, hi)
    where.append(stat.prev_bucket < (lo if lo is not None else 1))  # 0 = no previous attempt
    rows = await session.execute(select(stat.kind, func.sum(stat.tasks)).where(*where).group_by(stat.kind))
    return {kind: int(count or 0) for kind, count in rows}


async def talk_histogram(session: AsyncSession, campaign_id: int, lo: int | None, hi: int | None) -> dict[int, int]:
    stat = CampaignTalkStat
    where = _in_range(stat.bucket, stat.campaign_id, campaign_id, lo, hi)
    rows = await session.execute(select(stat.bin, func.sum(stat.calls)).where(*where).group_by(stat.bin))
    return {int(index): int(count or 0) for index, count in rows}


# -- dispatch health ----------------------------------------------------------------------------------------


# The waiting predicate literal, as the partial index states it (see ``dispatch.due_tasks``).
_WAITING = f"FROM call_tasks WHERE campaign_id = :campaign_id AND {WAITING_SQL}"
_OLDEST_DUE_SQL = f"SELECT min(next_eligible_at) {_WAITING} AND next_eligible_at <= :now"
# One pass over the waiting index's not-yet-due part (``blocker`` is in the index): no sort, no table read.
_LATER_SQL = (
    "SELECT count(*),"
    " count(CASE WHEN blocker = 'outside_call_window' THEN 1 END),"
    " min(CASE WHEN blocker = 'outside_call_window' THEN next_eligible_at END),"
    " count(CASE WHEN blocker = 'waiting_retry' THEN 1 END),"
    " min(CASE WHEN blocker = 'waiting_retry' THEN next_eligible_at END)"
    f" {_WAITING} AND next_eligible_at > :now"
)


@dataclass(frozen=True)
class Waiting:
    due: int
    oldest_due_at: datetime | None
    later_window: int
    first_window_at: datetime | None
    later_retry: int
    first_retry_at: datetime | None
    later_other: int


async def waiting(session: AsyncSession, campaign_id: int, now: datetime, waiting_total: int) -> Waiting:
    """Waiting tasks due now and not yet due (for a window, a retry, anything else), from the waiting index.

    ``waiting_total`` (pending + retry_pending, from the counters) minus the not-yet-due part is the due part,
    so only the index entries after ``now`` are read, plus one probe for the oldest due task.
    """
    at = sqlite_timestamp(now) if dialect_of(session) == "sqlite" else now
    params = {"campaign_id": campaign_id, "now": at}
    later, window, first_window, retry, first_retry = (await session.execute(text(_LATER_SQL), params)).one()
    oldest = (await session.execute(text(_OLDEST_DUE_SQL), params)).scalar_one()
    return Waiting(
        due=max(0, waiting_total - int(later)),
        oldest_due_at=_aware(oldest),
        later_window=int(window),
        first_window_at=_aware(first_window),
        later_retry=int(retry),
        first_retry_at=_aware(first_retry),
        later_other=int(later) - int(window) - int(retry),
    )


async def open_attempts_by_number(session: AsyncSession, workspace_id: int, campaign_id: int) -> dict[int, int]:
    """Calls in flight per caller number (through the open-attempts index: only calls in flight are read)."""
    if dialect_of(session) == "sqlite":
        query: Any = text(
            "SELECT phone_number_id, count(*) FROM call_attempts INDEXED BY ix_call_attempts_open"
            " WHERE workspace_id = :workspace_id AND campaign_id = :campaign_id AND ended_at IS NULL"
            " GROUP BY phone_number_id"
        ).bindparams(workspace_id=workspace_id, campaign_id=campaign_id)
    else:
        query = (
            select(CallAttempt.phone_number_id, func.count())
            .where(
                CallAttempt.workspace_id == workspace_id,
                CallAttempt.campaign_id == campaign_id,
                CallAttempt.ended_at.is_(None),
            )
            .group_by(CallAttempt.phone_number_id)
        )
    return {int(number): int(count) for number, count in await session.execute(query)}


@dataclass(frozen=True)
class Dials:
    last_5: int
    last_15: int
    last_60: int
    last_dial_at: datetime | None


async def dials(
    session: AsyncSession, campaign_id: int, now: datetime, *, minutes: Sequence[int] = (5, 15, 60)
) -> Dials:
    """Calls dialed in the last 5, 15 and 60 minutes and the last dial (index ``(campaign_id, dialed_at)``)."""
    since = [now - timedelta(minutes=m) for m in minutes]
    counts = await session.execute(
        select(
            func.count(case((CallAttempt.dialed_at > since[0], 1))),
            func.count(case((CallAttempt.dialed_at > since[1], 1))),
            func.count(),
        ).where(CallAttempt.campaign_id == campaign_id, CallAttempt.dialed_at > since[2], CallAttempt.dialed_at <= now)
    )
    five, fifteen, sixty = counts.one()
    last = await session.execute(select(func.max(CallAttempt.dialed_at)).where(CallAttempt.campaign_id == campaign_id))
    return Dials(int(five), int(fifteen), int(sixty), _aware(last.scalar_one()))


async def number_day(session: AsyncSession, campaign_id: int, since_bucket: int) -> dict[int, tuple[int, int]]:
    """(attempts, answered) per caller number in the campaign since ``since_bucket``."""
    stat = CampaignCallStat
    rows = await session.execute(
        select(stat.phone_number_id, func.sum(stat.attempts), _ANSWERED)
        .where(stat.campaign_id == campaign_id, stat.bucket >= since_bucket)
        .group_by(stat.phone_number_id)
    )
    return {int(number): (int(attempts), int(answered or 0)) for number, attempts, answered in rows}


async def number_e164s(session: AsyncSession, workspace_id: int, number_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(number_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(PhoneNumber.id, PhoneNumber.e164).where(
            PhoneNumber.workspace_id == workspace_id, PhoneNumber.id.in_(ids)
        )
    )
    return {int(number_id): e164 for number_id, e164 in rows}


# -- rebuilding -----------------------------------------------------------------------------------------------


def _bin_sql(d: str, whole: Callable[[str], str]) -> str:
    """``domain.insight.talk_bin`` in SQL; ``whole`` rounds a non-negative number down to an integer."""
    return (
        f"CASE WHEN {d} < 600 THEN {whole(f'{d} / 5')}"
        f" WHEN {d} < 3600 THEN 120 + {whole(f'({d} - 600) / 60')}"
        f" WHEN {d} < 21600 THEN 170 + {whole(f'({d} - 3600) / 600')}"
        f" ELSE {LAST_BIN} END"
    )


_REBUILD = [
    "DELETE FROM campaign_call_stats WHERE campaign_id = :campaign_id",
    "DELETE FROM campaign_reach_stats WHERE campaign_id = :campaign_id",
    "DELETE FROM campaign_talk_stats WHERE campaign_id = :campaign_id",
    """INSERT INTO campaign_call_stats (campaign_id, bucket, phone_number_id, attempt_number, outcome, attempts,
           talk_seconds, cost)
       SELECT campaign_id, {bucket}, phone_number_id, attempt_number, outcome, count(*),
           sum(CASE WHEN outcome = 'answered' THEN COALESCE(duration_seconds, 0) ELSE 0 END), sum(COALESCE(cost, 0))
       FROM call_attempts WHERE campaign_id = :campaign_id AND outcome IS NOT NULL
       GROUP BY campaign_id, {bucket}, phone_number_id, attempt_number, outcome""",
    """INSERT INTO campaign_reach_stats (campaign_id, bucket, kind, prev_bucket, tasks)
       SELECT campaign_id, bucket, 'contact', COALESCE(prev_bucket, 0), count(*) FROM (
           SELECT campaign_id, {bucket} AS bucket,
               LAG({bucket}) OVER (PARTITION BY task_id ORDER BY ended_at, id) AS prev_bucket
           FROM call_attempts WHERE campaign_id = :campaign_id AND outcome IS NOT NULL
       ) AS ended GROUP BY campaign_id, bucket, COALESCE(prev_bucket, 0)""",
    """INSERT INTO campaign_reach_stats (campaign_id, bucket, kind, prev_bucket, tasks)
       SELECT campaign_id, bucket, 'reached', COALESCE(prev_bucket, 0), count(*) FROM (
           SELECT campaign_id, {bucket} AS bucket,
               LAG({bucket}) OVER (PARTITION BY task_id ORDER BY ended_at, id) AS prev_bucket
           FROM call_attempts WHERE campaign_id = :campaign_id AND outcome = 'answered'
       ) AS answered GROUP BY campaign_id, bucket, COALESCE(prev_bucket, 0)""",
    """INSERT INTO campaign_talk_stats (campaign_id, bucket, bin, calls)
       SELECT campaign_id, bucket, bin, count(*) FROM (
           SELECT campaign_id, {bucket} AS bucket, {bin} AS bin
           FROM call_attempts WHERE campaign_id = :campaign_id AND outcome = 'answered'
       ) AS talk GROUP BY campaign_id, bucket, bin""",
]


async def rebuild_stats(session: AsyncSession, campaign_id: int) -> None:
    """Recompute a campaign's statistics from its ended attempts and its task counts from its tasks, set-based
    (the same figures the engine keeps as it goes). For data written without the engine (bulk loads, the
    benchmark) or to repair."""
    if dialect_of(session) == "postgresql":
        bucket = "CAST(floor(extract(epoch FROM ended_at) / 900) AS bigint)"
        duration = "GREATEST(COALESCE(duration_seconds, 0), 0)"
        talk_bin = _bin_sql(duration, lambda value: f"CAST(floor({value}) AS integer)")
    else:
        bucket = "(CAST(strftime('%s', ended_at) AS INTEGER) / 900)"
        duration = "MAX(COALESCE(duration_seconds, 0), 0)"
        talk_bin = _bin_sql(duration, lambda value: f"CAST({value} AS INTEGER)")
    for statement in _REBUILD:
        sql = statement.format(bucket=bucket, bin=talk_bin)
        await session.execute(text(sql), {"campaign_id": campaign_id})
    await session.execute(delete(CampaignTaskCount).where(CampaignTaskCount.campaign_id == campaign_id))
    by_status = await session.execute(
        select(CallTask.status, func.count()).where(CallTask.campaign_id == campaign_id).group_by(CallTask.status)
    )
    await add_task_counts(session, campaign_id, {status: int(tasks) for status, tasks in by_status})


async def task_counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Tasks per status, from the trigger-kept counters (a few rows, not a scan of the tasks)."""
    return (await campaigns_task_counts(session, [campaign_id]))[campaign_id]


async def campaigns_task_counts(session: AsyncSession, campaign_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Tasks per status of each campaign, from the counters; statuses with no task are left out."""
    counts: dict[int, dict[str, int]] = {campaign_id: {} for campaign_id in campaign_ids}
    if not campaign_ids:
        return counts
    rows = await session.execute(
        select(CampaignTaskCount.campaign_id, CampaignTaskCount.status, func.sum(CampaignTaskCount.tasks))
        .where(CampaignTaskCount.campaign_id.in_(list(campaign_ids)))
        .group_by(CampaignTaskCount.campaign_id, CampaignTaskCount.status)
    )
    for campaign_id, status, tasks in rows:
        if tasks:
            counts[int(campaign_id)][status] = int(tasks)
    return counts


async def add_task_counts(session: AsyncSession, campaign_id: int, created: dict[str, int]) -> None:
    """Add tasks just created (per status) to the campaign's counts; the update and delete triggers keep them
    from then on. The caller holds the campaign's row lock, so no other transaction adds tasks to it meanwhile."""
    rows = [
        {"campaign_id": campaign_id, "status": status, "shard": 0, "tasks": tasks}
        for status, tasks in sorted(created.items())
        if tasks
    ]
    await _add(session, _TASK_COUNTS, ("campaign_id", "status", "shard"), ("tasks",), rows)
