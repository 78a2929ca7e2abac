"""``/bulk_call_campaigns/{id}/analytics`` and ``/dispatch_health``: what a campaign did and how it is dialing."""

from __future__ import annotations

from fastapi import APIRouter

from bulkcall.api.deps import CampaignsRead, DateFrom, DateTo, PathId
from bulkcall.api.responses import error_responses, ok
from bulkcall.schemas.base import Envelope
from bulkcall.schemas.insight import Analytics, DispatchHealth
from bulkcall.services import insight

router = APIRouter(prefix="/bulk_call_campaigns", tags=["bulk_call_campaigns"])


@router.get(
    "/{campaign_id}/analytics",
    operation_id="get_bulk_call_campaign_analytics",
    summary="Outcomes, rates, talk time, cost, retries, caller numbers, daily and hour-of-day series",
    description=(
        "Attempts that ended between `from` 00:00 and the end of `to` (inclusive dates, campaign timezone); "
        "both optional. A bad date or `to` before `from` is a 422."
    ),
    responses=error_responses(404),
)
async def campaign_analytics(
    ctx: CampaignsRead,
    campaign_id: PathId,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> Envelope[Analytics]:
    return ok(await insight.analytics(ctx, campaign_id, date_from, date_to))


@router.get(
    "/{campaign_id}/dispatch_health",
    operation_id="get_bulk_call_campaign_dispatch_health",
    summary="Whether the campaign is dialing as it should: status with reasons, limits, queue, numbers",
    responses=error_responses(404),
)
async def campaign_dispatch_health(ctx: CampaignsRead, campaign_id: PathId) -> Envelope[DispatchHealth]:
    return ok(await insight.dispatch_health(ctx, campaign_id))
