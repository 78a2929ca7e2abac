"""Listing the receipts of inbound provider callbacks (what ``dispatch/ingestion.py`` stored)."""

from __future__ import annotations

from bulkcall.db.models import ProviderCallback
from bulkcall.db.repositories.receipts import ReceiptRepository
from bulkcall.services.campaigns import get_campaign
from bulkcall.services.context import ServiceContext


async def list_receipts(
    ctx: ServiceContext, campaign_id: int | None, verdict: str | None, page: int, per_page: int
) -> tuple[list[ProviderCallback], int]:
    """Another workspace's (or no) campaign is a 404, like any id of another workspace."""
    if campaign_id is not None:
        await get_campaign(ctx, campaign_id)
    repo = ReceiptRepository(ctx.session, ctx.workspace_id)
    return await repo.page(repo.filtered(campaign_id, verdict), page, per_page)
