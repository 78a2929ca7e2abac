"""Planning helpers under ``/bulk_call_campaigns``: capacity preview and audience timezone analysis.

Both read only (the POST forms take a plan that is not saved), so they need the read scope.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from bulkcall.api.deps import CampaignsRead, PathId
from bulkcall.api.responses import error_responses, ok
from bulkcall.schemas.base import Envelope
from bulkcall.schemas.planning import (
    AnswerRate,
    AvgCallSeconds,
    CapacityPreviewBody,
    CapacityPreviewOut,
    TimezoneAnalysisBody,
    TimezoneAnalysisOut,
)
from bulkcall.services import planning

router = APIRouter(prefix="/bulk_call_campaigns", tags=["bulk_call_campaigns"])


@router.post(
    "/capacity_preview",
    operation_id="preview_bulk_call_campaign_capacity",
    summary="Limits, throughput and an estimated duration for a plan (numbers, audience, windows), not saved",
    responses=error_responses(404),
)
async def capacity_preview(ctx: CampaignsRead, body: CapacityPreviewBody) -> Envelope[CapacityPreviewOut]:
    return ok(await planning.capacity_preview(ctx, body))


@router.get(
    "/{campaign_id}/capacity_preview",
    operation_id="get_bulk_call_campaign_capacity_preview",
    summary="The capacity preview of a campaign (its own call history replaces the inputs once it has one)",
    responses=error_responses(404),
)
async def campaign_capacity_preview(
    ctx: CampaignsRead,
    campaign_id: PathId,
    avg_call_seconds: Annotated[AvgCallSeconds | None, Query()] = None,
    expected_answer_rate: Annotated[AnswerRate | None, Query()] = None,
) -> Envelope[CapacityPreviewOut]:
    return ok(
        await planning.campaign_capacity_preview(
            ctx, campaign_id, avg_call_seconds=avg_call_seconds, expected_answer_rate=expected_answer_rate
        )
    )


@router.post(
    "/audience_timezone_analysis",
    operation_id="analyse_bulk_call_audience_timezones",
    summary="Where an audience lives and when it can be called under the windows (grouped by zone)",
    responses=error_responses(404),
)
async def timezone_analysis(ctx: CampaignsRead, body: TimezoneAnalysisBody) -> Envelope[TimezoneAnalysisOut]:
    return ok(await planning.timezone_analysis(ctx, body))


@router.get(
    "/{campaign_id}/audience_timezone_analysis",
    operation_id="get_bulk_call_campaign_audience_timezone_analysis",
    summary="The timezone analysis of a campaign's audience (once launched: its tasks' zones)",
    responses=error_responses(404),
)
async def campaign_timezone_analysis(
    ctx: CampaignsRead,
    campaign_id: PathId,
    at: Annotated[AwareDatetime | None, Query(description="The instant analysed (default now)")] = None,
) -> Envelope[TimezoneAnalysisOut]:
    return ok(await planning.campaign_timezone_analysis(ctx, campaign_id, at))
