from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import ApiKey, Workspace


class WorkspaceStore:
    """Workspaces and API keys: the only queries that are not scoped to one workspace."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, workspace_id: int) -> Workspace | None:
        return await self.session.get(Workspace, workspace_id)

    async def by_name(self, name: str) -> Workspace | None:
        return (await self.session.execute(select(Workspace).where(Workspace.name == name))).scalar_one_or_none()

    async def create(self, name: str, now: datetime) -> Workspace:
        workspace = Workspace(name=name, concurrency_cap=None, created_at=now, updated_at=now)
        self.session.add(workspace)
        await self.session.flush()
        return workspace

    async def key_by_prefix(self, prefix: str) -> ApiKey | None:
        return (await self.session.execute(select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one_or_none()

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return (await self.session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))).scalar_one_or_none()

    async def add_key(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key
