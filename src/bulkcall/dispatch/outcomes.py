"""What a finished call does to its task: the one place an attempt ends, whatever reported the end.

Provider callbacks, a provider refusing a call, and the result timeout all end attempts here, so the
attempt budget, retry delays, voicemail rules, stickiness and the ``call.completed`` / ``task.completed``
events are applied the same way on every path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import CallAttempt, CallTask, Campaign
from bulkcall.db.repositories import dispatch as queries
from bulkcall.db.repositories import insight as insight_queries
from bulkcall.db.repositories.campaigns import CampaignRepository
from bulkcall.domain import insight
from bulkcall.domain.calls import AttemptState
from bulkcall.domain.lifecycle import Action
from bulkcall.domain.retries import Outcome, RetryPolicy, after_attempt
from bulkcall.domain.schedule import WindowCalendar, calendar_for
from bulkcall.kit.logging import get_logger
from bulkcall.providers.base import CallEvent
from bulkcall.services import campaigns as campaign_service
from bulkcall.services.context import ServiceContext

log = get_logger("bulkcall.dispatch")

# Outcomes that show the number got through to the contact's line: its retries keep that caller ID.
REACHED = frozenset({Outcome.ANSWERED, Outcome.VOICEMAIL, Outcome.BUSY})
# An unknown zone never opens; the task waits (and says why) instead of being dialed at a guessed hour.
INVALID_ZONE_RECHECK = timedelta(hours=1)


@dataclass(frozen=True)
class CallResult:
    """How an attempt ended: its outcome, the provider's report of the call when there is one, and our own
    error (a refusal, a timeout) when there is not."""

    attempt: CallAttempt
    outcome: Outcome
    report: CallEvent | None = None
    error: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        return None if self.report is None else self.report.duration_seconds

    @property
    def cost(self) -> float | None:
        return None if self.report is None else self.report.cost

    @property
    def error_text(self) -> str | None:
        return self.error or (None if self.report is None else self.report.error)


def retry_policy(campaign: Campaign) -> RetryPolicy:
    return RetryPolicy(
        max_retries=campaign.max_retries,
        retry_delay_minutes=campaign.retry_delay_minutes,
        retry_delays=dict(campaign.retry_delays or {}),
        retry_on_voicemail=campaign.retry_on_voicemail,
        max_voicemail_attempts=campaign.max_voicemail_attempts,
    )


@dataclass(frozen=True)
class NextDial:
    """When a waiting task may be dialed next; ``at`` None means the campaign ends before that."""

    at: datetime | None
    blocker: str | None


def campaign_calendar(campaign: Campaign, zone_key: str | None) -> WindowCalendar | None:
    """The calendar of a task's zone key under this campaign's windows and mode (None: unknown zone)."""
    return calendar_for(
        zone_key,
        windows=campaign.call_windows,
        mode=campaign.timezone_mode,
        campaign_timezone=campaign.timezone,
        ends_at=campaign.ends_at,
    )


def next_dial(campaign: Campaign, zone_key: str | None, now: datetime, not_before: datetime) -> NextDial:
    """The first instant at or after ``not_before`` inside the task's windows (retry delays, re-queues)."""
    calendar = campaign_calendar(campaign, zone_key)
    if calendar is None:
        return NextDial(now + INVALID_ZONE_RECHECK, "invalid_timezone")
    eligibility = calendar.next_eligible(now, not_before)
    if eligibility.at is None:
        if campaign.ends_at is not None and eligibility.checked_until >= campaign.ends_at:
            return NextDial(None, None)
        return NextDial(eligibility.checked_until, "outside_call_window")
    if eligibility.at > not_before:
        return NextDial(eligibility.at, "outside_call_window")
    return NextDial(eligibility.at, "waiting_retry" if not_before > now else None)


async def finish_attempts(session: AsyncSession, now: datetime, results: Sequence[CallResult]) -> set[int]:
    """End each attempt, decide its task, record the events; returns the campaigns touched."""
    if not results:
        return set()
    tasks = await queries.tasks_by_id(session, [result.attempt.task_id for result in results])
    campaigns = await queries.campaigns_by_id(session, [result.attempt.campaign_id for result in results])
    attempt_rows: list[dict[str, Any]] = []
    task_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for result in results:
        attempt = result.attempt
        task = tasks.get(attempt.task_id)
        campaign = campaigns.get(attempt.campaign_id)
        attempt_rows.append(_ended_attempt(result, now))
        events.append(_event(attempt, "call.completed", _call_data(result), now))
        if task is None or campaign is None:
            log.warning("attempt_without_task", attempt_id=attempt.id)
            continue
        row = _task_after(task, campaign, result, now)
        task_rows.append(row)
        if row.get("completed_at") is not None:
            data = {
                "campaign_id": campaign.id,
                "task_id": task.id,
                "contact_id": task.contact_id,
                "status": row["status"],
                "skip_reason": row.get("skip_reason"),
                "last_outcome": result.outcome.value,
                "attempts": attempt.attempt_number,
            }
            events.append(_event(attempt, "task.completed", data, now))
    await _add_stats(session, now, results)
    await queries.update_attempts(session, attempt_rows)
    await queries.update_tasks(session, task_rows)
    await queries.insert_events(session, events)
    running = sorted((c for c in campaigns.values() if c.status == "running"), key=lambda c: c.id)  # lock order
    await guard_campaigns(session, now, running)
    return set(campaigns)


async def _add_stats(session: AsyncSession, now: datetime, results: Sequence[CallResult]) -> None:
    """Add the ending attempts to the campaigns' quarter-hour statistics (analytics reads only those)."""
    previous = await insight_queries.previous_ends(session, [result.attempt.task_id for result in results])
    bucket = insight.bucket_of(now)
    calls: dict[tuple[Any, ...], dict[str, Any]] = {}
    reach: dict[tuple[Any, ...], dict[str, Any]] = {}
    talk: dict[tuple[Any, ...], dict[str, Any]] = {}
    for result in results:
        attempt = result.attempt
        answered = result.outcome is Outcome.ANSWERED
        seconds = (result.duration_seconds or 0.0) if answered else 0.0
        key = (attempt.campaign_id, bucket, attempt.phone_number_id, attempt.attempt_number, result.outcome.value)
        row = calls.setdefault(
            key, dict(zip(insight_queries.CALL_KEYS, key, strict=True), attempts=0, talk_seconds=0.0, cost=Decimal(0))
        )
        row["attempts"] += 1
        row["talk_seconds"] += seconds
        row["cost"] += Decimal(str(result.cost)) if result.cost is not None else Decimal(0)
        last_end, last_answer = previous.get(attempt.task_id, (None, None))
        kinds = [("contact", last_end)] + ([("reached", last_answer)] if answered else [])
        for kind, before in kinds:
            prev = insight.NO_PREVIOUS if before is None else insight.bucket_of(before)
            reach_key = (attempt.campaign_id, bucket, kind, prev)
            reach.setdefault(reach_key, dict(zip(insight_queries.REACH_KEYS, reach_key, strict=True), tasks=0))
            reach[reach_key]["tasks"] += 1
        if answered:
            talk_key = (attempt.campaign_id, bucket, insight.talk_bin(seconds))
            talk.setdefault(talk_key, dict(zip(insight_queries.TALK_KEYS, talk_key, strict=True), calls=0))
            talk[talk_key]["calls"] += 1
    await insight_queries.add_stats(session, list(calls.values()), list(reach.values()), list(talk.values()))


async def guard_campaigns(session: AsyncSession, now: datetime, campaigns: Sequence[Campaign]) -> list[tuple[int, str]]:
    """Pause running campaigns whose provider error rate spiked (``failure_spike``) or whose spend reached
    ``metadata.budget_cap`` (``budget_cap_reached``): a ``campaign.health_degraded`` event, then the pause
    (through the one lifecycle function, which writes ``campaign.paused``), in the caller's transaction."""
    paused: list[tuple[int, str]] = []
    for campaign in campaigns:
        if campaign.status != "running":
            continue
        config = insight.guards(campaign.meta)
        reason: str | None = None
        details: dict[str, Any] = {}
        if config.failure_spike.enabled:
            recent = await insight_queries.recent_attempts(session, campaign.id, insight.RECENT_ATTEMPTS)
            rate = insight.error_rate(config.failure_spike, recent, now, campaign.resumed_at)
            if insight.spike_tripped(config.failure_spike, rate):
                reason = "failure_spike"
                details = {
                    "attempts": rate.attempts,
                    "failed": rate.failed,
                    "error_rate": rate.rate,
                    "threshold": config.failure_spike.threshold,
                    "window_minutes": rate.window_minutes,
                }
        if reason is None and config.budget_cap is not None:
            spent = await insight_queries.spent(session, campaign.id)
            if insight.budget_reached(config.budget_cap, spent):
                reason = "budget_cap_reached"
                details = {"spent": str(spent), "budget_cap": str(config.budget_cap)}
        if reason is None:
            continue
        ctx = ServiceContext(session=session, workspace_id=campaign.workspace_id, now=now)
        CampaignRepository(session, campaign.workspace_id).record_event(
            campaign, "campaign.health_degraded", {"campaign_id": campaign.id, "reason": reason, **details}, now
        )
        await campaign_service.apply_action(ctx, campaign.id, Action.PAUSE, reason)
        log.warning("campaign_paused_by_guard", campaign_id=campaign.id, reason=reason, **details)
        paused.append((campaign.id, reason))
    return paused


def _ended_attempt(result: CallResult, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": result.attempt.id,
        "state": AttemptState.ENDED.value,
        "ended_at": now,
        "lease_expires_at": None,
        "outcome": result.outcome.value,
        "duration_seconds": result.duration_seconds,
        "cost": Decimal(str(result.cost)) if result.cost is not None else Decimal(0),
    }
    report = result.report
    optional: dict[str, Any] = {"error": result.error_text}
    if report is not None:
        optional.update(
            answered_by=report.answered_by,
            hangup_reason=report.hangup_reason,
            recording_url=report.recording_url,
            transcript=report.transcript,
            extracted_data=report.extracted_data,
        )
    row.update({key: value for key, value in optional.items() if value is not None})
    return row


def _task_after(task: CallTask, campaign: Campaign, result: CallResult, now: datetime) -> dict[str, Any]:
    attempt, outcome = result.attempt, result.outcome
    voicemails = task.voicemail_attempts + (1 if outcome is Outcome.VOICEMAIL else 0)
    talked = (result.duration_seconds or 0.0) if outcome in (Outcome.ANSWERED, Outcome.VOICEMAIL) else 0.0
    row: dict[str, Any] = {
        "id": task.id,
        "attempts": max(task.attempts, attempt.attempt_number),
        "voicemail_attempts": voicemails,
        "last_outcome": outcome.value,
        "caller_phone_number_id": attempt.phone_number_id,
        "cost": (task.cost or Decimal(0)) + Decimal(str(result.cost or 0)),
        "talk_seconds": (task.talk_seconds or 0.0) + talked,
        # The export's per-task summary (a task's attempts end one at a time, in attempt order).
        "attempt_outcomes": f"{task.attempt_outcomes}|{outcome.value}" if task.attempt_outcomes else outcome.value,
        "extracted_data": _latest_data(task, result),
        "updated_at": now,
    }
    if outcome in REACHED:
        row["sticky_phone_number_id"] = attempt.phone_number_id
    decision = after_attempt(retry_policy(campaign), outcome, attempt.attempt_number, voicemails)
    if decision.retry_after is None:
        return {**row, "status": decision.status, "blocker": None, "next_eligible_at": None, "completed_at": now}
    if campaign.status == "cancelled":
        return {**row, "status": "cancelled", "blocker": None, "next_eligible_at": None, "completed_at": now}
    nxt = next_dial(campaign, task.timezones, now, now + decision.retry_after)
    if nxt.at is None:
        return {
            **row,
            "status": "skipped",
            "skip_reason": "campaign_ended",
            "blocker": None,
            "next_eligible_at": None,
            "completed_at": now,
        }
    return {**row, "status": "retry_pending", "blocker": nxt.blocker, "next_eligible_at": nxt.at}


def _latest_data(task: CallTask, result: CallResult) -> dict[str, Any] | None:
    """The task's latest non-empty extracted data: this attempt's when it has some, else what it had."""
    data = None if result.report is None else result.report.extracted_data
    return data if data else task.extracted_data


def _call_data(result: CallResult) -> dict[str, Any]:
    attempt = result.attempt
    return {
        "campaign_id": attempt.campaign_id,
        "task_id": attempt.task_id,
        "attempt_id": attempt.id,
        "attempt_number": attempt.attempt_number,
        "phone_number_id": attempt.phone_number_id,
        "provider": attempt.provider,
        "provider_call_id": attempt.provider_call_id,
        "outcome": result.outcome.value,
        "duration_seconds": result.duration_seconds,
        "cost": result.cost,
        "error": result.error_text,
    }


def _event(attempt: CallAttempt, event_type: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "workspace_id": attempt.workspace_id,
        "campaign_id": attempt.campaign_id,
        "type": event_type,
        "data": data,
        "created_at": now,
    }


async def complete_finished(session: AsyncSession, now: datetime, campaign_ids: set[int]) -> list[int]:
    """Running campaigns among ``campaign_ids`` whose tasks are all terminal become completed."""
    completed: list[int] = []
    for campaign_id in sorted(campaign_ids):
        campaigns = await queries.campaigns_by_id(session, [campaign_id])
        campaign = campaigns.get(campaign_id)
        if campaign is None or campaign.status != "running":
            continue
        ctx = ServiceContext(session=session, workspace_id=campaign.workspace_id, now=now)
        # An index probe first: the row lock below is only worth taking when the campaign may be done.
        if await CampaignRepository(session, campaign.workspace_id).has_unfinished_tasks(campaign_id):
            continue
        locked = await campaign_service.get_campaign(ctx, campaign_id, for_update=True)
        if await campaign_service.complete_if_done(ctx, locked):
            completed.append(campaign_id)
            log.info("campaign_completed", campaign_id=campaign_id)
    return completed
