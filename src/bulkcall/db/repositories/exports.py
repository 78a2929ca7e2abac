"""The export queries: a campaign's tasks with their calls, and campaigns with their KPIs, read in batches.

Rows come from a cursor (a server-side one on PostgreSQL), ``batch_size`` at a time, so memory stays flat
whatever the campaign's size. Each task's calls are aggregated in the same statement (no query per task).
The SQL is written per dialect: SQLite has no ordered aggregates (3.40), so a task's outcomes come from a
correlated subquery in attempt order over the ``(task_id, attempt_number)`` index; PostgreSQL aggregates the
campaign's attempts once (``string_agg ... ORDER BY``) and joins them.

Values leave here the same whatever the database, formatted by the database where it is cheaper than in
Python: times as ISO 8601 UTC text with ``Z`` (as the API writes them), JSON columns as JSON text, money and
seconds as numbers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from bulkcall.db.models import CallAttempt, CallTask, Campaign, CampaignAudienceEntry, ContactListMember
from bulkcall.db.repositories.base import WorkspaceRepository
from bulkcall.db.types import sqlite_timestamp

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

    @property
    def _dialect(self) -> str:
        return self.session.bind.dialect.name if self.session.bind is not None else "sqlite"

    async def result_batches(self, filters: ResultFilters, batch_size: int) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The campaign's tasks in id order, each a tuple in ``RESULT_FIELDS`` order, ``batch_size`` at a time.

        ``custom_fields`` and ``extracted_data`` are JSON text (or None; compact when ``compact_json``); times
        ISO 8601 text with ``Z``. One
        more column follows: the contact's current phone (for the variables, as the tasks API derives them).

        ``attempt_outcomes`` is the ``|``-joined outcomes of the task's ended attempts in attempt order. Without
        a range, ``attempts``, ``first_called_at``, ``last_called_at``, ``talk_seconds`` and ``cost`` are the
        task's own; with one, only tasks with an attempt ended in it come back, and those columns (and the
        outcomes and extracted data) cover only the attempts ended in it.
        """
        dialect = self._dialect
        sql = _postgres_results(filters) if dialect == "postgresql" else _sqlite_results(filters)
        params: dict[str, Any] = {
            "workspace_id": self.workspace_id,
            "campaign_id": filters.campaign_id,
            "status": filters.status,
            "outcome": filters.outcome,
            "lower": _bind(filters.lower, dialect),
            "upper": _bind(filters.upper, dialect),
        }
        result = await self.session.stream(
            text(sql).execution_options(yield_per=batch_size, stream_results=True), params
        )
        try:
            async for batch in result.partitions(batch_size):
                yield batch  # type: ignore[misc]  # Rows are tuples
        finally:
            await result.close()

    @property
    def compact_json(self) -> bool:
        """Whether ``result_batches`` hands JSON text already compact (SQLite's ``json()`` minifies it)."""
        return self._dialect != "postgresql"

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
    "t.id, t.contact_id, t.phone_e164, c.first_name, c.last_name, c.email, c.company, c.country, c.timezone, "
    "{custom_fields}, t.status, t.skip_reason"
)
# After RESULT_FIELDS, for the variables: the contact's own phone (the task keeps the one it dialed).
_CONTACT_PHONE = ", c.phone_e164"


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


def _sqlite_results(filters: ResultFilters) -> str:
    in_range = _range(filters, "x.")
    outcomes = (
        "(SELECT group_concat(o.outcome, '|') FROM (SELECT x.outcome FROM call_attempts x "  # noqa: S608 -- constant
        f"WHERE x.task_id = t.id AND {in_range} ORDER BY x.attempt_number) o)"
    )
    extracted = (
        "(SELECT json(x.extracted_data) FROM call_attempts x WHERE x.task_id = t.id AND "  # noqa: S608 -- constant
        f"{in_range} AND x.extracted_data IS NOT NULL AND x.extracted_data NOT IN {_NO_DATA_SQLITE} "
        "ORDER BY x.attempt_number DESC LIMIT 1)" + _CONTACT_PHONE
    )
    if not filters.ranged:
        first, last = _sqlite_iso("t.first_called_at"), _sqlite_iso("t.last_called_at")
        calls = f"t.attempts, {outcomes}, t.last_outcome, p.e164, {first}, {last}, t.talk_seconds, t.cost"
        joins = ""
    else:
        first, last = _sqlite_iso("r.first_at"), _sqlite_iso("r.last_at")
        calls = f"r.n, {outcomes}, t.last_outcome, p.e164, {first}, {last}, r.talk, r.cost"
        joins = (
            "JOIN (SELECT a.task_id, count(*) AS n, min(a.dialed_at) AS first_at, "  # noqa: S608 -- constant SQL
            "max(a.dialed_at) AS last_at, "
            f"total({_TALK.format(a='a.')}) AS talk, total(a.cost) AS cost FROM call_attempts a "
            f"WHERE a.campaign_id = :campaign_id AND {_range(filters, 'a.')} GROUP BY a.task_id) r "
            "ON r.task_id = t.id"
        )
    return (
        f"SELECT {_CONTACT_COLUMNS.format(custom_fields='json(c.custom_fields)')}, {calls}, {extracted} "  # noqa: S608
        f"FROM call_tasks t {joins} "
        "LEFT JOIN contacts c ON c.id = t.contact_id "
        "LEFT JOIN phone_numbers p ON p.id = t.caller_phone_number_id "
        f"WHERE {_task_filters(filters)} ORDER BY t.id"
    )


def _postgres_results(filters: ResultFilters) -> str:
    if not filters.ranged:
        first, last = _postgres_iso("t.first_called_at"), _postgres_iso("t.last_called_at")
        calls = f"t.attempts, r.outcomes, t.last_outcome, p.e164, {first}, {last}, t.talk_seconds, t.cost::float8"
        join = "LEFT JOIN"
    else:
        first, last = _postgres_iso("r.first_at"), _postgres_iso("r.last_at")
        calls = f"r.n, r.outcomes, t.last_outcome, p.e164, {first}, {last}, r.talk, r.cost::float8"
        join = "JOIN"
    return (
        f"SELECT {_CONTACT_COLUMNS.format(custom_fields='c.custom_fields::text')}, {calls}, "  # noqa: S608
        f"r.extracted::text{_CONTACT_PHONE} "
        "FROM call_tasks t "
        f"{join} (SELECT a.task_id, count(*) AS n, string_agg(a.outcome, '|' ORDER BY a.attempt_number) AS outcomes, "
        "min(a.dialed_at) AS first_at, max(a.dialed_at) AS last_at, "
        f"sum({_TALK.format(a='a.')}) AS talk, sum(a.cost) AS cost, "
        "(array_agg(a.extracted_data ORDER BY a.attempt_number DESC) FILTER (WHERE a.extracted_data IS NOT NULL "
        f"AND a.extracted_data NOT IN {_NO_DATA_POSTGRES}))[1] AS extracted "
        f"FROM call_attempts a WHERE a.campaign_id = :campaign_id AND {_range(filters, 'a.')} GROUP BY a.task_id) r "
        "ON r.task_id = t.id "
        "LEFT JOIN contacts c ON c.id = t.contact_id "
        "LEFT JOIN phone_numbers p ON p.id = t.caller_phone_number_id "
        f"WHERE {_task_filters(filters)} ORDER BY t.id"
    )
