"""The simulator as a provider: it "places" a call by drawing it from the seeded model, then reports the call's
progress as signed callbacks through the same ingestion path a carrier's HTTP callbacks take.

Ring and talk times are simulated seconds, played out in ``seconds / speed`` of wall time. With an event
log configured (``BULKCALL_SIMULATOR_EVENT_LOG``) every call start and end is appended as a JSON line, so
tests can check from the network's own point of view that no limit was ever exceeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bulkcall.domain.calls import CallStatus
from bulkcall.domain.retries import Outcome
from bulkcall.providers.base import (
    CallbackMalformed,
    CallbackRejected,
    CallbackRequest,
    CallbackSink,
    CallEvent,
    CallRequest,
    ConnectionCheck,
    ConnectionInfo,
    PlacedCall,
)
from bulkcall.providers.simulator.config import SimulatorConfig
from bulkcall.providers.simulator.model import SimulatedCall, simulate_call

SIGNATURE_HEADER = "x-bulkcall-signature"
# What a simulated minute of talk costs (money, the connection's currency); a started minute counts whole.
COST_PER_MINUTE = 0.013
# Keys of recently placed calls, so a repeated request for the same attempt makes no second call.
_REMEMBERED_KEYS = 200_000


def sign(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def call_cost(call: SimulatedCall) -> float:
    return round(math.ceil(call.talk_seconds / 60) * COST_PER_MINUTE, 4) if call.talk_seconds else 0.0


@dataclass(frozen=True)
class _Report:
    delay: float  # simulated seconds after the request
    payloads: tuple[dict[str, Any], ...]  # delivered in this order at that instant


class SimulatorProvider:
    name = "simulator"

    def __init__(
        self, deliver: CallbackSink | None, now: Callable[[], datetime], event_log: Path | None = None
    ) -> None:
        self._deliver = deliver
        self._now = now
        self._event_log = event_log
        self._placed: OrderedDict[str, str] = OrderedDict()
        self._timers: set[asyncio.TimerHandle] = set()

    async def place_call(self, connection: ConnectionInfo, request: CallRequest) -> PlacedCall:
        config = connection.config
        assert isinstance(config, SimulatorConfig)
        call_id = self._placed.get(request.idempotency_key)
        if call_id is not None:
            return PlacedCall(call_id)
        call_id = f"SIM{request.attempt_id}"
        self._placed[request.idempotency_key] = call_id
        if len(self._placed) > _REMEMBERED_KEYS:
            self._placed.popitem(last=False)
        call = simulate_call(
            config, attempt_key=request.idempotency_key, callee_e164=request.to, caller_e164=request.from_
        )
        self._log("start", request, at=request.requested_at)
        for report in self._reports(request, call_id, call):
            self._schedule(report.delay / config.speed, connection, request, report.payloads)
        self._schedule((call.ring_seconds + call.talk_seconds) / config.speed, connection, request, (), end=call)
        return PlacedCall(call_id)

    def _reports(self, request: CallRequest, call_id: str, call: SimulatedCall) -> list[_Report]:
        base = {"call_id": call_id, "attempt_id": request.attempt_id}
        progress = [_Report(0.0, ({**base, "status": CallStatus.RINGING.value},))]
        if call.outcome in (Outcome.ANSWERED, Outcome.VOICEMAIL):
            answered_by = "human" if call.outcome is Outcome.ANSWERED else "machine"
            progress.append(
                _Report(call.ring_seconds, ({**base, "status": CallStatus.ANSWERED.value, "answered_by": answered_by},))
            )
        final = {
            **base,
            "status": CallStatus.COMPLETED.value,
            "outcome": call.outcome.value,
            "duration_seconds": round(call.talk_seconds, 3),
            "cost": call_cost(call),
        }
        if call.outcome in (Outcome.ANSWERED, Outcome.VOICEMAIL):
            final["answered_by"] = "human" if call.outcome is Outcome.ANSWERED else "machine"
        if call.outcome is Outcome.FAILED:
            final["error"] = "simulated network failure"
        ends = call.ring_seconds + call.talk_seconds
        stale = tuple(payload for report in progress for payload in report.payloads)
        results = () if call.missing_callback else (final, final) if call.duplicate_callback else (final,)
        if call.reordered_callbacks:
            # The progress reports arrive right after the result, when they are stale.
            return [_Report(ends, results + stale)]
        return [*progress, _Report(ends, results)] if results else progress

    def _schedule(
        self,
        wall_delay: float,
        connection: ConnectionInfo,
        request: CallRequest,
        payloads: tuple[dict[str, Any], ...],
        *,
        end: SimulatedCall | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            if end is not None:
                self._log("end", request, at=self._now(), outcome=end.outcome.value, missing=end.missing_callback)
                return
            if self._deliver is None:
                return
            for payload in payloads:
                body = json.dumps({**payload, "event_id": f"{payload['call_id']}:{payload['status']}"}).encode()
                url = f"{request.callback_url}?connection={connection.id}"
                headers = {SIGNATURE_HEADER: sign(connection.signing_secret, body), "content-type": "application/json"}
                self._deliver(self.name, CallbackRequest(url=url, headers=headers, body=body))

        handle = loop.call_later(wall_delay, fire)
        self._timers.add(handle)

    def _log(self, kind: str, request: CallRequest, *, at: datetime, **extra: Any) -> None:
        if self._event_log is None:
            return
        line = {
            "event": kind,
            "at": at.isoformat(),
            "attempt_id": request.attempt_id,
            "task_id": request.task_id,
            "campaign_id": request.campaign_id,
            "attempt_number": request.attempt_number,
            "to": request.to,
            "from": request.from_,
            "caller_phone_number_id": request.caller_phone_number_id,
            "telephony_connection_id": request.telephony_connection_id,
            "pid": os.getpid(),
            **extra,
        }
        # One write per line on an O_APPEND descriptor: lines from several processes never interleave.
        descriptor = os.open(self._event_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, (json.dumps(line) + "\n").encode())
        finally:
            os.close(descriptor)

    def callback_connection_id(self, request: CallbackRequest) -> int | None:
        query = dict(request.query) or dict(parse_qsl(urlsplit(request.url).query))
        value = query.get("connection", "")
        return int(value) if value.isdigit() and len(value) < 19 else None

    def parse_callback(self, connection: ConnectionInfo, request: CallbackRequest) -> list[CallEvent]:
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(given, sign(connection.signing_secret, request.body)):
            raise CallbackRejected("missing or wrong x-bulkcall-signature")
        try:
            data = json.loads(request.body)
            status = CallStatus(data["status"])
            outcome = Outcome(data["outcome"]) if data.get("outcome") is not None else None
            attempt_id = int(data["attempt_id"])
            event = CallEvent(
                dedupe_key=str(data["event_id"]),
                status=status,
                attempt_id=attempt_id,
                provider_call_id=str(data["call_id"]),
                outcome=outcome,
                answered_by=data.get("answered_by"),
                duration_seconds=_number(data.get("duration_seconds")),
                cost=_number(data.get("cost")),
                error=data.get("error"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CallbackMalformed(f"not a simulator event: {exc}") from None
        if status is CallStatus.COMPLETED and outcome is None:
            raise CallbackMalformed("a completed event needs an outcome")
        return [event]

    async def fetch_status(self, connection: ConnectionInfo, provider_call_id: str) -> CallEvent | None:
        # The simulated network keeps no call records to ask: a lost callback stays lost (the timeout path).
        return None

    async def check_connection(self, connection: ConnectionInfo) -> ConnectionCheck:
        return ConnectionCheck(True, "the simulator is built in: nothing to reach")

    async def aclose(self) -> None:
        for handle in list(self._timers):
            handle.cancel()
        self._timers.clear()

    def pending_reports(self) -> int:
        """Callbacks and hang-ups not yet played out (tests wait for zero)."""
        return len(self._timers)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number
