"""Reading a campaign's tasks."""

from __future__ import annotations

from bulkcall.db.models import CallTask, Campaign, Contact
from bulkcall.db.repositories.campaigns import CampaignRepository
from bulkcall.domain.variables import task_variables
from bulkcall.kit.errors import NotFound
from bulkcall.schemas.campaigns import TaskOut
from bulkcall.services.campaigns import TERMINAL_TASK_STATUSES, get_campaign
from bulkcall.services.context import ServiceContext


def task_out(task: CallTask, contact: Contact | None, campaign: Campaign) -> TaskOut:
    """A task as the API shows it, with the variables its agent gets; a paused campaign's waiting tasks say so."""
    out = TaskOut.model_validate(task)
    fields = None if contact is None else {"contact_id": contact.id, **{k: getattr(contact, k) for k in _FIELDS}}
    out.variables = task_variables(campaign.call_variables, fields, contact.custom_fields if contact else None)
    if task.status not in TERMINAL_TASK_STATUSES and campaign.status == "paused":
        out.blocker = "campaign_paused"
    return out


_FIELDS = ("phone_e164", "first_name", "last_name", "email", "company", "timezone", "country")


async def list_tasks(
    ctx: ServiceContext, campaign_id: int, status: str | None, outcome: str | None, page: int, per_page: int
) -> tuple[list[TaskOut], int]:
    campaign = await get_campaign(ctx, campaign_id)
    repo = CampaignRepository(ctx.session, ctx.workspace_id)
    rows, total = await repo.page_tasks(repo.tasks_query(campaign.id, status, outcome), page, per_page)
    return [task_out(task, contact, campaign) for task, contact in rows], total


async def get_task(ctx: ServiceContext, campaign_id: int, task_id: int) -> TaskOut:
    campaign = await get_campaign(ctx, campaign_id)
    found = await CampaignRepository(ctx.session, ctx.workspace_id).get_task(campaign.id, task_id)
    if found is None:
        raise NotFound("task", task_id)
    return task_out(found[0], found[1], campaign)
