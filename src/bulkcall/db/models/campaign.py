from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from bulkcall.db.models.base import Base, IdMixin, TimestampMixin
from bulkcall.db.types import IdType, JsonType


class Campaign(IdMixin, TimestampMixin, Base):
    """A bulk call campaign: configuration, lifecycle state and its stamps."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_workspace_id_status", "workspace_id", "status"),)

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int] = mapped_column(IdType, ForeignKey("agents.id", ondelete="RESTRICT"), index=True)
    timezone: Mapped[str] = mapped_column(String(64))
    timezone_mode: Mapped[str] = mapped_column(String(24))
    concurrency_limit: Mapped[int | None]
    primary_phone_number_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("phone_numbers.id", ondelete="SET NULL")
    )
    trigger_mode: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    call_windows: Mapped[dict[str, Any]] = mapped_column(JsonType)
    max_retries: Mapped[int]
    retry_delay_minutes: Mapped[int]
    retry_delays: Mapped[dict[str, int]] = mapped_column(JsonType)
    retry_on_voicemail: Mapped[bool] = mapped_column(Boolean)
    max_voicemail_attempts: Mapped[int | None]
    priority: Mapped[int]
    prefer_country_match: Mapped[bool] = mapped_column(Boolean)
    record_calls: Mapped[bool] = mapped_column(Boolean)
    call_variables: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # ``metadata`` is reserved on declarative classes; the column keeps the API's name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType)
    contact_list_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("contact_lists.id", ondelete="SET NULL"))
    template_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("campaign_templates.id", ondelete="SET NULL"))
    # Audience entries up to this id have become tasks (entries added later while running get theirs on add).
    audience_materialized_to: Mapped[int]
    # Why due tasks are not being dialed right now (a capacity limit, CPS, no number), as the engine last saw it;
    # shown on waiting tasks instead of rewriting every one of them.
    dispatch_blocker: Mapped[str | None] = mapped_column(String(32))
    first_dialed_at: Mapped[datetime | None]
    launched_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    pause_reason: Mapped[str | None] = mapped_column(Text)
    resumed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]


class CampaignPhoneNumber(Base):
    """A caller ID in a campaign's number pool."""

    __tablename__ = "campaign_phone_numbers"

    campaign_id: Mapped[int] = mapped_column(IdType, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    phone_number_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("phone_numbers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class CampaignAudienceEntry(IdMixin, Base):
    """One audience entry of a campaign before launch, in the order it was added.

    ``contact_id`` is NULL for an inline row whose phone could not be read; launch turns that entry into a
    task skipped as ``invalid_number`` (``raw_phone`` keeps what was given), so nothing a user sent is lost.
    """

    __tablename__ = "campaign_audience"
    __table_args__ = (Index("ix_campaign_audience_campaign_id_id", "campaign_id", "id"),)

    campaign_id: Mapped[int] = mapped_column(IdType, ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("contacts.id", ondelete="CASCADE"))
    raw_phone: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


WAITING_STATUSES = ("pending", "retry_pending")
# The partial index's predicate; a query must repeat it verbatim for SQLite to use the index.
WAITING_SQL = "status IN ('pending', 'retry_pending')"
# The status index's predicate: every task but the fresh ones (a launch's tasks are almost all ``pending``, and
# keeping a million identical ``(campaign, 'pending')`` entries cost a launch more than any other index).
# Pending tasks are counted through the waiting index instead; again, queries repeat it verbatim for SQLite.
NOT_PENDING_SQL = "status <> 'pending'"
OPEN_ATTEMPT_SQL = "ended_at IS NULL"


class CallTask(IdMixin, Base):
    """One contact in one campaign: the unit the dispatcher works on.

    No foreign keys on purpose: launch inserts up to millions of rows in one statement and per-row FK
    checks would dominate it. Tasks are only created from validated audiences (``materialize_tasks``),
    campaigns with tasks cannot be deleted, and the phone is kept on the task.

    The variables an agent gets are derived (``domain.variables.task_variables``) from the campaign's
    ``call_variables`` and the contact, so launch writes no per-task JSON.
    """

    __tablename__ = "call_tasks"
    __table_args__ = (
        # Counts and status-filtered listings of everything but ``pending`` (see NOT_PENDING_SQL), in id order.
        Index(
            "ix_call_tasks_not_pending",
            "campaign_id",
            "status",
            "id",
            sqlite_where=text(NOT_PENDING_SQL),
            postgresql_where=text(NOT_PENDING_SQL),
        ),
        Index("ix_call_tasks_campaign_id_id", "campaign_id", "id"),
        # Finding work: only waiting tasks, in the order they become eligible, so a claim reads what it takes.
        # ``blocker`` rides along (it is not used for ordering) so dispatch health counts what waits for a window
        # and what for a retry from the index alone.
        Index(
            "ix_call_tasks_waiting",
            "campaign_id",
            "next_eligible_at",
            "id",
            "blocker",
            sqlite_where=text(WAITING_SQL),
            postgresql_where=text(WAITING_SQL),
        ),
    )

    workspace_id: Mapped[int] = mapped_column(IdType)
    campaign_id: Mapped[int] = mapped_column(IdType)
    contact_id: Mapped[int | None] = mapped_column(IdType)
    phone_e164: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    blocker: Mapped[str | None] = mapped_column(String(32))
    next_eligible_at: Mapped[datetime | None]
    # The zone(s) the windows apply in and where they came from, fixed at launch.
    timezones: Mapped[str | None] = mapped_column(String(400))
    timezone_source: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    attempts: Mapped[int]
    voicemail_attempts: Mapped[int]
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    caller_phone_number_id: Mapped[int | None] = mapped_column(IdType)
    # The number that reached the contact (answered, voicemail, busy): its retries keep it when it is free.
    sticky_phone_number_id: Mapped[int | None] = mapped_column(IdType)
    cost: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    first_called_at: Mapped[datetime | None]
    last_called_at: Mapped[datetime | None]
    talk_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    # Kept where attempts end (``dispatch.outcomes``) so the results export reads tasks alone: the ended
    # attempts' outcomes joined with ``|`` in attempt order, and the latest non-empty ``extracted_data``.
    attempt_outcomes: Mapped[str | None] = mapped_column(Text)
    extracted_data: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class CallAttempt(IdMixin, Base):
    """One call: claimed (``queued``), handed to the provider (``dialing``), then ``ringing`` / ``in_progress``,
    and ``ended`` with an outcome.

    The partial unique index makes "at most one call in flight per task" a database rule, not only a code
    path. ``lease_expires_at`` is wall-clock time (it is about a worker being alive, not about the service
    clock): a ``queued`` attempt whose worker died before the request left is released when it passes.
    """

    __tablename__ = "call_attempts"
    __table_args__ = (
        UniqueConstraint("task_id", "attempt_number"),
        Index(
            "ux_call_attempts_open_task",
            "task_id",
            unique=True,
            sqlite_where=text(OPEN_ATTEMPT_SQL),
            postgresql_where=text(OPEN_ATTEMPT_SQL),
        ),
        # In-flight calls per campaign and connection, counted under the claim lock.
        Index(
            "ix_call_attempts_open",
            "workspace_id",
            "campaign_id",
            "telephony_connection_id",
            sqlite_where=text(OPEN_ATTEMPT_SQL),
            postgresql_where=text(OPEN_ATTEMPT_SQL),
        ),
        # Each number's recent record; calls per second per connection (claims by claim time, calls by dial time).
        Index("ix_call_attempts_workspace_id_queued_at", "workspace_id", "queued_at"),
        Index("ix_call_attempts_workspace_id_dialed_at", "workspace_id", "dialed_at"),
        Index("ix_call_attempts_campaign_id_id", "campaign_id", "id"),
        # Date ranges (tasks API, results export): a campaign's attempts by the instant they ended.
        Index("ix_call_attempts_campaign_id_ended_at", "campaign_id", "ended_at"),
        # A campaign's dial rate over the last minutes (dispatch health).
        Index("ix_call_attempts_campaign_id_dialed_at", "campaign_id", "dialed_at"),
        Index("ix_call_attempts_provider_call_id", "provider", "provider_call_id"),
        # An attempt id is its idempotency key with the provider: SQLite must never hand out a deleted one again.
        {"sqlite_autoincrement": True},
    )

    workspace_id: Mapped[int] = mapped_column(IdType)
    campaign_id: Mapped[int] = mapped_column(IdType)
    task_id: Mapped[int] = mapped_column(IdType)
    attempt_number: Mapped[int]
    phone_number_id: Mapped[int] = mapped_column(IdType)
    caller_e164: Mapped[str] = mapped_column(String(20))
    callee_e164: Mapped[str] = mapped_column(String(40))
    telephony_connection_id: Mapped[int] = mapped_column(IdType)
    provider: Mapped[str] = mapped_column(String(32))
    provider_call_id: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    caller_id_reason: Mapped[str] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(80))
    lease_expires_at: Mapped[datetime | None]
    queued_at: Mapped[datetime]
    dialed_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(16))
    answered_by: Mapped[str | None] = mapped_column(String(16))
    hangup_reason: Mapped[str | None] = mapped_column(String(64))
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    recording_url: Mapped[str | None] = mapped_column(Text)
    transcript: Mapped[str | None] = mapped_column(Text)
    extracted_data: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    error: Mapped[str | None] = mapped_column(Text)


class ProviderCallback(IdMixin, Base):
    """Every inbound provider event, stored raw with its dedupe verdict (the receipts).

    ``verdict``: ``applied``, ``duplicate``, ``out_of_order`` (older than what the attempt already knows;
    stored, changes nothing), ``unknown_call``, ``rejected_signature``, ``malformed``. The partial unique
    index is the database's backstop for "applied once".
    """

    __tablename__ = "provider_callbacks"
    __table_args__ = (
        Index(
            "ux_provider_callbacks_dedupe",
            "provider",
            "dedupe_key",
            unique=True,
            sqlite_where=text("verdict IN ('applied', 'out_of_order')"),
            postgresql_where=text("verdict IN ('applied', 'out_of_order')"),
        ),
        Index("ix_provider_callbacks_attempt_id", "attempt_id"),
        Index("ix_provider_callbacks_campaign_id_id", "campaign_id", "id"),
        Index("ix_provider_callbacks_workspace_id_id", "workspace_id", "id"),
        # GET /webhook_receipts?verdict=: newest first within one verdict.
        Index("ix_provider_callbacks_workspace_id_verdict_id", "workspace_id", "verdict", "id"),
    )

    workspace_id: Mapped[int | None] = mapped_column(IdType)
    provider: Mapped[str] = mapped_column(String(32))
    telephony_connection_id: Mapped[int | None] = mapped_column(IdType)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    event_type: Mapped[str | None] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(24))
    campaign_id: Mapped[int | None] = mapped_column(IdType)
    task_id: Mapped[int | None] = mapped_column(IdType)
    attempt_id: Mapped[int | None] = mapped_column(IdType)
    payload: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]


# The webhook fan-out reads PostgreSQL events in the order of the transactions that wrote them.
TRACKED_EVENT_SQL = "txid IS NOT NULL"


class CampaignEvent(IdMixin, Base):
    """A lifecycle or call event, written in the same transaction as the change (the webhook outbox).

    ``txid`` is the writing transaction's id on PostgreSQL (``pg_current_xact_id()``; NULL on SQLite): the
    webhook fan-out reads events only once every transaction that could still add an older one has ended.
    Write events through ``CampaignRepository.record_event`` or ``db/repositories/dispatch.py``
    (``insert_events``, ``insert_task_completed_events``), which set it.
    """

    __tablename__ = "campaign_events"
    __table_args__ = (
        Index("ix_campaign_events_campaign_id_id", "campaign_id", "id"),
        Index(
            "ix_campaign_events_txid_id",
            "txid",
            "id",
            sqlite_where=text(TRACKED_EVENT_SQL),
            postgresql_where=text(TRACKED_EVENT_SQL),
        ),
    )

    # No foreign keys, like call_tasks: a cancel or a launch writes one event per task it ends (set-based), and
    # the per-row checks cost more than the insert. Events exist only for launched campaigns, never deleted.
    workspace_id: Mapped[int] = mapped_column(IdType, index=True)
    campaign_id: Mapped[int | None] = mapped_column(IdType)
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime]
    txid: Mapped[int | None] = mapped_column(BigInteger)


class CampaignTemplate(IdMixin, TimestampMixin, Base):
    """A saved campaign configuration (a create body without its audience)."""

    __tablename__ = "campaign_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[int] = mapped_column(IdType, ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # Not a foreign key: campaigns already reference templates, and a cycle would need deferred DDL.
    # Deleting a (draft) campaign clears it (CampaignRepository.delete).
    source_campaign_id: Mapped[int | None] = mapped_column(IdType)
    config: Mapped[dict[str, Any]] = mapped_column(JsonType)
