"""The one way provider events enter: verify, store raw, deduplicate, apply.

Carriers reach it over HTTP (``POST /api/v1/webhooks/telephony/{provider}``); the simulator hands its
signed callbacks to the same function in-process. Every callback becomes a receipt row with its verdict:
``applied``, ``duplicate`` (same event id seen before), ``out_of_order`` (older than what the attempt already
knows: stored, changes nothing), ``unknown_call``, ``rejected_signature`` or ``malformed``. Attempts are
locked while their events apply, so two copies of one event arriving at two processes count once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.engine import Database
from bulkcall.db.models import CallAttempt, TelephonyConnection
from bulkcall.db.repositories import dispatch as queries
from bulkcall.dispatch.outcomes import CallResult, complete_finished, finish_attempts
from bulkcall.domain.calls import AttemptState, CallStatus, advance
from bulkcall.domain.retries import Outcome
from bulkcall.kit.clock import Clock
from bulkcall.kit.logging import get_logger
from bulkcall.providers import load_config
from bulkcall.providers.base import (
    CallbackMalformed,
    CallbackRejected,
    CallbackRequest,
    CallEvent,
    ConnectionInfo,
    Provider,
)

log = get_logger("bulkcall.ingestion")

MAX_STORED_PAYLOAD = 64 * 1024

ProviderLookup = Callable[[str], Provider | None]


@dataclass
class ParsedCallback:
    provider: str
    request: CallbackRequest
    connection: ConnectionInfo | None = None
    events: list[CallEvent] = field(default_factory=list)
    verdict: str | None = None  # set when the callback failed before any event could be read
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome for one callback: the worst verdict of its events (what the HTTP answer reports)."""

    verdict: str
    error: str | None = None


def connection_info(row: TelephonyConnection) -> ConnectionInfo:
    return ConnectionInfo(
        id=row.id,
        workspace_id=row.workspace_id,
        provider=row.provider,
        config=load_config(row.provider, row.config, row.secrets),
        signing_secret=row.signing_secret,
    )


class Ingestion:
    def __init__(self, database: Database, clock: Clock, providers: ProviderLookup) -> None:
        self.database = database
        self.clock = clock
        self.providers = providers
        self._connections: dict[int, tuple[datetime, ConnectionInfo]] = {}
        # SQLite admits one writer. Writers of this process (ingestion, and the engine that owns it) take turns
        # here: waiting in SQLite's busy handler instead sleeps up to 100 ms at a time, lock free or not.
        self._sqlite_writer = asyncio.Lock() if database.dialect == "sqlite" else None

    @contextlib.asynccontextmanager
    async def write_transaction(self) -> AsyncIterator[AsyncSession]:
        """A write session inside a transaction that commits on exit (after this process's other writers)."""
        async with (
            self._sqlite_writer or contextlib.nullcontext(),
            self.database.session(write=True) as session,
            session.begin(),
        ):
            yield session

    async def ingest(self, callbacks: Sequence[tuple[str, CallbackRequest]]) -> list[Verdict]:
        """Store and apply a batch of callbacks in one transaction; one verdict per callback, in order."""
        async with self.write_transaction() as session:
            parsed = await self._parse(session, callbacks)
            now = self.clock.now()
            return await apply_callbacks(session, now, parsed)

    async def _parse(
        self, session: AsyncSession, callbacks: Sequence[tuple[str, CallbackRequest]]
    ) -> list[ParsedCallback]:
        items = [ParsedCallback(provider=name, request=request) for name, request in callbacks]
        wanted: dict[int, list[ParsedCallback]] = {}
        for item in items:
            provider = self.providers(item.provider)
            if provider is None:
                item.verdict, item.error = "unknown_provider", f"no provider named {item.provider!r}"
                continue
            connection_id = provider.callback_connection_id(item.request)
            if connection_id is None:
                item.verdict, item.error = "rejected_signature", "the callback names no connection"
                continue
            wanted.setdefault(connection_id, []).append(item)
        rows = await queries.connections(session, wanted)
        for connection_id, waiting in wanted.items():
            row = rows.get(connection_id)
            for item in waiting:
                if row is None or row.provider != item.provider:
                    item.verdict, item.error = "rejected_signature", "unknown connection"
                    continue
                item.connection = self.connection(row)
                provider = self.providers(item.provider)
                assert provider is not None
                try:
                    item.events = provider.parse_callback(item.connection, item.request)
                except CallbackRejected as exc:
                    item.verdict, item.error = "rejected_signature", str(exc)
                except CallbackMalformed as exc:
                    item.verdict, item.error = "malformed", str(exc)
        return items

    def connection(self, row: TelephonyConnection) -> ConnectionInfo:
        """A connection as providers see it, its config parsed once per version of the row."""
        cached = self._connections.get(row.id)
        if cached is not None and cached[0] == row.updated_at:
            return cached[1]
        info = connection_info(row)
        self._connections[row.id] = (row.updated_at, info)
        return info


_SEVERITY = [
    "applied",
    "duplicate",
    "out_of_order",
    "unknown_call",
    "malformed",
    "rejected_signature",
    "unknown_provider",
]


async def apply_callbacks(session: AsyncSession, now: datetime, parsed: Sequence[ParsedCallback]) -> list[Verdict]:
    """Dedupe and apply parsed callbacks inside the caller's transaction."""
    by_call_id: dict[str, list[str]] = {}
    for item in parsed:
        for event in item.events:
            if event.attempt_id is None and event.provider_call_id:
                by_call_id.setdefault(item.provider, []).append(event.provider_call_id)
    call_ids: dict[tuple[str, str], int] = {}
    for provider, ids in by_call_id.items():
        for call_id, attempt_id in (await queries.attempt_ids_by_call_id(session, provider, ids)).items():
            call_ids[(provider, call_id)] = attempt_id

    def attempt_of(provider: str, event: CallEvent) -> int | None:
        if event.attempt_id is not None:
            return event.attempt_id
        return call_ids.get((provider, event.provider_call_id or ""))

    attempts = await queries.attempts_for_update(
        session,
        [found for item in parsed for event in item.events if (found := attempt_of(item.provider, event)) is not None],
    )
    seen: dict[str, set[str]] = {}
    for provider in {item.provider for item in parsed}:
        keys = [event.dedupe_key for item in parsed if item.provider == provider for event in item.events]
        seen[provider] = await queries.seen_dedupe_keys(session, provider, keys)

    state = {attempt_id: attempt.state for attempt_id, attempt in attempts.items()}
    changes: dict[int, dict[str, Any]] = {}
    calling_tasks: list[int] = []
    finished: list[CallResult] = []
    receipts: list[dict[str, Any]] = []
    verdicts: list[Verdict] = []
    for item in parsed:
        connection = item.connection
        workspace_id = connection.workspace_id if connection is not None else None
        payload = item.request.body[:MAX_STORED_PAYLOAD].decode("utf-8", errors="replace")
        if item.verdict is not None:
            receipts.append(_receipt(item, workspace_id, None, None, item.verdict, payload, item.error, now))
            verdicts.append(Verdict(item.verdict, item.error))
            continue
        worst = "applied"
        for event in item.events:
            found = attempt_of(item.provider, event)
            attempt = attempts.get(found) if found is not None else None
            verdict = _verdict(item, event, attempt, state, seen[item.provider])
            if verdict == "applied" and attempt is not None:
                new_state = advance(state[attempt.id], event.status)
                assert new_state is not None
                state[attempt.id] = new_state
                _apply(event, attempt, new_state, now, changes, calling_tasks, finished)
            # A receipt never points at another workspace's campaign, task or attempt.
            linked = attempt if attempt is not None and attempt.workspace_id == workspace_id else None
            receipts.append(_receipt(item, workspace_id, event, linked, verdict, payload, None, now))
            if _SEVERITY.index(verdict) > _SEVERITY.index(worst):
                worst = verdict
        verdicts.append(Verdict(worst))
    await queries.insert_receipts(session, receipts)
    await queries.update_attempts(session, [{"id": attempt_id, **values} for attempt_id, values in changes.items()])
    await queries.mark_tasks_calling(session, calling_tasks)
    touched = await finish_attempts(session, now, finished)
    await complete_finished(session, now, touched)
    return verdicts


def _verdict(
    item: ParsedCallback, event: CallEvent, attempt: CallAttempt | None, state: dict[int, str], seen: set[str]
) -> str:
    connection = item.connection
    if (
        attempt is None
        or connection is None
        or attempt.telephony_connection_id != connection.id
        or attempt.workspace_id != connection.workspace_id
    ):
        return "unknown_call"
    if event.dedupe_key in seen:
        return "duplicate"
    seen.add(event.dedupe_key)
    if advance(state[attempt.id], event.status) is None:
        return "out_of_order"
    return "applied"


def _apply(
    event: CallEvent,
    attempt: CallAttempt,
    new_state: AttemptState,
    now: datetime,
    changes: dict[int, dict[str, Any]],
    calling_tasks: list[int],
    finished: list[CallResult],
) -> None:
    if event.status is CallStatus.COMPLETED:
        # The end sets the state; what earlier events of this batch learned (answered_at, ...) is still written.
        earlier = changes.get(attempt.id)
        if earlier is not None:
            earlier.pop("state", None)
            if not earlier:
                del changes[attempt.id]
        picked_up = event.outcome in (Outcome.ANSWERED, Outcome.VOICEMAIL)
        if picked_up and attempt.answered_at is None and "answered_at" not in (earlier or {}):
            # The "answered" report is late or lost: the pick-up was the talk time before this result.
            changes.setdefault(attempt.id, {})["answered_at"] = _picked_up_at(attempt, event, now)
        finished.append(CallResult(attempt=attempt, outcome=event.outcome or Outcome.FAILED, report=event))
        return
    values = changes.setdefault(attempt.id, {})
    values["state"] = new_state.value
    if event.provider_call_id and attempt.provider_call_id is None:
        values["provider_call_id"] = event.provider_call_id
    if event.status is CallStatus.ANSWERED:
        values["answered_at"] = now
        if event.answered_by:
            values["answered_by"] = event.answered_by
    calling_tasks.append(attempt.task_id)


def _picked_up_at(attempt: CallAttempt, event: CallEvent, now: datetime) -> datetime:
    talked = now - timedelta(seconds=event.duration_seconds or 0.0)
    return max(talked, attempt.dialed_at) if attempt.dialed_at is not None else talked


def _receipt(
    item: ParsedCallback,
    workspace_id: int | None,
    event: CallEvent | None,
    attempt: CallAttempt | None,
    verdict: str,
    payload: str,
    error: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "provider": item.provider,
        "telephony_connection_id": item.connection.id if item.connection is not None else None,
        "dedupe_key": event.dedupe_key if event is not None else None,
        "event_type": event.status.value if event is not None else None,
        "verdict": verdict,
        "campaign_id": attempt.campaign_id if attempt is not None else None,
        "task_id": attempt.task_id if attempt is not None else None,
        "attempt_id": attempt.id if attempt is not None else None,
        "payload": payload,
        "error": error,
        "received_at": now,
    }
