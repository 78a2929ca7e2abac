"""Outbound webhooks: endpoints, one delivery per (endpoint, event), every attempt, and the fan-out cursor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from bulkcall.db.models.base import Base, IdMixin, TimestampMixin
from bulkcall.db.types import IdType, JsonType

PENDING_SQL = "status = 'pending'"


class WebhookEndpoint(IdMixin, TimestampMixin, Base):
    """Where a workspace's events are POSTed. ``events`` empty means every event type.

    ``secret`` signs the deliveries (Standard Webhooks); it is returned once, at creation, and never again.
    ``consecutive_failures`` counts deliveries given up in a row; at the limit the endpoint is disabled
    (``disabled_at`` / ``disabled_reason``) until a PATCH enables it again.
    """

    __tablename__ = "webhook_endpoints"

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JsonType)
    enabled: Mapped[bool] = mapped_column(Boolean)
    secret: Mapped[str] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(IdMixin, Base):
    """One event for one endpoint: ``pending`` (due at ``next_attempt_at``), ``succeeded`` or ``failed`` (given up).

    The unique pair makes the fan-out idempotent. A sender claims a due delivery by setting a wall-clock
    lease and a token; only the holder of the token records its outcome on the row.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            "id",
            sqlite_where=text(PENDING_SQL),
            postgresql_where=text(PENDING_SQL),
        ),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )

    workspace_id: Mapped[int] = mapped_column(IdType)
    endpoint_id: Mapped[int] = mapped_column(IdType, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    # No foreign key: the fan-out inserts deliveries set-based, and events are never deleted while deliveries live.
    event_id: Mapped[int] = mapped_column(IdType)
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    lease_token: Mapped[str | None] = mapped_column(String(40))
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class WebhookDeliveryAttempt(IdMixin, Base):
    """One POST of a delivery: the status code, the latency, the start of the response body, or the error."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (Index("ix_webhook_delivery_attempts_delivery_id_id", "delivery_id", "id"),)

    delivery_id: Mapped[int] = mapped_column(IdType, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempt_number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    retry_after_seconds: Mapped[float | None] = mapped_column(Float)


class WebhookFanoutCursor(Base):
    """How far the fan-out has read ``campaign_events``: one row (id 1), ordered by (``txid``, ``event_id``).

    On PostgreSQL events are read in the order of the transaction that wrote them and only once every older
    transaction has ended (``campaign_events.txid`` below the snapshot's xmin), so an event committed late
    with a smaller id is never skipped. SQLite has one writer at a time: ``txid`` stays 0 and ids commit in order.
    """

    __tablename__ = "webhook_fanout_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    txid: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(BigInteger)
