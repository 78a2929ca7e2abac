"""Outbound webhooks: the fan-out (events to deliveries) and the sender (deliveries to signed POSTs).

One loop (:meth:`WebhookSender.run`) in ``bulkcall serve`` and ``bulkcall worker``:

1. **Fan-out** (one write transaction per batch; PostgreSQL: one process at a time by an advisory lock):
   read ``campaign_events`` after the cursor, insert one ``pending`` delivery per enabled endpoint of the
   event's workspace subscribed to its type (``INSERT ... SELECT``, idempotent by the unique
   (endpoint, event) pair), move the cursor. On PostgreSQL the cursor follows the writing transactions'
   ids and stops below the oldest transaction still running, so an event committed late is never skipped.
2. **Claim** due deliveries of enabled endpoints (PostgreSQL: ``FOR UPDATE SKIP LOCKED``) and lease them
   (wall clock, longer than the HTTP timeout) to this sender; each claim is the next attempt.
3. **Send** them concurrently: httpx, a timeout, redirects not followed, signed per Standard Webhooks with
   ``webhook-id`` = the event id (the same on every retry, so receivers can dedupe); the destination is
   checked again for private addresses unless they are allowed.
4. **Record** every attempt (status, latency, the start of the body, the error) and decide: 2xx succeeded;
   else retry after exponential backoff with full jitter (or ``Retry-After``), or give up after the
   attempt/age limit; an endpoint is disabled after ``disable_after`` deliveries given up in a row.

Scheduling uses the injected clock (tests drive retries without sleeping); leases and the signature's
timestamp use the wall clock (they are about live processes and the receiver's replay window).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bulkcall import __version__
from bulkcall.db.engine import Database
from bulkcall.db.repositories import webhooks as queries
from bulkcall.domain.webhooks import DeliveryRetryPolicy, gives_up, next_delay
from bulkcall.kit import wakeup
from bulkcall.kit.clock import Clock
from bulkcall.kit.logging import get_logger
from bulkcall.kit.retry_after import parse_retry_after
from bulkcall.kit.standard_webhooks import sign
from bulkcall.services.webhooks import url_problem
from bulkcall.settings import Settings

log = get_logger("bulkcall.webhooks")

RESPONSE_BODY_CHARS = 1000
_LEASE_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class WebhookConfig:
    timeout_seconds: float = 10.0
    policy: DeliveryRetryPolicy = field(default_factory=DeliveryRetryPolicy)
    disable_after: int = 20  # deliveries given up in a row
    poll_seconds: float = 1.0
    allow_private: bool = False
    batch_size: int = 50  # deliveries one round sends
    fanout_batch: int = 1000  # events one fan-out transaction reads
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


def webhook_config(settings: Settings) -> WebhookConfig:
    return WebhookConfig(
        timeout_seconds=settings.webhook_timeout_seconds,
        policy=DeliveryRetryPolicy(
            base_seconds=settings.webhook_retry_base_seconds,
            max_seconds=settings.webhook_retry_max_seconds,
            max_attempts=settings.webhook_max_attempts,
            give_up_after_seconds=settings.webhook_give_up_after_seconds,
        ),
        disable_after=settings.webhook_disable_after_failures,
        poll_seconds=settings.webhook_poll_seconds,
        allow_private=settings.allow_private_webhook_urls,
    )


@dataclass(frozen=True)
class _Result:
    started_at: datetime
    status_code: int | None = None
    latency_ms: float | None = None
    body: str | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def describe(self) -> str:
        return f"HTTP {self.status_code}" if self.status_code is not None else (self.error or "no response")


def payload(claim: queries.Claimed) -> bytes:
    """The body every delivery of an event carries: ``{"type", "event_id", "created_at", "data"}``."""
    created = claim.event_created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = {"type": claim.event_type, "event_id": claim.event_id, "created_at": created, "data": claim.data}
    return json.dumps(body, separators=(",", ":"), default=str).encode()


class WebhookSender:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        config: WebhookConfig | None = None,
        *,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.config = config or WebhookConfig()
        self._rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.timeout_seconds),
            follow_redirects=False,
            transport=transport,
            headers={"user-agent": f"bulkcall-webhooks/{__version__}", "content-type": "application/json"},
        )
        self._wake = asyncio.Event()
        self.sent = 0

    def wake(self) -> None:
        self._wake.set()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- the loop --------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Fan out and send until ``stop`` is set; polling is the backstop for wake-ups (launch, resume)."""
        unsubscribe = wakeup.subscribe(self.wake)
        try:
            while not stop.is_set():
                self._wake.clear()
                busy = 0
                try:
                    busy = await self.run_once()
                except Exception:
                    log.exception("webhook_round_failed")
                if busy == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)
        finally:
            unsubscribe()
            await self.aclose()

    async def run_once(self) -> int:
        """Fan out what is new (up to 20 batches), then send one batch. Returns the deliveries attempted, plus
        one when events are still waiting to be fanned out: what calls for another round at once."""
        backlog = 1
        for _ in range(20):
            if await self.fan_out_once() < self.config.fanout_batch:
                backlog = 0
                break
        return backlog + await self.send_once()

    # -- fan-out ---------------------------------------------------------------------------------------------

    async def fan_out_once(self) -> int:
        """Turn the next batch of events into deliveries; returns how many events were read."""
        async with self.database.session(write=False) as reading:
            if not await queries.anything_after(reading):
                return 0  # nothing new: no write lock taken (SQLite has one writer at a time)
        async with self.database.session(write=True) as session, session.begin():
            if not await queries.try_fanout_lock(session):
                return 0
            cursor = await queries.fanout_cursor(session)
            keys = await queries.next_events(session, cursor, self.config.fanout_batch)
            if not keys:
                return 0
            created = await queries.fan_out(session, cursor, keys[-1], self.clock.now())
        if created:
            log.info("webhook_deliveries_created", events=len(keys), deliveries=created)
        return len(keys)

    # -- sending ---------------------------------------------------------------------------------------------

    async def send_once(self) -> int:
        """Claim, send and record one batch of due deliveries; returns how many were attempted."""
        async with self.database.session(write=False) as reading:
            if not await queries.anything_due(reading, self.clock.now()):
                return 0
        token = uuid.uuid4().hex
        wall_now = datetime.now(UTC)
        lease_until = wall_now + timedelta(seconds=self.config.timeout_seconds + _LEASE_MARGIN_SECONDS)
        async with self.database.session(write=True) as session, session.begin():
            claims = await queries.claim_due(
                session, self.clock.now(), wall_now, lease_until, token, self.config.batch_size
            )
        if not claims:
            return 0
        results = await asyncio.gather(*(self._send(claim) for claim in claims))
        await self._record(claims, results, token)
        self.sent += len(claims)
        return len(claims)

    async def _send(self, claim: queries.Claimed) -> _Result:
        started = self.clock.now()
        if not self.config.allow_private:
            problem = await url_problem(claim.url, allow_private=False)
            if problem is not None:
                return _Result(started, error=f"not sent: the URL {problem}")
        body = payload(claim)
        headers = sign(claim.secret, str(claim.event_id), int(time.time()), body).as_dict()
        began = time.monotonic()
        try:
            async with self._client.stream("POST", claim.url, content=body, headers=headers) as response:
                text = await _read_start(response)
                return _Result(
                    started,
                    status_code=response.status_code,
                    latency_ms=round((time.monotonic() - began) * 1000, 1),
                    body=text,
                    retry_after=parse_retry_after(response.headers.get("retry-after"), self.clock.now()),
                )
        except httpx.TimeoutException:
            error = f"timed out after {self.config.timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
        return _Result(started, latency_ms=round((time.monotonic() - began) * 1000, 1), error=error)

    async def _record(self, claims: list[queries.Claimed], results: list[_Result], token: str) -> None:
        policy = self.config.policy
        disabled: list[int] = []
        async with self.database.session(write=True) as session, session.begin():
            # Endpoints in id order: two senders updating the same endpoints never wait for each other in a cycle.
            for claim, result in sorted(zip(claims, results, strict=True), key=lambda pair: pair[0].endpoint_id):
                now = self.clock.now()
                values: dict[str, Any] = {
                    "last_attempt_at": result.started_at,
                    "last_status_code": result.status_code,
                    "last_error": None if result.succeeded else result.describe(),
                }
                gave_up = False
                if result.succeeded:
                    values.update(status="succeeded", completed_at=now, next_attempt_at=None)
                elif gives_up(policy, claim.attempt_number, (now - claim.created_at).total_seconds()):
                    gave_up = True
                    values.update(status="failed", completed_at=now, next_attempt_at=None)
                else:
                    delay = next_delay(policy, claim.attempt_number, self._rng, result.retry_after)
                    values.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
                attempt = {
                    "attempt_number": claim.attempt_number,
                    "started_at": result.started_at,
                    "status_code": result.status_code,
                    "latency_ms": result.latency_ms,
                    "response_body": result.body,
                    "error": result.error,
                    "retry_after_seconds": result.retry_after,
                }
                if not await queries.finish_claim(session, claim, token, attempt, values):
                    continue
                if result.succeeded:
                    await queries.note_endpoint_success(session, claim.endpoint_id)
                elif gave_up:
                    reason = (
                        f"{self.config.disable_after} deliveries in a row failed"
                        f" (the last gave up after {claim.attempt_number} attempts: {result.describe()})"
                    )
                    if await queries.note_endpoint_failure(
                        session, claim.endpoint_id, self.config.disable_after, reason, now
                    ):
                        disabled.append(claim.endpoint_id)
        for endpoint_id in disabled:
            log.warning("webhook_endpoint_disabled", endpoint_id=endpoint_id)


async def _read_start(response: httpx.Response) -> str:
    """The first characters of a response body, without reading a large body to its end."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_BODY_CHARS * 4:
            break
    return b"".join(chunks).decode("utf-8", errors="replace")[:RESPONSE_BODY_CHARS]
