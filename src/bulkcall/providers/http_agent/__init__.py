"""A team's own voice agent behind an HTTP endpoint: bulkcall POSTs signed call requests to it."""

from bulkcall.providers.http_agent.config import HttpAgentConfig

__all__ = ["HttpAgentConfig"]
