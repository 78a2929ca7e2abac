"""Telephony providers (``telephony_connections.provider``): one sub-package per provider.

Each contributes its ``config`` schema and a class implementing :class:`bulkcall.providers.base.Provider`,
registered in :mod:`bulkcall.providers.registry`.
"""

from bulkcall.providers.base import ProviderConfig
from bulkcall.providers.registry import (
    PROVIDERS,
    ProviderSpec,
    UnknownProvider,
    get_provider,
    known_providers,
    load_config,
    parse_config,
)

__all__ = [
    "PROVIDERS",
    "ProviderConfig",
    "ProviderSpec",
    "UnknownProvider",
    "get_provider",
    "known_providers",
    "load_config",
    "parse_config",
]
