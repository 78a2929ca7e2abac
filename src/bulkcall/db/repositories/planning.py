"""Planning reads: an audience grouped by zone key, zone source and country; a pool's connections; a
campaign's call history. Grouped in the database, so the cost in Python is per zone key, never per contact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, null, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import CallAttempt, CallTask, Campaign, Contact, PhoneNumber, TelephonyConnection
from bulkcall.db.repositories.base import dialect_of
from bulkcall.db.repositories.campaigns import UNFINISHED_TASK_STATUSES, zone_key_sql, zone_source_sql

# Ids (or phones) per IN (...) list: well under SQLite's bound-variable limit.
BATCH_SIZE = 5000


@dataclass(frozen=True)
class ZoneGroup:
    """``contacts`` sharing one zone key (``|``-joined zones), found from ``source``, in ``country``."""

    zone_key: str
    source: str  # contact_field | phone_number | fallback
    country: str | None
    contacts: int


@dataclass
class AudienceGroups:
    groups: list[ZoneGroup]
    invalid: int = 0  # entries without a usable number (no contact behind them)


@dataclass(frozen=True)
class PoolConnection:
    id: int
    name: str
    provider: str
    concurrency_limit: int
    calls_per_second: float
    numbers: tuple[int, ...]  # active numbers of the selection on this connection


@dataclass(frozen=True)
class History:
    ended_attempts: int
    avg_handle_seconds: float | None  # dialed to ended, ended attempts only
    finished_tasks: int
    attempts_per_finished_task: float | None


def _grouped(select_from: str, *, by_country: bool = True) -> str:
    """Counts by zone key (and country), with each key's zone sources as sums: one sort key narrower than
    grouping by the source too (SQLite sorts to group; the sort is most of the cost over a million rows)."""
    source = zone_source_sql("c")
    country = "c.country" if by_country else "NULL"
    group = f"{zone_key_sql('c')}, c.country" if by_country else zone_key_sql("c")
    return (
        f"SELECT {zone_key_sql('c')} AS zone_key, {country} AS country, "
        f"sum(CASE WHEN {source} = 'contact_field' THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN {source} = 'phone_number' THEN 1 ELSE 0 END), count(*) "
        f"{select_from} GROUP BY {group}"
    )


_LIST = """FROM contact_list_members m JOIN contacts c ON c.id = m.contact_id AND c.workspace_id = :workspace_id
    WHERE m.contact_list_id = :list_id"""
# A draft's own entries, each contact once and not again when the list holds it too (launch skips those as
# duplicates).
# Driven from the entries (a few), so the contacts are probed by key rather than scanned.
_ENTRIES = """FROM (SELECT DISTINCT e.contact_id FROM campaign_audience e
          WHERE e.campaign_id = :campaign_id AND e.contact_id IS NOT NULL) a
    JOIN contacts c ON c.id = a.contact_id AND c.workspace_id = :workspace_id
    WHERE NOT EXISTS (SELECT 1 FROM contact_list_members m
                      WHERE m.contact_list_id = :list_id AND m.contact_id = c.id)"""
_IDS = "FROM contacts c WHERE c.workspace_id = :workspace_id AND c.id IN :ids"
_PHONES = "FROM contacts c WHERE c.workspace_id = :workspace_id AND c.phone_e164 IN :phones"


class PlanningRepository:
    def __init__(self, session: AsyncSession, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def _groups(self, source: str, params: dict[str, Any], *expanding: str, by_country: bool) -> list[ZoneGroup]:
        if dialect_of(self.session) == "postgresql":
            # A list of a million members is hashed against the contacts: in 4 MB of memory that is 16 batches
            # written to disk and read back; JIT costs more than it saves on these one-off statements.
            await self.session.execute(text("SET LOCAL work_mem = '64MB'"))
            await self.session.execute(text("SET LOCAL jit = off"))
        statement = text(_grouped(source, by_country=by_country))
        if expanding:
            statement = statement.bindparams(*(bindparam(name, expanding=True) for name in expanding))
        rows = await self.session.execute(statement, {"workspace_id": self.workspace_id, **params})
        groups: list[ZoneGroup] = []
        for key, country, contact_field, phone_number, total in rows:
            for zone_source, count in (
                ("contact_field", int(contact_field)),
                ("phone_number", int(phone_number)),
                ("fallback", int(total) - int(contact_field) - int(phone_number)),
            ):
                if count:
                    groups.append(ZoneGroup(str(key), zone_source, country, count))
        return groups

    async def list_groups(self, list_id: int, campaign_timezone: str, *, by_country: bool = True) -> list[ZoneGroup]:
        params = {"list_id": list_id, "campaign_timezone": campaign_timezone}
        return await self._groups(_LIST, params, by_country=by_country)

    async def contact_groups(
        self, contact_ids: Sequence[int], campaign_timezone: str, *, by_country: bool = True
    ) -> list[ZoneGroup]:
        distinct = list(dict.fromkeys(contact_ids))
        groups: list[ZoneGroup] = []
        for start in range(0, len(distinct), BATCH_SIZE):
            params = {"ids": distinct[start : start + BATCH_SIZE], "campaign_timezone": campaign_timezone}
            groups += await self._groups(_IDS, params, "ids", by_country=by_country)
        return merge_groups(groups)

    async def phone_groups(
        self, phones: Sequence[str], campaign_timezone: str, *, by_country: bool = True
    ) -> list[ZoneGroup]:
        """Groups of the workspace's contacts holding these (normalised) phones."""
        distinct = list(dict.fromkeys(phones))
        groups: list[ZoneGroup] = []
        for start in range(0, len(distinct), BATCH_SIZE):
            params = {"phones": distinct[start : start + BATCH_SIZE], "campaign_timezone": campaign_timezone}
            groups += await self._groups(_PHONES, params, "phones", by_country=by_country)
        return merge_groups(groups)

    async def known_phones(self, phones: Sequence[str]) -> set[str]:
        found: set[str] = set()
        distinct = list(dict.fromkeys(phones))
        for start in range(0, len(distinct), BATCH_SIZE):
            rows = await self.session.execute(
                select(Contact.phone_e164).where(
                    Contact.workspace_id == self.workspace_id,
                    Contact.phone_e164.in_(distinct[start : start + BATCH_SIZE]),
                )
            )
            found.update(rows.scalars())
        return found

    async def draft_groups(self, campaign: Campaign, *, by_country: bool = True) -> AudienceGroups:
        """A draft's audience (its entries and its list's members, each contact once) as it would launch;
        ``by_country`` False leaves the country out (one sort key fewer: what the capacity preview needs)."""
        params = {
            "campaign_id": campaign.id,
            "list_id": campaign.contact_list_id,
            "campaign_timezone": campaign.timezone,
        }
        groups = await self._groups(_ENTRIES, params, by_country=by_country)
        if campaign.contact_list_id is not None:
            groups += await self.list_groups(campaign.contact_list_id, campaign.timezone, by_country=by_country)
        invalid = await self.session.execute(
            text(
                "SELECT count(*) FROM campaign_audience e LEFT JOIN contacts c ON c.id = e.contact_id "
                "AND c.workspace_id = :workspace_id WHERE e.campaign_id = :campaign_id AND c.id IS NULL"
            ),
            {"campaign_id": campaign.id, "workspace_id": self.workspace_id},
        )
        return AudienceGroups(merge_groups(groups), int(invalid.scalar_one()))

    async def task_groups(self, campaign_id: int, *, unfinished_only: bool, by_country: bool = True) -> AudienceGroups:
        """A launched campaign's tasks by the zone key stored at launch (skipped tasks left out)."""
        country = CallTask.country if by_country else null()
        columns = (CallTask.timezones, CallTask.timezone_source)
        query = (
            select(*columns, country, func.count())
            .where(CallTask.campaign_id == campaign_id, CallTask.workspace_id == self.workspace_id)
            .group_by(*columns, *((CallTask.country,) if by_country else ()))
        )
        if unfinished_only:
            query = query.where(CallTask.status.in_(UNFINISHED_TASK_STATUSES))
        else:
            query = query.where(CallTask.status != "skipped")
        rows = await self.session.execute(query)
        groups = [ZoneGroup(str(key), str(source), country, int(count)) for key, source, country, count in rows]
        invalid = await self.session.execute(
            select(func.count()).where(
                CallTask.campaign_id == campaign_id,
                CallTask.workspace_id == self.workspace_id,
                CallTask.skip_reason == "invalid_number",
            )
        )
        return AudienceGroups(groups, 0 if unfinished_only else int(invalid.scalar_one()))

    async def connections(self, number_ids: Sequence[int]) -> tuple[list[PoolConnection], set[int]]:
        """The distinct connections behind the selection's active numbers; and the ids found at all."""
        if not number_ids:
            return [], set()
        rows = await self.session.execute(
            select(PhoneNumber.id, PhoneNumber.status, TelephonyConnection)
            .join(TelephonyConnection, TelephonyConnection.id == PhoneNumber.telephony_connection_id)
            .where(PhoneNumber.workspace_id == self.workspace_id, PhoneNumber.id.in_(list(set(number_ids))))
            .order_by(PhoneNumber.id)
        )
        found: set[int] = set()
        numbers: dict[int, list[int]] = defaultdict(list)
        by_id: dict[int, TelephonyConnection] = {}
        for number_id, status, connection in rows:
            found.add(int(number_id))
            if status == "active":
                numbers[connection.id].append(int(number_id))
                by_id[connection.id] = connection
        result = [
            PoolConnection(
                id=connection.id,
                name=connection.name,
                provider=connection.provider,
                concurrency_limit=connection.concurrency_limit,
                calls_per_second=connection.calls_per_second,
                numbers=tuple(numbers[connection.id]),
            )
            for connection in sorted(by_id.values(), key=lambda row: row.id)
        ]
        return result, found

    async def history(self, campaign_id: int) -> History:
        dialect = dialect_of(self.session)
        seconds: Any
        if dialect == "postgresql":
            seconds = func.extract("epoch", CallAttempt.ended_at - CallAttempt.dialed_at)
        else:
            seconds = (func.julianday(CallAttempt.ended_at) - func.julianday(CallAttempt.dialed_at)) * 86400.0
        attempts = (
            await self.session.execute(
                select(func.count(), func.avg(seconds)).where(
                    CallAttempt.campaign_id == campaign_id,
                    CallAttempt.workspace_id == self.workspace_id,
                    CallAttempt.ended_at.is_not(None),
                    CallAttempt.dialed_at.is_not(None),
                )
            )
        ).one()
        tasks = (
            await self.session.execute(
                select(func.count(), func.avg(CallTask.attempts)).where(
                    CallTask.campaign_id == campaign_id,
                    CallTask.workspace_id == self.workspace_id,
                    CallTask.status.in_(("completed", "failed")),
                    CallTask.attempts > 0,
                )
            )
        ).one()
        return History(
            ended_attempts=int(attempts[0]),
            avg_handle_seconds=None if attempts[1] is None else float(attempts[1]),
            finished_tasks=int(tasks[0]),
            attempts_per_finished_task=None if tasks[1] is None else float(tasks[1]),
        )


def merge_groups(groups: Sequence[ZoneGroup]) -> list[ZoneGroup]:
    """Add up groups with the same zone key, source and country (from several batches or queries)."""
    totals: dict[tuple[str, str, str | None], int] = defaultdict(int)
    for group in groups:
        totals[(group.zone_key, group.source, group.country)] += group.contacts
    return [ZoneGroup(key, source, country, count) for (key, source, country), count in totals.items()]
