"""Queries on ``telephony_connections``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from bulkcall.db.models import TelephonyConnection
from bulkcall.db.repositories.base import WorkspaceRepository


class TelephonyConnectionRepository(WorkspaceRepository[TelephonyConnection]):
    model = TelephonyConnection

    def list_query(self, *, provider: str | None = None) -> Select[Any]:
        query = self.scoped()
        if provider is not None:
            query = query.where(TelephonyConnection.provider == provider)
        return query
