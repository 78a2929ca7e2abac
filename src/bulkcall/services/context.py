from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class ServiceContext:
    """What every workspace-scoped use case needs: the open transaction, the tenant and the time."""

    session: AsyncSession
    workspace_id: int
    now: datetime

    async def release_locks(self) -> None:
        """End the request's transaction before waiting on the network (a provider, a resolver): no lock, SQLite's
        write lock above all (every dispatcher write waits for it), is held for seconds. Call it before writing."""
        await self.session.commit()
