"""Campaigns, their number pools, audiences, tasks, events and templates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import (
    CallAttempt,
    CallTask,
    Campaign,
    CampaignAudienceEntry,
    CampaignEvent,
    CampaignPhoneNumber,
    CampaignTemplate,
    Contact,
    ContactListMember,
    PhoneNumber,
    TelephonyConnection,
)
from bulkcall.db.models.campaign import NOT_PENDING_SQL, WAITING_SQL
from bulkcall.db.repositories import insight as insight_queries
from bulkcall.db.repositories import task_events
from bulkcall.db.repositories.base import WorkspaceRepository, dialect_of, rows_changed
from bulkcall.db.types import sqlite_timestamp

# Unfinished tasks that are neither waiting (the waiting index) nor fresh: calls being placed or in progress.
IN_FLIGHT_TASK_STATUSES = ("queued", "placing_call", "calling")
UNFINISHED_TASK_STATUSES = ("pending", "retry_pending", *IN_FLIGHT_TASK_STATUSES)


class CampaignRepository(WorkspaceRepository[Campaign]):
    model = Campaign

    async def get_for_update(self, campaign_id: int) -> Campaign | None:
        """The campaign row, locked on PostgreSQL so concurrent lifecycle actions serialise."""
        query = self.scoped().where(Campaign.id == campaign_id)
        if dialect_of(self.session) == "postgresql":
            query = query.with_for_update()
        row: Campaign | None = (await self.session.execute(query)).scalar_one_or_none()
        return row

    async def delete(self, row: Campaign) -> None:
        await self.session.execute(
            update(CampaignTemplate)
            .where(CampaignTemplate.source_campaign_id == row.id)
            .values(source_campaign_id=None)
        )
        await super().delete(row)

    def filtered(self, status: str | None, search: str | None) -> Any:
        query = self.scoped()
        if status:
            query = query.where(Campaign.status == status)
        if search:
            query = query.where(func.lower(Campaign.name).contains(search.lower(), autoescape=True))
        return query

    # -- number pool ---------------------------------------------------------------------------------------

    async def pool_ids(self, campaign_ids: Sequence[int]) -> dict[int, list[int]]:
        pools: dict[int, list[int]] = {campaign_id: [] for campaign_id in campaign_ids}
        if not campaign_ids:
            return pools
        rows = await self.session.execute(
            select(CampaignPhoneNumber.campaign_id, CampaignPhoneNumber.phone_number_id)
            .where(CampaignPhoneNumber.campaign_id.in_(list(campaign_ids)))
            .order_by(CampaignPhoneNumber.phone_number_id)
        )
        for campaign_id, number_id in rows:
            pools[campaign_id].append(number_id)
        return pools

    async def set_pool(self, campaign_id: int, number_ids: Sequence[int]) -> None:
        await self.session.execute(delete(CampaignPhoneNumber).where(CampaignPhoneNumber.campaign_id == campaign_id))
        if number_ids:
            await self.session.execute(
                insert(CampaignPhoneNumber),
                [{"campaign_id": campaign_id, "phone_number_id": number_id} for number_id in sorted(set(number_ids))],
            )

    async def pool_numbers(self, campaign_id: int) -> list[tuple[PhoneNumber, TelephonyConnection]]:
        rows = await self.session.execute(
            select(PhoneNumber, TelephonyConnection)
            .join(CampaignPhoneNumber, CampaignPhoneNumber.phone_number_id == PhoneNumber.id)
            .join(TelephonyConnection, TelephonyConnection.id == PhoneNumber.telephony_connection_id)
            .where(CampaignPhoneNumber.campaign_id == campaign_id)
            .order_by(PhoneNumber.id)
        )
        return [(number, connection) for number, connection in rows]

    # -- audience --------------------------------------------------------------------------------------------

    async def add_audience(self, campaign_id: int, entries: Sequence[dict[str, Any]]) -> None:
        """Append entries (``contact_id`` or ``raw_phone`` + ``error``) in order."""
        if entries:
            await self.session.execute(
                insert(CampaignAudienceEntry),
                [
                    {
                        "campaign_id": campaign_id,
                        "contact_id": entry.get("contact_id"),
                        "raw_phone": entry.get("raw_phone"),
                        "error": entry.get("error"),
                    }
                    for entry in entries
                ],
            )

    async def clear_audience(self, campaign_id: int) -> None:
        await self.session.execute(
            delete(CampaignAudienceEntry).where(CampaignAudienceEntry.campaign_id == campaign_id)
        )

    async def audience_size(self, campaign: Campaign) -> int:
        entries = await self.session.execute(
            select(func.count())
            .select_from(CampaignAudienceEntry)
            .where(CampaignAudienceEntry.campaign_id == campaign.id)
        )
        total = int(entries.scalar_one())
        if campaign.contact_list_id is not None:
            members = await self.session.execute(
                select(func.count())
                .select_from(ContactListMember)
                .where(ContactListMember.contact_list_id == campaign.contact_list_id)
            )
            total += int(members.scalar_one())
        return total

    async def audience_entries(self, campaign_id: int) -> list[CampaignAudienceEntry]:
        rows = await self.session.execute(
            select(CampaignAudienceEntry)
            .where(CampaignAudienceEntry.campaign_id == campaign_id)
            .order_by(CampaignAudienceEntry.id)
        )
        return list(rows.scalars())

    async def audience_contact_ids(self, campaign: Campaign, limit: int) -> list[int]:
        """Contact ids of the audience's own entries (not the list's members) in order, at most ``limit``."""
        rows = await self.session.execute(
            select(CampaignAudienceEntry.contact_id)
            .where(CampaignAudienceEntry.campaign_id == campaign.id, CampaignAudienceEntry.contact_id.is_not(None))
            .order_by(CampaignAudienceEntry.id)
            .limit(limit)
        )
        return [contact_id for contact_id in rows.scalars() if contact_id is not None]

    async def last_audience_entry_id(self, campaign_id: int) -> int:
        result = await self.session.execute(
            select(func.max(CampaignAudienceEntry.id)).where(CampaignAudienceEntry.campaign_id == campaign_id)
        )
        return int(result.scalar_one() or 0)

    async def copy_audience(self, source_id: int, target_id: int) -> None:
        await self.session.execute(
            insert(CampaignAudienceEntry).from_select(
                ["campaign_id", "contact_id", "raw_phone", "error"],
                select(
                    text(str(int(target_id))),
                    CampaignAudienceEntry.contact_id,
                    CampaignAudienceEntry.raw_phone,
                    CampaignAudienceEntry.error,
                )
                .where(CampaignAudienceEntry.campaign_id == source_id)
                .order_by(CampaignAudienceEntry.id),
            )
        )

    # -- tasks -----------------------------------------------------------------------------------------------

    async def materialize_tasks(
        self,
        campaign: Campaign,
        *,
        after_entry_id: int,
        through_entry_id: int,
        include_list: bool,
        now: datetime,
        next_eligible_at: datetime,
        blocker: str | None,
    ) -> None:
        """Turn audience entries (and, at launch, the list's members) into tasks, set-based.

        An entry becomes a task skipped as ``invalid_number`` (no contact), ``duplicate_phone`` (its contact
        already has a task in this campaign or comes earlier in the audience) or ``dnc``; else ``pending``.
        Entries are few and ordered, so they get a window function; the list, possibly millions of rows,
        is read in its primary-key order and only compared with the entries.
        """
        dialect = dialect_of(self.session)
        entry_sql, list_sql = _TASK_STATEMENTS[dialect == "postgresql"]
        params: dict[str, Any] = {
            "workspace_id": campaign.workspace_id,
            "campaign_id": campaign.id,
            "after_entry_id": after_entry_id,
            "through_entry_id": through_entry_id,
            "campaign_timezone": campaign.timezone,
            "blocker": blocker,
            "next_eligible_at": _bind_time(next_eligible_at, dialect),
            "now": _bind_time(now, dialect),
            "list_id": campaign.contact_list_id,
        }
        if dialect == "postgresql":
            # JIT compilation costs more than it saves on these one-off bulk statements, and the joins
            # over a whole audience want more than the default 4 MB of memory.
            await self.session.execute(text("SET LOCAL jit = off"))
            await self.session.execute(text("SET LOCAL work_mem = '64MB'"))
        before = await task_events.last_task_id(self.session, campaign.id)
        counts = [rows_changed(await self.session.execute(text(entry_sql), params))]
        if include_list and campaign.contact_list_id is not None:
            counts.append(rows_changed(await self.session.execute(text(list_sql), params)))
        inserted = sum(counts) if min(counts) >= 0 else await self._tasks_after(campaign.id, before)
        # Tasks born skipped are terminal at once: each gets its ``task.completed`` event here.
        skipped = await task_events.record_skipped_since(self.session, campaign.id, before, now)
        # Counted from the statements, not by reading the new tasks again: they are born pending or skipped.
        await insight_queries.add_task_counts(
            self.session, campaign.id, {"pending": inserted - skipped, "skipped": skipped}
        )

    async def _tasks_after(self, campaign_id: int, after_task_id: int) -> int:
        counted = select(func.count()).where(CallTask.campaign_id == campaign_id, CallTask.id > after_task_id)
        return int((await self.session.execute(counted)).scalar_one())

    async def task_counts(self, campaign_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Exact tasks per status: the counters kept where tasks are created and by triggers on every change."""
        return await insight_queries.campaigns_task_counts(self.session, campaign_ids)

    async def has_unfinished_tasks(self, campaign_id: int) -> bool:
        """True while any task is not terminal: index probes (waiting, then in flight), not a count."""
        waiting = select(CallTask.id).where(CallTask.campaign_id == campaign_id, text(WAITING_SQL)).limit(1)
        if (await self.session.execute(waiting)).first() is not None:
            return True
        in_flight = (
            select(CallTask.id)
            .where(
                CallTask.campaign_id == campaign_id,
                text(NOT_PENDING_SQL),
                CallTask.status.in_(IN_FLIGHT_TASK_STATUSES),
            )
            .limit(1)
        )
        return (await self.session.execute(in_flight)).first() is not None

    async def cancel_undialed_tasks(self, campaign_id: int, now: datetime) -> None:
        """Every task not yet handed to a carrier ends ``cancelled``; calls in flight finish on their own."""
        # One statement (a task moving between waiting and queued meanwhile is still re-checked as a whole),
        # with each partial index's predicate stated literally so each part can be read from its index.
        waiting_or_queued = or_(text(WAITING_SQL), and_(text(NOT_PENDING_SQL), CallTask.status == "queued"))
        await task_events.end_tasks(
            self.session,
            [CallTask.campaign_id == campaign_id, waiting_or_queued],
            {"status": "cancelled", "blocker": None, "next_eligible_at": None, "updated_at": now, "completed_at": now},
            now,
        )

    def tasks_query(
        self,
        campaign_id: int,
        status: str | None,
        outcome: str | None,
        ended_from: datetime | None = None,
        ended_before: datetime | None = None,
    ) -> Any:
        """A campaign's tasks; with a range, only those with an attempt ended in ``[ended_from, ended_before)``."""
        query = select(CallTask).where(CallTask.campaign_id == campaign_id)
        if status:
            query = query.where(CallTask.status == status)
            if status != "pending":
                # Literal, as the status index states it, so SQLite may use it (every status but pending).
                query = query.where(text(NOT_PENDING_SQL))
        if outcome:
            query = query.where(CallTask.last_outcome == outcome)
        if ended_from is not None or ended_before is not None:
            in_range = select(CallAttempt.task_id).where(
                CallAttempt.campaign_id == campaign_id, CallAttempt.outcome.is_not(None)
            )
            if ended_from is not None:
                in_range = in_range.where(CallAttempt.ended_at >= ended_from)
            if ended_before is not None:
                in_range = in_range.where(CallAttempt.ended_at < ended_before)
            query = query.where(CallTask.id.in_(in_range))
        return query.order_by(CallTask.id)

    async def page_tasks(
        self,
        campaign_id: int,
        status: str | None,
        outcome: str | None,
        page: int,
        per_page: int,
        ended_from: datetime | None = None,
        ended_before: datetime | None = None,
    ) -> tuple[list[tuple[CallTask, Contact | None]], int]:
        """One page of tasks (``tasks_query``), each with its contact (for the variables), and the total."""
        query = self.tasks_query(campaign_id, status, outcome, ended_from, ended_before)
        if not outcome and ended_from is None and ended_before is None:
            # All tasks, or one status: the counters know (no index holds pending tasks by status).
            counts = await self.task_counts([campaign_id])
            total = counts[campaign_id].get(status, 0) if status else sum(counts[campaign_id].values())
        else:
            counted = select(func.count()).select_from(query.order_by(None).subquery())
            total = int((await self.session.execute(counted)).scalar_one())
        rows = await self.session.execute(
            query.add_columns(Contact)
            .outerjoin(Contact, Contact.id == CallTask.contact_id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        return [(task, contact) for task, contact in rows], total

    async def get_task(self, campaign_id: int, task_id: int) -> tuple[CallTask, Contact | None] | None:
        row = (
            await self.session.execute(
                select(CallTask, Contact)
                .outerjoin(Contact, Contact.id == CallTask.contact_id)
                .where(CallTask.campaign_id == campaign_id, CallTask.id == task_id)
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def task_attempts(self, task_id: int) -> list[CallAttempt]:
        rows = await self.session.execute(
            select(CallAttempt)
            .where(CallAttempt.task_id == task_id, CallAttempt.workspace_id == self.workspace_id)
            .order_by(CallAttempt.attempt_number)
        )
        return list(rows.scalars())

    # -- events ----------------------------------------------------------------------------------------------

    def record_event(self, campaign: Campaign, event_type: str, data: dict[str, Any], now: datetime) -> None:
        self.session.add(
            CampaignEvent(
                workspace_id=campaign.workspace_id,
                campaign_id=campaign.id,
                type=event_type,
                data=data,
                created_at=now,
                txid=task_events.txid_expression(self.session),
            )
        )

    async def events(self, campaign_id: int) -> list[CampaignEvent]:
        rows = await self.session.execute(
            select(CampaignEvent).where(CampaignEvent.campaign_id == campaign_id).order_by(CampaignEvent.id)
        )
        return list(rows.scalars())


class TemplateRepository(WorkspaceRepository[CampaignTemplate]):
    model = CampaignTemplate

    async def by_name(self, name: str) -> CampaignTemplate | None:
        row: CampaignTemplate | None = (
            await self.session.execute(self.scoped().where(CampaignTemplate.name == name))
        ).scalar_one_or_none()
        return row

    def search(self, search: str | None) -> Any:
        query = self.scoped()
        if search:
            query = query.where(or_(func.lower(CampaignTemplate.name).contains(search.lower(), autoescape=True)))
        return query


def _bind_time(value: datetime, dialect: str) -> Any:
    """Raw SQL bypasses the UTCDateTime type, so bind what it would store."""
    return sqlite_timestamp(value) if dialect == "sqlite" else value


async def due_scheduled_campaigns(session: AsyncSession, now: datetime) -> list[tuple[int, int]]:
    """(workspace_id, campaign_id) of scheduled campaigns whose start time has come, across workspaces."""
    rows = await session.execute(
        select(Campaign.workspace_id, Campaign.id)
        .where(Campaign.status == "scheduled", Campaign.scheduled_at <= now)
        .order_by(Campaign.scheduled_at, Campaign.id)
    )
    return [(int(workspace_id), int(campaign_id)) for workspace_id, campaign_id in rows]


def zone_key_sql(alias: str) -> str:
    """A task's zone key from contact columns under ``alias``: the contact's own zone, else the number's
    (``|``-joined), else the campaign's (``:campaign_timezone``). Launch and planning share it."""
    return f"COALESCE({alias}.timezone, {alias}.phone_timezones, :campaign_timezone)"


def zone_source_sql(alias: str) -> str:
    """Where :func:`zone_key_sql` found the zone: ``contact_field``, ``phone_number`` or ``fallback``."""
    return (
        f"CASE WHEN {alias}.timezone IS NOT NULL THEN 'contact_field' "
        f"WHEN {alias}.phone_timezones IS NOT NULL THEN 'phone_number' ELSE 'fallback' END"
    )


# The columns every new task gets, from a row ``x`` with the contact's columns and its ``skip_reason``.
# ``x`` is fenced ({fence}) so that it is computed once per row: flattened into this SELECT, its
# ``skip_reason`` (two joins and a subquery) was evaluated again for each of the five columns that use it
# (1.6 s of a million-member launch on PostgreSQL).
_TASK_INSERT = f"""
    INSERT INTO call_tasks (
        workspace_id, campaign_id, contact_id, phone_e164, status, skip_reason, blocker, next_eligible_at,
        timezones, timezone_source, country, attempts, voicemail_attempts, cost, talk_seconds, created_at,
        updated_at, completed_at)
    SELECT
        :workspace_id, :campaign_id, x.contact_id, x.phone_e164,
        CASE WHEN x.skip_reason IS NULL THEN 'pending' ELSE 'skipped' END,
        x.skip_reason,
        CASE WHEN x.skip_reason IS NULL THEN :blocker END,
        CASE WHEN x.skip_reason IS NULL THEN :next_eligible_at END,
        {zone_key_sql("x")},
        {zone_source_sql("x")},
        x.country, 0, 0, 0, 0, :now, :now,
        CASE WHEN x.skip_reason IS NOT NULL THEN :now END
"""

# Audience entries not yet tasks, in order; the earliest entry of a contact wins. Entries are at most a few
# hundred thousand: each looks its contact up ({contact}); a hash join would read every contact of the database.
_ENTRY_TASKS = (
    _TASK_INSERT  # noqa: S608 -- constant SQL text joined at import; values are bound parameters
    + """
    FROM (
        SELECT a.id, c.id AS contact_id, COALESCE(c.phone_e164, a.raw_phone) AS phone_e164, c.timezone,
               c.phone_timezones, c.country,
               CASE WHEN c.id IS NULL THEN 'invalid_number'
                    WHEN a.rn > 1 OR a.contact_id IN (
                        SELECT p.contact_id FROM call_tasks p
                        WHERE p.campaign_id = :campaign_id AND p.contact_id IS NOT NULL) THEN 'duplicate_phone'
                    WHEN d.id IS NOT NULL THEN 'dnc' END AS skip_reason
        FROM (
            SELECT e.id, e.contact_id, e.raw_phone,
                   ROW_NUMBER() OVER (PARTITION BY e.contact_id ORDER BY e.id) AS rn
            FROM campaign_audience e
            WHERE e.campaign_id = :campaign_id AND e.id > :after_entry_id AND e.id <= :through_entry_id
        ) a
        {contact}
        LEFT JOIN dnc_entries d ON d.workspace_id = :workspace_id AND d.phone_e164 = c.phone_e164
        {fence}
    ) x
    ORDER BY x.id
"""
)

# At launch, the list's members after the entries: a member the entries already hold is a duplicate.
# No ORDER BY: sorting a million members costs more than the order is worth (claims order by eligibility).
_LIST_TASKS = (
    _TASK_INSERT  # noqa: S608 -- constant SQL text joined at import; values are bound parameters
    + """
    FROM (
        SELECT c.id AS contact_id, c.phone_e164, c.timezone, c.phone_timezones, c.country,
               CASE WHEN m.contact_id IN (
                        SELECT e.contact_id FROM campaign_audience e
                        WHERE e.campaign_id = :campaign_id AND e.contact_id IS NOT NULL) THEN 'duplicate_phone'
                    WHEN d.id IS NOT NULL THEN 'dnc' END AS skip_reason
        FROM contact_list_members m
        JOIN contacts c ON c.id = m.contact_id AND c.workspace_id = :workspace_id
        LEFT JOIN dnc_entries d ON d.workspace_id = :workspace_id AND d.phone_e164 = c.phone_e164
        WHERE m.contact_list_id = :list_id
        {fence}
    ) x
"""
)

_CONTACT_JOIN = "LEFT JOIN contacts c ON c.id = a.contact_id AND c.workspace_id = :workspace_id"
# PostgreSQL: a lateral lookup, fenced so the planner keeps it a per-entry index probe.
_CONTACT_LOOKUP_PG = """LEFT JOIN LATERAL (
            SELECT c.id, c.phone_e164, c.timezone, c.phone_timezones, c.country FROM contacts c
            WHERE c.id = a.contact_id AND c.workspace_id = :workspace_id OFFSET 0
        ) c ON true"""

# (entries, list) statements, by "is PostgreSQL": SQLite needs a LIMIT to take an OFFSET.
_TASK_STATEMENTS = {
    False: (
        _ENTRY_TASKS.format(contact=_CONTACT_JOIN, fence="LIMIT -1 OFFSET 0"),
        _LIST_TASKS.format(fence="LIMIT -1 OFFSET 0"),
    ),
    True: (
        _ENTRY_TASKS.format(contact=_CONTACT_LOOKUP_PG, fence="OFFSET 0"),
        _LIST_TASKS.format(fence="OFFSET 0"),
    ),
}
