"""``/agents``: who conducts the calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from bulkcall.api.deps import AgentsRead, AgentsWrite, Pagination
from bulkcall.api.responses import error_responses, ok, paged
from bulkcall.schemas.agents import AgentCreate, AgentOut, AgentStatus, AgentUpdate
from bulkcall.schemas.base import MAX_ROW_ID, Envelope, ListEnvelope
from bulkcall.services import agents

AgentId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Agent id")]

router = APIRouter(prefix="/agents", tags=["agents"])


@router.get("", operation_id="list_agents", summary="List agents, newest first")
async def list_agents(
    ctx: AgentsRead,
    pagination: Pagination,
    status: Annotated[AgentStatus | None, Query(description="Only agents with this status")] = None,
) -> ListEnvelope[AgentOut]:
    rows, total = await agents.list_agents(ctx, status=status, page=pagination.page, per_page=pagination.per_page)
    return paged([AgentOut.model_validate(row) for row in rows], total, pagination.page, pagination.per_page)


@router.post("", status_code=201, operation_id="create_agent", summary="Create an agent")
async def create_agent(ctx: AgentsWrite, body: AgentCreate) -> Envelope[AgentOut]:
    return ok(AgentOut.model_validate(await agents.create_agent(ctx, body)))


@router.get("/{agent_id}", operation_id="get_agent", summary="Get an agent", responses=error_responses(404))
async def get_agent(ctx: AgentsRead, agent_id: AgentId) -> Envelope[AgentOut]:
    return ok(AgentOut.model_validate(await agents.get_agent(ctx, agent_id)))


@router.patch(
    "/{agent_id}",
    operation_id="update_agent",
    summary="Change an agent's name, runtime, variables or post-call webhook",
    responses=error_responses(404),
)
async def update_agent(ctx: AgentsWrite, agent_id: AgentId, body: AgentUpdate) -> Envelope[AgentOut]:
    return ok(AgentOut.model_validate(await agents.update_agent(ctx, agent_id, body)))


@router.post(
    "/{agent_id}/archive",
    operation_id="archive_agent",
    summary="Archive an agent (a no-op if already archived)",
    responses=error_responses(404),
)
async def archive_agent(ctx: AgentsWrite, agent_id: AgentId) -> Envelope[AgentOut]:
    return ok(AgentOut.model_validate(await agents.archive_agent(ctx, agent_id)))
