"""Periodic sweeps, each one short transaction per campaign, safe to run in several processes at once."""

from __future__ import annotations

from bulkcall.db.engine import Database
from bulkcall.db.repositories.campaigns import due_scheduled_campaigns
from bulkcall.kit.clock import Clock
from bulkcall.kit.logging import get_logger
from bulkcall.services import campaigns
from bulkcall.services.context import ServiceContext

log = get_logger("bulkcall.dispatch")


async def start_scheduled_campaigns(database: Database, clock: Clock) -> int:
    """Move every scheduled campaign whose ``scheduled_at`` has come to running; returns how many."""
    async with database.session(write=False) as session:
        due = await due_scheduled_campaigns(session, clock.now())
    started = 0
    for workspace_id, campaign_id in due:
        async with database.session(write=True) as session, session.begin():
            ctx = ServiceContext(session=session, workspace_id=workspace_id, now=clock.now())
            # Re-read under the row lock: another process may have started it meanwhile.
            campaign = await campaigns.get_campaign(ctx, campaign_id, for_update=True)
            if await campaigns.start_due(ctx, campaign):
                started += 1
                log.info("campaign_started", campaign_id=campaign_id)
    return started
