"""Telephony providers (``telephony_connections.provider``): one sub-package per provider.

For now each provider contributes only its ``config`` schema (see :mod:`bulkcall.providers.registry`);
the dialing interface joins it later.
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
