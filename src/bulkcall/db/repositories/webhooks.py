"""Webhook endpoints (tenant-scoped), and the fan-out and sender queries (across workspaces)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import CampaignEvent, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from bulkcall.db.models.webhook import PENDING_SQL, WebhookFanoutCursor
from bulkcall.db.repositories.base import WorkspaceRepository, dialect_of, rows_changed
from bulkcall.db.types import sqlite_timestamp

# Advisory lock (PostgreSQL): one fan-out at a time across processes (dispatch sweeps use 0x62630002).
FANOUT_LOCK = 0x62630003


def _postgres(session: AsyncSession) -> bool:
    return dialect_of(session) == "postgresql"


class WebhookEndpointRepository(WorkspaceRepository[WebhookEndpoint]):
    model = WebhookEndpoint

    async def delete_with_deliveries(self, endpoint: WebhookEndpoint) -> None:
        """The endpoint, its deliveries and their attempts: nothing more is sent to it."""
        deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
        await self.session.execute(
            delete(WebhookDeliveryAttempt).where(WebhookDeliveryAttempt.delivery_id.in_(deliveries))
        )
        await self.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
        await self.delete(endpoint)

    def deliveries_query(self, endpoint_id: int, status: str | None) -> Any:
        query = select(WebhookDelivery).where(
            WebhookDelivery.workspace_id == self.workspace_id, WebhookDelivery.endpoint_id == endpoint_id
        )
        if status:
            query = query.where(WebhookDelivery.status == status)
        return query.order_by(WebhookDelivery.id.desc())

    async def page_deliveries(self, query: Any, page: int, per_page: int) -> tuple[list[WebhookDelivery], int]:
        counted = select(func.count()).select_from(query.order_by(None).subquery())
        total = int((await self.session.execute(counted)).scalar_one())
        rows = await self.session.execute(query.limit(per_page).offset((page - 1) * per_page))
        return list(rows.scalars()), total

    async def attempts_of(self, delivery_ids: Sequence[int]) -> dict[int, list[WebhookDeliveryAttempt]]:
        found: dict[int, list[WebhookDeliveryAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
        if not delivery_ids:
            return found
        rows = await self.session.execute(
            select(WebhookDeliveryAttempt)
            .where(WebhookDeliveryAttempt.delivery_id.in_(list(delivery_ids)))
            .order_by(WebhookDeliveryAttempt.delivery_id, WebhookDeliveryAttempt.id)
        )
        for attempt in rows.scalars():
            found[attempt.delivery_id].append(attempt)
        return found

    async def delivery(self, delivery_id: int, *, for_update: bool = False) -> WebhookDelivery | None:
        query = select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.workspace_id == self.workspace_id
        )
        if for_update and _postgres(self.session):
            query = query.with_for_update()
        row: WebhookDelivery | None = (await self.session.execute(query)).scalar_one_or_none()
        return row


# -- fan-out -----------------------------------------------------------------------------------------------------


async def try_fanout_lock(session: AsyncSession) -> bool:
    if not _postgres(session):
        return True
    result = await session.execute(select(func.pg_try_advisory_xact_lock(FANOUT_LOCK)))
    return bool(result.scalar_one())


async def anything_after(session: AsyncSession) -> bool:
    """A cheap read before the fan-out's write transaction: is there an event past the cursor (or no cursor)?"""
    cursor = (
        await session.execute(
            select(WebhookFanoutCursor.txid, WebhookFanoutCursor.event_id).where(WebhookFanoutCursor.id == 1)
        )
    ).first()
    if cursor is None:
        return True
    query = select(CampaignEvent.id).where(CampaignEvent.id > cursor[1])
    if _postgres(session):
        query = select(CampaignEvent.id).where(
            text("txid IS NOT NULL AND (txid, id) > (:txid, :event_id)").bindparams(
                txid=int(cursor[0]), event_id=int(cursor[1])
            )
        )
    return (await session.execute(query.limit(1))).first() is not None


async def anything_due(session: AsyncSession, now: datetime) -> bool:
    """A cheap read before the claim's write transaction: is any delivery due?"""
    query = (
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            text(f"webhook_deliveries.{PENDING_SQL}"),
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.enabled.is_(True),
        )
        .limit(1)
    )
    return (await session.execute(query)).first() is not None


async def fanout_cursor(session: AsyncSession) -> tuple[int, int]:
    """(txid, event id) the fan-out has read up to; the row is created on first use."""
    values = {"id": 1, "txid": 0, "event_id": 0}
    statement = (pg_insert if _postgres(session) else sqlite_insert)(WebhookFanoutCursor).values(values)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["id"]))
    row = (
        await session.execute(
            select(WebhookFanoutCursor.txid, WebhookFanoutCursor.event_id).where(WebhookFanoutCursor.id == 1)
        )
    ).one()
    return int(row[0]), int(row[1])


# Below which transaction id every transaction of this database has ended (PostgreSQL). The snapshot's own
# xmin would do, but it counts the whole cluster: a long transaction in another database would hold the
# webhooks back. So: the oldest in-progress transaction of a session on this database (``pg_stat_activity``,
# read before the events are), else the snapshot's xmax. A transaction ending between the two reads is
# visible to the events' later snapshot; one starting after them gets an id at or above xmax.
_HORIZON_SQL = """
    WITH snap AS (SELECT pg_current_snapshot() AS s),
    here AS (
        SELECT CAST(CAST(backend_xid AS text) AS bigint) AS xid FROM pg_stat_activity
        WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
    )
    SELECT COALESCE(
        (SELECT min(CAST(CAST(x AS text) AS bigint)) FROM snap, pg_snapshot_xip(snap.s) AS x
         WHERE CAST(CAST(x AS text) AS bigint) % 4294967296 IN (SELECT xid FROM here)),
        (SELECT CAST(CAST(pg_snapshot_xmax(s) AS text) AS bigint) FROM snap))
"""


async def next_events(session: AsyncSession, cursor: tuple[int, int], limit: int) -> list[tuple[int, int]]:
    """The (txid, id) keys of the next events to fan out, in cursor order.

    PostgreSQL: only events whose transaction is older than every transaction of this database still
    running, so none with a smaller key can still appear. SQLite: by id (one writer at a time).
    """
    if _postgres(session):
        horizon = int((await session.execute(text(_HORIZON_SQL))).scalar_one())
        rows = await session.execute(
            text(
                "SELECT e.txid, e.id FROM campaign_events e"
                " WHERE e.txid IS NOT NULL AND (e.txid, e.id) > (:txid, :event_id) AND e.txid < :horizon"
                " ORDER BY e.txid, e.id LIMIT :limit"
            ),
            {"txid": cursor[0], "event_id": cursor[1], "horizon": horizon, "limit": limit},
        )
        return [(int(txid), int(event_id)) for txid, event_id in rows]
    rows = await session.execute(
        select(CampaignEvent.id).where(CampaignEvent.id > cursor[1]).order_by(CampaignEvent.id).limit(limit)
    )
    return [(0, int(event_id)) for event_id in rows.scalars()]


_FANOUT_SQL = {
    "postgresql": """
        INSERT INTO webhook_deliveries (workspace_id, endpoint_id, event_id, event_type, status, attempts,
                                        next_attempt_at, created_at)
        SELECT e.workspace_id, w.id, e.id, e.type, 'pending', 0, :now, :now
        FROM campaign_events e
        JOIN webhook_endpoints w ON w.workspace_id = e.workspace_id AND w.enabled
        WHERE e.txid IS NOT NULL AND (e.txid, e.id) > (:from_txid, :from_id) AND (e.txid, e.id) <= (:to_txid, :to_id)
          AND (jsonb_array_length(w.events) = 0 OR w.events ? e.type)
        ORDER BY e.txid, e.id, w.id
        ON CONFLICT (endpoint_id, event_id) DO NOTHING
    """,
    "sqlite": """
        INSERT INTO webhook_deliveries (workspace_id, endpoint_id, event_id, event_type, status, attempts,
                                        next_attempt_at, created_at)
        SELECT e.workspace_id, w.id, e.id, e.type, 'pending', 0, :now, :now
        FROM campaign_events e
        JOIN webhook_endpoints w ON w.workspace_id = e.workspace_id AND w.enabled
        WHERE e.id > :from_id AND e.id <= :to_id
          AND (json_array_length(w.events) = 0 OR EXISTS (SELECT 1 FROM json_each(w.events) j WHERE j.value = e.type))
        ORDER BY e.id, w.id
        ON CONFLICT (endpoint_id, event_id) DO NOTHING
    """,
}


async def fan_out(session: AsyncSession, cursor: tuple[int, int], through: tuple[int, int], now: datetime) -> int:
    """One delivery per enabled, subscribed endpoint of the event's workspace for every event in
    (cursor, through]; then the cursor moves to ``through``. Returns the deliveries created."""
    postgres = _postgres(session)
    params = {
        "from_txid": cursor[0],
        "from_id": cursor[1],
        "to_txid": through[0],
        "to_id": through[1],
        "now": now if postgres else sqlite_timestamp(now),
    }
    result = await session.execute(text(_FANOUT_SQL["postgresql" if postgres else "sqlite"]), params)
    await session.execute(
        update(WebhookFanoutCursor).where(WebhookFanoutCursor.id == 1).values(txid=through[0], event_id=through[1])
    )
    return rows_changed(result)


# -- sending -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery this sender holds the lease of, with what it needs to send it."""

    delivery_id: int
    attempt_number: int
    created_at: datetime
    endpoint_id: int
    url: str
    secret: str
    event_id: int
    event_type: str
    event_created_at: datetime
    data: dict[str, Any]


async def claim_due(
    session: AsyncSession, now: datetime, wall_now: datetime, lease_until: datetime, token: str, limit: int
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries of enabled endpoints whose lease is free (PostgreSQL: ``FOR UPDATE
    SKIP LOCKED``, so two senders never take the same one) and lease them to ``token``; each claim counts as
    the next attempt."""
    query: Any = (
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            text(f"webhook_deliveries.{PENDING_SQL}"),
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_expires_at.is_(None), WebhookDelivery.lease_expires_at < wall_now),
            WebhookEndpoint.enabled.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if _postgres(session):
        query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
    ids = list((await session.execute(query)).scalars())
    if not ids:
        return []
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .values(lease_expires_at=lease_until, lease_token=token, attempts=WebhookDelivery.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    rows = await session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.attempts,
            WebhookDelivery.created_at,
            WebhookEndpoint.id,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            CampaignEvent.id,
            CampaignEvent.type,
            CampaignEvent.created_at,
            CampaignEvent.data,
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(CampaignEvent, CampaignEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.id)
    )
    return [Claimed(*row) for row in rows]


async def finish_claim(
    session: AsyncSession, claim: Claimed, token: str, attempt: dict[str, Any], values: dict[str, Any]
) -> bool:
    """Record one attempt; update the delivery only if this sender still holds its lease. False when the
    delivery no longer exists (its endpoint was deleted) or another sender took it over."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == claim.delivery_id, WebhookDelivery.lease_token == token)
        .values(**values, lease_expires_at=None, lease_token=None)
        .execution_options(synchronize_session=False)
    )
    held = rows_changed(result) > 0
    exists = (
        held
        or (await session.execute(select(WebhookDelivery.id).where(WebhookDelivery.id == claim.delivery_id))).first()
        is not None
    )
    if exists:
        session.add(WebhookDeliveryAttempt(delivery_id=claim.delivery_id, **attempt))
        await session.flush()
    return held


async def note_endpoint_success(session: AsyncSession, endpoint_id: int) -> None:
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.consecutive_failures != 0)
        .values(consecutive_failures=0)
        .execution_options(synchronize_session=False)
    )


async def note_endpoint_failure(
    session: AsyncSession, endpoint_id: int, disable_after: int, reason: str, now: datetime
) -> bool:
    """One more delivery given up; at ``disable_after`` in a row the endpoint is disabled. True if it just was."""
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(consecutive_failures=WebhookEndpoint.consecutive_failures + 1)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.enabled.is_(True),
            WebhookEndpoint.consecutive_failures >= disable_after,
        )
        .values(enabled=False, disabled_at=now, disabled_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result) > 0
