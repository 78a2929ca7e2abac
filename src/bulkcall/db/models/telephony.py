from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bulkcall.db.models.base import Base, IdMixin, TimestampMixin
from bulkcall.db.types import IdType, JsonType


class TelephonyConnection(IdMixin, TimestampMixin, Base):
    """A carrier account or trunk. ``secrets`` is never rendered in a response or a log."""

    __tablename__ = "telephony_connections"

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    secrets: Mapped[dict[str, str]] = mapped_column(JsonType)
    concurrency_limit: Mapped[int]
    calls_per_second: Mapped[float] = mapped_column(Float)
    # Signs what bulkcall and this connection's provider send each other (simulator and http_agent callbacks);
    # generated on create, never rendered.
    signing_secret: Mapped[str] = mapped_column(String(64))


class PhoneNumber(IdMixin, TimestampMixin, Base):
    """A caller ID owned by the workspace, reached through one telephony connection."""

    __tablename__ = "phone_numbers"
    __table_args__ = (UniqueConstraint("workspace_id", "e164"),)

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"))
    telephony_connection_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("telephony_connections.id", ondelete="RESTRICT"), index=True
    )
    e164: Mapped[str] = mapped_column(String(20))
    label: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16))
    spam_flagged: Mapped[bool] = mapped_column(Boolean)
    allowed_countries: Mapped[list[str] | None] = mapped_column(JsonType)
