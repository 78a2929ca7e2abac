"""Bounded retries with backoff for providers' HTTP requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bulkcall.kit.retry_after import parse_retry_after


@dataclass(frozen=True)
class RequestRetryPolicy:
    """Bounded retries of answers that prove no call was made: ``tries`` in all, delays doubling from
    ``backoff_seconds`` (a ``Retry-After`` is honoured up to ``max_delay_seconds``)."""

    tries: int = 3
    backoff_seconds: float = 0.25
    max_delay_seconds: float = 2.0

    def delay(self, try_number: int, retry_after: str | None) -> float:
        delay: float = self.backoff_seconds * 2 ** (try_number - 1)
        asked = parse_retry_after(retry_after, datetime.now(UTC))  # wall clock: this waits in real time
        if asked is not None:
            delay = max(delay, asked)
        return min(delay, self.max_delay_seconds)
