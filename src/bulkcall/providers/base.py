"""What every provider's ``config`` model shares: strictness, and write-only secret fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Protocol
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr, StringConstraints

from bulkcall.domain.calls import CallStatus
from bulkcall.domain.retries import Outcome


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if any(char.isspace() for char in value):
        raise ValueError("must not contain whitespace")
    return value


# A URL kept exactly as written (pydantic's HttpUrl would rewrite it, e.g. add a trailing slash).
HttpUrlText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(_check_http_url)]


class ProviderConfig(BaseModel):
    """Base of every provider's ``config``: unknown keys are refused, secrets are ``SecretStr``.

    ``secret_fields`` names the write-only fields: they are split from the config on write, stored
    apart (``telephony_connections.secrets``), and never rendered in a response or a log.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def public(self) -> dict[str, Any]:
        """The config without its secrets, as JSON-ready data (defaults filled in)."""
        return self.model_dump(mode="json", exclude=set(self.secret_fields))

    def secrets(self) -> dict[str, str]:
        """The secret fields' plain values (only those that are set)."""
        values: dict[str, str] = {}
        for name in sorted(self.secret_fields):
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                values[name] = value.get_secret_value()
        return values


# -- the dialing interface ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionInfo:
    """What a provider knows about one telephony connection when it dials or verifies a callback."""

    id: int
    workspace_id: int
    provider: str
    config: ProviderConfig
    signing_secret: str


@dataclass(frozen=True)
class CallRequest:
    """One call to place. ``idempotency_key`` is the attempt's: sending it twice must not make two calls."""

    attempt_id: int
    idempotency_key: str
    campaign_id: int
    task_id: int
    attempt_number: int
    to: str
    from_: str
    telephony_connection_id: int
    caller_phone_number_id: int
    variables: dict[str, Any]
    record: bool
    agent_id: int
    agent_runtime: dict[str, Any]
    callback_url: str
    requested_at: datetime  # service clock


@dataclass(frozen=True)
class PlacedCall:
    provider_call_id: str


class CallNotPlaced(Exception):
    """The provider answered that it did not place the call (the request certainly made no call)."""

    def __init__(self, outcome: Outcome, error: str) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error


class CallMaybePlaced(Exception):
    """The request may have reached the provider (timeout, dropped connection): it is never sent again."""


@dataclass(frozen=True)
class CallbackRequest:
    """An inbound provider callback as it arrived: full URL, headers (lower-case names), raw body."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CallEvent:
    """One status change of one call, parsed from a callback; ``dedupe_key`` identifies the event."""

    dedupe_key: str
    status: CallStatus
    attempt_id: int | None = None
    provider_call_id: str | None = None
    outcome: Outcome | None = None
    answered_by: str | None = None
    duration_seconds: float | None = None
    cost: float | None = None
    hangup_reason: str | None = None
    recording_url: str | None = None
    transcript: str | None = None
    extracted_data: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ConnectionCheck:
    """The answer to "does this connection work?", found without placing a call; ``detail`` never holds a secret."""

    ok: bool
    detail: str


class CallbackRejected(Exception):
    """The callback failed verification (bad or missing signature): answered 403, applied never."""


class CallbackMalformed(Exception):
    """The callback could not be read: answered 400."""


# Delivers a callback into ingestion (the simulator's way back; carriers use HTTP to the same place).
CallbackSink = Callable[[str, CallbackRequest], None]


class Provider(Protocol):
    """A carrier (or the simulator) behind one interface: place calls, read callbacks, look calls up."""

    name: str

    async def place_call(self, connection: ConnectionInfo, request: CallRequest) -> PlacedCall:
        """Start a call; raise :class:`CallNotPlaced` or :class:`CallMaybePlaced` when it did not plainly work."""
        ...

    def callback_connection_id(self, request: CallbackRequest) -> int | None:
        """Which connection's secret verifies this callback (None if the callback does not say)."""
        ...

    def parse_callback(self, connection: ConnectionInfo, request: CallbackRequest) -> list[CallEvent]:
        """Verify and read a callback; raise :class:`CallbackRejected` or :class:`CallbackMalformed`."""
        ...

    async def fetch_status(self, connection: ConnectionInfo, provider_call_id: str) -> CallEvent | None:
        """The call's final state if the provider can tell (reconciliation of lost callbacks), else None."""
        ...

    async def check_connection(self, connection: ConnectionInfo) -> ConnectionCheck:
        """Check credentials and reachability without placing a call (``POST /telephony_connections/{id}/test``)."""
        ...

    async def aclose(self) -> None: ...
