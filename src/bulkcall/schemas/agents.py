"""Request and response shapes of ``/agents``."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from bulkcall.providers.base import HttpUrlText
from bulkcall.schemas.base import Name, PatchModel, RequestModel, ResponseModel, UtcDatetime

AgentStatus = Literal["active", "archived"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError("must be an identifier: letters, digits and _, not starting with a digit")
    return name


VariableName = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_identifier),
    Field(description="An identifier: letters, digits and _, not starting with a digit"),
]


def _unique(names: list[str]) -> list[str]:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"variable names must be unique; repeated: {', '.join(duplicates)}")
    return names


Variables = Annotated[
    list[VariableName],
    Field(max_length=500, description="Names of the variables the agent expects (unique)"),
    AfterValidator(_unique),
]
Runtime = Annotated[
    dict[str, Any],
    Field(description="Provider-specific configuration, e.g. an assistant id, a TwiML/stream URL, a simulator profile"),
]


class AgentCreate(RequestModel):
    name: Name
    runtime: Runtime = Field(default_factory=dict)
    variables: Variables = Field(default_factory=list)
    post_call_webhook_url: HttpUrlText | None = None


class AgentUpdate(PatchModel):
    nullable_fields = frozenset({"post_call_webhook_url"})

    name: Name | None = None
    runtime: Runtime | None = None
    variables: Variables | None = None
    post_call_webhook_url: HttpUrlText | None = None


class AgentOut(ResponseModel):
    id: int
    name: str
    status: AgentStatus = Field(description="active, or archived (read-only; see POST /agents/{id}/archive)")
    runtime: dict[str, Any]
    variables: list[str]
    post_call_webhook_url: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
