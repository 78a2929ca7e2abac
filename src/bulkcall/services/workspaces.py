"""Workspaces and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import ApiKey, Workspace
from bulkcall.db.repositories.workspaces import WorkspaceStore
from bulkcall.domain import api_keys
from bulkcall.kit.errors import NotFound, ValidationFailed
from bulkcall.schemas.workspace import WorkspaceUpdate
from bulkcall.services.context import ServiceContext


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: its workspace and what its key may do."""

    workspace_id: int
    api_key_id: int
    scopes: frozenset[str]


async def authenticate(session: AsyncSession, presented_key: str) -> Principal | None:
    if not api_keys.looks_like_key(presented_key):
        return None
    key = await WorkspaceStore(session).key_by_prefix(api_keys.lookup_prefix(presented_key))
    if key is None or key.revoked_at is not None or not api_keys.key_matches(presented_key, key.key_hash):
        return None
    return Principal(workspace_id=key.workspace_id, api_key_id=key.id, scopes=frozenset(key.scopes))


async def create_key(
    session: AsyncSession,
    workspace_name: str,
    scopes: list[str] | None,
    now: datetime,
    name: str | None = None,
) -> tuple[Workspace, str]:
    """Create the workspace if needed and a new key for it; the plain key is returned once, never stored."""
    chosen = scopes if scopes else list(api_keys.SCOPES)
    unknown = api_keys.unknown_scopes(chosen)
    if unknown:
        raise ValidationFailed.single("scopes", f"unknown scope(s): {', '.join(unknown)}")
    store = WorkspaceStore(session)
    workspace = await store.by_name(workspace_name) or await store.create(workspace_name, now)
    plain = api_keys.generate_key()
    await store.add_key(
        ApiKey(
            workspace_id=workspace.id,
            name=name,
            prefix=api_keys.lookup_prefix(plain),
            key_hash=api_keys.hash_key(plain),
            scopes=chosen,
            created_at=now,
        )
    )
    return workspace, plain


async def ensure_bootstrap_key(session: AsyncSession, plain_key: str, now: datetime) -> None:
    """Make sure workspace ``default`` exists and ``plain_key`` opens it with every scope."""
    if not api_keys.looks_like_key(plain_key):
        raise ValueError("BULKCALL_BOOTSTRAP_API_KEY must look like sk_ followed by at least 13 characters")
    store = WorkspaceStore(session)
    existing = await store.key_by_hash(api_keys.hash_key(plain_key))
    if existing is not None:
        return
    if await store.key_by_prefix(api_keys.lookup_prefix(plain_key)) is not None:
        raise ValueError("BULKCALL_BOOTSTRAP_API_KEY shares its first characters with another key; choose another")
    workspace = await store.by_name("default") or await store.create("default", now)
    await store.add_key(
        ApiKey(
            workspace_id=workspace.id,
            name="bootstrap",
            prefix=api_keys.lookup_prefix(plain_key),
            key_hash=api_keys.hash_key(plain_key),
            scopes=list(api_keys.SCOPES),
            created_at=now,
        )
    )


async def get_workspace(ctx: ServiceContext) -> Workspace:
    workspace = await WorkspaceStore(ctx.session).get(ctx.workspace_id)
    if workspace is None:
        raise NotFound("workspace")
    return workspace


async def update_workspace(ctx: ServiceContext, changes: WorkspaceUpdate) -> Workspace:
    workspace = await get_workspace(ctx)
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(workspace, field, value)
    workspace.updated_at = ctx.now
    await ctx.session.flush()
    return workspace
