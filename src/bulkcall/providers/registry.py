"""The providers bulkcall knows, and how a connection's ``config`` is checked against each one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bulkcall.providers.base import ProviderConfig
from bulkcall.providers.http_agent import HttpAgentConfig
from bulkcall.providers.simulator import SimulatorConfig
from bulkcall.providers.twilio import TwilioConfig


class UnknownProvider(LookupError):
    """The provider name is not registered; ``str(exc)`` lists the known ones."""


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    config_model: type[ProviderConfig]
    summary: str

    @property
    def secret_fields(self) -> frozenset[str]:
        return self.config_model.secret_fields


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec("simulator", SimulatorConfig, "A seeded model of a phone network"),
        ProviderSpec("twilio", TwilioConfig, "Twilio's REST API, or a compatible server"),
        ProviderSpec("http_agent", HttpAgentConfig, "Your own voice agent behind a signed HTTP endpoint"),
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
