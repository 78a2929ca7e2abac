"""Request and response shapes of ``/telephony_connections``. Secrets are accepted, never returned."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from bulkcall.db.models import TelephonyConnection
from bulkcall.providers import PROVIDERS, UnknownProvider, get_provider, known_providers
from bulkcall.schemas.base import Name, PatchModel, RequestModel, ResponseModel, UtcDatetime


def _known(name: str) -> str:
    try:
        get_provider(name)
    except UnknownProvider as exc:
        raise ValueError(str(exc)) from None
    return name


ProviderName = Annotated[
    str,
    AfterValidator(_known),
    Field(json_schema_extra={"enum": known_providers()}, description="Which provider dials through this connection"),
]


def _config_keys() -> str:
    parts = []
    for spec in PROVIDERS.values():
        keys = [f"{key} (write-only)" if key in spec.secret_fields else key for key in spec.config_model.model_fields]
        parts.append(f"{spec.name}: {', '.join(keys)}")
    return "; ".join(parts)


ConfigBody = Annotated[
    dict[str, Any],
    Field(description=f"Provider settings, checked per provider; unknown keys are refused. {_config_keys()}"),
]
ConcurrencyLimit = Annotated[int, Field(ge=1, le=10_000, description="Simultaneous calls through this connection")]
CallsPerSecond = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False, description="New calls per second")]


class TelephonyConnectionCreate(RequestModel):
    name: Name
    provider: ProviderName
    config: ConfigBody = Field(default_factory=dict)
    concurrency_limit: ConcurrencyLimit = 10
    calls_per_second: CallsPerSecond = 1.0


class TelephonyConnectionUpdate(PatchModel):
    """``config`` is merged into the stored one: omitted keys (secrets included) keep their value."""

    name: Name | None = None
    provider: ProviderName | None = Field(default=None, description="Cannot change; accepted if unchanged")
    config: ConfigBody | None = None
    concurrency_limit: ConcurrencyLimit | None = None
    calls_per_second: CallsPerSecond | None = None


class TelephonyConnectionOut(ResponseModel):
    id: int
    name: str
    provider: str
    config: dict[str, Any] = Field(description="Provider settings without secrets, defaults filled in")
    secrets_set: list[str] = Field(description="Names of the write-only secrets that are set (never their values)")
    concurrency_limit: int
    calls_per_second: float
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def from_row(cls, row: TelephonyConnection) -> TelephonyConnectionOut:
        return cls(
            id=row.id,
            name=row.name,
            provider=row.provider,
            config=row.config,
            secrets_set=sorted(row.secrets),
            concurrency_limit=row.concurrency_limit,
            calls_per_second=row.calls_per_second,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class ConnectionTestOut(ResponseModel):
    ok: bool = Field(description="Whether the provider answered as a working connection should")
    provider: str
    detail: str = Field(description="What was checked and what came back (never a credential)")
    latency_ms: int = Field(description="Wall-clock milliseconds the check took")
