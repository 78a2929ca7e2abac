"""Reading a campaign's tasks and their call attempts.

A waiting task's ``blocker`` and ``next_eligible_at`` are shown as they are *now*: the engine stores what it
decided for the task (a retry delay, the next opening of a closed window), and what holds every due task
back at once (a paused campaign, a full limit, a window that just closed) is derived here from the campaign
instead of being written into millions of rows.
"""

from __future__ import annotations

from datetime import date, datetime

from bulkcall.db.models import CallTask, Campaign, Contact
from bulkcall.db.models.campaign import WAITING_STATUSES
from bulkcall.db.repositories.campaigns import CampaignRepository
from bulkcall.dispatch.outcomes import next_dial
from bulkcall.domain.date_ranges import check_range, utc_bounds
from bulkcall.domain.variables import task_variables
from bulkcall.kit.errors import NotFound
from bulkcall.schemas.campaigns import AttemptOut, TaskDetailOut, TaskOut
from bulkcall.services.campaigns import get_campaign
from bulkcall.services.context import ServiceContext

_FIELDS = ("phone_e164", "first_name", "last_name", "email", "company", "timezone", "country")


def waiting_view(task: CallTask, campaign: Campaign, now: datetime) -> tuple[str | None, datetime | None]:
    """(blocker, next_eligible_at) of a waiting task as of ``now``."""
    stored = task.next_eligible_at
    if campaign.status == "paused":
        return "campaign_paused", stored
    if campaign.status == "scheduled":
        return "campaign_scheduled", stored
    if stored is not None and stored > now:
        return task.blocker, stored
    nxt = next_dial(campaign, task.timezones, now, now)
    if nxt.at is None:
        return "outside_call_window", campaign.ends_at
    if nxt.at > now or nxt.blocker == "invalid_timezone":
        return nxt.blocker, nxt.at
    return campaign.dispatch_blocker, stored


def task_out(task: CallTask, contact: Contact | None, campaign: Campaign, now: datetime) -> TaskOut:
    """A task as the API shows it, with the variables its agent gets."""
    out = TaskOut.model_validate(task)
    fields = None if contact is None else {"contact_id": contact.id, **{k: getattr(contact, k) for k in _FIELDS}}
    out.variables = task_variables(campaign.call_variables, fields, contact.custom_fields if contact else None)
    if task.status in WAITING_STATUSES:
        out.blocker, out.next_eligible_at = waiting_view(task, campaign, now)
    return out


async def list_tasks(
    ctx: ServiceContext,
    campaign_id: int,
    status: str | None,
    outcome: str | None,
    page: int,
    per_page: int,
    date_from: date | None = None,
    date_to: date | None = None,
) -> tuple[list[TaskOut], int]:
    """With ``from``/``to``: the tasks with at least one attempt ended in the range (``domain/date_ranges.py``)."""
    campaign = await get_campaign(ctx, campaign_id)
    check_range(date_from, date_to)
    lower, upper = utc_bounds(date_from, date_to, campaign.timezone)
    repo = CampaignRepository(ctx.session, ctx.workspace_id)
    rows, total = await repo.page_tasks(campaign.id, status, outcome, page, per_page, lower, upper)
    return [task_out(task, contact, campaign, ctx.now) for task, contact in rows], total


async def get_task(ctx: ServiceContext, campaign_id: int, task_id: int) -> TaskDetailOut:
    campaign = await get_campaign(ctx, campaign_id)
    found = await CampaignRepository(ctx.session, ctx.workspace_id).get_task(campaign.id, task_id)
    if found is None:
        raise NotFound("task", task_id)
    attempts = await CampaignRepository(ctx.session, ctx.workspace_id).task_attempts(task_id)
    base = task_out(found[0], found[1], campaign, ctx.now)
    return TaskDetailOut(**base.model_dump(), call_attempts=[AttemptOut.model_validate(row) for row in attempts])
