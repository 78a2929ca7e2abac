"""The export queries: a campaign's tasks with their calls, and campaigns with their KPIs, read in batches.

Rows come from a cursor (a server-side one on PostgreSQL), ``batch_size`` at a time, so memory stays flat
whatever the campaign's size. Without a date range a task's calls are the task's own columns, outcomes and
latest extracted data included (kept by ``dispatch.outcomes``): one scan of the tasks and their contacts.
With one they are aggregated from the attempts ended in it, in the same statement (no query per task), per
dialect: SQLite has no ordered aggregates (3.40), so a task's outcomes come from a correlated subquery in
attempt order over the ``(task_id, attempt_number)`` index; PostgreSQL aggregates the campaign's attempts
once (``string_agg ... ORDER BY``) and joins them.

Values leave here the same whatever the database, formatted by the database where it is cheaper than in
Python: times as ISO 8601 UTC text with ``Z`` (as the API writes them), JSON columns as JSON text, money and
seconds as numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bulkcall.db.engine import sqlite_file
from bulkcall.db.models import CallAttempt, CallTask, Campaign, CampaignAudienceEntry, ContactListMember
from bulkcall.db.repositories import sqlite_export_worker as export_worker
from bulkcall.db.repositories.base import WorkspaceRepository, dialect_of
from bulkcall.db.types import sqlite_timestamp
from bulkcall.domain.variables import CONTACT_VARIABLES

# Attempts that "have" extracted data: a JSON object with at least one key.
_NO_DATA_SQLITE = "('{}', 'null')"
_NO_DATA_POSTGRES = "('{}'::jsonb, 'null'::jsonb)"
_TALK = "CASE WHEN {a}outcome IN ('answered', 'voicemail') THEN COALESCE({a}duration_seconds, 0) ELSE 0 END"


@dataclass(frozen=True)
class ResultFilters:
    campaign_id: int
    status: str | None = None
    outcome: str | None = None
    # Attempts ended in [lower, upper) (either side None = unbounded); ``ranged`` restricts rows and attempt
    # columns to them.
    lower: datetime | None = None
    upper: datetime | None = None

    @property
    def ranged(self) -> bool:
        return self.lower is not None or self.upper is not None


# One exported task, in this order.
RESULT_FIELDS: tuple[str, ...] = (
    "task_id",
    "contact_id",
    "phone_e164",
    "first_name",
    "last_name",
    "email",
    "company",
    "country",
    "timezone",
    "custom_fields",
    "status",
    "skip_reason",
    "attempts",
    "attempt_outcomes",
    "last_outcome",
    "caller_number",
    "first_called_at",
    "last_called_at",
    "talk_seconds",
    "cost",
    "extracted_data",
)


class ExportRepository(WorkspaceRepository[Campaign]):
    model = Campaign

    async def result_batches(
        self, filters: ResultFilters, batch_size: int, task_ids: Sequence[int] | None = None
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The campaign's tasks in id order, each a tuple in ``RESULT_FIELDS`` order, ``batch_size`` at a time.

        ``custom_fields`` and ``extracted_data`` are JSON text (or None; compact when ``compact_json``); times
        ISO 8601 text with ``Z``. One more column follows: the contact's current phone (for the variables, as
        the tasks API derives them). ``task_ids``: only those tasks (of the ones the filters select).

        ``attempt_outcomes`` is the ``|``-joined outcomes of the task's ended attempts in attempt order. Without
        a range, ``attempts``, ``first_called_at``, ``last_called_at``, ``talk_seconds`` and ``cost`` are the
        task's own; with one, only tasks with an attempt ended in it come back, and those columns (and the
        outcomes and extracted data) cover only the attempts ended in it.
        """
        dialect = dialect_of(self.session)
        build = _postgres_results if dialect == "postgresql" else _sqlite_results
        result = await self.session.stream(
            text(build(filters, task_ids)).execution_options(yield_per=batch_size, stream_results=True),
            self._params(filters),
        )
        try:
            async for batch in result.partitions(batch_size):
                yield batch  # type: ignore[misc]  # Rows are tuples
        finally:
            await result.close()

    async def csv_lines(
        self, filters: ResultFilters, call_variables: Mapping[str, Any], batch_size: int
    ) -> AsyncIterator[list[tuple[int, str | None]]]:
        """``(task_id, line)`` for the tasks of ``result_batches``: each task's CSV line, written by the database.

        Read straight from the driver's cursor (a server-side one on PostgreSQL), without SQLAlchemy's result
        processing. A None line is one the database cannot write exactly as Python would (see the notes above
        ``_Dialect``): the caller writes it from ``result_batches``, in the same transaction.
        """
        path = self._sqlite_file()
        if (
            path is not None
            and not filters.ranged
            and not self.session.in_transaction()
            and await _counted_tasks(path, filters.campaign_id) > batch_size
        ):
            source = self._sqlite_two_process_lines(path, filters, call_variables, batch_size)
        else:
            source = self._one_connection_lines(filters, call_variables, batch_size)
        async for lines in source:
            yield lines

    async def _one_connection_lines(
        self, filters: ResultFilters, call_variables: Mapping[str, Any], batch_size: int
    ) -> AsyncIterator[list[tuple[int, str | None]]]:
        dialect = dialect_of(self.session)
        params = self._params(filters)
        build = _postgres_csv if dialect == "postgresql" else _sqlite_csv
        sql = driver_sql(build(filters, call_variables, params), dialect)
        connection = await (await self.session.connection()).get_raw_connection()
        driver: Any = connection.driver_connection
        if dialect == "postgresql":
            # One snapshot for this statement and the ``result_batches`` reads of the lines left to Python, as
            # SQLite's read transaction gives (when this starts the transaction, as in the export). Then: the
            # statement's long expressions make the planner JIT-compile it, seconds of compiling for an export
            # that runs in less.
            if driver.info.transaction_status.name == "IDLE":
                await driver.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            await driver.execute("SET LOCAL jit = off")
            cursor = driver.cursor(name="results_export")
            await cursor.execute(sql, params)
        else:
            cursor = await driver.execute(sql, params)
        # The next batch is read while the caller writes this one (the database works in its own thread or
        # process meanwhile): the export takes the longer of the two, not their sum.
        ahead = asyncio.ensure_future(cursor.fetchmany(batch_size))
        try:
            while batch := await ahead:
                ahead = asyncio.ensure_future(cursor.fetchmany(batch_size))
                yield batch
        finally:
            with contextlib.suppress(Exception):
                await ahead  # never left running on the connection, whatever ended the export
            await cursor.close()

    def _sqlite_file(self) -> str | None:
        bind = self.session.bind
        return None if bind is None else sqlite_file((bind.engine if isinstance(bind, AsyncConnection) else bind).url)

    async def _sqlite_two_process_lines(
        self, path: str, filters: ResultFilters, call_variables: Mapping[str, Any], batch_size: int
    ) -> AsyncIterator[list[tuple[int, str | None]]]:
        """``csv_lines`` on SQLite, for a campaign of more than one part, written by two processes at once.

        Writing the lines is most of a SQLite export's time, on one core: SQLite runs a statement on one, and
        Python's ``sqlite3`` holds the GIL between row steps, so a second thread does not help (measured:
        slower). The campaign's tasks are cut into parts of ``batch_size`` by id; this session's connection
        writes the even parts (in its driver thread) and a worker process (``sqlite_export_worker``) the odd
        ones; the parts come back in order. Both read one snapshot: a third connection holds SQLite's write
        lock (no commit can happen) while this session and the worker begin their reads, then lets it go (a
        millisecond for writers). The lines left to Python are read in this session, from that snapshot too.
        """
        params = self._params(filters)
        sql = _sqlite_csv(filters, call_variables, params, id_range=True)
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-I", _WORKER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert worker.stdin is not None
        assert worker.stdout is not None
        incoming = worker.stdout
        try:
            worker.stdin.write(export_worker.frame({"path": path, "sql": sql, "params": params}))
            lock = await aiosqlite.connect(path, isolation_level=None)
            try:
                await lock.execute("PRAGMA busy_timeout = 30000")
                await lock.execute("BEGIN IMMEDIATE")
                bounds = await self._part_bounds(filters.campaign_id, batch_size)  # this session's first read
                parts = list(itertools.pairwise([-1, *bounds, _LAST_ID]))
                worker.stdin.write(b"B" if len(parts) > 1 else b"X")
                await worker.stdin.drain()
                if len(parts) > 1 and await incoming.readexactly(1) != b"R":
                    raise RuntimeError("the export worker did not begin its read")
                await lock.execute("ROLLBACK")
            finally:
                await lock.close()
            own: Any = (await (await self.session.connection()).get_raw_connection()).driver_connection
            if len(parts) > 1:
                worker.stdin.write(export_worker.frame(parts[1::2]))
                await worker.stdin.drain()

            async def written_here(index: int) -> list[tuple[int, str | None]]:
                after, upto = parts[index]
                cursor = await own.execute(sql, {**params, "after": after, "upto": upto})
                try:
                    return list(await cursor.fetchall())
                finally:
                    await cursor.close()

            async def written_there() -> list[tuple[int, str | None]]:
                (size,) = export_worker.LENGTH.unpack(await incoming.readexactly(export_worker.LENGTH.size))
                return [tuple(row) for row in export_worker.value_of(await incoming.readexactly(size))]

            ahead = asyncio.ensure_future(written_here(0))
            try:
                for index in range(len(parts)):
                    if index % 2 == 0:
                        lines = await ahead
                        if index + 2 < len(parts):  # this connection's next part, while the caller writes
                            ahead = asyncio.ensure_future(written_here(index + 2))
                    else:
                        lines = await written_there()
                    if lines:
                        yield lines
            finally:
                with contextlib.suppress(Exception):
                    await ahead  # never left running on the connection, whatever ended the export
        finally:
            if worker.returncode is None:
                worker.kill()
            await worker.wait()

    async def _part_bounds(self, campaign_id: int, size: int) -> list[int]:
        """Every ``size``-th task id of the campaign, in order (from its ``(campaign_id, id)`` index alone)."""
        rows = await self.session.execute(
            text(
                "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM call_tasks "
                "WHERE campaign_id = :campaign_id) WHERE n % :size = 0"
            ),
            {"campaign_id": campaign_id, "size": size},
        )
        return [int(task_id) for (task_id,) in rows]

    def _params(self, filters: ResultFilters) -> dict[str, Any]:
        dialect = dialect_of(self.session)
        return {
            "workspace_id": self.workspace_id,
            "campaign_id": filters.campaign_id,
            "status": filters.status,
            "outcome": filters.outcome,
            "lower": _bind(filters.lower, dialect),
            "upper": _bind(filters.upper, dialect),
        }

    @property
    def compact_json(self) -> bool:
        """Whether ``result_batches`` hands JSON text already compact (SQLite's ``json()`` minifies it)."""
        return dialect_of(self.session) != "postgresql"

    async def campaign_batches(self, query: Any, batch_size: int) -> AsyncIterator[list[Campaign]]:
        """Campaigns of ``query`` (already scoped to the workspace), newest first, in batches by keyset."""
        last_id: int | None = None
        while True:
            page = query.order_by(Campaign.id.desc()).limit(batch_size)
            if last_id is not None:
                page = page.where(Campaign.id < last_id)
            rows = list((await self.session.execute(page)).scalars())
            if not rows:
                return
            yield rows
            last_id = rows[-1].id

    async def call_totals(self, campaign_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Per campaign, over its ended attempts: ``attempts``, ``answered``, ``talk_seconds``, ``cost``."""
        found: dict[int, dict[str, Any]] = {}
        if not campaign_ids:
            return found
        talk = text(_TALK.format(a=""))
        rows = await self.session.execute(
            select(
                CallAttempt.campaign_id,
                func.count(),
                func.count().filter(CallAttempt.outcome == "answered"),
                func.sum(talk),
                func.sum(CallAttempt.cost),
            )
            .where(
                CallAttempt.workspace_id == self.workspace_id,
                CallAttempt.campaign_id.in_(list(campaign_ids)),
                CallAttempt.outcome.is_not(None),
            )
            .group_by(CallAttempt.campaign_id)
        )
        for campaign_id, attempts, answered, talk_seconds, cost in rows:
            found[int(campaign_id)] = {
                "attempts": int(attempts),
                "answered": int(answered),
                "talk_seconds": round(float(talk_seconds or 0), 3),
                "cost": round(float(cost or 0), 4),
            }
        return found

    async def task_counts(self, campaign_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        counts: dict[int, dict[str, int]] = {campaign_id: {} for campaign_id in campaign_ids}
        if not campaign_ids:
            return counts
        rows = await self.session.execute(
            select(CallTask.campaign_id, CallTask.status, func.count())
            .where(CallTask.workspace_id == self.workspace_id, CallTask.campaign_id.in_(list(campaign_ids)))
            .group_by(CallTask.campaign_id, CallTask.status)
        )
        for campaign_id, status, count in rows:
            counts[int(campaign_id)][status] = int(count)
        return counts

    async def audience_sizes(self, drafts: Sequence[Campaign]) -> dict[int, int]:
        """Audience entries plus list members of each draft (what it will launch with), in two queries."""
        sizes = {campaign.id: 0 for campaign in drafts}
        if not drafts:
            return sizes
        entries = await self.session.execute(
            select(CampaignAudienceEntry.campaign_id, func.count())
            .where(CampaignAudienceEntry.campaign_id.in_(list(sizes)))
            .group_by(CampaignAudienceEntry.campaign_id)
        )
        for campaign_id, count in entries:
            sizes[int(campaign_id)] += int(count)
        list_ids = {campaign.contact_list_id for campaign in drafts if campaign.contact_list_id is not None}
        if list_ids:
            members = dict(
                (
                    await self.session.execute(
                        select(ContactListMember.contact_list_id, func.count())
                        .where(ContactListMember.contact_list_id.in_(list(list_ids)))
                        .group_by(ContactListMember.contact_list_id)
                    )
                ).tuples()
            )
            for campaign in drafts:
                if campaign.contact_list_id is not None:
                    sizes[campaign.id] += int(members.get(campaign.contact_list_id, 0))
        return sizes


# Above every task id (ids are 64-bit integers).
_LAST_ID = 2**63 - 1
_WORKER = str(Path(export_worker.__file__))


async def _counted_tasks(path: str, campaign_id: int) -> int:
    """The campaign's tasks from its maintained counters, read apart from the export's session (whose first read
    must come later, under the write lock: see ``_sqlite_two_process_lines``)."""
    async with (
        aiosqlite.connect(path) as connection,
        connection.execute(
            "SELECT coalesce(sum(tasks), 0) FROM campaign_task_counts WHERE campaign_id = ?", (campaign_id,)
        ) as cursor,
    ):
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


def _bind(value: datetime | None, dialect: str) -> Any:
    if value is None:
        return None
    return sqlite_timestamp(value) if dialect == "sqlite" else value


def _range(filters: ResultFilters, alias: str) -> str:
    parts = [f"{alias}outcome IS NOT NULL"]
    if filters.lower is not None:
        parts.append(f"{alias}ended_at >= :lower")
    if filters.upper is not None:
        parts.append(f"{alias}ended_at < :upper")
    return " AND ".join(parts)


def _task_filters(filters: ResultFilters) -> str:
    where = "t.workspace_id = :workspace_id AND t.campaign_id = :campaign_id"
    if filters.status is not None:
        where += " AND t.status = :status"
    if filters.outcome is not None:
        where += " AND t.last_outcome = :outcome"
    return where


_CONTACT_COLUMNS = (
    "t.id AS task_id, t.contact_id, t.phone_e164, c.first_name, c.last_name, c.email, c.company, c.country, "
    "c.timezone, {custom_fields} AS custom_fields, t.status, t.skip_reason"
)
# After RESULT_FIELDS, for the variables: the contact's own phone (the task keeps the one it dialed).
_CONTACT_PHONE = ", c.phone_e164 AS contact_phone"


def _sqlite_iso(column: str) -> str:
    """Stored text as the API writes times (``2026-06-03T15:00:00Z``, microseconds only when not zero).

    UTCDateTime stores ``2026-06-03 15:00:00.000000``; raw statements binding a datetime store Python's
    ``str()`` of it (``2026-06-03 15:00:00[.123456][+00:00]``); every stored time is UTC.
    """
    c = column
    return (
        f"(CASE WHEN length({c}) = 26 THEN replace(substr({c}, 1, 19), ' ', 'T') || "
        f"CASE WHEN substr({c}, 20) = '.000000' THEN 'Z' ELSE substr({c}, 20) || 'Z' END "
        f"WHEN length({c}) = 19 THEN replace({c}, ' ', 'T') || 'Z' "
        f"WHEN length({c}) IN (25, 32) AND substr({c}, -6) = '+00:00' "
        f"THEN replace(substr({c}, 1, length({c}) - 6), ' ', 'T') || 'Z' ELSE {c} END)"
    )


def _postgres_iso(column: str) -> str:
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_part('microseconds', {utc})::int "
        f"% 1000000 = 0 THEN '' ELSE to_char({utc}, '.US') END || 'Z')"
    )


# The call columns of a result row: ``attempts`` through ``cost``.
_CALL_NAMES = RESULT_FIELDS[RESULT_FIELDS.index("attempts") : RESULT_FIELDS.index("cost") + 1]


def _calls(*values: str) -> str:
    return ", ".join(f"{value} AS {name}" for value, name in zip(values, _CALL_NAMES, strict=True))


def _only(task_ids: Sequence[int] | None) -> str:
    """Restrict a statement to some tasks (ids are integers, written in the statement)."""
    return "" if task_ids is None else f" AND t.id IN ({', '.join(str(int(i)) for i in task_ids) or 'NULL'})"


# One part of a campaign's tasks, by id: ``after < id <= upto`` (see ``_sqlite_two_process_lines``).
_ID_RANGE = " AND t.id > :after AND t.id <= :upto"


def _sqlite_results(filters: ResultFilters, task_ids: Sequence[int] | None = None, *, id_range: bool = False) -> str:
    if not filters.ranged:
        # The task's own summary (kept by ``dispatch.outcomes``): one scan of the tasks, no attempt read.
        first, last = _sqlite_iso("t.first_called_at"), _sqlite_iso("t.last_called_at")
        calls = _calls(
            "t.attempts", "t.attempt_outcomes", "t.last_outcome", "p.e164", first, last, "t.talk_seconds", "t.cost"
        )
        extracted = "json(t.extracted_data)"
        joins = ""
    else:
        in_range = _range(filters, "x.")
        outcomes = (
            "(SELECT group_concat(o.outcome, '|') FROM (SELECT x.outcome FROM call_attempts x "  # noqa: S608
            f"WHERE x.task_id = t.id AND {in_range} ORDER BY x.attempt_number) o)"
        )
        extracted = (
            "(SELECT json(x.extracted_data) FROM call_attempts x WHERE x.task_id = t.id AND "  # noqa: S608
            f"{in_range} AND x.extracted_data IS NOT NULL AND x.extracted_data NOT IN {_NO_DATA_SQLITE} "
            "ORDER BY x.attempt_number DESC LIMIT 1)"
        )
        first, last = _sqlite_iso("r.first_at"), _sqlite_iso("r.last_at")
        calls = _calls("r.n", outcomes, "t.last_outcome", "p.e164", first, last, "r.talk", "r.cost")
        joins = (
            "JOIN (SELECT a.task_id, count(*) AS n, min(a.dialed_at) AS first_at, "  # noqa: S608 -- constant SQL
            "max(a.dialed_at) AS last_at, "
            f"total({_TALK.format(a='a.')}) AS talk, total(a.cost) AS cost FROM call_attempts a "
            f"WHERE a.campaign_id = :campaign_id AND {_range(filters, 'a.')} GROUP BY a.task_id) r "
            "ON r.task_id = t.id"
        )
    return (
        f"SELECT {_CONTACT_COLUMNS.format(custom_fields='json(c.custom_fields)')}, {calls}, "  # noqa: S608
        f"{extracted} AS extracted_data{_CONTACT_PHONE} "
        f"FROM call_tasks t {joins} "
        "LEFT JOIN contacts c ON c.id = t.contact_id "
        "LEFT JOIN phone_numbers p ON p.id = t.caller_phone_number_id "
        f"WHERE {_task_filters(filters)}{_only(task_ids)}{_ID_RANGE if id_range else ''} ORDER BY t.id"
    )


def _postgres_core(filters: ResultFilters, task_ids: Sequence[int] | None = None) -> str:
    """The rows of ``result_batches`` with the JSON columns still ``jsonb`` (``custom_fields``, ``extracted``)."""
    if not filters.ranged:
        # The task's own summary (kept by ``dispatch.outcomes``): one scan of the tasks, no attempt read.
        first, last = _postgres_iso("t.first_called_at"), _postgres_iso("t.last_called_at")
        calls = _calls(
            "t.attempts",
            "t.attempt_outcomes",
            "t.last_outcome",
            "p.e164",
            first,
            last,
            "t.talk_seconds",
            "t.cost::float8",
        )
        extracted = "t.extracted_data"
        joins = ""
    else:
        first, last = _postgres_iso("r.first_at"), _postgres_iso("r.last_at")
        calls = _calls("r.n", "r.outcomes", "t.last_outcome", "p.e164", first, last, "r.talk", "r.cost::float8")
        extracted = "r.extracted"
        joins = (
            "JOIN (SELECT a.task_id, count(*) AS n, "  # noqa: S608 -- constant SQL
            "string_agg(a.outcome, '|' ORDER BY a.attempt_number) AS outcomes, "
            "min(a.dialed_at) AS first_at, max(a.dialed_at) AS last_at, "
            f"sum({_TALK.format(a='a.')}) AS talk, sum(a.cost) AS cost, "
            "(array_agg(a.extracted_data ORDER BY a.attempt_number DESC) FILTER (WHERE a.extracted_data IS NOT NULL "
            f"AND a.extracted_data NOT IN {_NO_DATA_POSTGRES}))[1] AS extracted "
            f"FROM call_attempts a WHERE a.campaign_id = :campaign_id AND {_range(filters, 'a.')} "
            "GROUP BY a.task_id) r ON r.task_id = t.id"
        )
    return (
        f"SELECT {_CONTACT_COLUMNS.format(custom_fields='c.custom_fields')}, {calls}, "  # noqa: S608
        f"{extracted} AS extracted_data{_CONTACT_PHONE} "
        f"FROM call_tasks t {joins} "
        "LEFT JOIN contacts c ON c.id = t.contact_id "
        "LEFT JOIN phone_numbers p ON p.id = t.caller_phone_number_id "
        f"WHERE {_task_filters(filters)}{_only(task_ids)} ORDER BY t.id"
    )


_RAW_COLUMNS = (*RESULT_FIELDS, "contact_phone")


def _postgres_results(filters: ResultFilters, task_ids: Sequence[int] | None = None, more: str = "") -> str:
    """The rows of ``result_batches``; ``more``: further columns, of ``_postgres_core``'s row ``q``."""
    columns = ", ".join(f"q.{name}::text" if name in _JSON_FIELDS else f"q.{name}" for name in _RAW_COLUMNS)
    return f"SELECT {columns}{more} FROM ({_postgres_core(filters, task_ids)}) q ORDER BY q.task_id"  # noqa: S608


_JSON_FIELDS = frozenset({"custom_fields", "extracted_data"})


# -- CSV lines made by the database --------------------------------------------------------------------------
#
# ``csv_lines`` reads the rows of ``result_batches`` through one more SELECT that writes each task's CSV line
# itself (cells in ``services.exports.RESULT_COLUMNS`` order, quoted as the ``csv`` module quotes them, ending
# in CRLF), so Python only joins them: formula neutralisation as a ``CASE``, the ``variables`` object assembled
# as compact JSON text (``domain.variables.task_variables``: the campaign's ``call_variables``, then the
# contact's non-null fields in ``CONTACT_VARIABLES`` order, then the non-null custom fields; a key already
# there keeps its place), JSON cells passed through as text, amounts as Python's ``repr`` of a rounded float
# writes them. Where the database cannot be sure to write exactly what Python would (a custom field that is
# null or shares a name with a variable already set, JSON text with ``\u`` escapes on SQLite; on PostgreSQL
# JSON with nested values, escapes or a number Python writes otherwise; an amount with more decimals than the
# export keeps or a huge one), the line is NULL and the caller writes that task from ``result_batches``.
#
# Why two writers: Python alone writes a line in ~9 µs (the variables, JSON, neutralisation, ``csv``), about
# 90,000 rows/s at best; the database writes most lines for less, in its own thread or process while Python
# joins the previous batch. Why not ``COPY`` on PostgreSQL: reading ``(task_id, line)`` through the server-side
# cursor costs the client ~1 µs a row; the time is the server's expressions, the same under ``COPY``.


@dataclass(frozen=True)
class _Dialect:
    quote: str  # a value as JSON text
    format: str  # printf-like function
    formula: str  # the value starts with a character a spreadsheet reads as a formula
    e164: str  # the value is strictly '+' and 1 to 15 digits
    special: str  # the value holds a character that makes the csv module quote it
    fence: str  # after a subquery: keeps the planner from merging it into the query around it

    def safe(self, column: str, *, phone: bool = False) -> str:
        formula = self.formula.format(c=column)
        if phone:
            formula += f" AND NOT ({self.e164.format(c=column)})"
        return f"CASE WHEN {formula} THEN '''' || {column} ELSE {column} END"

    def cell(self, value: str) -> str:
        """A text cell, quoted (quotes doubled) when the csv module would quote it."""
        quoted = f"'\"' || replace({value}, '\"', '\"\"') || '\"'"
        return f"CASE WHEN {self.special.format(c=value)} THEN {quoted} ELSE {value} END"

    def json_cell(self, value: str) -> str:
        """A JSON object's cell: quoted unless it is ``{}`` (any key is between quotes)."""
        quoted = f"'\"' || replace({value}, '\"', '\"\"') || '\"'"
        return f"CASE WHEN length({value}) > 2 THEN {quoted} ELSE {value} END"

    def join(self, parts: list[str], separator: str = "", end: str = "") -> str:
        """The parts' text in one call (NULL as empty), not a chain of ``||`` that copies the line each time."""
        fmt = separator.join(["%s"] * len(parts)) + end
        return f"{self.format}('{fmt}', {', '.join(parts)})"


# SQLite: one GLOB (a character class; the constant pattern is built once per statement) instead of a chain of
# ``instr``/``substr`` calls per cell: about 1 us a row less.
_SQLITE = _Dialect(
    quote="json_quote({c})",
    format="printf",
    formula="glob('[=+@' || char(9, 13) || '-]*', {c})",
    e164="length({c}) BETWEEN 2 AND 16 AND glob('+*', {c}) AND NOT glob('?*[^0-9]*', {c})",
    special="glob('*[,\"' || char(13, 10) || ']*', {c})",
    fence="LIMIT -1 OFFSET 0",
)
_POSTGRES = _Dialect(
    quote="to_json({c})::text",
    format="format",
    formula="ascii({c}) IN (61, 43, 45, 64, 9, 13)",
    e164="length({c}) BETWEEN 2 AND 16 AND substr({c}, 1, 1) = '+' AND ltrim(substr({c}, 2), '0123456789') = ''",
    special="{c} ~ '[,\"\\r\\n]'",
    fence="OFFSET 0",
)

# Where each contact variable comes from in the rows of ``result_batches``.
_VARIABLE_SOURCES = {
    "contact_id": "contact_id",
    "phone_e164": "contact_phone",
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "company": "company",
    "timezone": "timezone",
    "country": "country",
}
assert tuple(_VARIABLE_SOURCES) == CONTACT_VARIABLES


def _bind_text(params: dict[str, Any], value: str) -> str:
    name = f"v{len(params)}"
    params[name] = value
    return f"CAST(:{name} AS TEXT)"


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _variables(dialect: _Dialect, call_variables: Mapping[str, Any], custom: str, params: dict[str, Any]) -> str:
    """The variables as compact JSON text; ``custom``: SQL text of the custom fields' ``"key":value`` entries,
    each after a comma (NULL or empty when there is none). Valid only when no custom field is null or shares a
    name with a call variable or a contact variable (``_reserved``).

    An entry is NULL when the contact has no value, which the format call writes as nothing (no ``CASE`` that
    picks between an entry and an empty string).
    """

    def value(key: str, column: str) -> str:  # JSON text, NULL when the column is
        if key == "contact_id":
            return f"CAST({column} AS TEXT)"
        return f"CASE WHEN {column} IS NOT NULL THEN {dialect.quote.format(c=column)} END"

    parts: list[str] = []
    for key, default in call_variables.items():
        entry = f",{_json_text(key)}:"
        if key in _VARIABLE_SOURCES:
            column = f"q.{_VARIABLE_SOURCES[key]}"
            fallback = _bind_text(params, _json_text(default))
            parts.append(f"{_bind_text(params, entry)} || coalesce({value(key, column)}, {fallback})")
        else:
            parts.append(_bind_text(params, entry + _json_text(default)))
    for key, source in _VARIABLE_SOURCES.items():
        if key not in call_variables:
            parts.append(f"{_bind_text(params, f',{_json_text(key)}:')} || {value(key, f'q.{source}')}")
    return f"'{{' || substr({dialect.join([*parts, custom])}, 2) || '}}'"


def _reserved(call_variables: Mapping[str, Any]) -> list[str]:
    return sorted(set(call_variables) | set(CONTACT_VARIABLES))


def _sqlite_csv(
    filters: ResultFilters, call_variables: Mapping[str, Any], params: dict[str, Any], *, id_range: bool = False
) -> str:
    d = _SQLITE
    cf = "q.custom_fields"  # compact (json()): its entries are the text between the braces
    custom = f"CASE WHEN length({cf}) > 2 THEN ',' || substr({cf}, 2, length({cf}) - 2) ELSE '' END"
    clashes = " AND ".join(
        f"instr({cf}, {_bind_text(params, _json_text(key) + ':')}) = 0" for key in _reserved(call_variables)
    )
    exact = (
        f"({cf} IS NULL OR (instr({cf}, '\\u') = 0 AND instr({cf}, 'null') = 0 AND {clashes})) "
        "AND (q.extracted_data IS NULL OR instr(q.extracted_data, '\\u') = 0)"
    )
    # A real's text has up to 15 significant digits and always a decimal point (42.0), as repr writes the
    # amounts ``exact`` lets through: rounding to the export's decimals changes nothing, no exponent. An
    # integer stays one, as in Python, but zero or none is 0.0 (Python writes ``round(value or 0.0, n)``).
    cells: dict[str, str] = {}
    for name, n in (("talk_seconds", 3), ("cost", 4)):
        value = f"coalesce(nullif(q.{name}, 0), 0.0)"
        cells[name] = f"CAST({value} AS TEXT)"
        exact += f" AND {value} = round({value}, {n}) AND abs({value}) < 1e11"
    variables = _variables(d, call_variables, custom, params)
    rows = _sqlite_results(filters, id_range=id_range)
    return _lines(d, rows, cf, variables, cells["talk_seconds"], cells["cost"], "q.extracted_data", exact)


# A number in JSONB's text of a flat object (after ``": ``) that Python, reading it as a float, writes otherwise:
# a tiny one (1e-05), trailing zeros (1.5), more digits than a float keeps (or a long integer, to be safe).
_PYTHON_WRITES_OTHERWISE = '": -?(0\\.0000|[0-9]+\\.[0-9]+0[,}]|[0-9.]{17})'


def _postgres_csv(filters: ResultFilters, call_variables: Mapping[str, Any], params: dict[str, Any]) -> str:
    d = _POSTGRES
    # The JSON columns come as JSONB's text, ``{"a": 1, "b": "x"}``. Without a backslash no string holds a
    # quote, so in a flat object ``": `` and ``, "`` are only ever separators: removing their spaces gives the
    # compact text Python writes. Numbers Python writes otherwise, nested values, escapes, and (custom fields)
    # a null or a name the variables already use: the Python path.
    cf, extracted = "q.custom_fields", "q.extracted_data"
    params["reserved"] = _reserved(call_variables)

    def flat(text: str) -> str:
        return (
            f"(starts_with({text}, '{{') AND strpos({text}, '\\') = 0 AND strpos({text}, '[') = 0 "
            f"AND strpos(substr({text}, 2), '{{') = 0 AND {text} !~ '{_PYTHON_WRITES_OTHERWISE}')"
        )

    def compact(text: str) -> str:
        return f"replace(replace({text}, '\": ', '\":'), ', \"', ',\"')"

    # Each amount's float8 text once: the shortest that reads back, as repr writes it (repr adds ".0" to a
    # whole number). At most the export's decimals and no exponent: Python's round() is the value itself.
    more = (
        f", q.custom_fields ?| :reserved AS clashes, {compact('q.custom_fields::text')} AS custom_compact, "
        "coalesce(q.talk_seconds, 0)::text AS talk_text, coalesce(q.cost, 0)::text AS cost_text"
    )
    cells: dict[str, str] = {}
    exact = (
        f"({cf} IS NULL OR ({flat(cf)} AND strpos({cf}, '\": null') = 0 AND NOT q.clashes)) "
        f"AND ({extracted} IS NULL OR {flat(extracted)})"
    )
    for name, value, n in (("talk", "q.talk_seconds", 3), ("cost", "q.cost", 4)):
        text = f"q.{name}_text"
        cells[name] = f"CASE WHEN strpos({text}, '.') = 0 THEN {text} || '.0' ELSE {text} END"
        exact += (
            f" AND (strpos({text}, '.') = 0 OR length({text}) - strpos({text}, '.') <= {n}) "
            f"AND strpos({text}, 'e') = 0 AND abs({value}) < 1e11"
        )
    entries = "',' || nullif(btrim(q.custom_compact, '{}'), '')"  # NULL (nothing) for {}
    variables = _variables(d, call_variables, entries, params)
    rows = _postgres_results(filters, more=more)
    return _lines(d, rows, "q.custom_compact", variables, cells["talk"], cells["cost"], compact(extracted), exact)


def _lines(
    d: _Dialect, rows: str, custom: str, variables: str, talk: str, cost: str, extracted: str, exact: str
) -> str:
    """``(task_id, line)``: one CSV line (CRLF included), cells in ``services.exports.RESULT_COLUMNS`` order.

    Three levels, each computed once per row (``OFFSET 0`` keeps the databases from merging them, which would
    repeat a column's expression, a correlated subquery on SQLite, wherever the next level uses it): the rows
    of ``result_batches``, then the cells' values, then the line with its quoting.
    """
    values = {
        "task_id": "q.task_id",
        "contact_id": "q.contact_id",
        "phone_e164": d.safe("q.phone_e164", phone=True),
        "first_name": d.safe("q.first_name"),
        "last_name": d.safe("q.last_name"),
        "email": d.safe("q.email"),
        "company": d.safe("q.company"),
        "country": "q.country",
        "timezone": "q.timezone",
        "custom_fields": custom,
        "variables": variables,
        "status": "q.status",
        "skip_reason": "q.skip_reason",
        "attempts": "q.attempts",
        "attempt_outcomes": "q.attempt_outcomes",
        "last_outcome": "q.last_outcome",
        "caller_number": d.safe("q.caller_number", phone=True),
        "first_called_at": "q.first_called_at",
        "last_called_at": "q.last_called_at",
        "talk_seconds": talk,
        "cost": cost,
        "extracted_data": extracted,
    }
    # Written as they are: numbers, times, and codes (enumerations, ISO country codes, IANA zone names).
    verbatim = {
        *("task_id", "contact_id", "attempts", "first_called_at", "last_called_at", "talk_seconds", "cost"),
        *("country", "timezone", "status", "skip_reason", "attempt_outcomes", "last_outcome"),
    }
    # A JSON object with a key holds a quote, so the csv module quotes it; ``{}`` it does not.
    json_cells = {"custom_fields", "variables", "extracted_data"}
    text = [f"v.{name}" for name in values if name not in verbatim and name not in json_cells]

    def line(quote_text: bool) -> str:
        def cell(name: str) -> str:
            if name in json_cells:
                return d.json_cell(f"v.{name}")
            return d.cell(f"v.{name}") if quote_text and name not in verbatim else f"v.{name}"

        return d.join([cell(name) for name in values], ",", "\r\n")

    # The text cells rarely need quoting: one test over all of them picks the line that quotes each one.
    quoted = f"CASE WHEN {d.special.format(c=d.join(text))} THEN {line(True)} ELSE {line(False)} END"
    selected = ", ".join(f"{value} AS {name}" for name, value in values.items())
    return (
        f"SELECT v.task_id, CASE WHEN v.exact THEN {quoted} END FROM ("  # noqa: S608 -- constant SQL
        f"SELECT {selected}, {exact} AS exact FROM ({rows} {d.fence}) q {d.fence}) v"
    )


# SQLAlchemy's bind parameter syntax in ``text()``; the driver's own syntax replaces it for raw cursors.
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def driver_sql(sql: str, dialect: str) -> str:
    if dialect == "postgresql":
        return _BIND.sub(r"%(\1)s", sql.replace("%", "%%"))
    return sql
