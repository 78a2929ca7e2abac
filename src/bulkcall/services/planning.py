"""Planning helpers: the capacity preview (limits, throughput, how long) and the audience timezone analysis.

The audience is read grouped by zone key, zone source and country (``db/repositories/planning.py``, the same
zone key launch stores on each task); the window maths then runs once per distinct zone key
(``domain/planning.py``, ``domain/schedule.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from bulkcall.db.models import Campaign
from bulkcall.db.repositories.campaigns import CampaignRepository
from bulkcall.db.repositories.contact_lists import ContactListRepository
from bulkcall.db.repositories.contacts import ContactRepository
from bulkcall.db.repositories.planning import (
    AudienceGroups,
    History,
    PlanningRepository,
    PoolConnection,
    ZoneGroup,
    merge_groups,
)
from bulkcall.db.repositories.workspaces import WorkspaceStore
from bulkcall.domain import capacity, planning
from bulkcall.domain.lifecycle import CampaignStatus
from bulkcall.domain.phones import InvalidPhone, normalize
from bulkcall.domain.schedule import calendar_for, zone, zones_of
from bulkcall.domain.windows import day_windows, default_windows, validate_windows
from bulkcall.kit.errors import FieldErrors, NotFound
from bulkcall.schemas.planning import (
    CapacityPreviewBody,
    CapacityPreviewOut,
    ConnectionCapacity,
    CountryCount,
    PlanningAudience,
    PlanningWarning,
    TimezoneAnalysisBody,
    TimezoneAnalysisOut,
    ZoneAnalysis,
    ZoneHours,
    ZoneSources,
)
from bulkcall.services.context import ServiceContext

# A campaign's own record replaces the inputs once this many attempts have ended (handle time) or this many
# contacts are finished (attempts per contact).
MIN_HISTORY = 10
DEFAULT_AVG_CALL_SECONDS = 90.0
DEFAULT_ANSWER_RATE = 0.45
PLANNING_YEARS = 5


def _repo(ctx: ServiceContext) -> PlanningRepository:
    return PlanningRepository(ctx.session, ctx.workspace_id)


def _windows(raw: dict[str, Any] | None, problems: FieldErrors) -> dict[str, dict[str, Any]]:
    if raw is None:
        return default_windows()
    windows, errors = validate_windows(raw)
    for path, messages in errors.items():
        for message in messages:
            problems.add(path, message)
    return windows


def _check_instant(ctx: ServiceContext, field: str, value: datetime | None, problems: FieldErrors) -> None:
    """Plans are for the near future: an instant more than ``PLANNING_YEARS`` from now is refused."""
    if value is not None and abs(value - ctx.now) > timedelta(days=365 * PLANNING_YEARS):
        problems.add(field, f"must be within {PLANNING_YEARS} years of now")


def _zones(key: str, *, mode: str, campaign_timezone: str) -> tuple[str, ...] | None:
    """The zones whose windows apply to a zone key; None when one of them is not a zone."""
    zones = zones_of(key, mode=mode, campaign_timezone=campaign_timezone)
    try:
        for name in zones:
            zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return zones


async def _body_audience(ctx: ServiceContext, body: PlanningAudience) -> AudienceGroups:
    """The groups of an audience given by ids, a list and/or phones; every source is counted as given."""
    repo = _repo(ctx)
    groups: list[ZoneGroup] = []
    invalid = 0
    if body.contact_ids:
        groups += await repo.contact_groups(body.contact_ids, body.timezone)
        found = sum(group.contacts for group in groups)
        if found < len(set(body.contact_ids)):
            missing = await _first_missing_contact(ctx, body.contact_ids)
            raise NotFound("contact", missing)
    if body.contact_list_id is not None:
        if await ContactListRepository(ctx.session, ctx.workspace_id).get(body.contact_list_id) is None:
            raise NotFound("contact list", body.contact_list_id)
        groups += await repo.list_groups(body.contact_list_id, body.timezone)
    if body.phones:
        parsed = []
        for raw in body.phones:
            try:
                parsed.append(normalize(raw, body.default_region))
            except InvalidPhone:
                invalid += 1
        known = await repo.known_phones([phone.e164 for phone in parsed])
        groups += await repo.phone_groups(sorted(known), body.timezone)
        # Numbers that are nobody's contact yet: the zones their number implies (what an import would store).
        for phone in {phone.e164: phone for phone in parsed if phone.e164 not in known}.values():
            key = phone.timezones_key
            groups.append(
                ZoneGroup(key or body.timezone, "phone_number" if key else "fallback", phone.country, contacts=1)
            )
    return AudienceGroups(merge_groups(groups), invalid)


async def _first_missing_contact(ctx: ServiceContext, ids: Sequence[int]) -> int:
    found = await ContactRepository(ctx.session, ctx.workspace_id).existing_ids(ids)
    return next(contact_id for contact_id in ids if contact_id not in found)


async def _campaign(ctx: ServiceContext, campaign_id: int) -> Campaign:
    campaign = await CampaignRepository(ctx.session, ctx.workspace_id).get(campaign_id)
    if campaign is None:
        raise NotFound("campaign", campaign_id)
    return campaign


def _launched(campaign: Campaign) -> bool:
    return campaign.status != CampaignStatus.DRAFT


# -- capacity preview ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Everything the preview needs, from a request body or from a campaign."""

    connections: list[PoolConnection]
    inactive_numbers: int
    concurrency_limit: int | None
    groups: list[ZoneGroup]
    windows: dict[str, dict[str, Any]]
    timezone: str
    timezone_mode: str
    max_retries: int
    retry_delay: timedelta
    start: datetime
    ends_at: datetime | None
    avg_call_seconds: float
    answer_rate: float
    basis: str
    assumed_campaign_zone: bool = False


async def capacity_preview(ctx: ServiceContext, body: CapacityPreviewBody) -> CapacityPreviewOut:
    problems = FieldErrors()
    windows = _windows(body.call_windows, problems)
    audience_given = body.contact_ids is not None or body.contact_list_id is not None or body.phones is not None
    if body.contacts is not None and audience_given:
        problems.add("contacts", "give either a head count (contacts) or an audience, not both")
    if body.contacts is None and not audience_given:
        problems.add("contacts", "give a head count (contacts) or an audience (contact_ids, contact_list_id, phones)")
    _check_instant(ctx, "scheduled_at", body.scheduled_at, problems)
    start = max(ctx.now, body.scheduled_at) if body.scheduled_at is not None else ctx.now
    if body.ends_at is not None and body.ends_at <= start:
        problems.add("ends_at", "must be after the start (scheduled_at, or now)")
    problems.raise_if_any()
    connections, found = await _repo(ctx).connections(body.campaign_phone_number_ids)
    for number_id in body.campaign_phone_number_ids:
        if number_id not in found:
            raise NotFound("phone number", number_id)
    active = sum(len(connection.numbers) for connection in connections)
    if body.contacts is not None:
        groups = [ZoneGroup(body.timezone, "fallback", None, body.contacts)] if body.contacts else []
    else:
        groups = (await _body_audience(ctx, body)).groups
    plan = _Plan(
        connections=connections,
        inactive_numbers=len(found) - active,
        concurrency_limit=body.concurrency_limit,
        groups=groups,
        windows=windows,
        timezone=body.timezone,
        timezone_mode=body.timezone_mode,
        max_retries=body.max_retries,
        retry_delay=timedelta(minutes=body.retry_delay_minutes),
        start=start,
        ends_at=body.ends_at,
        avg_call_seconds=body.avg_call_seconds,
        answer_rate=body.expected_answer_rate,
        basis="inputs",
        assumed_campaign_zone=body.contacts is not None and body.timezone_mode == "callee_local",
    )
    return await _preview(ctx, plan)


async def campaign_capacity_preview(
    ctx: ServiceContext, campaign_id: int, *, avg_call_seconds: float | None, expected_answer_rate: float | None
) -> CapacityPreviewOut:
    """A campaign's preview: its settings, its audience (once launched: its unfinished tasks) and, once enough
    attempts have ended, its own handle time and attempts per contact instead of the inputs."""
    campaign = await _campaign(ctx, campaign_id)
    repo = _repo(ctx)
    pool = (await CampaignRepository(ctx.session, ctx.workspace_id).pool_ids([campaign.id]))[campaign.id]
    connections, found = await repo.connections(pool)
    if _launched(campaign):
        groups = (await repo.task_groups(campaign.id, unfinished_only=True, by_country=False)).groups
    else:
        groups = (await repo.draft_groups(campaign, by_country=False)).groups
    history = await repo.history(campaign.id)
    handle, answer_rate, basis = _workload_inputs(history, campaign.max_retries, avg_call_seconds, expected_answer_rate)
    start = ctx.now
    if campaign.scheduled_at is not None and campaign.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        start = max(start, campaign.scheduled_at)
    plan = _Plan(
        connections=connections,
        inactive_numbers=len(found) - sum(len(connection.numbers) for connection in connections),
        concurrency_limit=campaign.concurrency_limit,
        groups=groups,
        windows=campaign.call_windows,
        timezone=campaign.timezone,
        timezone_mode=campaign.timezone_mode,
        max_retries=campaign.max_retries,
        retry_delay=timedelta(minutes=campaign.retry_delay_minutes),
        start=start,
        ends_at=campaign.ends_at,
        avg_call_seconds=handle,
        answer_rate=answer_rate,
        basis=basis,
    )
    return await _preview(ctx, plan)


def _workload_inputs(
    history: History, max_retries: int, avg_call_seconds: float | None, answer_rate: float | None
) -> tuple[float, float, str]:
    """Handle time and answer rate: the campaign's record where it has one, else the inputs, else defaults."""
    handle = avg_call_seconds if avg_call_seconds is not None else DEFAULT_AVG_CALL_SECONDS
    rate = answer_rate if answer_rate is not None else DEFAULT_ANSWER_RATE
    basis = "inputs"
    if history.ended_attempts >= MIN_HISTORY and history.avg_handle_seconds is not None:
        handle, basis = max(history.avg_handle_seconds, 1.0), "history"
    if history.finished_tasks >= MIN_HISTORY and history.attempts_per_finished_task is not None:
        rate = 1.0 - planning.retry_rate_for(history.attempts_per_finished_task, max_retries)
        basis = "history"
    return handle, rate, basis


async def _preview(ctx: ServiceContext, plan: _Plan) -> CapacityPreviewOut:
    workspace = await WorkspaceStore(ctx.session).get(ctx.workspace_id)
    tenant_cap = workspace.concurrency_cap if workspace is not None else None
    pool = capacity.pool_capacity((c.id, c.concurrency_limit) for c in plan.connections)
    limits = capacity.effective_concurrency(plan.concurrency_limit, pool, tenant_cap)
    cps = sum(connection.calls_per_second for connection in plan.connections)
    binding: str = limits.binding_limit
    if limits.effective > 0 and cps * plan.avg_call_seconds < limits.effective:
        binding = "calls_per_second"
    workload = planning.Workload(
        handle_seconds=plan.avg_call_seconds,
        retry_rate=1.0 - plan.answer_rate,
        max_retries=plan.max_retries,
        retry_delay=plan.retry_delay,
    )
    rules = day_windows(plan.windows)
    by_key: dict[str, int] = defaultdict(int)
    for group in plan.groups:
        by_key[group.zone_key] += group.contacts
    demands: list[planning.ZoneDemand] = []
    zones_out: list[ZoneHours] = []
    unknown = 0
    weighted_hours = 0.0
    for key, contacts in sorted(by_key.items(), key=lambda item: (-item[1], item[0])):
        zones = _zones(key, mode=plan.timezone_mode, campaign_timezone=plan.timezone)
        if zones is None:
            unknown += contacts
            zones_out.append(ZoneHours(timezone=key, contacts=contacts, weekly_callable_hours=0.0))
            continue
        hours = planning.weekly_hours(zones, rules, plan.start)
        weighted_hours += hours * contacts
        zones_out.append(ZoneHours(timezone=key, contacts=contacts, weekly_callable_hours=round(hours, 2)))
        demands.append(planning.ZoneDemand(zones, contacts))
    result = planning.estimate(
        demands,
        rules,
        start=plan.start,
        concurrency=limits.effective,
        calls_per_second=cps,
        workload=workload,
    )
    contacts = sum(by_key.values())
    warnings = _capacity_warnings(plan, limits, pool, binding, cps, result, unknown, contacts)
    duration = None if result.duration is None else round(result.duration.total_seconds() / 3600, 3)
    return CapacityPreviewOut(
        pool_capacity=pool,
        tenant_cap=tenant_cap,
        concurrency_limit=plan.concurrency_limit,
        effective_concurrency=limits.effective,
        binding_limit=binding,
        calls_per_second=cps,
        connections=[
            ConnectionCapacity(
                id=c.id,
                name=c.name,
                provider=c.provider,
                concurrency_limit=c.concurrency_limit,
                calls_per_second=c.calls_per_second,
                numbers=list(c.numbers),
            )
            for c in plan.connections
        ],
        contacts=contacts,
        estimate_basis=plan.basis,
        avg_call_seconds=round(plan.avg_call_seconds, 2),
        expected_answer_rate=round(plan.answer_rate, 4),
        expected_attempts_per_contact=round(workload.attempts_per_contact, 4),
        expected_calls=round(contacts * workload.attempts_per_contact, 1),
        max_possible_calls=contacts * (1 + plan.max_retries),
        calls_per_hour=round(result.calls_per_hour, 1),
        weekly_callable_hours=round(weighted_hours / contacts, 2) if contacts else 0.0,
        zones=zones_out,
        estimated_start_at=plan.start,
        estimated_duration_hours=duration,
        estimated_completion_at=result.completion_at,
        warnings=warnings,
    )


def _capacity_warnings(
    plan: _Plan,
    limits: capacity.Concurrency,
    pool: int,
    binding: str,
    cps: float,
    result: planning.Estimate,
    unknown: int,
    contacts: int,
) -> list[PlanningWarning]:
    warnings: list[PlanningWarning] = []
    if plan.concurrency_limit is not None and plan.concurrency_limit > pool:
        warnings.append(
            PlanningWarning(
                code="concurrency_limit_clamped",
                message=f"concurrency_limit {plan.concurrency_limit} is above the pool's capacity {pool}: "
                f"at most {limits.effective} calls at once",
            )
        )
    if limits.effective <= 0:
        warnings.append(
            PlanningWarning(
                code="no_capacity", message="no active number on a connection with capacity: nothing can be dialed"
            )
        )
    if binding == "calls_per_second":
        warnings.append(
            PlanningWarning(
                code="cps_binding",
                message=f"{cps:g} calls/s with {plan.avg_call_seconds:g} s calls keeps at most "
                f"{cps * plan.avg_call_seconds:.1f} lines busy, fewer than the {limits.effective} allowed",
            )
        )
    if plan.inactive_numbers:
        warnings.append(
            PlanningWarning(
                code="inactive_numbers",
                message=f"{plan.inactive_numbers} selected number(s) are not active and add no capacity",
                count=plan.inactive_numbers,
            )
        )
    never = result.never_callable + unknown
    if never:
        warnings.append(
            PlanningWarning(
                code="windows_never_open",
                message=f"{never} contact(s) have no callable hour in a week under these windows: never dialed",
                count=never,
            )
        )
    if plan.assumed_campaign_zone:
        warnings.append(
            PlanningWarning(
                code="audience_zones_assumed",
                message="a head count has no zones: every contact is assumed in the campaign timezone",
            )
        )
    if contacts and result.duration is None and limits.effective > 0 and never < contacts:
        warnings.append(
            PlanningWarning(
                code="no_completion", message="the audience does not finish within the model's span (3 years)"
            )
        )
    late = plan.ends_at is not None and (result.completion_at is None or result.completion_at > plan.ends_at)
    if late and contacts and never < contacts:
        warnings.append(
            PlanningWarning(
                code="completion_after_ends_at",
                message="the estimated completion is after ends_at: the campaign would end with contacts undialed",
            )
        )
    return warnings


# -- audience timezone analysis ------------------------------------------------------------------------------------


async def timezone_analysis(ctx: ServiceContext, body: TimezoneAnalysisBody) -> TimezoneAnalysisOut:
    problems = FieldErrors()
    windows = _windows(body.call_windows, problems)
    if body.contact_ids is None and body.contact_list_id is None and body.phones is None:
        problems.add("contact_ids", "give an audience: contact_ids, contact_list_id or phones")
    _check_instant(ctx, "at", body.at, problems)
    problems.raise_if_any()
    audience = await _body_audience(ctx, body)
    at = body.at or ctx.now
    return _analysis(audience, windows, body.timezone, body.timezone_mode, at)


async def campaign_timezone_analysis(ctx: ServiceContext, campaign_id: int, at: datetime | None) -> TimezoneAnalysisOut:
    problems = FieldErrors()
    _check_instant(ctx, "at", at, problems)
    problems.raise_if_any()
    campaign = await _campaign(ctx, campaign_id)
    repo = _repo(ctx)
    if _launched(campaign):
        audience = await repo.task_groups(campaign.id, unfinished_only=False)
    else:
        audience = await repo.draft_groups(campaign)
    return _analysis(audience, campaign.call_windows, campaign.timezone, campaign.timezone_mode, at or ctx.now)


def _analysis(
    audience: AudienceGroups, windows: dict[str, dict[str, Any]], timezone: str, mode: str, at: datetime
) -> TimezoneAnalysisOut:
    rules = day_windows(windows)
    by_key: dict[str, dict[str, int]] = defaultdict(lambda: {"contact_field": 0, "phone_number": 0, "fallback": 0})
    countries: dict[str | None, int] = defaultdict(int)
    for group in audience.groups:
        by_key[group.zone_key][group.source] += group.contacts
        countries[group.country] += group.contacts
    valid = sum(sum(sources.values()) for sources in by_key.values())
    rows: list[ZoneAnalysis] = []
    demands: list[planning.ZoneDemand] = []
    callable_now = never = unknown = 0
    for key, sources in sorted(by_key.items(), key=lambda item: (-sum(item[1].values()), item[0])):
        contacts = sum(sources.values())
        zones = _zones(key, mode=mode, campaign_timezone=timezone)
        own = _zones(key, mode="callee_local", campaign_timezone=timezone)
        calendar = calendar_for(key, windows=windows, mode=mode, campaign_timezone=timezone, ends_at=None)
        if zones is None or own is None or calendar is None:
            unknown += contacts
            rows.append(
                ZoneAnalysis(
                    timezone=key,
                    contacts=contacts,
                    sources=ZoneSources(**sources),
                    utc_offset="",
                    local_time="",
                    callable_now=False,
                    next_window_opens_at=None,
                )
            )
            continue
        is_open = calendar.is_open(at)
        callable_now += contacts if is_open else 0
        if planning.weekly_hours(zones, rules, at) <= 0:
            never += contacts
        demands.append(planning.ZoneDemand(zones, contacts))
        rows.append(
            ZoneAnalysis(
                timezone=key,
                contacts=contacts,
                sources=ZoneSources(**sources),
                utc_offset=planning.utc_offset(own[0], at),
                local_time=planning.local_time(own[0], at),
                callable_now=is_open,
                next_window_opens_at=calendar.next_eligible(at).at,
            )
        )
    ambiguous = sum(
        group.contacts for group in audience.groups if group.source == "phone_number" and "|" in group.zone_key
    )
    fallback = sum(group.contacts for group in audience.groups if group.source == "fallback")
    warnings: list[PlanningWarning] = []
    for code, count, message in (
        ("never_callable", never, "contact(s) have no callable hour in a week under these windows"),
        ("unknown_timezone", unknown, "contact(s) have a zone that is not a known IANA zone: never dialed"),
        ("fallback_timezone", fallback, f"contact(s) have no known zone: the campaign timezone ({timezone}) is used"),
        ("ambiguous_timezone", ambiguous, "contact(s) have numbers spanning several zones: dialed when all are open"),
        ("invalid_numbers", audience.invalid, "entries have no valid phone number: never dialed"),
    ):
        if count:
            warnings.append(PlanningWarning(code=code, message=f"{count} {message}", count=count))
    return TimezoneAnalysisOut(
        at=at,
        timezone=timezone,
        timezone_mode=mode,
        total=valid + audience.invalid,
        callable_now=callable_now,
        invalid=audience.invalid,
        ambiguous=ambiguous,
        fallback=fallback,
        timezones=rows,
        countries=[
            CountryCount(country=country, contacts=count)
            for country, count in sorted(countries.items(), key=lambda item: (-item[1], item[0] or ""))
        ],
        grid=planning.callable_grid(demands, rules, timezone, at, audience=valid),
        warnings=warnings,
    )
