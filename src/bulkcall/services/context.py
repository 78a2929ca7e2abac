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
