from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bulkcall.db.models.base import Base, IdMixin, TimestampMixin
from bulkcall.db.types import IdType, JsonType


class Contact(IdMixin, TimestampMixin, Base):
    """One person to call; one row per phone number per workspace.

    ``timezone`` is what the caller told us; ``phone_timezones`` is what the number implies
    (canonical IANA names joined by ``|``, NULL when the number maps to no zone). Both are kept so
    planning queries can group by them without parsing numbers again.
    """

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "phone_e164"),
        Index("ix_contacts_workspace_id_id", "workspace_id", "id"),
    )

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"))
    phone_e164: Mapped[str] = mapped_column(String(20))
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    company: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(2))
    phone_timezones: Mapped[str | None] = mapped_column(String(400))
    tags: Mapped[list[str]] = mapped_column(JsonType)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # The import that last wrote this contact and the row it came from: how an import finds a phone
    # repeated in its file without holding every phone it has seen in memory. A marker, not a relation
    # (no foreign key: it would cost a lookup per upserted row).
    last_import_id: Mapped[int | None] = mapped_column(IdType)
    last_import_row: Mapped[int | None]


class ContactList(IdMixin, TimestampMixin, Base):
    __tablename__ = "contact_lists"

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)


class ContactListMember(Base):
    __tablename__ = "contact_list_members"

    contact_list_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("contact_lists.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime]


class DncEntry(IdMixin, Base):
    """A do-not-call number of the workspace."""

    __tablename__ = "dnc_entries"
    __table_args__ = (UniqueConstraint("workspace_id", "phone_e164"),)

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"))
    phone_e164: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class ContactImport(IdMixin, TimestampMixin, Base):
    """A contact import job and its progress."""

    __tablename__ = "contact_imports"

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(8))  # csv | json
    status: Mapped[str] = mapped_column(String(16))  # queued | running | completed | failed
    filename: Mapped[str | None] = mapped_column(Text)
    contact_list_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("contact_lists.id", ondelete="SET NULL"))
    default_region: Mapped[str | None] = mapped_column(String(2))
    column_mapping: Mapped[dict[str, str] | None] = mapped_column(JsonType)
    total_rows: Mapped[int | None]
    processed_rows: Mapped[int]
    created: Mapped[int]
    updated: Mapped[int]
    skipped: Mapped[int]
    errors_count: Mapped[int]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ContactImportError(Base):
    """One row of an import's error report."""

    __tablename__ = "contact_import_errors"

    contact_import_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("contact_imports.id", ondelete="CASCADE"), primary_key=True
    )
    row: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
