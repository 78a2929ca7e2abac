"""``/bulk_call_campaigns``: campaigns, their lifecycle, audience, tasks, cloning and templates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import StreamingResponse

from bulkcall.api.bodies import json_body_openapi, lenient_body
from bulkcall.api.deps import CampaignsRead, CampaignsWrite, DatabaseDep, DateFrom, DateTo, Pagination, PathId
from bulkcall.api.responses import error_responses, ok, paged
from bulkcall.domain.lifecycle import Action
from bulkcall.schemas.base import Envelope, ListEnvelope
from bulkcall.schemas.campaigns import (
    AudienceAdd,
    CampaignCreate,
    CampaignOut,
    CampaignStatusName,
    CampaignUpdate,
    CloneBody,
    ClonePrefill,
    PauseBody,
    SaveAsTemplateBody,
    TaskDetailOut,
    TaskOut,
    TaskStatusName,
    TemplateOut,
)
from bulkcall.services import campaigns, exports, tasks
from bulkcall.services.context import ServiceContext

router = APIRouter(prefix="/bulk_call_campaigns", tags=["bulk_call_campaigns"])
templates_router = APIRouter(prefix="/bulk_call_campaign_templates", tags=["bulk_call_campaign_templates"])

Search = Annotated[str | None, Query(max_length=200, description="Case-insensitive match on the name")]
Outcome = Annotated[str | None, Query(max_length=32, description="Only tasks whose last outcome is this")]
Format = Annotated[exports.ExportFormat, Query(description="csv (UTF-8, header row) or jsonl (one object per line)")]


def _export_responses(what: str) -> dict[int | str, dict[str, Any]]:
    media = {"schema": {"type": "string"}}
    return {
        200: {
            "description": f"{what}, streamed as an attachment",
            "content": {"text/csv": media, "application/x-ndjson": media},
        }
    }


def _download(chunks: AsyncIterator[bytes], fmt: exports.ExportFormat, filename: str) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type=exports.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _out(ctx: ServiceContext, campaign_id: int) -> Envelope[CampaignOut]:
    campaign = await campaigns.get_campaign(ctx, campaign_id)
    return ok(CampaignOut.model_validate((await campaigns.view(ctx, campaign)).as_dict()))


@router.get("", operation_id="list_bulk_call_campaigns", summary="List campaigns, newest first")
async def list_campaigns(
    ctx: CampaignsRead,
    pagination: Pagination,
    status: Annotated[CampaignStatusName | None, Query(description="Only campaigns in this state")] = None,
    search: Search = None,
) -> ListEnvelope[CampaignOut]:
    rows, total = await campaigns.list_campaigns(
        ctx, status=status, search=search, page=pagination.page, per_page=pagination.per_page
    )
    views = await campaigns.views(ctx, rows)
    return paged(
        [CampaignOut.model_validate(view.as_dict()) for view in views], total, pagination.page, pagination.per_page
    )


@router.get(
    "/export",
    operation_id="export_bulk_call_campaigns",
    summary="Every campaign matching the list's filters, newest first, with its task counts and call KPIs",
    description=(
        "One row per campaign: id, name, status, timestamps, `total_contacts`, tasks per status, and over its "
        "ended attempts `attempts`, `answered` (attempts that ended `answered`), `answer_rate` "
        "(answered / attempts, null without attempts), `talk_seconds` and `cost`."
    ),
    response_class=StreamingResponse,
    responses=_export_responses("The campaigns"),
)
async def export_campaigns(
    ctx: CampaignsRead,
    database: DatabaseDep,
    format: Format = exports.ExportFormat.CSV,
    status: Annotated[CampaignStatusName | None, Query(description="Only campaigns in this state")] = None,
    search: Search = None,
) -> StreamingResponse:
    chunks = exports.campaigns_chunks(database, ctx.workspace_id, status, search, format)
    return _download(chunks, format, f"bulk_call_campaigns.{format.value}")


@router.post(
    "",
    status_code=201,
    operation_id="create_bulk_call_campaign",
    summary="Create a campaign (always a draft)",
    description="Every problem, of shape or against other records, comes back in one 422.",
    responses=error_responses(404),
    openapi_extra=json_body_openapi(CampaignCreate),
)
async def create_campaign(request: Request, ctx: CampaignsWrite) -> Envelope[CampaignOut]:
    # Read here, not declared: a declared body would answer its shape problems before the cross-record checks ran.
    body, shape_problems = await lenient_body(request, CampaignCreate)
    campaign = await campaigns.create_campaign(ctx, body, shape_problems)
    return await _out(ctx, campaign.id)


@router.get(
    "/{campaign_id}",
    operation_id="get_bulk_call_campaign",
    summary="Get a campaign (drafts include the launch checklist)",
    responses=error_responses(404),
)
async def get_campaign(ctx: CampaignsRead, campaign_id: PathId) -> Envelope[CampaignOut]:
    return await _out(ctx, campaign_id)


@router.patch(
    "/{campaign_id}",
    operation_id="update_bulk_call_campaign",
    summary="Change a campaign (draft/paused: any field; running: name, priority, concurrency_limit, metadata)",
    description="Every problem, of shape or against other records, comes back in one 422.",
    responses=error_responses(404, 409),
    openapi_extra=json_body_openapi(CampaignUpdate),
)
async def update_campaign(request: Request, ctx: CampaignsWrite, campaign_id: PathId) -> Envelope[CampaignOut]:
    body, shape_problems = await lenient_body(request, CampaignUpdate)
    await campaigns.update_campaign(ctx, campaign_id, body, shape_problems)
    return await _out(ctx, campaign_id)


@router.delete(
    "/{campaign_id}",
    status_code=204,
    operation_id="delete_bulk_call_campaign",
    summary="Delete a draft (other states: 409)",
    responses=error_responses(404, 409),
)
async def delete_campaign(ctx: CampaignsWrite, campaign_id: PathId) -> Response:
    await campaigns.delete_campaign(ctx, campaign_id)
    return Response(status_code=204)


def _lifecycle_route(action: Action, summary: str) -> None:
    async def endpoint(ctx: CampaignsWrite, campaign_id: PathId) -> Envelope[CampaignOut]:
        await campaigns.apply_action(ctx, campaign_id, action)
        return await _out(ctx, campaign_id)

    endpoint.__name__ = f"{action.value}_campaign"
    router.add_api_route(
        f"/{{campaign_id}}/{action.value}",
        endpoint,
        methods=["POST"],
        operation_id=f"{action.value}_bulk_call_campaign",
        summary=summary,
        responses=error_responses(404, 409),
    )


_lifecycle_route(
    Action.LAUNCH,
    "Launch a draft (422 LAUNCH_PRECONDITIONS_FAILED lists every failed check; a repeat is a no-op)",
)


@router.post(
    "/{campaign_id}/pause",
    operation_id="pause_bulk_call_campaign",
    summary="Pause a running or scheduled campaign (optional reason; a repeat is a no-op)",
    responses=error_responses(404, 409),
)
async def pause_campaign(
    ctx: CampaignsWrite, campaign_id: PathId, body: Annotated[PauseBody | None, Body()] = None
) -> Envelope[CampaignOut]:
    await campaigns.apply_action(ctx, campaign_id, Action.PAUSE, body.reason if body else None)
    return await _out(ctx, campaign_id)


_lifecycle_route(Action.RESUME, "Resume a paused campaign (a repeat is a no-op)")
_lifecycle_route(Action.CANCEL, "Cancel: every not-yet-dialed task ends cancelled (a repeat is a no-op)")


@router.post(
    "/{campaign_id}/contacts",
    operation_id="add_bulk_call_campaign_contacts",
    summary="Add contacts to a draft, or to a launched campaign (its tasks are created at once)",
    responses=error_responses(404, 409),
)
async def add_contacts(ctx: CampaignsWrite, campaign_id: PathId, body: AudienceAdd) -> Envelope[CampaignOut]:
    await campaigns.add_contacts(ctx, campaign_id, body)
    return await _out(ctx, campaign_id)


@router.post(
    "/{campaign_id}/clone",
    status_code=201,
    operation_id="clone_bulk_call_campaign",
    summary="Copy a campaign into a new draft (audience included unless include_audience is false)",
    responses=error_responses(404),
)
async def clone_campaign(
    ctx: CampaignsWrite, campaign_id: PathId, body: Annotated[CloneBody | None, Body()] = None
) -> Envelope[CampaignOut]:
    clone = await campaigns.clone_campaign(ctx, campaign_id, body or CloneBody())
    return await _out(ctx, clone.id)


@router.get(
    "/{campaign_id}/clone_prefill",
    operation_id="clone_prefill_bulk_call_campaign",
    summary="A create body copied from this campaign, not saved (contact ids capped at 1000)",
    responses=error_responses(404),
)
async def clone_prefill(ctx: CampaignsRead, campaign_id: PathId) -> Envelope[ClonePrefill]:
    return ok(ClonePrefill.model_validate(await campaigns.clone_prefill(ctx, campaign_id)))


@router.post(
    "/{campaign_id}/save_as_template",
    status_code=201,
    operation_id="save_bulk_call_campaign_as_template",
    summary="Save this campaign's configuration as a template",
    responses=error_responses(404, 409),
)
async def save_as_template(
    ctx: CampaignsWrite, campaign_id: PathId, body: Annotated[SaveAsTemplateBody | None, Body()] = None
) -> Envelope[TemplateOut]:
    template = await campaigns.save_as_template(ctx, campaign_id, body or SaveAsTemplateBody())
    return ok(TemplateOut.model_validate(template))


@router.get(
    "/{campaign_id}/tasks",
    operation_id="list_bulk_call_campaign_tasks",
    summary="The campaign's tasks (one per audience entry), in creation order",
    responses=error_responses(404),
)
async def list_tasks(
    ctx: CampaignsRead,
    campaign_id: PathId,
    pagination: Pagination,
    status: Annotated[TaskStatusName | None, Query(description="Only tasks in this status")] = None,
    outcome: Outcome = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> ListEnvelope[TaskOut]:
    rows, total = await tasks.list_tasks(
        ctx, campaign_id, status, outcome, pagination.page, pagination.per_page, date_from, date_to
    )
    return paged(rows, total, pagination.page, pagination.per_page)


@router.get(
    "/{campaign_id}/results_export",
    operation_id="export_bulk_call_campaign_results",
    summary="One row per task with its contact, variables, calls and extracted data (CSV or JSON lines)",
    description=(
        "Streamed in task order. With `from`/`to`: only tasks with an attempt ended in the range, and the "
        "attempt columns (`attempts`, `attempt_outcomes`, first/last call, talk, cost, extracted data) cover "
        "only those attempts. An error after the first byte aborts the transfer (the body is incomplete)."
    ),
    response_class=StreamingResponse,
    responses={**_export_responses("The tasks"), **error_responses(404)},
)
async def export_results(
    ctx: CampaignsRead,
    database: DatabaseDep,
    campaign_id: PathId,
    format: Format = exports.ExportFormat.CSV,
    status: Annotated[TaskStatusName | None, Query(description="Only tasks in this status")] = None,
    outcome: Outcome = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> StreamingResponse:
    export = await exports.prepare_results_export(ctx, campaign_id, format, status, outcome, date_from, date_to)
    return _download(exports.results_chunks(database, ctx.workspace_id, export), format, export.filename)


@router.get(
    "/{campaign_id}/tasks/{task_id}",
    operation_id="get_bulk_call_campaign_task",
    summary="One task, with every call attempt",
    responses=error_responses(404),
)
async def get_task(ctx: CampaignsRead, campaign_id: PathId, task_id: PathId) -> Envelope[TaskDetailOut]:
    return ok(await tasks.get_task(ctx, campaign_id, task_id))


@templates_router.get("", operation_id="list_bulk_call_campaign_templates", summary="List templates, newest first")
async def list_templates(
    ctx: CampaignsRead, pagination: Pagination, search: Search = None
) -> ListEnvelope[TemplateOut]:
    rows, total = await campaigns.list_templates(ctx, search, pagination.page, pagination.per_page)
    return paged([TemplateOut.model_validate(row) for row in rows], total, pagination.page, pagination.per_page)


@templates_router.get(
    "/{template_id}",
    operation_id="get_bulk_call_campaign_template",
    summary="Get a template",
    responses=error_responses(404),
)
async def get_template(ctx: CampaignsRead, template_id: PathId) -> Envelope[TemplateOut]:
    return ok(TemplateOut.model_validate(await campaigns.get_template(ctx, template_id)))


@templates_router.delete(
    "/{template_id}",
    status_code=204,
    operation_id="delete_bulk_call_campaign_template",
    summary="Delete a template (campaigns made from it keep their settings)",
    responses=error_responses(404),
)
async def delete_template(ctx: CampaignsWrite, template_id: PathId) -> Response:
    await campaigns.delete_template(ctx, template_id)
    return Response(status_code=204)
