"""Webhook rules: private addresses, backoff with full jitter, Retry-After, when to give up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkcall.domain.webhooks import (
    DeliveryRetryPolicy,
    backoff_seconds,
    gives_up,
    next_delay,
    private_address,
    subscribed,
)
from bulkcall.kit.retry_after import parse_retry_after

NOW = datetime(2026, 6, 3, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::",
    ],
)
def test_private_addresses(address: str) -> None:
    assert private_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert not private_address(address)


def test_an_empty_filter_means_every_event() -> None:
    assert subscribed([], "task.completed")
    assert subscribed(["task.completed"], "task.completed")
    assert not subscribed(["call.completed"], "task.completed")


@given(attempt=st.integers(min_value=1, max_value=100), seed=st.integers(min_value=0, max_value=2**32))
def test_full_jitter_stays_under_the_exponential_ceiling(attempt: int, seed: int) -> None:
    policy = DeliveryRetryPolicy(base_seconds=10, max_seconds=3600)
    delay = backoff_seconds(policy, attempt, random.Random(seed))
    assert 0 <= delay <= min(3600, 10 * 2 ** (attempt - 1))


def test_jitter_spreads_the_waits() -> None:
    rng = random.Random(3)
    waits = [backoff_seconds(DeliveryRetryPolicy(base_seconds=10), 5, rng) for _ in range(200)]
    assert min(waits) < 40
    assert max(waits) > 120


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    policy = DeliveryRetryPolicy(base_seconds=10, max_seconds=600)
    assert next_delay(policy, 1, random.Random(1), 120) == 120
    assert next_delay(policy, 1, random.Random(1), 86_400) == 600
    assert next_delay(policy, 1, random.Random(1), None) <= 10


def test_retry_after_as_seconds_or_an_http_date() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after(" 0 ", NOW) == 0
    http_date = (NOW + timedelta(minutes=3)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(http_date, NOW) == 180
    past = (NOW - timedelta(minutes=3)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(past, NOW) == 0
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("-5", NOW) is None


def test_giving_up_after_the_attempts_or_the_age() -> None:
    policy = DeliveryRetryPolicy(max_attempts=3, give_up_after_seconds=3600)
    assert not gives_up(policy, 2, 100)
    assert gives_up(policy, 3, 100)
    assert gives_up(policy, 1, 3600)
