"""The engine's queries: claiming due tasks, counting calls in flight, recording attempts and results.

Everything here is set-based or batched (one statement for a batch of tasks), so the cost of a dial does
not grow with the size of a campaign. The claim-side locks differ by database: PostgreSQL takes a
per-workspace advisory lock for the counting and ``FOR UPDATE SKIP LOCKED`` on the tasks; SQLite's write
transactions (``BEGIN IMMEDIATE``) already admit one writer at a time.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeEngine

from bulkcall.db.models import (
    Agent,
    CallAttempt,
    CallTask,
    Campaign,
    CampaignEvent,
    CampaignPhoneNumber,
    Contact,
    DncEntry,
    PhoneNumber,
    ProviderCallback,
    TelephonyConnection,
    Workspace,
)
from bulkcall.db.models.campaign import WAITING_SQL
from bulkcall.db.repositories import task_events
from bulkcall.db.repositories.base import dialect_of, rows_changed
from bulkcall.db.types import sqlite_timestamp
from bulkcall.domain.calls import AttemptState

# Advisory lock namespaces (first key of PostgreSQL's two-key form).
CLAIM_LOCK = 0x62630001
SWEEP_LOCK = 0x62630002
DISPATCH_CHANNEL = "bulkcall_dispatch"


# Row-by-row writes bypass the ORM's bulk paths, which spend more Python time per row than the database spends
# on it: Core executemany on SQLite; on PostgreSQL one statement over a JSON array of the rows, so psycopg
# neither sends a statement per row nor parses a new statement text per batch size. Nothing here relies on
# loaded objects being refreshed by these writes.
_ATTEMPTS = cast(Table, CallAttempt.__table__)
_TASKS = cast(Table, CallTask.__table__)
_RECEIPTS = cast(Table, ProviderCallback.__table__)
_EVENTS = cast(Table, CampaignEvent.__table__)


def _one_of(session: AsyncSession, column: Any, values: Iterable[Any], element: TypeEngine[Any]) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(array)``, one parameter whatever the count (psycopg
    parses every statement text it has not seen, and a 500-value IN list is new text for each length)."""
    items = list(values)
    if dialect_of(session) == "postgresql":
        return column == any_(bindparam(None, items, type_=postgresql.ARRAY(element)))
    return column.in_(items)


def _json_rows(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as a JSON array whose values PostgreSQL reads back into the columns' types."""
    texts: dict[Any, str] = {}  # the rows of a batch mostly share their instants

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            found = texts.get(value)
            if found is None:
                if value.tzinfo is None:
                    raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
                found = texts[value] = value.isoformat()
            return found
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, float) and not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")  # float8's spelling
        return value

    return json.dumps([{key: plain(value) for key, value in row.items()} for row in rows])


def _recordset(table: Table, columns: tuple[str, ...], dialect: Dialect) -> str:
    """The rows of the ``:rows`` JSON array as a typed relation ``v``, their order in ``v.ordinality``."""
    types = ", ".join(f'"{name}" {table.c[name].type.compile(dialect=dialect)}' for name in columns)
    return f"ROWS FROM (jsonb_to_recordset(CAST(:rows AS jsonb)) AS ({types})) WITH ORDINALITY AS v"


# The SQL texts below are joined from a table's own column names (``table.c[name]`` refuses any other key);
# every value is in the bound ``:rows`` parameter.


@functools.lru_cache(maxsize=256)
def _update_sql(table: Table, keys: tuple[str, ...], keep: tuple[str, ...], dialect: Dialect) -> TextClause:
    assignments = ", ".join(
        f'"{table.c[name].name}" = COALESCE(t."{name}", v."{name}")' if name in keep else f'"{name}" = v."{name}"'
        for name in keys
        if name != "id"
    )
    relation = _recordset(table, keys, dialect)
    return text(f"UPDATE {table.name} AS t SET {assignments} FROM {relation} WHERE t.id = v.id")  # noqa: S608


@functools.lru_cache(maxsize=256)
def _insert_sql(table: Table, keys: tuple[str, ...], returning: tuple[str, ...], dialect: Dialect) -> TextClause:
    names = ", ".join(f'"{table.c[name].name}"' for name in keys)
    relation = _recordset(table, keys, dialect)
    # ORDER BY: ids follow the rows' order, as executemany assigns them.
    sql = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {relation} ORDER BY v.ordinality"  # noqa: S608
    if returning:
        sql += " RETURNING " + ", ".join(table.c[name].name for name in returning)
    return text(sql)


def _grouped(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return groups


async def _update_by_id(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], keep: tuple[str, ...] = ()
) -> None:
    """``UPDATE table SET <the row's other keys> WHERE id = row["id"]``, one statement per set of keys; a column
    in ``keep`` is only set where it is still NULL."""
    for keys, group in _grouped(rows).items():
        columns = [key for key in keys if key != "id"]
        if dialect_of(session) == "postgresql":
            statement = _update_sql(table, keys, keep, session.get_bind().dialect)
            await session.execute(statement, {"rows": _json_rows(group)})
            continue
        kept = {name: func.coalesce(table.c[name], bindparam(f"new_{name}")) for name in keep if name in columns}
        await session.execute(
            update(table).where(table.c.id == bindparam("row_id")).values(kept),
            [
                {"row_id": row["id"], **{f"new_{key}" if key in kept else key: row[key] for key in columns}}
                for row in group
            ],
        )


async def _insert(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], returning: tuple[str, ...] = ()
) -> list[tuple[Any, ...]]:
    """Insert rows in their order (one statement per set of keys); the ``returning`` columns of each, unordered."""
    returned: list[tuple[Any, ...]] = []
    for keys, group in _grouped(rows).items():
        if dialect_of(session) == "postgresql":
            sql = _insert_sql(table, keys, returning, session.get_bind().dialect)
            result = await session.execute(sql, {"rows": _json_rows(group)})
        else:
            statement = insert(table)
            if returning:
                statement = statement.returning(*(table.c[name] for name in returning))
            result = await session.execute(statement, group)
        if returning:
            returned.extend(tuple(row) for row in result)
    return returned


async def lock_workspace_claims(session: AsyncSession, workspace_id: int) -> None:
    """Serialise the count-then-claim of one workspace across processes (PostgreSQL; SQLite needs nothing)."""
    if dialect_of(session) == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK, workspace_id)))


async def try_sweep_lock(session: AsyncSession, sweep: int) -> bool:
    """True if this transaction may run sweep ``sweep`` (only one process at a time on PostgreSQL)."""
    if dialect_of(session) != "postgresql":
        return True
    result = await session.execute(select(func.pg_try_advisory_xact_lock(SWEEP_LOCK, sweep)))
    return bool(result.scalar_one())


@dataclass(frozen=True)
class PoolNumber:
    campaign_id: int
    id: int
    e164: str
    country: str | None
    active: bool
    spam_flagged: bool
    allowed_countries: tuple[str, ...] | None
    connection_id: int
    connection_limit: int
    calls_per_second: float
    provider: str


async def running_campaigns(session: AsyncSession) -> list[Campaign]:
    rows = await session.execute(
        select(Campaign).where(Campaign.status == "running").order_by(Campaign.priority.desc(), Campaign.id)
    )
    return list(rows.scalars())


async def campaign_statuses(session: AsyncSession, campaign_ids: Sequence[int], *, share_lock: bool) -> dict[int, str]:
    """Current statuses; with ``share_lock`` the rows stay locked against lifecycle changes (pause, cancel)
    until this transaction ends, so "pause means stop" holds across processes."""
    # Rows are locked in id order, as every transaction that locks several campaigns does (a claim setting
    # their ``dispatch_blocker``): two transactions locking the same campaigns in different orders deadlock.
    query = select(Campaign.id, Campaign.status).where(Campaign.id.in_(list(campaign_ids))).order_by(Campaign.id)
    if share_lock and dialect_of(session) == "postgresql":
        # A campaign not dialed yet gets ``first_dialed_at`` in this transaction (``mark_dialing``): take the
        # row's update lock now. Upgrading a share lock later deadlocks with another worker holding one too.
        await session.execute(
            select(Campaign.id)
            .where(Campaign.id.in_(list(campaign_ids)), Campaign.first_dialed_at.is_(None))
            .order_by(Campaign.id)
            .with_for_update(key_share=True)
        )
        query = query.with_for_update(read=True)
    return {int(row_id): status for row_id, status in await session.execute(query)}


async def workspace_cap(session: AsyncSession, workspace_id: int) -> int | None:
    result = await session.execute(select(Workspace.concurrency_cap).where(Workspace.id == workspace_id))
    value = result.scalar_one_or_none()
    return None if value is None else int(value)


async def open_attempts(session: AsyncSession, workspace_id: int) -> dict[tuple[int, int], int]:
    """Calls holding a slot, by (campaign, connection)."""
    rows = await session.execute(
        select(CallAttempt.campaign_id, CallAttempt.telephony_connection_id, func.count())
        .where(CallAttempt.workspace_id == workspace_id, CallAttempt.ended_at.is_(None))
        .group_by(CallAttempt.campaign_id, CallAttempt.telephony_connection_id)
    )
    return {(int(campaign), int(connection)): int(count) for campaign, connection, count in rows}


async def dials_since(session: AsyncSession, workspace_id: int, since: datetime) -> dict[int, int]:
    """Calls dialed after ``since``, plus claims not dialed yet, by connection (for calls-per-second).

    A call counts by when it was dialed, not claimed: a claim may start after later claims were counted.
    Two index range reads: dialed calls by ``dialed_at``, claims among the open attempts.
    """
    if dialect_of(session) == "postgresql":
        # One statement, one snapshot: as two, a claim another worker starts between them would be in neither.
        both = union_all(
            select(CallAttempt.telephony_connection_id.label("connection_id")).where(
                CallAttempt.workspace_id == workspace_id, CallAttempt.dialed_at > since
            ),
            select(CallAttempt.telephony_connection_id.label("connection_id")).where(
                CallAttempt.workspace_id == workspace_id,
                CallAttempt.ended_at.is_(None),
                CallAttempt.state == AttemptState.QUEUED,
            ),
        ).subquery()
        rows = await session.execute(select(both.c.connection_id, func.count()).group_by(both.c.connection_id))
        return {int(connection): int(count) for connection, count in rows}
    # SQLite: the write transaction is one snapshot, and no other writer runs meanwhile.
    counts: dict[int, int] = {}
    dialed = await session.execute(
        select(CallAttempt.telephony_connection_id, func.count())
        .where(CallAttempt.workspace_id == workspace_id, CallAttempt.dialed_at > since)
        .group_by(CallAttempt.telephony_connection_id)
    )
    claimed_query: Any = (
        select(CallAttempt.telephony_connection_id, func.count())
        .where(
            CallAttempt.workspace_id == workspace_id,
            CallAttempt.ended_at.is_(None),
            CallAttempt.state == AttemptState.QUEUED,
        )
        .group_by(CallAttempt.telephony_connection_id)
    )
    if dialect_of(session) == "sqlite":
        # Without statistics SQLite reads this through (workspace_id, queued_at), every attempt ever made; the
        # open-attempts index holds only the calls in flight.
        claimed_query = text(
            "SELECT telephony_connection_id, count(*) FROM call_attempts INDEXED BY ix_call_attempts_open"
            " WHERE workspace_id = :workspace_id AND ended_at IS NULL AND state = :state"
            " GROUP BY telephony_connection_id"
        ).bindparams(workspace_id=workspace_id, state=AttemptState.QUEUED.value)
    claimed = await session.execute(claimed_query)
    for connection, count in [*dialed, *claimed]:
        counts[int(connection)] = counts.get(int(connection), 0) + int(count)
    return counts


async def number_records(session: AsyncSession, workspace_id: int, since: datetime) -> dict[int, tuple[int, int]]:
    """(attempts, answers) per caller number since ``since``."""
    rows = await session.execute(
        select(
            CallAttempt.phone_number_id,
            func.count(),
            func.sum(case((CallAttempt.outcome == "answered", 1), else_=0)),
        )
        .where(CallAttempt.workspace_id == workspace_id, CallAttempt.queued_at > since)
        .group_by(CallAttempt.phone_number_id)
    )
    return {int(number): (int(attempts), int(answers or 0)) for number, attempts, answers in rows}


async def pool_numbers(session: AsyncSession, campaign_ids: Sequence[int]) -> dict[int, list[PoolNumber]]:
    pools: dict[int, list[PoolNumber]] = {campaign_id: [] for campaign_id in campaign_ids}
    rows = await session.execute(
        select(CampaignPhoneNumber.campaign_id, PhoneNumber, TelephonyConnection)
        .join(PhoneNumber, PhoneNumber.id == CampaignPhoneNumber.phone_number_id)
        .join(TelephonyConnection, TelephonyConnection.id == PhoneNumber.telephony_connection_id)
        .where(CampaignPhoneNumber.campaign_id.in_(list(campaign_ids)))
        .order_by(CampaignPhoneNumber.campaign_id, PhoneNumber.id)
    )
    for campaign_id, number, connection in rows:
        pools[int(campaign_id)].append(
            PoolNumber(
                campaign_id=int(campaign_id),
                id=number.id,
                e164=number.e164,
                country=number.country,
                active=number.status == "active",
                spam_flagged=number.spam_flagged,
                allowed_countries=tuple(number.allowed_countries) if number.allowed_countries is not None else None,
                connection_id=connection.id,
                connection_limit=connection.concurrency_limit,
                calls_per_second=connection.calls_per_second,
                provider=connection.provider,
            )
        )
    return pools


async def connections(session: AsyncSession, connection_ids: Iterable[int]) -> dict[int, TelephonyConnection]:
    ids = sorted(set(connection_ids))
    if not ids:
        return {}
    rows = await session.execute(select(TelephonyConnection).where(TelephonyConnection.id.in_(ids)))
    return {row.id: row for row in rows.scalars()}


@dataclass(frozen=True)
class DueTask:
    id: int
    campaign_id: int
    contact_id: int | None
    phone_e164: str
    country: str | None
    timezones: str | None
    attempts: int
    sticky_phone_number_id: int | None
    status: str


async def due_tasks(
    session: AsyncSession, campaign_id: int, now: datetime, limit: int, closed_keys: Sequence[str]
) -> list[DueTask]:
    """Up to ``limit`` waiting tasks whose time has come, oldest first, skipping zone keys that are closed.

    Reads the partial waiting index in order; rows another worker holds are skipped, not waited for.
    """
    if limit <= 0:
        return []
    query = (
        select(
            CallTask.id,
            CallTask.campaign_id,
            CallTask.contact_id,
            CallTask.phone_e164,
            CallTask.country,
            CallTask.timezones,
            CallTask.attempts,
            CallTask.sticky_phone_number_id,
            CallTask.status,
        )
        .where(
            CallTask.campaign_id == campaign_id,
            # Literal, as the partial index states it: with bound values SQLite (and a generic PostgreSQL
            # plan) cannot use the waiting index and sorts every task of the campaign instead.
            text(WAITING_SQL),
            CallTask.next_eligible_at <= now,
        )
        .order_by(CallTask.next_eligible_at, CallTask.id)
        .limit(limit)
    )
    if closed_keys:
        query = query.where(CallTask.timezones.not_in(list(closed_keys)))
    if dialect_of(session) == "postgresql":
        query = query.with_for_update(skip_locked=True, of=CallTask)
    rows = await session.execute(query)
    return [
        DueTask(
            id=row.id,
            campaign_id=row.campaign_id,
            contact_id=row.contact_id,
            phone_e164=row.phone_e164 or "",
            country=row.country,
            timezones=row.timezones,
            attempts=row.attempts,
            sticky_phone_number_id=row.sticky_phone_number_id,
            status=row.status,
        )
        for row in rows
    ]


async def zone_keys(session: AsyncSession, campaign_id: int) -> list[str]:
    """The distinct zone keys of a campaign's tasks (a few hundred at most, even for millions of tasks)."""
    rows = await session.execute(select(CallTask.timezones).where(CallTask.campaign_id == campaign_id).distinct())
    return [key for key in rows.scalars() if key is not None]


async def defer_closed_keys(
    session: AsyncSession, campaign_id: int, now: datetime, reopen: dict[str, tuple[datetime, str]]
) -> int:
    """Move due tasks of closed zone keys to when their key opens next (``key -> (instant, blocker)``).

    One statement for all keys; afterwards the due part of the waiting index holds only dialable work.
    """
    if not reopen:
        return 0
    keys = list(reopen)
    when = case(
        {key: bindparam(f"at_{index}", at) for index, (key, (at, _)) in enumerate(reopen.items())},
        value=CallTask.timezones,
    )
    why = case({key: blocker for key, (_, blocker) in reopen.items()}, value=CallTask.timezones)
    result = await session.execute(
        update(CallTask)
        .where(
            CallTask.campaign_id == campaign_id,
            # Literal, as the waiting index states it: the only index on the campaign's waiting tasks.
            text(WAITING_SQL),
            CallTask.next_eligible_at <= now,
            CallTask.timezones.in_(keys),
        )
        .values(next_eligible_at=when, blocker=why, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result)


async def insert_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """The new attempts' ids, in the order of ``rows`` (a claim has one attempt per task)."""
    if not rows:
        return []
    # Matched back by task, not by parameter order: SQLite keeps that order only one row per statement.
    returned = await _insert(session, _ATTEMPTS, rows, ("task_id", "id"))
    ids = {int(task_id): int(attempt_id) for task_id, attempt_id in returned}
    return [ids[row["task_id"]] for row in rows]


async def mark_tasks_queued(session: AsyncSession, task_ids: Sequence[int], now: datetime) -> None:
    await session.execute(
        update(CallTask)
        .where(_one_of(session, CallTask.id, task_ids, BigInteger()))
        .values(status="queued", blocker=None, next_eligible_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def skip_tasks(session: AsyncSession, task_ids: Sequence[int], reason: str, now: datetime) -> None:
    """Skip tasks before their dial (DNC, no eligible number), each with its ``task.completed`` event."""
    if task_ids:
        await task_events.end_tasks(
            session,
            [CallTask.id.in_(list(task_ids)), CallTask.status.not_in(("completed", "failed", "cancelled", "skipped"))],
            {
                "status": "skipped",
                "skip_reason": reason,
                "blocker": None,
                "next_eligible_at": None,
                "updated_at": now,
                "completed_at": now,
            },
            now,
        )


async def set_dispatch_blockers(session: AsyncSession, blockers: dict[int, str | None]) -> None:
    for campaign_id, blocker in sorted(blockers.items()):  # id order: see ``campaign_statuses``
        await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.dispatch_blocker.is_distinct_from(blocker))
            .values(dispatch_blocker=blocker)
            .execution_options(synchronize_session=False)
        )


async def queued_attempts(session: AsyncSession, attempt_ids: Sequence[int]) -> list[CallAttempt]:
    """The claims still queued, locked so a lease sweep cannot release one while it is being started."""
    query = select(CallAttempt).where(
        _one_of(session, CallAttempt.id, attempt_ids, BigInteger()), CallAttempt.state == AttemptState.QUEUED
    )
    if dialect_of(session) == "postgresql":
        query = query.with_for_update()
    rows = await session.execute(query.order_by(CallAttempt.id))
    return list(rows.scalars())


async def dnc_phones(session: AsyncSession, workspace_id: int, phones: Iterable[str]) -> set[str]:
    wanted = sorted(set(phones))
    if not wanted:
        return set()
    rows = await session.execute(
        select(DncEntry.phone_e164).where(
            DncEntry.workspace_id == workspace_id, _one_of(session, DncEntry.phone_e164, wanted, String())
        )
    )
    return set(rows.scalars())


async def release_attempts(session: AsyncSession, attempts: Sequence[CallAttempt], now: datetime) -> None:
    """Undo claims whose request never left: the attempt disappears, the task waits again (if still queued)."""
    if not attempts:
        return
    # Only rows still queued: one that its worker marked dialing meanwhile may have left, and is never undone.
    deleted = await session.execute(
        delete(CallAttempt)
        .where(CallAttempt.id.in_([attempt.id for attempt in attempts]), CallAttempt.state == AttemptState.QUEUED)
        .returning(CallAttempt.task_id)
    )
    task_ids = list(deleted.scalars())
    if not task_ids:
        return
    await session.execute(
        update(CallTask)
        .where(CallTask.id.in_(task_ids), CallTask.status == "queued")
        .values(
            status=case((CallTask.attempts > 0, "retry_pending"), else_="pending"),
            next_eligible_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def mark_dialing(session: AsyncSession, attempts: Sequence[CallAttempt], now: datetime) -> None:
    """The point of no return: from here the request may leave, so the attempt is never sent again."""
    if not attempts:
        return
    await session.execute(
        update(CallAttempt)
        .where(_one_of(session, CallAttempt.id, [attempt.id for attempt in attempts], BigInteger()))
        .values(state=AttemptState.DIALING.value, dialed_at=now, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    await _update_by_id(
        session,
        _TASKS,
        [
            {
                "id": attempt.task_id,
                "status": "placing_call",
                "attempts": attempt.attempt_number,
                "caller_phone_number_id": attempt.phone_number_id,
                "last_called_at": now,
                "first_called_at": now,
                "updated_at": now,
            }
            for attempt in attempts
        ],
        keep=("first_called_at",),
    )
    await session.execute(
        update(Campaign)
        .where(Campaign.id.in_({attempt.campaign_id for attempt in attempts}), Campaign.first_dialed_at.is_(None))
        .values(first_dialed_at=now)
        .execution_options(synchronize_session=False)
    )


async def contacts_by_id(session: AsyncSession, contact_ids: Iterable[int]) -> dict[int, Contact]:
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    rows = await session.execute(select(Contact).where(_one_of(session, Contact.id, ids, BigInteger())))
    return {row.id: row for row in rows.scalars()}


async def record_placed(session: AsyncSession, placed: dict[int, str]) -> None:
    await _update_by_id(
        session, _ATTEMPTS, [{"id": attempt_id, "provider_call_id": call_id} for attempt_id, call_id in placed.items()]
    )


async def mark_tasks_calling(session: AsyncSession, task_ids: Sequence[int]) -> None:
    """The provider has the call: ``placing_call`` becomes ``calling`` (later states are left alone)."""
    if task_ids:
        await session.execute(
            update(CallTask)
            .where(
                _one_of(session, CallTask.id, sorted(set(task_ids)), BigInteger()), CallTask.status == "placing_call"
            )
            .values(status="calling")
            .execution_options(synchronize_session=False)
        )


async def notify_dispatchers(session: AsyncSession) -> None:
    """Wake every worker listening on PostgreSQL (delivered when this transaction commits)."""
    if dialect_of(session) == "postgresql":
        await session.execute(select(func.pg_notify(DISPATCH_CHANNEL, "")))


async def agent_runtimes(session: AsyncSession, agent_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    ids = sorted(set(agent_ids))
    if not ids:
        return {}
    rows = await session.execute(select(Agent.id, Agent.runtime).where(Agent.id.in_(ids)))
    return {int(agent_id): dict(runtime or {}) for agent_id, runtime in rows}


async def queued_attempts_of_worker(session: AsyncSession, worker: str) -> list[CallAttempt]:
    rows = await session.execute(
        select(CallAttempt).where(CallAttempt.worker == worker, CallAttempt.state == AttemptState.QUEUED)
    )
    return list(rows.scalars())


async def note_attempt_errors(session: AsyncSession, errors: dict[int, str]) -> None:
    await _update_by_id(
        session, _ATTEMPTS, [{"id": attempt_id, "error": error} for attempt_id, error in errors.items()]
    )


async def attempts_for_update(session: AsyncSession, attempt_ids: Iterable[int]) -> dict[int, CallAttempt]:
    ids = sorted(set(attempt_ids))
    if not ids:
        return {}
    query = select(CallAttempt).where(_one_of(session, CallAttempt.id, ids, BigInteger())).order_by(CallAttempt.id)
    if dialect_of(session) == "postgresql":
        query = query.with_for_update()
    rows = await session.execute(query)
    return {row.id: row for row in rows.scalars()}


async def attempt_ids_by_call_id(session: AsyncSession, provider: str, call_ids: Iterable[str]) -> dict[str, int]:
    ids = sorted(set(call_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(CallAttempt.provider_call_id, CallAttempt.id).where(
            CallAttempt.provider == provider, _one_of(session, CallAttempt.provider_call_id, ids, String())
        )
    )
    return {str(call_id): int(attempt_id) for call_id, attempt_id in rows}


async def seen_dedupe_keys(session: AsyncSession, provider: str, keys: Iterable[str]) -> set[str]:
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    # The verdicts are literal, as the partial unique index states them: with bound values SQLite cannot use
    # that index and reads every receipt ever stored, once per callback batch.
    query: Any = select(ProviderCallback.dedupe_key).where(
        ProviderCallback.provider == provider,
        ProviderCallback.dedupe_key.in_(wanted),
        text("verdict IN ('applied', 'out_of_order')"),
    )
    if dialect_of(session) == "postgresql":
        # One index probe per key, whatever the statistics say. With ``dedupe_key = ANY(...)`` the planner often
        # walks every receipt of the provider instead (on young statistics it even compares each row with
        # every key): a cost that grows with all the callbacks ever received.
        query = text(
            "SELECT hit.dedupe_key FROM unnest(CAST(:keys AS varchar[])) AS wanted(key)"
            " CROSS JOIN LATERAL (SELECT p.dedupe_key FROM provider_callbacks AS p WHERE p.provider = :provider"
            " AND p.dedupe_key = wanted.key AND p.verdict IN ('applied', 'out_of_order') LIMIT 1) AS hit"
        ).bindparams(keys=wanted, provider=provider)
    rows = await session.execute(query)
    return {key for key in rows.scalars() if key is not None}


async def insert_receipts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await _insert(session, _RECEIPTS, rows)


async def update_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await _update_by_id(session, _ATTEMPTS, rows)


async def tasks_by_id(session: AsyncSession, task_ids: Iterable[int]) -> dict[int, CallTask]:
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    rows = await session.execute(select(CallTask).where(_one_of(session, CallTask.id, ids, BigInteger())))
    return {row.id: row for row in rows.scalars()}


async def campaigns_by_id(session: AsyncSession, campaign_ids: Iterable[int]) -> dict[int, Campaign]:
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    rows = await session.execute(select(Campaign).where(Campaign.id.in_(ids)))
    return {row.id: row for row in rows.scalars()}


async def update_tasks(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await _update_by_id(session, _TASKS, rows)


async def insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Events (the webhook outbox), stamped with this transaction's id on PostgreSQL (``CampaignEvent.txid``)."""
    if rows:
        txid = await task_events.current_txid(session)
        await _insert(session, _EVENTS, [{**row, "txid": txid} for row in rows])


async def expired_leases(session: AsyncSession, wall_now: datetime, limit: int = 1000) -> list[CallAttempt]:
    rows = await session.execute(
        select(CallAttempt)
        .where(
            CallAttempt.ended_at.is_(None),
            CallAttempt.state == AttemptState.QUEUED,
            CallAttempt.lease_expires_at < wall_now,
        )
        .limit(limit)
    )
    return list(rows.scalars())


async def overdue_attempts(session: AsyncSession, dialed_before: datetime, limit: int = 1000) -> list[CallAttempt]:
    """Open attempts whose request left before ``dialed_before`` and whose result never came."""
    query: Any = (
        select(CallAttempt)
        .where(
            CallAttempt.ended_at.is_(None),
            CallAttempt.state != AttemptState.QUEUED,
            CallAttempt.dialed_at < dialed_before,
        )
        .order_by(CallAttempt.id)
        .limit(limit)
    )
    if dialect_of(session) == "sqlite":
        # Without statistics SQLite walks the whole table in id order (every attempt ever made, each sweep);
        # the open-attempts index holds only the calls in flight.
        query = select(CallAttempt).from_statement(
            text(
                "SELECT * FROM call_attempts INDEXED BY ix_call_attempts_open"
                " WHERE ended_at IS NULL AND state != :state AND dialed_at < :dialed_before ORDER BY id LIMIT :limit"
            ).bindparams(state=AttemptState.QUEUED.value, dialed_before=sqlite_timestamp(dialed_before), limit=limit)
        )
    rows = await session.execute(query)
    return list(rows.scalars())


async def ended_campaigns(session: AsyncSession, now: datetime) -> list[Campaign]:
    rows = await session.execute(
        select(Campaign).where(Campaign.status.in_(("running", "paused")), Campaign.ends_at <= now)
    )
    return list(rows.scalars())


async def end_waiting_tasks(session: AsyncSession, campaign_id: int, now: datetime) -> int:
    """Waiting tasks of a campaign past its ``ends_at`` are skipped ``campaign_ended`` (with their events)."""
    return await task_events.end_tasks(
        session,
        [CallTask.campaign_id == campaign_id, and_(text(WAITING_SQL))],
        {
            "status": "skipped",
            "skip_reason": "campaign_ended",
            "blocker": None,
            "next_eligible_at": None,
            "updated_at": now,
            "completed_at": now,
        },
        now,
    )
