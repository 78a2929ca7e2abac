from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bulkcall.db.models.base import Base, IdMixin, TimestampMixin
from bulkcall.db.types import IdType, JsonType


class Agent(IdMixin, TimestampMixin, Base):
    """Who conducts the call; ``runtime`` is provider-specific configuration."""

    __tablename__ = "agents"

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    runtime: Mapped[dict[str, Any]] = mapped_column(JsonType)
    variables: Mapped[list[str]] = mapped_column(JsonType)
    post_call_webhook_url: Mapped[str | None] = mapped_column(Text)
