"""The providers bulkcall knows, and how a connection's ``config`` is checked against each one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bulkcall.providers.base import CallbackSink, Provider, ProviderConfig
from bulkcall.providers.http_agent import HttpAgentConfig
from bulkcall.providers.http_agent.provider import HttpAgentProvider
from bulkcall.providers.simulator import SimulatorConfig
from bulkcall.providers.simulator.provider import SimulatorProvider
from bulkcall.providers.twilio import TwilioConfig
from bulkcall.providers.twilio.provider import TwilioProvider


class UnknownProvider(LookupError):
    """The provider name is not registered; ``str(exc)`` lists the known ones."""


@dataclass(frozen=True)
class ProviderRuntime:
    """What a provider instance gets from the process that runs it."""

    deliver: CallbackSink | None  # where in-process providers hand callbacks in (None: parse-only)
    now: Callable[[], datetime]
    simulator_event_log: str | None = None


def _simulator(runtime: ProviderRuntime) -> Provider:
    return SimulatorProvider(
        runtime.deliver,
        runtime.now,
        Path(runtime.simulator_event_log) if runtime.simulator_event_log else None,
    )


def _twilio(runtime: ProviderRuntime) -> Provider:
    return TwilioProvider(runtime.now)


def _http_agent(runtime: ProviderRuntime) -> Provider:
    return HttpAgentProvider(runtime.now)


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    config_model: type[ProviderConfig]
    summary: str
    # Builds the dialing side; None while a provider can only be configured (its calls end as failed).
    factory: Callable[[ProviderRuntime], Provider] | None = None

    @property
    def secret_fields(self) -> frozenset[str]:
        return self.config_model.secret_fields


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec("simulator", SimulatorConfig, "A seeded model of a phone network", _simulator),
        ProviderSpec("twilio", TwilioConfig, "Twilio's REST API, or a compatible server", _twilio),
        ProviderSpec("http_agent", HttpAgentConfig, "Your own voice agent behind a signed HTTP endpoint", _http_agent),
    )
}


def known_providers() -> list[str]:
    return list(PROVIDERS)


def get_provider(name: str) -> ProviderSpec:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise UnknownProvider(f"unknown provider {name!r}; known providers: {', '.join(PROVIDERS)}") from None


def parse_config(provider: str, raw: Mapping[str, Any]) -> ProviderConfig:
    """Validate a full config (secrets included) for ``provider``; raises pydantic's ``ValidationError``."""
    return get_provider(provider).config_model.model_validate(dict(raw))


def load_config(provider: str, config: Mapping[str, Any], secrets: Mapping[str, str]) -> ProviderConfig:
    """Rebuild a stored connection's config from its two halves (for the code that dials)."""
    return parse_config(provider, {**config, **secrets})


def build_providers(runtime: ProviderRuntime) -> dict[str, Provider]:
    """One instance of every provider that can dial, keyed by name."""
    return {name: spec.factory(runtime) for name, spec in PROVIDERS.items() if spec.factory is not None}
