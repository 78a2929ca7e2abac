"""Bounded retries with backoff for providers' HTTP requests."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of answers that prove no call was made: ``tries`` in all, delays doubling from
    ``backoff_seconds`` (a ``Retry-After`` is honoured up to ``max_delay_seconds``)."""

    tries: int = 3
    backoff_seconds: float = 0.25
    max_delay_seconds: float = 2.0

    def delay(self, try_number: int, retry_after: str | None) -> float:
        delay: float = self.backoff_seconds * 2 ** (try_number - 1)
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))
        return min(delay, self.max_delay_seconds)
