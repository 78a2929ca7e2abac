"""Queries on ``agents``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from bulkcall.db.models import Agent
from bulkcall.db.repositories.base import WorkspaceRepository


class AgentRepository(WorkspaceRepository[Agent]):
    model = Agent

    def list_query(self, *, status: str | None = None) -> Select[Any]:
        query = self.scoped()
        if status is not None:
            query = query.where(Agent.status == status)
        return query
