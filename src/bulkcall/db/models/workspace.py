from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from bulkcall.db.models.base import Base, IdMixin, TimestampMixin
from bulkcall.db.types import IdType, JsonType


class Workspace(IdMixin, TimestampMixin, Base):
    """A tenant: every other row belongs to exactly one workspace."""

    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    concurrency_cap: Mapped[int | None]


class ApiKey(IdMixin, Base):
    """An API key, stored as a SHA-256 hash; ``prefix`` finds the row, the hash proves the key."""

    __tablename__ = "api_keys"

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JsonType)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
