from __future__ import annotations

from pydantic import Field

from bulkcall.schemas.base import Name, PatchModel, ResponseModel, UtcDatetime


class WorkspaceOut(ResponseModel):
    id: int
    name: str
    concurrency_cap: int | None = Field(description="Tenant-wide limit on simultaneous calls; null = none")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class WorkspaceUpdate(PatchModel):
    nullable_fields = frozenset({"concurrency_cap"})

    name: Name | None = None
    concurrency_cap: int | None = Field(default=None, ge=1, le=100_000)
