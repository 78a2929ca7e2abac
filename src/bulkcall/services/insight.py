"""A campaign's analytics and dispatch health, read from maintained statistics and indexes.

Analytics definitions (docs/api.md): an attempt is in the range when its ``ended_at`` falls in
``[from 00:00, to+1 00:00)`` in the campaign's timezone; only ended attempts count. The figures come from
the quarter-hour statistics written as attempts end (``dispatch/outcomes.py``), so a request costs the same
at any campaign size.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from bulkcall.db.models import Campaign
from bulkcall.db.repositories import dispatch as dispatch_queries
from bulkcall.db.repositories import insight as queries
from bulkcall.db.repositories.campaigns import CampaignRepository
from bulkcall.db.repositories.workspaces import WorkspaceStore
from bulkcall.dispatch.outcomes import next_dial
from bulkcall.domain import capacity, insight
from bulkcall.domain.date_ranges import check_range, utc_bounds
from bulkcall.schemas.insight import (
    Analytics,
    AnalyticsRange,
    AnalyticsTotals,
    BudgetFigures,
    CallerNumberFigures,
    DailyPoint,
    DialCounts,
    DispatchHealth,
    HealthErrorRate,
    HealthLimits,
    HealthQueue,
    HealthReason,
    HourPoint,
    NumberHealth,
    RetryStep,
    TalkTime,
)
from bulkcall.services.campaigns import TASK_STATUSES, get_campaign
from bulkcall.services.context import ServiceContext


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


async def analytics(
    ctx: ServiceContext, campaign_id: int, first: date | None = None, last: date | None = None
) -> Analytics:
    check_range(first, last)
    campaign = await get_campaign(ctx, campaign_id)
    zone_name = campaign.timezone
    starts_at, ends_at = utc_bounds(first, last, zone_name)
    lo, hi = insight.bucket_bounds(starts_at, ends_at)
    session = ctx.session
    figures = await queries.call_figures(session, campaign.id, lo, hi)
    reached = await queries.reach(session, campaign.id, lo, hi)
    histogram = await queries.talk_histogram(session, campaign.id, lo, hi)
    tasks_total = sum((await queries.task_counts(session, campaign.id)).values())

    by_outcome = insight.ordered_counts((outcome, attempts) for outcome, attempts, _, _ in figures.by_outcome)
    attempts = sum(by_outcome.values())
    answered = by_outcome["answered"]
    talk_total = sum(talk for _, _, talk, _ in figures.by_outcome)
    cost = sum((c for _, _, _, c in figures.by_outcome), Decimal(0))
    contacts, contacts_reached = reached.get("contact", 0), reached.get("reached", 0)

    numbers = await queries.number_e164s(session, ctx.workspace_id, [n for n, *_ in figures.by_number])
    daily: dict[date, list[float]] = {}
    hours = [[0, 0, 0.0] for _ in range(24)]
    for bucket, bucket_attempts, bucket_answered, talk in figures.by_bucket:
        day, hour = insight.local_slot(zone_name, bucket)
        point = daily.setdefault(day, [0, 0, 0.0])
        point[0] += bucket_attempts
        point[1] += bucket_answered
        point[2] += talk
        hours[hour][0] += bucket_attempts
        hours[hour][1] += bucket_answered
        hours[hour][2] += talk

    return Analytics(
        campaign_id=campaign.id,
        range=AnalyticsRange(from_=first, to=last, timezone=zone_name, starts_at=starts_at, ends_at=ends_at),
        totals=AnalyticsTotals(
            attempts=attempts,
            **by_outcome,
            contacts=contacts,
            contacts_reached=contacts_reached,
            tasks_total=tasks_total,
        ),
        answer_rate=_ratio(answered, attempts),
        contact_rate=_ratio(contacts_reached, contacts),
        talk_time=TalkTime(
            total_seconds=talk_total,
            average_seconds=None if answered == 0 else talk_total / answered,
            median_seconds=insight.histogram_median(histogram),
            answered_calls=answered,
        ),
        cost=float(cost),
        retry_effectiveness=[
            RetryStep(attempt_number=number, attempts=n, answered=a, answer_rate=_ratio(a, n))
            for number, n, a in figures.by_attempt_number
        ],
        by_caller_number=[
            CallerNumberFigures(
                phone_number_id=number_id,
                e164=numbers.get(number_id),
                attempts=n,
                answered=a,
                answer_rate=_ratio(a, n),
                talk_seconds=talk,
                cost=float(c),
            )
            for number_id, n, a, talk, c in figures.by_number
        ],
        daily=[
            DailyPoint(date=day, attempts=int(p[0]), answered=int(p[1]), talk_seconds=p[2])
            for day, p in sorted(daily.items())
        ],
        hour_of_day=[
            HourPoint(hour=hour, attempts=int(p[0]), answered=int(p[1]), talk_seconds=p[2])
            for hour, p in enumerate(hours)
        ],
    )


# -- dispatch health --------------------------------------------------------------------------------------------

# A campaign's zone keys only change when tasks are added (``audience_materialized_to`` moves); reading them
# scans the campaign's tasks, so they are kept per process, as the engine keeps them.
_ZONE_KEYS: dict[int, tuple[int, list[str]]] = {}


async def _zone_keys(ctx: ServiceContext, campaign: Campaign) -> list[str]:
    cached = _ZONE_KEYS.get(campaign.id)
    if cached is not None and cached[0] == campaign.audience_materialized_to:
        return cached[1]
    keys = await dispatch_queries.zone_keys(ctx.session, campaign.id)
    if len(_ZONE_KEYS) > 1000:
        _ZONE_KEYS.clear()
    _ZONE_KEYS[campaign.id] = (campaign.audience_materialized_to, keys)
    return keys


def _next_opening(campaign: Campaign, keys: list[str], now: datetime) -> datetime | None:
    found = [nxt.at for key in keys if (nxt := next_dial(campaign, key, now, now)).at is not None and nxt.at > now]
    return min(found) if found else None


async def dispatch_health(ctx: ServiceContext, campaign_id: int) -> DispatchHealth:
    campaign = await get_campaign(ctx, campaign_id)
    session, now = ctx.session, ctx.now
    repo = CampaignRepository(session, ctx.workspace_id)
    config = insight.guards(campaign.meta)

    pool = await repo.pool_numbers(campaign.id)
    active = [(number, connection) for number, connection in pool if number.status == "active"]
    pool_capacity = capacity.pool_capacity((connection.id, connection.concurrency_limit) for _, connection in active)
    workspace = await WorkspaceStore(session).get(ctx.workspace_id)
    tenant_cap = workspace.concurrency_cap if workspace is not None else None
    concurrency = capacity.effective_concurrency(campaign.concurrency_limit, pool_capacity, tenant_cap)

    counts = await queries.task_counts(session, campaign.id)
    tasks_by_status = {status: counts.get(status, 0) for status in TASK_STATUSES}
    wait = await queries.waiting(
        session, campaign.id, now, tasks_by_status["pending"] + tasks_by_status["retry_pending"]
    )
    window_later, first_window = wait.later_window, wait.first_window_at
    retry_later, first_retry = wait.later_retry, wait.first_retry_at
    other = wait.later_other
    running = campaign.status == "running"
    eligible = wait.due if running else 0
    waiting_window = window_later
    next_window = first_window
    if not running:
        other += wait.due
    elif campaign.dispatch_blocker == "outside_call_window" and wait.due:
        # The engine found every window shut; it leaves due tasks where they are until one opens.
        eligible, waiting_window = 0, waiting_window + wait.due
        opening = _next_opening(campaign, await _zone_keys(ctx, campaign), now)
        next_window = min(t for t in (opening, first_window) if t is not None) if opening or first_window else None

    in_flight_by_number = await queries.open_attempts_by_number(session, ctx.workspace_id, campaign.id)
    in_flight = sum(in_flight_by_number.values())
    dial_counts = await queries.dials(session, campaign.id, now)
    recent = await queries.recent_attempts(session, campaign.id, insight.RECENT_ATTEMPTS)
    error = insight.error_rate(config.failure_spike, recent, now, campaign.resumed_at)
    day = await queries.number_day(session, campaign.id, insight.bucket_of(now - timedelta(hours=24)))

    numbers: list[NumberHealth] = []
    for number, _ in pool:
        streak = 0
        for attempt in recent:
            if attempt.phone_number_id != number.id or attempt.outcome is None:
                continue
            if attempt.outcome != "failed":
                break
            streak += 1
        attempts_24h, answered_24h = day.get(number.id, (0, 0))
        rate = _ratio(answered_24h, attempts_24h)
        low_answers = (
            attempts_24h >= insight.UNHEALTHY_MIN_ATTEMPTS and rate is not None and rate < insight.UNHEALTHY_ANSWER_RATE
        )
        numbers.append(
            NumberHealth(
                phone_number_id=number.id,
                e164=number.e164,
                status=number.status,
                spam_flagged=number.spam_flagged,
                in_flight=in_flight_by_number.get(number.id, 0),
                attempts_24h=attempts_24h,
                answered_24h=answered_24h,
                answer_rate_24h=rate,
                consecutive_failures=streak,
                healthy=number.status == "active"
                and not number.spam_flagged
                and streak < insight.UNHEALTHY_CONSECUTIVE_FAILURES
                and not low_answers,
            )
        )

    last_claim = recent[0].queued_at if recent else None
    activity = [t for t in (dial_counts.last_dial_at, last_claim) if t is not None]
    status, reasons = insight.health_status(
        insight.HealthInputs(
            status=campaign.status,
            pause_reason=campaign.pause_reason,
            eligible_now=eligible,
            oldest_eligible_at=wait.oldest_due_at if eligible else None,
            waiting_window=waiting_window,
            waiting_retry=retry_later,
            waiting_other=other,
            in_flight=in_flight,
            effective_concurrency=concurrency.effective,
            dispatch_blocker=campaign.dispatch_blocker if running else None,
            last_dial_at=max(activity) if activity else None,
            running_since=campaign.resumed_at or campaign.started_at,
            error=error,
            error_threshold=config.failure_spike.threshold,
            unhealthy_numbers=sum(1 for n in numbers if not n.healthy and n.status == "active"),
            usable_numbers=sum(1 for n in numbers if n.status == "active" and not n.spam_flagged),
        ),
        now,
    )
    started = campaign.started_at or campaign.launched_at
    first_dial = campaign.first_dialed_at
    spent = await queries.spent(session, campaign.id)
    return DispatchHealth(
        campaign_id=campaign.id,
        status=status,
        reasons=[HealthReason(code=r.code, message=r.message, count=r.count) for r in reasons],
        limits=HealthLimits(
            concurrency_limit=campaign.concurrency_limit,
            pool_capacity=pool_capacity,
            tenant_cap=tenant_cap,
            effective_concurrency=concurrency.effective,
            binding_limit=concurrency.binding_limit,
            dispatch_blocker=campaign.dispatch_blocker if running else None,
        ),
        in_flight=in_flight,
        dials=DialCounts(
            last_5_minutes=dial_counts.last_5,
            last_15_minutes=dial_counts.last_15,
            last_60_minutes=dial_counts.last_60,
            last_dial_at=dial_counts.last_dial_at,
        ),
        error_rate=HealthErrorRate(
            window_minutes=error.window_minutes,
            attempts=error.attempts,
            failed=error.failed,
            rate=error.rate,
            breaker_threshold=config.failure_spike.threshold,
            breaker_min_attempts=config.failure_spike.min_attempts,
            breaker_enabled=config.failure_spike.enabled,
        ),
        queue=HealthQueue(
            eligible_now=eligible,
            waiting_window=waiting_window,
            waiting_retry=retry_later,
            waiting_other=other,
            next_window_opens_at=next_window,
            next_retry_at=first_retry,
            oldest_eligible_age_seconds=(now - wait.oldest_due_at).total_seconds()
            if eligible and wait.oldest_due_at is not None
            else None,
        ),
        tasks_by_status=tasks_by_status,
        time_to_first_dial_seconds=(first_dial - started).total_seconds() if first_dial and started else None,
        budget=BudgetFigures(
            budget_cap=float(config.budget_cap) if config.budget_cap is not None else None, spent=float(spent)
        ),
        numbers=numbers,
        checked_at=now,
    )
