from __future__ import annotations

from fastapi import APIRouter

from bulkcall.api.deps import AnyKey, CampaignsWrite
from bulkcall.api.responses import ok
from bulkcall.schemas.base import Envelope
from bulkcall.schemas.workspace import WorkspaceOut, WorkspaceUpdate
from bulkcall.services import workspaces

router = APIRouter(prefix="/workspace", tags=["workspace"])


@router.get("", operation_id="get_workspace", summary="The caller's workspace")
async def get_workspace(ctx: AnyKey) -> Envelope[WorkspaceOut]:
    return ok(WorkspaceOut.model_validate(await workspaces.get_workspace(ctx)))


@router.patch(
    "",
    operation_id="update_workspace",
    summary="Rename the workspace or set its concurrency cap (needs bulk_call_campaigns:write)",
)
async def update_workspace(ctx: CampaignsWrite, body: WorkspaceUpdate) -> Envelope[WorkspaceOut]:
    return ok(WorkspaceOut.model_validate(await workspaces.update_workspace(ctx, body)))
