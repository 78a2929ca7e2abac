"""Campaigns: configuration, audience, the lifecycle, cloning and templates.

Launching turns the audience into tasks (one INSERT ... SELECT) and moves the state; the dispatcher
(``bulkcall.dispatch``) dials them and is woken when a campaign starts running or gains contacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event

from bulkcall.db.models import Campaign, CampaignTemplate, Contact
from bulkcall.db.repositories.agents import AgentRepository
from bulkcall.db.repositories.campaigns import CampaignRepository, TemplateRepository
from bulkcall.db.repositories.contact_lists import ContactListRepository
from bulkcall.db.repositories.contacts import ContactRepository
from bulkcall.db.repositories.dispatch import notify_dispatchers
from bulkcall.db.repositories.phone_numbers import PhoneNumberRepository
from bulkcall.db.repositories.workspaces import WorkspaceStore
from bulkcall.domain import capacity, insight, lifecycle
from bulkcall.domain.lifecycle import Action, CampaignStatus, InvalidTransition
from bulkcall.domain.phones import InvalidPhone, normalize
from bulkcall.domain.timezones import canonical_zone
from bulkcall.domain.windows import any_enabled, default_windows, validate_windows
from bulkcall.kit import wakeup
from bulkcall.kit.errors import AppError, Conflict, FieldErrors, NotFound, ValidationFailed
from bulkcall.schemas.campaigns import (
    AudienceFields,
    CampaignCreate,
    CampaignFields,
    CampaignUpdate,
    CloneBody,
    InlineContactRow,
    LaunchReadiness,
    ReadinessCheck,
    SaveAsTemplateBody,
)
from bulkcall.services.context import ServiceContext

TASK_STATUSES = (
    "pending",
    "queued",
    "placing_call",
    "calling",
    "retry_pending",
    "completed",
    "failed",
    "skipped",
    "cancelled",
)
TERMINAL_TASK_STATUSES = frozenset({"completed", "failed", "skipped", "cancelled"})
PREFILL_CONTACT_CAP = 1000

# Field defaults of a new campaign (api.md); templates and explicit fields override them in that order.
DEFAULTS: dict[str, Any] = {
    "timezone": "UTC",
    "campaign_phone_number_ids": [],
    "concurrency_limit": None,
    "primary_phone_number_id": None,
    "trigger_mode": "immediate",
    "scheduled_at": None,
    "ends_at": None,
    "timezone_mode": "callee_local",
    "max_retries": 2,
    "retry_delay_minutes": 60,
    "retry_delays": {},
    "retry_on_voicemail": False,
    "max_voicemail_attempts": None,
    "priority": 5,
    "prefer_country_match": True,
    "record_calls": True,
    "call_variables": {},
    "metadata": {},
}
CONFIG_FIELDS: tuple[str, ...] = ("name", "agent_id", *DEFAULTS, "call_windows")
AUDIENCE_FIELDS = frozenset(AudienceFields.model_fields)


class InvalidStateTransition(AppError):
    status_code = 409
    error_code = "INVALID_STATE_TRANSITION"


class LaunchPreconditionsFailed(AppError):
    status_code = 422
    error_code = "LAUNCH_PRECONDITIONS_FAILED"


def _repo(ctx: ServiceContext) -> CampaignRepository:
    return CampaignRepository(ctx.session, ctx.workspace_id)


# -- reading -----------------------------------------------------------------------------------------------------


async def get_campaign(ctx: ServiceContext, campaign_id: int, *, for_update: bool = False) -> Campaign:
    repo = _repo(ctx)
    campaign = await (repo.get_for_update(campaign_id) if for_update else repo.get(campaign_id))
    if campaign is None:
        raise NotFound("campaign", campaign_id)
    return campaign


async def list_campaigns(
    ctx: ServiceContext, *, status: str | None, search: str | None, page: int, per_page: int
) -> tuple[list[Campaign], int]:
    repo = _repo(ctx)
    return await repo.page(repo.filtered(status, search), page, per_page)


@dataclass(frozen=True)
class CampaignView:
    """A campaign with what its response shows beside the row itself."""

    campaign: Campaign
    campaign_phone_number_ids: list[int]
    total_contacts: int
    counts: dict[str, int]
    effective_concurrency: int
    launch_readiness: LaunchReadiness | None

    def as_dict(self) -> dict[str, Any]:
        row = self.campaign
        data = {column: getattr(row, column) for column in _OUT_COLUMNS}
        data["metadata"] = row.meta
        data.update(
            campaign_phone_number_ids=self.campaign_phone_number_ids,
            total_contacts=self.total_contacts,
            counts=self.counts,
            effective_concurrency=self.effective_concurrency,
            launch_readiness=self.launch_readiness,
        )
        return data


_OUT_COLUMNS = (
    "id",
    "name",
    "status",
    "agent_id",
    "timezone",
    "timezone_mode",
    "primary_phone_number_id",
    "concurrency_limit",
    "trigger_mode",
    "scheduled_at",
    "ends_at",
    "call_windows",
    "max_retries",
    "retry_delay_minutes",
    "retry_delays",
    "retry_on_voicemail",
    "max_voicemail_attempts",
    "priority",
    "prefer_country_match",
    "record_calls",
    "call_variables",
    "contact_list_id",
    "template_id",
    "created_at",
    "updated_at",
    "launched_at",
    "started_at",
    "paused_at",
    "pause_reason",
    "resumed_at",
    "completed_at",
    "cancelled_at",
)


async def views(ctx: ServiceContext, campaigns: list[Campaign]) -> list[CampaignView]:
    """Pools, counts, totals, effective concurrency and (for drafts) the launch checklist, in few queries."""
    repo = _repo(ctx)
    ids = [campaign.id for campaign in campaigns]
    pools = await repo.pool_ids(ids)
    counts = await repo.task_counts(ids)
    workspace = await WorkspaceStore(ctx.session).get(ctx.workspace_id)
    tenant_cap = workspace.concurrency_cap if workspace is not None else None
    result = []
    for campaign in campaigns:
        pool = await _pool_capacity(repo, campaign.id)
        by_status = {status: counts[campaign.id].get(status, 0) for status in TASK_STATUSES}
        readiness = None
        if campaign.status == CampaignStatus.DRAFT:
            audience = await repo.audience_size(campaign)
            by_status["pending"] = audience  # before launch the whole audience waits; launch may skip some
            readiness = await launch_readiness(ctx, campaign, audience)
        result.append(
            CampaignView(
                campaign=campaign,
                campaign_phone_number_ids=pools[campaign.id],
                total_contacts=sum(by_status.values()),
                counts=by_status,
                effective_concurrency=capacity.effective_concurrency(
                    campaign.concurrency_limit, pool, tenant_cap
                ).effective,
                launch_readiness=readiness,
            )
        )
    return result


async def view(ctx: ServiceContext, campaign: Campaign) -> CampaignView:
    return (await views(ctx, [campaign]))[0]


async def _pool_capacity(repo: CampaignRepository, campaign_id: int) -> int:
    """Capacity of the pool's active numbers' distinct connections."""
    numbers = await repo.pool_numbers(campaign_id)
    return capacity.pool_capacity(
        (connection.id, connection.concurrency_limit) for number, connection in numbers if number.status == "active"
    )


# -- readiness -------------------------------------------------------------------------------------------------


async def launch_readiness(
    ctx: ServiceContext, campaign: Campaign, audience_size: int | None = None
) -> LaunchReadiness:
    """Every launch check with its verdict, in a fixed order."""
    repo = _repo(ctx)
    agent = await AgentRepository(ctx.session, ctx.workspace_id).get(campaign.agent_id)
    numbers = await repo.pool_numbers(campaign.id)
    active_numbers = [number for number, _ in numbers if number.status == "active"]
    usable_numbers = [number for number in active_numbers if not number.spam_flagged]
    size = audience_size if audience_size is not None else await repo.audience_size(campaign)
    voicemail_ok = (
        not campaign.retry_on_voicemail
        or campaign.max_voicemail_attempts is None
        or campaign.max_voicemail_attempts <= 1 + campaign.max_retries
    )
    checks = [
        ReadinessCheck(
            check="agent_active",
            passed=agent is not None and agent.status == "active",
            message="agent is active" if agent is not None and agent.status == "active" else "agent is archived",
        ),
        ReadinessCheck(
            check="active_phone_number",
            passed=bool(usable_numbers),
            message=(
                f"{len(usable_numbers)} active number(s) in the pool"
                if usable_numbers
                else "the number pool has no active, unflagged number"
            ),
        ),
        ReadinessCheck(
            check="has_contacts",
            passed=size > 0,
            message=f"{size} contact(s) in the audience" if size else "the audience is empty",
        ),
        ReadinessCheck(
            check="enabled_window",
            passed=any_enabled(campaign.call_windows),
            message="at least one call window is enabled"
            if any_enabled(campaign.call_windows)
            else "every call window is disabled",
        ),
        ReadinessCheck(
            check="valid_timezone",
            passed=canonical_zone(campaign.timezone) is not None,
            message=f"timezone {campaign.timezone}"
            if canonical_zone(campaign.timezone)
            else f"unknown timezone {campaign.timezone!r}",
        ),
        ReadinessCheck(
            check="retry_policy",
            passed=0 <= campaign.max_retries <= 10 and campaign.retry_delay_minutes >= 0 and voicemail_ok,
            message=f"up to {1 + campaign.max_retries} attempt(s) per contact"
            if voicemail_ok
            else "max_voicemail_attempts exceeds the attempt budget (1 + max_retries)",
        ),
    ]
    if campaign.trigger_mode == "scheduled":
        future = campaign.scheduled_at is not None and campaign.scheduled_at > ctx.now
        checks.append(
            ReadinessCheck(
                check="scheduled_at_in_future",
                passed=future,
                message="scheduled_at is in the future"
                if future
                else "a scheduled campaign needs scheduled_at in the future",
            )
        )
    if campaign.ends_at is not None:
        open_ended = campaign.ends_at > ctx.now and (
            campaign.scheduled_at is None or campaign.ends_at > campaign.scheduled_at
        )
        checks.append(
            ReadinessCheck(
                check="ends_at_in_future",
                passed=open_ended,
                message="ends_at is in the future" if open_ended else "ends_at has passed (or precedes scheduled_at)",
            )
        )
    return LaunchReadiness(ready=all(check.passed for check in checks), checks=checks)


# -- writing -----------------------------------------------------------------------------------------------------


async def create_campaign(
    ctx: ServiceContext, body: CampaignCreate, shape_problems: FieldErrors | None = None
) -> Campaign:
    """Create a draft from defaults, then the template (if any), then the fields given.

    ``shape_problems`` are the body's own problems (its fields with one are left out of ``body``): they are
    reported in the same 422 as the checks against other records, which skip those fields.
    """
    problems = shape_problems or FieldErrors()
    shape_failed = _top_level_fields(problems)
    if "body" in shape_failed:  # missing or not an object: no field to check
        problems.raise_if_any()
    config = dict(DEFAULTS, call_windows=default_windows())
    template_id = body.template_id
    if template_id is not None:
        template = await TemplateRepository(ctx.session, ctx.workspace_id).get(template_id)
        if template is None:
            problems.add("template_id", f"template {template_id} not found")
        else:
            config.update({key: value for key, value in template.config.items() if key in CONFIG_FIELDS})
    config.update(_given(body))
    for required in ("name", "agent_id"):
        if config.get(required) is None and required not in shape_failed:
            problems.add(required, "Field required")
    await _check_config(ctx, config, problems, skip=shape_failed)
    audience = await _resolve_audience(ctx, body, problems)
    problems.raise_if_any()
    campaign = Campaign(
        workspace_id=ctx.workspace_id,
        status=CampaignStatus.DRAFT.value,
        template_id=template_id,
        contact_list_id=body.contact_list_id,
        audience_materialized_to=0,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    _apply_config(campaign, config)
    repo = _repo(ctx)
    repo.add(campaign)
    await repo.flush()
    await repo.set_pool(campaign.id, _pool_of(config))
    await repo.add_audience(campaign.id, audience)
    return campaign


async def update_campaign(
    ctx: ServiceContext, campaign_id: int, body: CampaignUpdate, shape_problems: FieldErrors | None = None
) -> Campaign:
    """Change the fields given; ``shape_problems`` as for ``create_campaign``.

    A body with shape problems always answers 422, as when the shape was checked before anything else: an unknown
    campaign then adds nothing to report, and the state rules (409) wait until the shape is right.
    """
    problems = shape_problems or FieldErrors()
    shape_failed = _top_level_fields(problems)
    if "body" in shape_failed:  # missing or not an object: no field to check
        problems.raise_if_any()
    try:
        campaign = await get_campaign(ctx, campaign_id, for_update=True)
    except NotFound:
        problems.raise_if_any()
        raise
    given = body.model_dump(exclude_unset=True)
    status = CampaignStatus(campaign.status)
    editable = lifecycle.EDITABLE_FIELDS[status]
    if not problems and editable is not None and (refused := sorted(set(given) - editable)):
        raise Conflict(
            f"a {status.value} campaign cannot change {', '.join(refused)}",
            details={"current_status": status.value, "editable_fields": sorted(editable), "refused": refused},
        )
    audience_given = AUDIENCE_FIELDS & set(given)
    if not problems and audience_given and status is not CampaignStatus.DRAFT:
        raise Conflict(
            "the audience of a launched campaign cannot be replaced; add contacts with POST /{id}/contacts",
            details={"current_status": status.value, "refused": sorted(audience_given)},
        )
    config = {
        field: getattr(campaign, field)
        for field in CONFIG_FIELDS
        if field not in ("metadata", "campaign_phone_number_ids")
    }
    config["metadata"] = campaign.meta
    config["campaign_phone_number_ids"] = (await _repo(ctx).pool_ids([campaign.id]))[campaign.id]
    config.update(_given(body))
    await _check_config(ctx, config, problems, check_agent="agent_id" in given, skip=shape_failed)
    audience = await _resolve_audience(ctx, body, problems) if audience_given else None
    problems.raise_if_any()
    _apply_config(campaign, config)
    campaign.updated_at = ctx.now
    repo = _repo(ctx)
    await repo.set_pool(campaign.id, _pool_of(config))
    if audience is not None:
        if "contact_list_id" in given:
            campaign.contact_list_id = body.contact_list_id
        if {"contact_ids", "contacts"} & set(given):
            await repo.clear_audience(campaign.id)
            await repo.add_audience(campaign.id, audience)
    await repo.flush()
    return campaign


async def delete_campaign(ctx: ServiceContext, campaign_id: int) -> None:
    campaign = await get_campaign(ctx, campaign_id, for_update=True)
    if campaign.status != CampaignStatus.DRAFT:
        raise _invalid(CampaignStatus(campaign.status), "delete", "only drafts can be deleted")
    await _repo(ctx).delete(campaign)


def _given(body: CampaignFields) -> dict[str, Any]:
    """The config fields the caller set explicitly."""
    return body.model_dump(exclude_unset=True, include=set(CONFIG_FIELDS))


def _top_level_fields(problems: FieldErrors) -> frozenset[str]:
    """The body fields that already have a problem (``contacts.3.phone_e164`` → ``contacts``)."""
    return frozenset(path.split(".", 1)[0] for path in problems.errors)


async def _check_config(
    ctx: ServiceContext,
    config: dict[str, Any],
    problems: FieldErrors,
    *,
    check_agent: bool = True,
    skip: frozenset[str] = frozenset(),
) -> None:
    """Cross-field and cross-table checks; every problem is collected.

    ``check_agent`` is false for a PATCH that leaves ``agent_id`` alone: an agent archived after the campaign was
    made must not block renaming it or lowering its concurrency (the launch checklist still reports it).
    A check that reads a field in ``skip`` (its value failed the shape check, so ``config`` holds a stand-in) or a
    missing ``agent_id`` (already reported as required) is left out.
    """
    if check_agent and config.get("agent_id") is not None and "agent_id" not in skip:
        agent = await AgentRepository(ctx.session, ctx.workspace_id).get(int(config["agent_id"]))
        if agent is None:
            problems.add("agent_id", f"agent {config['agent_id']} not found")
        elif agent.status != "active":
            problems.add("agent_id", f"agent {agent.id} is archived")
    numbers = PhoneNumberRepository(ctx.session, ctx.workspace_id)
    pool = [] if "campaign_phone_number_ids" in skip else list(config.get("campaign_phone_number_ids") or [])
    found = await numbers.existing_ids(pool)
    for index, number_id in enumerate(pool):
        if number_id not in found:
            problems.add(f"campaign_phone_number_ids.{index}", f"phone number {number_id} not found")
    primary = config.get("primary_phone_number_id")
    if primary is not None and "primary_phone_number_id" not in skip and not await numbers.existing_ids([primary]):
        problems.add("primary_phone_number_id", f"phone number {primary} not found")
    if "call_windows" not in skip:
        windows, window_errors = validate_windows(config.get("call_windows"))
        for path, messages in window_errors.items():
            for message in messages:
                problems.add(path, message)
        config["call_windows"] = windows
    scheduled_at, ends_at = _aware(config.get("scheduled_at")), _aware(config.get("ends_at"))
    config["scheduled_at"], config["ends_at"] = scheduled_at, ends_at
    dates_valid = {"scheduled_at", "ends_at"}.isdisjoint(skip)
    if dates_valid and scheduled_at is not None and ends_at is not None and ends_at <= scheduled_at:
        problems.add("ends_at", "must be after scheduled_at")
    trigger_valid = {"trigger_mode", "scheduled_at"}.isdisjoint(skip)
    if trigger_valid and config.get("trigger_mode") == "immediate" and scheduled_at is not None:
        problems.add("scheduled_at", "only used with trigger_mode scheduled")
    if "metadata" not in skip:  # the keys the engine reads: the failure-spike breaker and the budget cap
        for path, message in insight.guard_problems(config.get("metadata")).items():
            problems.add(path, message)


def _aware(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _pool_of(config: dict[str, Any]) -> list[int]:
    """The pool with the primary number merged in."""
    pool = set(config.get("campaign_phone_number_ids") or [])
    if config.get("primary_phone_number_id") is not None:
        pool.add(int(config["primary_phone_number_id"]))
    return sorted(pool)


def _apply_config(campaign: Campaign, config: dict[str, Any]) -> None:
    for field in CONFIG_FIELDS:
        if field in ("campaign_phone_number_ids", "metadata"):
            continue
        setattr(campaign, field, config[field])
    campaign.meta = config["metadata"]


async def _resolve_audience(ctx: ServiceContext, body: AudienceFields, problems: FieldErrors) -> list[dict[str, Any]]:
    """Audience entries in order: ``contact_ids`` then inline ``contacts`` (created or updated as contacts)."""
    entries: list[dict[str, Any]] = []
    contacts = ContactRepository(ctx.session, ctx.workspace_id)
    ids = list(body.contact_ids or [])
    found = await contacts.existing_ids(ids)
    for index, contact_id in enumerate(ids):
        if contact_id not in found:
            problems.add(f"contact_ids.{index}", f"contact {contact_id} not found")
        else:
            entries.append({"contact_id": contact_id})
    lists = ContactListRepository(ctx.session, ctx.workspace_id)
    if body.contact_list_id is not None and await lists.get(body.contact_list_id) is None:
        problems.add("contact_list_id", f"contact list {body.contact_list_id} not found")
    for row in body.contacts or []:
        entries.append(await _upsert_inline(ctx, contacts, row))
    return entries


async def _upsert_inline(ctx: ServiceContext, contacts: ContactRepository, row: InlineContactRow) -> dict[str, Any]:
    """Create or update the contact an inline row describes; an unreadable phone is kept as an invalid entry."""
    try:
        phone = normalize(row.phone_e164, row.default_region)
    except InvalidPhone as exc:
        return {"raw_phone": row.phone_e164[:40], "error": str(exc)}
    given = row.model_dump(exclude_unset=True, exclude={"phone_e164", "default_region"})
    contact = await contacts.by_phone(phone.e164)
    if contact is None:
        contact = Contact(
            workspace_id=ctx.workspace_id,
            phone_e164=phone.e164,
            country=phone.country,
            phone_timezones=phone.timezones_key,
            tags=[],
            custom_fields={},
            created_at=ctx.now,
        )
    for field, value in given.items():
        if field == "custom_fields":
            contact.custom_fields = {**(contact.custom_fields or {}), **value}
        elif value is not None:
            setattr(contact, field, value)
    contact.updated_at = ctx.now
    if not await contacts.save_unique(contact):
        contact = await contacts.by_phone(phone.e164)
        assert contact is not None
    return {"contact_id": contact.id}


# -- the lifecycle -----------------------------------------------------------------------------------------------


def _invalid(current: CampaignStatus, action: str, message: str | None = None) -> InvalidStateTransition:
    return InvalidStateTransition(
        message or f"cannot {action} a campaign that is {current.value}",
        details={"current_status": current.value, "allowed_actions": lifecycle.allowed_actions(current)},
    )


async def apply_action(ctx: ServiceContext, campaign_id: int, action: Action, reason: str | None = None) -> Campaign:
    """Launch, pause, resume or cancel; a repeat that changes nothing is a no-op, an illegal one a 409."""
    campaign = await get_campaign(ctx, campaign_id, for_update=True)
    current = CampaignStatus(campaign.status)
    # A scheduled start still ahead: launch waits for it, and so does a resume of a campaign paused before it.
    waits_for_start = (
        campaign.trigger_mode == "scheduled"
        and campaign.started_at is None
        and (action is Action.LAUNCH or (campaign.scheduled_at is not None and campaign.scheduled_at > ctx.now))
    )
    try:
        result = lifecycle.transition(current, action, waits_for_start=waits_for_start)
    except InvalidTransition:
        raise _invalid(current, action.value) from None
    if not result.changed:
        return campaign
    if action is Action.LAUNCH:
        readiness = await launch_readiness(ctx, campaign)
        if not readiness.ready:
            failed = [check.model_dump() for check in readiness.checks if not check.passed]
            raise LaunchPreconditionsFailed(
                "campaign is not ready to launch: " + "; ".join(check["message"] for check in failed),
                details={"checks": failed},
            )
    await _enter(ctx, campaign, action, result.status, reason)
    await complete_if_done(ctx, campaign)
    return campaign


EVENTS: dict[Action, str] = {
    Action.LAUNCH: "campaign.launched",
    Action.PAUSE: "campaign.paused",
    Action.RESUME: "campaign.resumed",
    Action.CANCEL: "campaign.cancelled",
    Action.START: "campaign.started",
    Action.COMPLETE: "campaign.completed",
}


async def _enter(
    ctx: ServiceContext, campaign: Campaign, action: Action, target: CampaignStatus, reason: str | None = None
) -> None:
    """Move ``campaign`` to ``target`` by ``action``: stamps, side effects and the event, in this transaction."""
    previous = campaign.status
    campaign.status = target.value
    campaign.updated_at = ctx.now
    repo = _repo(ctx)
    # The event first: the ``task.completed`` events of tasks this change ends (skipped at launch, cancelled)
    # follow it in the outbox.
    data = {"campaign_id": campaign.id, "from": previous, "to": target.value, "reason": reason}
    repo.record_event(campaign, EVENTS[action], data, ctx.now)
    await repo.flush()
    if target is CampaignStatus.RUNNING and campaign.started_at is None:
        campaign.started_at = ctx.now
    if action is Action.LAUNCH:
        campaign.launched_at = ctx.now
        await _materialize(ctx, campaign, include_list=True)
    elif action is Action.PAUSE:
        campaign.paused_at = ctx.now
        campaign.pause_reason = reason or "manual"
    elif action is Action.RESUME:
        campaign.resumed_at = ctx.now
        campaign.pause_reason = None
    elif action is Action.CANCEL:
        campaign.cancelled_at = ctx.now
        await repo.cancel_undialed_tasks(campaign.id, ctx.now)
    elif action is Action.COMPLETE:
        campaign.completed_at = ctx.now
    await repo.flush()
    if target is CampaignStatus.RUNNING:
        await _wake_dispatchers(ctx)


async def _wake_dispatchers(ctx: ServiceContext) -> None:
    """New work: wake the dispatcher here (after commit) and, on PostgreSQL, every worker (NOTIFY)."""
    await notify_dispatchers(ctx.session)
    event.listen(ctx.session.sync_session, "after_commit", lambda _session: wakeup.wake(), once=True)


async def _materialize(ctx: ServiceContext, campaign: Campaign, *, include_list: bool) -> None:
    repo = _repo(ctx)
    through = await repo.last_audience_entry_id(campaign.id)
    scheduled_start = campaign.scheduled_at if campaign.status == CampaignStatus.SCHEDULED else None
    await repo.materialize_tasks(
        campaign,
        after_entry_id=campaign.audience_materialized_to,
        through_entry_id=through,
        include_list=include_list,
        now=ctx.now,
        next_eligible_at=max(ctx.now, scheduled_start) if scheduled_start else ctx.now,
        blocker="campaign_scheduled" if scheduled_start else None,
    )
    campaign.audience_materialized_to = through


async def complete_if_done(ctx: ServiceContext, campaign: Campaign) -> bool:
    """A running campaign whose tasks are all terminal becomes ``completed``."""
    if campaign.status != CampaignStatus.RUNNING:
        return False
    if await _repo(ctx).has_unfinished_tasks(campaign.id):
        return False
    await _enter(ctx, campaign, Action.COMPLETE, lifecycle.transition(CampaignStatus.RUNNING, Action.COMPLETE).status)
    return True


async def start_due(ctx: ServiceContext, campaign: Campaign) -> bool:
    """A scheduled campaign whose ``scheduled_at`` has come starts running."""
    if campaign.status != CampaignStatus.SCHEDULED or campaign.scheduled_at is None or campaign.scheduled_at > ctx.now:
        return False
    await _enter(ctx, campaign, Action.START, lifecycle.transition(CampaignStatus.SCHEDULED, Action.START).status)
    await complete_if_done(ctx, campaign)
    return True


async def add_contacts(ctx: ServiceContext, campaign_id: int, body: AudienceFields) -> Campaign:
    """Add audience to a draft, or to a running/paused campaign (its new tasks are created at once)."""
    campaign = await get_campaign(ctx, campaign_id, for_update=True)
    status = CampaignStatus(campaign.status)
    if status not in (CampaignStatus.DRAFT, CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED):
        raise _invalid(status, "add contacts to", f"cannot add contacts to a {status.value} campaign")
    if body.contact_list_id is not None:
        raise ValidationFailed.single(
            "contact_list_id", "set the audience list with PATCH on a draft; here, give contact_ids or contacts"
        )
    problems = FieldErrors()
    entries = await _resolve_audience(ctx, body, problems)
    problems.raise_if_any()
    if not entries:
        raise ValidationFailed.single("contact_ids", "give at least one contact in contact_ids or contacts")
    repo = _repo(ctx)
    await repo.add_audience(campaign.id, entries)
    if status is not CampaignStatus.DRAFT:
        await _materialize(ctx, campaign, include_list=False)
        await _wake_dispatchers(ctx)
    campaign.updated_at = ctx.now
    await repo.flush()
    return campaign


# -- cloning and templates ---------------------------------------------------------------------------------------


def config_of(campaign: Campaign, pool: list[int]) -> dict[str, Any]:
    """The campaign's configuration as a JSON-ready create body (no audience)."""
    config: dict[str, Any] = {}
    for field in CONFIG_FIELDS:
        if field == "campaign_phone_number_ids":
            config[field] = pool
        elif field == "metadata":
            config[field] = campaign.meta
        else:
            value = getattr(campaign, field)
            config[field] = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
    return config


async def clone_campaign(ctx: ServiceContext, campaign_id: int, body: CloneBody) -> Campaign:
    source = await get_campaign(ctx, campaign_id)
    repo = _repo(ctx)
    pool = (await repo.pool_ids([source.id]))[source.id]
    clone = Campaign(
        workspace_id=ctx.workspace_id,
        status=CampaignStatus.DRAFT.value,
        template_id=source.template_id,
        contact_list_id=source.contact_list_id if body.include_audience else None,
        audience_materialized_to=0,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    config = config_of(source, pool)
    config["scheduled_at"], config["ends_at"] = source.scheduled_at, source.ends_at
    config["name"] = body.name or f"{source.name} (copy)"[:200]
    _apply_config(clone, config)
    repo.add(clone)
    await repo.flush()
    await repo.set_pool(clone.id, pool)
    if body.include_audience:
        await repo.copy_audience(source.id, clone.id)
    return clone


async def clone_prefill(ctx: ServiceContext, campaign_id: int) -> dict[str, Any]:
    source = await get_campaign(ctx, campaign_id)
    repo = _repo(ctx)
    body = config_of(source, (await repo.pool_ids([source.id]))[source.id])
    body["name"] = f"{source.name} (copy)"[:200]
    contact_ids = await repo.audience_contact_ids(source, PREFILL_CONTACT_CAP + 1)
    total = await repo.audience_size(source)
    body["contact_ids"] = contact_ids[:PREFILL_CONTACT_CAP]
    body["contact_list_id"] = source.contact_list_id
    return {
        "body": body,
        "audience_total": total,
        "contact_ids_truncated": len(contact_ids) > PREFILL_CONTACT_CAP,
    }


async def save_as_template(ctx: ServiceContext, campaign_id: int, body: SaveAsTemplateBody) -> CampaignTemplate:
    source = await get_campaign(ctx, campaign_id)
    templates = TemplateRepository(ctx.session, ctx.workspace_id)
    name = body.name or source.name
    if (existing := await templates.by_name(name)) is not None:
        raise Conflict(f"a template named {name!r} already exists", details={"existing_id": existing.id})
    pool = (await _repo(ctx).pool_ids([source.id]))[source.id]
    template = CampaignTemplate(
        workspace_id=ctx.workspace_id,
        name=name,
        source_campaign_id=source.id,
        config=config_of(source, pool),
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    templates.add(template)
    await templates.flush()
    return template


async def get_template(ctx: ServiceContext, template_id: int) -> CampaignTemplate:
    template = await TemplateRepository(ctx.session, ctx.workspace_id).get(template_id)
    if template is None:
        raise NotFound("template", template_id)
    return template


async def list_templates(
    ctx: ServiceContext, search: str | None, page: int, per_page: int
) -> tuple[list[CampaignTemplate], int]:
    templates = TemplateRepository(ctx.session, ctx.workspace_id)
    return await templates.page(templates.search(search), page, per_page)


async def delete_template(ctx: ServiceContext, template_id: int) -> None:
    template = await get_template(ctx, template_id)
    await TemplateRepository(ctx.session, ctx.workspace_id).delete(template)
