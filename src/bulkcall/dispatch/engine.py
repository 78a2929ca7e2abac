"""The dispatcher: turns running campaigns' due tasks into calls without breaking ``dialing.md``.

One round (:meth:`DispatchEngine.dispatch_once`), per workspace:

1. **Windows.** Each campaign's waiting tasks share a few zone keys; a key whose window is closed has its
   due tasks moved to its next opening (one statement), so the due part of the waiting index is dialable.
2. **Claim** (one write transaction; PostgreSQL: a per-workspace advisory lock, ``SKIP LOCKED`` rows): count
   the calls in flight per campaign, connection and workspace and the dials in the last second per
   connection, then take due tasks, highest priority first and round-robin among equal priorities, choose a
   caller ID for each, and insert ``queued`` attempts with a short lease.
3. **Start** (one write transaction; the campaigns are share-locked against a concurrent pause/cancel):
   re-check the campaign is running and the number is not on the DNC list, then mark the attempts
   ``dialing``. From this commit the request may leave, so the attempt is never sent again.
4. **Send** the requests concurrently; record call ids (or the provider's refusal, which ends the attempt).

Results come back as callbacks through :mod:`bulkcall.dispatch.ingestion`. Sweeps (one process at a time)
release claims whose worker died before sending, end attempts whose result never came as ``unknown``
(never redialed), end campaigns at ``ends_at`` and complete campaigns with nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bulkcall.db.engine import Database
from bulkcall.db.models import CallAttempt, Campaign, Contact
from bulkcall.db.repositories import dispatch as queries
from bulkcall.dispatch.ingestion import Ingestion, ParsedCallback, apply_callbacks
from bulkcall.dispatch.outcomes import CallResult, campaign_calendar, complete_finished, finish_attempts, next_dial
from bulkcall.dispatch.sweeps import start_scheduled_campaigns
from bulkcall.domain.caller_id import CallerNumber, choose_caller_id, ineligible_reason
from bulkcall.domain.calls import AttemptState, CallStatus
from bulkcall.domain.retries import Outcome
from bulkcall.domain.variables import CONTACT_VARIABLES, task_variables
from bulkcall.kit import wakeup
from bulkcall.kit.clock import Clock
from bulkcall.kit.logging import get_logger
from bulkcall.providers.base import (
    CallbackRequest,
    CallMaybePlaced,
    CallNotPlaced,
    CallRequest,
    ConnectionInfo,
    PlacedCall,
    Provider,
)
from bulkcall.providers.registry import ProviderRuntime, build_providers
from bulkcall.settings import Settings

log = get_logger("bulkcall.dispatch")

# Sweep ids for the one-process-at-a-time lock.
_SWEEP_LEASES, _SWEEP_RESULTS, _SWEEP_ENDS, _SWEEP_COMPLETION = 1, 2, 3, 4
# Most callbacks one ingestion transaction takes from the queue (only what is already waiting: no delay). Each
# transaction costs ~15 statements whatever its size, so a backlog is taken in large bites (measured in
# bench/dispatch.py: 500 -> 2,000 raised PostgreSQL throughput by about a fifth).
_INGEST_BATCH = 2000


@dataclass(frozen=True)
class EngineConfig:
    batch_size: int = 100  # most calls one round starts (``bulkcall worker --concurrency``)
    lease_seconds: float = 60.0  # wall time a claimed attempt may wait for its request to leave
    result_timeout: timedelta = timedelta(hours=2)  # service time after which a silent call is ``unknown``
    poll_seconds: float = 0.5  # the backstop when no wake-up arrives
    sweep_seconds: float = 1.0
    # How long caller numbers' 24-hour answer records (the weighting of caller-ID choice) are reused.
    records_ttl_seconds: float = 30.0
    public_url: str = "http://127.0.0.1:8000"
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


@dataclass
class _Claimed:
    attempt_id: int
    task: queries.DueTask
    campaign: Campaign
    number: queries.PoolNumber


@dataclass
class _KeyState:
    materialized_to: int
    updated_at: datetime
    keys: list[str]
    closed: frozenset[str] | None = None


class DispatchEngine:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        config: EngineConfig | None = None,
        *,
        simulator_event_log: str | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.config = config or EngineConfig()
        self.callback_url = self.config.public_url.rstrip("/") + "/api/v1/webhooks/telephony/{provider}"
        self.providers: dict[str, Provider] = build_providers(
            ProviderRuntime(deliver=self.deliver, now=clock.now, simulator_event_log=simulator_event_log)
        )
        self.ingestion = Ingestion(database, clock, self.providers.get)
        self._callbacks: asyncio.Queue[tuple[str, CallbackRequest]] = asyncio.Queue()
        self._ingesting = 0
        self._wake = asyncio.Event()
        self._keys: dict[int, _KeyState] = {}
        self._records: dict[int, tuple[float, dict[int, tuple[int, int]]]] = {}
        self._rng = random.Random()
        self.dialed = 0

    # -- wiring ----------------------------------------------------------------------------------------------

    def deliver(self, provider: str, request: CallbackRequest) -> None:
        """Where in-process providers (the simulator) hand their callbacks in."""
        self._callbacks.put_nowait((provider, request))

    def wake(self) -> None:
        self._wake.set()

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()

    # -- the loop --------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch and sweep until ``stop`` is set; then finish the round and give back unsent claims."""
        unsubscribe = wakeup.subscribe(self.wake)
        consumer = asyncio.create_task(self._consume_callbacks(stop), name="ingest_callbacks")
        listener = asyncio.create_task(self._listen(), name="dispatch_listen")
        last_sweep = 0.0
        try:
            while not stop.is_set():
                dialed = 0
                self._wake.clear()  # a wake-up during the round below makes the wait after it return at once
                try:
                    dialed = await self.dispatch_once()
                    if time.monotonic() - last_sweep >= self.config.sweep_seconds:
                        last_sweep = time.monotonic()
                        await self.sweep_once()
                except Exception:
                    log.exception("dispatch_round_failed")
                if dialed == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)
        finally:
            unsubscribe()
            listener.cancel()
            await self._release_own_claims()
            # Give callbacks already in hand a moment to be stored; the rest is what a crash would lose.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain_queue(), 5.0)
            consumer.cancel()
            await asyncio.gather(consumer, listener, return_exceptions=True)
            await self.aclose()

    async def _listen(self) -> None:
        """LISTEN for launches and resumes on PostgreSQL; polling covers SQLite and a lost connection."""
        if self.database.dialect != "postgresql":
            return
        import psycopg

        from bulkcall.db.admin import libpq_dsn

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(libpq_dsn(self.database.url), autocommit=True) as conn:
                    await conn.execute(f"LISTEN {queries.DISPATCH_CHANNEL}")
                    async for _ in conn.notifies():
                        self.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the backstop keeps dialing; try again shortly
                log.warning("dispatch_listen_failed", error=repr(exc))
                await asyncio.sleep(5)

    async def _consume_callbacks(self, stop: asyncio.Event) -> None:
        while True:
            first = await self._callbacks.get()
            batch = [first]
            while len(batch) < _INGEST_BATCH and not self._callbacks.empty():
                batch.append(self._callbacks.get_nowait())
            self._ingesting += 1
            try:
                await self._ingest_with_retry(batch)
                self.wake()  # calls ended: their slots are free for the next round
            finally:
                self._ingesting -= 1
                for _ in batch:
                    self._callbacks.task_done()

    async def _ingest_with_retry(self, batch: list[tuple[str, CallbackRequest]]) -> None:
        """Ingest a batch; if it keeps failing, one callback at a time, so one bad callback loses only itself."""
        for attempt in range(3):
            try:
                await self.ingestion.ingest(batch)
                return
            except Exception:
                log.exception("ingest_failed", callbacks=len(batch), try_number=attempt + 1)
                await asyncio.sleep(0.2 * (attempt + 1))
        if len(batch) > 1:
            for single in batch:
                await self._ingest_with_retry([single])
        else:
            # Its call will end as ``unknown`` at the result timeout, like a callback that never came.
            log.error("callback_dropped", provider=batch[0][0], url=batch[0][1].url)

    async def _drain_queue(self) -> None:
        await self._callbacks.join()

    async def drain(self, within_seconds: float = 30.0) -> None:
        """Wait until the simulator has played out every call and its callbacks are applied (tests, demo)."""
        deadline = time.monotonic() + within_seconds
        consumer = None
        if not any(task.get_name() == "ingest_callbacks" for task in asyncio.all_tasks()):
            consumer = asyncio.create_task(self._consume_callbacks(asyncio.Event()), name="ingest_callbacks_drain")
        try:
            while time.monotonic() < deadline:
                pending = sum(getattr(provider, "pending_reports", lambda: 0)() for provider in self.providers.values())
                if pending == 0 and self._callbacks.empty() and self._ingesting == 0:
                    return
                await asyncio.sleep(0.005)
            raise TimeoutError("the simulator still had calls in progress")
        finally:
            if consumer is not None:
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)

    # -- one round -------------------------------------------------------------------------------------------

    async def dispatch_once(self) -> int:
        """One round over every running campaign; returns how many calls were started."""
        now = self.clock.now()
        async with self.database.session(write=False) as session:
            running = await queries.running_campaigns(session)
        by_workspace: dict[int, list[Campaign]] = defaultdict(list)
        for campaign in running:
            if campaign.ends_at is not None and campaign.ends_at <= now:
                continue  # the ends_at sweep closes it
            by_workspace[campaign.workspace_id].append(campaign)
        started = 0
        for workspace_id, campaigns in by_workspace.items():
            closed: dict[int, list[str]] = {}
            for campaign in campaigns:
                keys = await self._prepare_windows(campaign, now)
                if keys is not None:
                    closed[campaign.id] = keys
            dialable = [campaign for campaign in campaigns if campaign.id in closed]
            if not dialable:
                continue
            claimed = await self._claim(workspace_id, dialable, closed, now)
            if claimed:
                started += await self._start_and_send(workspace_id, claimed)
        self.dialed += started
        return started

    async def _prepare_windows(self, campaign: Campaign, now: datetime) -> list[str] | None:
        """The campaign's closed zone keys, after moving their due tasks on; None when nothing can be dialed."""
        state = self._keys.get(campaign.id)
        if state is None or (state.materialized_to, state.updated_at) != (
            campaign.audience_materialized_to,
            campaign.updated_at,
        ):
            async with self.database.session(write=False) as session:
                keys = await queries.zone_keys(session, campaign.id)
            state = _KeyState(campaign.audience_materialized_to, campaign.updated_at, keys)
            self._keys[campaign.id] = state
        if not state.keys:
            return None
        reopen: dict[str, tuple[datetime, str]] = {}
        for key in state.keys:
            calendar = campaign_calendar(campaign, key)
            if calendar is not None and calendar.is_open(now):
                continue
            nxt = next_dial(campaign, key, now, now)
            reopen[key] = (nxt.at or campaign.ends_at or now + timedelta(days=1), nxt.blocker or "outside_call_window")
        closed = frozenset(reopen)
        if len(closed) == len(state.keys):
            # Every window is shut: nothing to scan, nothing to move (reads derive each task's blocker). The
            # campaign says so once, for dispatch health: its due tasks wait for a window, not for a dial.
            if campaign.dispatch_blocker != "outside_call_window":
                async with self.ingestion.write_transaction() as session:
                    await queries.set_dispatch_blockers(session, {campaign.id: "outside_call_window"})
            return None
        if closed != state.closed:
            async with self.ingestion.write_transaction() as session:
                moved = await queries.defer_closed_keys(session, campaign.id, now, reopen)
            if moved:
                log.info("tasks_deferred_to_window", campaign_id=campaign.id, tasks=moved, keys=len(reopen))
            state.closed = closed
        return sorted(closed)

    async def _claim(
        self, workspace_id: int, campaigns: list[Campaign], closed: dict[int, list[str]], now: datetime
    ) -> list[_Claimed]:
        wall_now = datetime.now(UTC)
        # The answer-rate record reads a day of attempts: read it before the claim lock other workers wait for.
        async with self.database.session(write=False) as reading:
            records = await self._number_records(reading, workspace_id, now)
        async with self.ingestion.write_transaction() as session:
            await queries.lock_workspace_claims(session, workspace_id)
            statuses = await queries.campaign_statuses(session, [c.id for c in campaigns], share_lock=False)
            campaigns = [c for c in campaigns if statuses.get(c.id) == "running"]
            if not campaigns:
                return []
            cap = await queries.workspace_cap(session, workspace_id)
            in_flight = await queries.open_attempts(session, workspace_id)
            pools = await queries.pool_numbers(session, [c.id for c in campaigns])
            connection_open: dict[int, int] = defaultdict(int)
            campaign_open: dict[int, int] = defaultdict(int)
            for (campaign_id, connection_id), count in in_flight.items():
                connection_open[connection_id] += count
                campaign_open[campaign_id] += count
            connections = {n.connection_id: n for pool in pools.values() for n in pool}
            connection_free = {cid: n.connection_limit - connection_open[cid] for cid, n in connections.items()}
            cps_free = await self._cps_tokens(session, workspace_id, now, connections)
            workspace_free = math.inf if cap is None else cap - sum(in_flight.values())
            budget = float(min(self.config.batch_size, workspace_free))
            blockers: dict[int, str | None] = {}
            wanted: dict[int, list[queries.DueTask]] = {}
            for campaign in campaigns:
                pool = pools.get(campaign.id, [])
                capacity = sum({n.connection_id: n.connection_limit for n in pool}.values())
                limit = capacity if campaign.concurrency_limit is None else min(campaign.concurrency_limit, capacity)
                free = limit - campaign_open[campaign.id]
                pool_free = sum(max(0, connection_free[cid]) for cid in {n.connection_id for n in pool})
                if workspace_free <= 0:
                    blockers[campaign.id] = "tenant_cap_full"
                elif free <= 0:
                    limited = campaign.concurrency_limit is not None and campaign.concurrency_limit < capacity
                    blockers[campaign.id] = "campaign_concurrency_full" if limited else "pool_capacity_full"
                elif pool_free <= 0:
                    blockers[campaign.id] = "pool_capacity_full"
                else:
                    take = int(min(free, pool_free, budget))
                    wanted[campaign.id] = await queries.due_tasks(session, campaign.id, now, take, closed[campaign.id])
                    blockers[campaign.id] = None
            claimed, skipped = self._allocate(
                campaigns, wanted, pools, records, connection_free, cps_free, budget, blockers
            )
            rows = [
                {
                    "workspace_id": workspace_id,
                    "campaign_id": item.campaign.id,
                    "task_id": item.task.id,
                    "attempt_number": item.task.attempts + 1,
                    "phone_number_id": item.number.id,
                    "caller_e164": item.number.e164,
                    "callee_e164": item.task.phone_e164,
                    "telephony_connection_id": item.number.connection_id,
                    "provider": item.number.provider,
                    "state": AttemptState.QUEUED.value,
                    "caller_id_reason": reason,
                    "worker": self.config.worker_name,
                    "lease_expires_at": wall_now + timedelta(seconds=self.config.lease_seconds),
                    "queued_at": now,
                }
                for item, reason in claimed
            ]
            ids = await queries.insert_attempts(session, rows)
            for (item, _), attempt_id in zip(claimed, ids, strict=True):
                item.attempt_id = attempt_id
            await queries.mark_tasks_queued(session, [item.task.id for item, _ in claimed], now)
            await queries.skip_tasks(session, skipped, "country_not_allowed", now)
            await queries.set_dispatch_blockers(session, blockers)
        return [item for item, _ in claimed]

    def _allocate(
        self,
        campaigns: list[Campaign],
        wanted: dict[int, list[queries.DueTask]],
        pools: dict[int, list[queries.PoolNumber]],
        records: dict[int, tuple[int, int]],
        connection_free: dict[int, int],
        cps_free: dict[int, int],
        budget: float,
        blockers: dict[int, str | None],
    ) -> tuple[list[tuple[_Claimed, str]], list[int]]:
        """Hand out slots: priority groups in order, round-robin inside a group; a caller ID per task."""
        claimed: list[tuple[_Claimed, str]] = []
        skipped: list[int] = []
        by_priority: dict[int, list[Campaign]] = defaultdict(list)
        for campaign in campaigns:
            if wanted.get(campaign.id):
                by_priority[campaign.priority].append(campaign)
        numbers = {
            campaign_id: [
                CallerNumber(
                    id=n.id,
                    country=n.country,
                    active=n.active,
                    spam_flagged=n.spam_flagged,
                    allowed_countries=n.allowed_countries,
                    connection_id=n.connection_id,
                    attempts=records.get(n.id, (0, 0))[0],
                    answers=records.get(n.id, (0, 0))[1],
                )
                for n in pool
            ]
            for campaign_id, pool in pools.items()
        }
        by_id = {n.id: n for pool in pools.values() for n in pool}
        for priority in sorted(by_priority, reverse=True):
            queues = {c.id: list(wanted[c.id]) for c in by_priority[priority]}
            active = list(by_priority[priority])
            while active and budget > 0:
                still: list[Campaign] = []
                for campaign in active:
                    queue = queues[campaign.id]
                    if not queue or budget <= 0:
                        continue
                    task = queue.pop(0)
                    usable = {cid for cid, free in connection_free.items() if free > 0 and cps_free.get(cid, 0) > 0}
                    choice = choose_caller_id(
                        numbers[campaign.id],
                        contact_country=task.country,
                        prefer_country_match=campaign.prefer_country_match,
                        sticky_number_id=task.sticky_phone_number_id,
                        connections_with_capacity=usable,
                        rng=self._rng,
                    )
                    if choice is None:
                        reason = ineligible_reason(numbers[campaign.id], task.country)
                        if reason == "country_not_allowed":
                            skipped.append(task.id)
                            still.append(campaign)
                            continue
                        if reason == "pool_capacity_full" and any(
                            connection_free.get(n.connection_id, 0) > 0 for n in numbers[campaign.id]
                        ):
                            reason = "cps_throttled"
                        blockers[campaign.id] = reason
                        queue.clear()
                        continue
                    number = by_id[choice.number_id]
                    connection_free[number.connection_id] -= 1
                    cps_free[number.connection_id] = cps_free.get(number.connection_id, 0) - 1
                    budget -= 1
                    claimed.append((_Claimed(0, task, campaign, number), choice.reason))
                    still.append(campaign)
                active = still
        return claimed, skipped

    async def _cps_tokens(
        self, session: Any, workspace_id: int, now: datetime, connections: dict[int, queries.PoolNumber]
    ) -> dict[int, int]:
        """Dials each connection may start now without exceeding its calls per second over any window."""
        tokens: dict[int, int] = {}
        windows: dict[float, list[int]] = defaultdict(list)
        for connection_id, number in connections.items():
            cps = number.calls_per_second
            window = 1.0 if cps >= 1 else 1.0 / cps
            windows[window].append(connection_id)
        for window, connection_ids in windows.items():
            recent = await queries.dials_since(session, workspace_id, now - timedelta(seconds=window))
            for connection_id in connection_ids:
                cps = connections[connection_id].calls_per_second
                allowed = max(1, math.floor(cps * window + 1e-9))
                tokens[connection_id] = allowed - recent.get(connection_id, 0)
        return tokens

    async def _number_records(self, session: Any, workspace_id: int, now: datetime) -> dict[int, tuple[int, int]]:
        cached = self._records.get(workspace_id)
        if cached is not None and time.monotonic() - cached[0] < self.config.records_ttl_seconds:
            return cached[1]
        records = await queries.number_records(session, workspace_id, now - timedelta(hours=24))
        self._records[workspace_id] = (time.monotonic(), records)
        return records

    async def _start_and_send(self, workspace_id: int, claimed: list[_Claimed]) -> int:
        now = self.clock.now()
        by_attempt = {item.attempt_id: item for item in claimed}
        async with self.ingestion.write_transaction() as session:
            campaign_ids = sorted({item.campaign.id for item in claimed})
            statuses = await queries.campaign_statuses(session, campaign_ids, share_lock=True)
            attempts = await queries.queued_attempts(session, list(by_attempt))
            # A claim released after its lease may have its id reused (SQLite) by another worker's claim of
            # another task: that row is not ours to start.
            attempts = [a for a in attempts if a.task_id == by_attempt[a.id].task.id]
            blocked = await queries.dnc_phones(session, workspace_id, [a.callee_e164 for a in attempts])
            # The claim saw the window open, but the dial is now: a window may have closed in between.
            shut = {a.id for a in attempts if not _inside_window(by_attempt[a.id], now)}
            release = [a for a in attempts if statuses.get(a.campaign_id) != "running" or a.id in shut]
            dnc = [a for a in attempts if a not in release and a.callee_e164 in blocked]
            start = [a for a in attempts if a not in release and a not in dnc]
            await queries.release_attempts(session, release + dnc, now)
            await queries.skip_tasks(session, [a.task_id for a in dnc], "dnc", now)
            await queries.mark_dialing(session, start, now)
            contacts = await queries.contacts_by_id(
                session, [cid for a in start if (cid := by_attempt[a.id].task.contact_id) is not None]
            )
            runtimes = await queries.agent_runtimes(session, [by_attempt[a.id].campaign.agent_id for a in start])
            rows = await queries.connections(session, {a.telephony_connection_id for a in start})
            infos = {cid: self.ingestion.connection(row) for cid, row in rows.items()}
        if dnc:
            log.info("dnc_blocked_before_dial", tasks=len(dnc))
        for campaign_id in {a.campaign_id for a in attempts if a.id in shut}:
            self._keys.pop(campaign_id, None)  # the next round sees the key closed and moves its tasks on
        requests = [self._request(by_attempt[a.id], a, contacts, runtimes, now) for a in start]
        results = await asyncio.gather(
            *(self._send(infos[a.telephony_connection_id], request) for a, request in zip(start, requests, strict=True))
        )
        placed: dict[int, str] = {}
        refused: dict[int, CallNotPlaced] = {}
        errors: dict[int, str] = {}
        for attempt, result in zip(start, results, strict=True):
            if isinstance(result, PlacedCall):
                placed[attempt.id] = result.provider_call_id
            elif isinstance(result, CallNotPlaced):
                refused[attempt.id] = result
            else:
                errors[attempt.id] = str(result)
        async with self.ingestion.write_transaction() as session:
            await queries.record_placed(session, placed)
            await queries.mark_tasks_calling(session, [a.task_id for a in start if a.id in placed])
            await queries.note_attempt_errors(session, errors)
            if refused:
                locked = await queries.attempts_for_update(session, refused)
                ended = [
                    CallResult(attempt=locked[attempt_id], outcome=exc.outcome, error=exc.error)
                    for attempt_id, exc in refused.items()
                    if attempt_id in locked and locked[attempt_id].ended_at is None
                ]
                touched = await finish_attempts(session, self.clock.now(), ended)
                await complete_finished(session, self.clock.now(), touched)
        return len(start)

    def _request(
        self,
        item: _Claimed,
        attempt: CallAttempt,
        contacts: dict[int, Contact],
        runtimes: dict[int, dict[str, Any]],
        now: datetime,
    ) -> CallRequest:
        contact = contacts.get(item.task.contact_id or 0)
        fields = None
        if contact is not None:
            fields = {name: getattr(contact, "id" if name == "contact_id" else name) for name in CONTACT_VARIABLES}
        return CallRequest(
            attempt_id=attempt.id,
            idempotency_key=f"attempt-{attempt.id}",
            campaign_id=attempt.campaign_id,
            task_id=attempt.task_id,
            attempt_number=attempt.attempt_number,
            to=attempt.callee_e164,
            from_=attempt.caller_e164,
            telephony_connection_id=attempt.telephony_connection_id,
            caller_phone_number_id=attempt.phone_number_id,
            variables=task_variables(item.campaign.call_variables, fields, contact.custom_fields if contact else None),
            record=item.campaign.record_calls,
            agent_id=item.campaign.agent_id,
            agent_runtime=runtimes.get(item.campaign.agent_id, {}),
            callback_url=self.callback_url.format(provider=attempt.provider),
            requested_at=now,
        )

    async def _send(self, connection: ConnectionInfo, request: CallRequest) -> PlacedCall | CallNotPlaced | Exception:
        provider = self.providers.get(connection.provider)
        if provider is None:
            return CallNotPlaced(Outcome.FAILED, f"provider {connection.provider!r} cannot place calls yet")
        try:
            return await provider.place_call(connection, request)
        except CallNotPlaced as exc:
            return exc
        except CallMaybePlaced as exc:
            return exc
        except Exception as exc:  # unknown failure: the request may have left, so treat it as maybe placed
            log.exception("place_call_failed", attempt_id=request.attempt_id)
            return CallMaybePlaced(repr(exc))

    # -- sweeps ----------------------------------------------------------------------------------------------

    async def sweep_once(self) -> None:
        await start_scheduled_campaigns(self.database, self.clock)
        await self._sweep_leases()
        await self._sweep_results()
        await self._sweep_ends()
        await self._sweep_completion()

    async def _sweep_leases(self) -> None:
        async with self.ingestion.write_transaction() as session:
            if not await queries.try_sweep_lock(session, _SWEEP_LEASES):
                return
            expired = await queries.expired_leases(session, datetime.now(UTC))
            if expired:
                log.warning("claims_released_after_lease", attempts=len(expired))
                await queries.release_attempts(session, expired, self.clock.now())

    async def _sweep_results(self) -> None:
        now = self.clock.now()
        async with self.database.session(write=False) as session:
            overdue = await queries.overdue_attempts(session, now - self.config.result_timeout)
            rows = await queries.connections(session, {a.telephony_connection_id for a in overdue})
        if not overdue:
            return
        reconciled: list[ParsedCallback] = []
        silent: list[int] = []
        for attempt in overdue:
            provider = self.providers.get(attempt.provider)
            row = rows.get(attempt.telephony_connection_id)
            event = None
            if provider is not None and row is not None and attempt.provider_call_id:
                try:
                    event = await provider.fetch_status(self.ingestion.connection(row), attempt.provider_call_id)
                except Exception as exc:
                    log.warning("reconcile_failed", attempt_id=attempt.id, error=repr(exc))
            if event is not None and event.status is CallStatus.COMPLETED and row is not None:
                body = json.dumps(
                    {"reconciled": True, "attempt_id": attempt.id, "outcome": str(event.outcome)}
                ).encode()
                reconciled.append(
                    ParsedCallback(
                        provider=attempt.provider,
                        request=CallbackRequest(url="reconcile:", headers={}, body=body),
                        connection=self.ingestion.connection(row),
                        events=[event],
                    )
                )
            else:
                silent.append(attempt.id)
        async with self.ingestion.write_transaction() as session:
            if not await queries.try_sweep_lock(session, _SWEEP_RESULTS):
                return
            if reconciled:
                await apply_callbacks(session, now, reconciled)
            locked = await queries.attempts_for_update(session, silent)
            timeout = int(self.config.result_timeout.total_seconds())
            ended = [
                CallResult(
                    attempt=attempt,
                    outcome=Outcome.UNKNOWN,
                    error=f"no result from the provider within {timeout} s; not redialed",
                )
                for attempt in locked.values()
                if attempt.ended_at is None
            ]
            if ended:
                log.warning("attempts_unknown_after_timeout", attempts=len(ended))
            touched = await finish_attempts(session, now, ended)
            await complete_finished(session, now, touched)

    async def _sweep_ends(self) -> None:
        now = self.clock.now()
        async with self.ingestion.write_transaction() as session:
            if not await queries.try_sweep_lock(session, _SWEEP_ENDS):
                return
            for campaign in await queries.ended_campaigns(session, now):
                ended = await queries.end_waiting_tasks(session, campaign.id, now)
                if ended:
                    log.info("tasks_ended_with_campaign", campaign_id=campaign.id, tasks=ended)
                await complete_finished(session, now, {campaign.id})

    async def _sweep_completion(self) -> None:
        now = self.clock.now()
        async with self.ingestion.write_transaction() as session:
            if not await queries.try_sweep_lock(session, _SWEEP_COMPLETION):
                return
            running = await queries.running_campaigns(session)
            await complete_finished(session, now, {campaign.id for campaign in running})

    async def _release_own_claims(self) -> None:
        try:
            async with self.ingestion.write_transaction() as session:
                mine = await queries.queued_attempts_of_worker(session, self.config.worker_name)
                await queries.release_attempts(session, mine, self.clock.now())
        except Exception:
            log.exception("release_claims_failed")


def _inside_window(item: _Claimed, now: datetime) -> bool:
    calendar = campaign_calendar(item.campaign, item.task.timezones)
    return calendar is not None and calendar.is_open(now)


def engine_config(settings: Settings, *, batch_size: int | None = None) -> EngineConfig:
    return EngineConfig(
        batch_size=batch_size or settings.dispatch_batch_size,
        lease_seconds=settings.claim_lease_seconds,
        result_timeout=timedelta(seconds=settings.call_result_timeout_seconds),
        public_url=settings.public_url,
    )
