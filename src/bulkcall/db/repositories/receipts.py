"""The receipts: every inbound provider callback of a workspace, with its verdict."""

from __future__ import annotations

from typing import Any

from bulkcall.db.models import ProviderCallback
from bulkcall.db.repositories.base import WorkspaceRepository


class ReceiptRepository(WorkspaceRepository[ProviderCallback]):
    model = ProviderCallback

    def filtered(self, campaign_id: int | None, verdict: str | None) -> Any:
        """Newest first; ``(workspace_id, id)``, ``(campaign_id, id)`` and ``(workspace_id, verdict, id)`` serve it."""
        query = self.scoped()
        if campaign_id is not None:
            query = query.where(ProviderCallback.campaign_id == campaign_id)
        if verdict is not None:
            query = query.where(ProviderCallback.verdict == verdict)
        return query.order_by(ProviderCallback.id.desc())
