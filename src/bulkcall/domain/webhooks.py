"""Outbound webhook rules: the event types, which addresses are private, and when to try again."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

# Every event type an endpoint may subscribe to (``campaign_events.type``).
EVENT_TYPES: tuple[str, ...] = (
    "campaign.launched",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.cancelled",
    "campaign.completed",
    "campaign.health_degraded",
    "call.completed",
    "task.completed",
)


def subscribed(events: list[str], event_type: str) -> bool:
    """An endpoint's filter: an empty list means every event type."""
    return not events or event_type in events


def private_address(address: str) -> bool:
    """True for loopback, private, link-local, multicast, reserved and unspecified addresses (IPv4 and IPv6,
    including IPv4-mapped IPv6): nothing a public webhook receiver lives at."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


@dataclass(frozen=True)
class DeliveryRetryPolicy:
    """When an outbound webhook delivery is tried again, and when it is given up."""

    base_seconds: float = 10.0
    max_seconds: float = 4 * 3600.0
    max_attempts: int = 15
    give_up_after_seconds: float = 24 * 3600.0


def backoff_seconds(policy: DeliveryRetryPolicy, attempt: int, rng: random.Random) -> float:
    """Full jitter: a uniform wait in [0, min(max, base * 2^(attempt-1))] after failed attempt ``attempt``."""
    ceiling = min(policy.max_seconds, policy.base_seconds * 2 ** min(attempt - 1, 40))
    return rng.uniform(0.0, ceiling)


def next_delay(policy: DeliveryRetryPolicy, attempt: int, rng: random.Random, retry_after: float | None) -> float:
    """The wait before the next attempt: the jittered backoff, or the receiver's ``Retry-After`` when longer
    (capped at the policy's longest wait)."""
    delay = backoff_seconds(policy, attempt, rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_seconds))
    return delay


def gives_up(policy: DeliveryRetryPolicy, attempts: int, age_seconds: float) -> bool:
    """After a failed attempt: no more tries once the attempts or the delivery's age reach the policy's limit."""
    return attempts >= policy.max_attempts or age_seconds >= policy.give_up_after_seconds
