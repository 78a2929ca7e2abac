"""Agents: who conducts the call. Archived agents stay readable; archiving is the only way out."""

from __future__ import annotations

from bulkcall.db.models import Agent
from bulkcall.db.repositories.agents import AgentRepository
from bulkcall.kit.errors import NotFound
from bulkcall.schemas.agents import AgentCreate, AgentUpdate
from bulkcall.services.context import ServiceContext


def _repo(ctx: ServiceContext) -> AgentRepository:
    return AgentRepository(ctx.session, ctx.workspace_id)


async def get_agent(ctx: ServiceContext, agent_id: int) -> Agent:
    agent = await _repo(ctx).get(agent_id)
    if agent is None:
        raise NotFound("agent", agent_id)
    return agent


async def list_agents(ctx: ServiceContext, *, status: str | None, page: int, per_page: int) -> tuple[list[Agent], int]:
    repo = _repo(ctx)
    return await repo.page(repo.list_query(status=status), page, per_page)


async def create_agent(ctx: ServiceContext, body: AgentCreate) -> Agent:
    repo = _repo(ctx)
    agent = repo.add(
        Agent(
            workspace_id=ctx.workspace_id,
            name=body.name,
            status="active",
            runtime=body.runtime,
            variables=body.variables,
            post_call_webhook_url=body.post_call_webhook_url,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
    )
    await repo.flush()
    return agent


async def update_agent(ctx: ServiceContext, agent_id: int, changes: AgentUpdate) -> Agent:
    """Apply the fields present in ``changes``; archived agents may still be edited."""
    agent = await get_agent(ctx, agent_id)
    values = changes.model_dump(exclude_unset=True)
    if values:
        for field, value in values.items():
            setattr(agent, field, value)
        agent.updated_at = ctx.now
        await ctx.session.flush()
    return agent


async def archive_agent(ctx: ServiceContext, agent_id: int) -> Agent:
    """Archive the agent; archiving an archived agent changes nothing."""
    agent = await get_agent(ctx, agent_id)
    if agent.status != "archived":
        agent.status = "archived"
        agent.updated_at = ctx.now
        await ctx.session.flush()
    return agent
