"""``/webhook_receipts``: every inbound provider callback with its dedupe verdict, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from bulkcall.api.deps import Pagination, WebhooksRead
from bulkcall.api.responses import error_responses, paged
from bulkcall.schemas.base import ListEnvelope, RowId
from bulkcall.schemas.receipts import ReceiptOut, ReceiptVerdict
from bulkcall.services import receipts

router = APIRouter(prefix="/webhook_receipts", tags=["webhook_receipts"])


@router.get(
    "",
    operation_id="list_webhook_receipts",
    summary="Inbound provider callbacks with their dedupe verdict and what they touched, newest first",
    description="`campaign_id` of another workspace (or of no campaign) is a 404.",
    responses=error_responses(404),
)
async def list_receipts(
    ctx: WebhooksRead,
    pagination: Pagination,
    campaign_id: Annotated[RowId | None, Query(description="Only callbacks that touched this campaign")] = None,
    verdict: Annotated[ReceiptVerdict | None, Query(description="Only callbacks with this verdict")] = None,
) -> ListEnvelope[ReceiptOut]:
    rows, total = await receipts.list_receipts(ctx, campaign_id, verdict, pagination.page, pagination.per_page)
    return paged([ReceiptOut.model_validate(row) for row in rows], total, pagination.page, pagination.per_page)
