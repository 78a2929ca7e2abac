from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import IdempotencyRecord


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        result = await self.session.execute(
            select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
        )
        return result.scalar_one_or_none()

    async def start(self, scope: str, key: str, request_hash: str, now: datetime) -> None:
        self.session.add(IdempotencyRecord(scope=scope, key=key, request_hash=request_hash, created_at=now))
        await self.session.flush()

    async def delete(self, record: IdempotencyRecord) -> None:
        await self.session.delete(record)
        await self.session.flush()

    async def forget(self, scope: str, key: str) -> None:
        await self.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
        )

    async def finish(self, scope: str, key: str, status: int, body: bytes, content_type: str | None) -> None:
        await self.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            .values(status_code=status, response_body=body, content_type=content_type)
        )
