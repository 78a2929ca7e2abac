"""``http_agent``: a team's own voice agent behind one HTTPS endpoint (the protocol: docs/http_agent_protocol.md).

bulkcall POSTs JSON messages to ``config.url``, signed with Standard Webhooks (:mod:`bulkcall.kit.standard_webhooks`)
using the connection's ``signing_secret``; ``type`` says what each one is: ``call.request`` (place a call),
``call.lookup`` (what became of a call whose result never came) and ``ping`` (the connection test). The
agent reports call events to ``/api/v1/webhooks/telephony/http_agent?connection=<id>``, signed the same way.

The attempt's idempotency key is both the ``webhook-id`` and the ``Idempotency-Key`` header of a call request:
the agent must answer a repeated key with the call it already made. That is what lets bulkcall send a request
again after an answer that leaves the outcome open (a timeout, a 5xx), within a bounded number of tries.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from bulkcall.domain.calls import CallStatus
from bulkcall.domain.retries import Outcome
from bulkcall.kit import standard_webhooks
from bulkcall.kit.logging import get_logger
from bulkcall.providers.base import (
    CallbackMalformed,
    CallbackRejected,
    CallbackRequest,
    CallEvent,
    CallMaybePlaced,
    CallNotPlaced,
    CallRequest,
    ConnectionCheck,
    ConnectionInfo,
    PlacedCall,
)
from bulkcall.providers.http_agent.config import HttpAgentConfig
from bulkcall.providers.retry import RequestRetryPolicy

log = get_logger("bulkcall.providers.http_agent")

PROTOCOL_VERSION = 1
# Outcomes an agent may give when it refuses a call request (4xx with ``{"outcome": ...}``).
REFUSAL_OUTCOMES = frozenset({Outcome.FAILED, Outcome.INVALID_NUMBER, Outcome.REJECTED})
MAX_TEXT = 200_000  # characters of transcript kept


def _config(connection: ConnectionInfo) -> HttpAgentConfig:
    config = connection.config
    assert isinstance(config, HttpAgentConfig)
    return config


def _secret(connection: ConnectionInfo) -> str:
    return _config(connection).signing_secret.get_secret_value()


def callback_url(request: CallRequest, connection: ConnectionInfo) -> str:
    return f"{request.callback_url}?{urlencode({'connection': connection.id})}"


def call_request_body(connection: ConnectionInfo, request: CallRequest) -> dict[str, Any]:
    """The ``call.request`` message (documented field by field in docs/http_agent_protocol.md)."""
    return {
        "type": "call.request",
        "version": PROTOCOL_VERSION,
        "idempotency_key": request.idempotency_key,
        "attempt_id": request.attempt_id,
        "attempt_number": request.attempt_number,
        "task": {"id": request.task_id, "campaign_id": request.campaign_id},
        "contact": {
            "phone_e164": request.to,
            "contact_id": request.variables.get("contact_id"),
            "first_name": request.variables.get("first_name"),
            "last_name": request.variables.get("last_name"),
        },
        "caller_id": request.from_,
        "variables": request.variables,
        "agent": {"id": request.agent_id, "runtime": request.agent_runtime},
        "record": request.record,
        "callback_url": callback_url(request, connection),
        "requested_at": request.requested_at.isoformat(),
    }


class HttpAgentProvider:
    name = "http_agent"

    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        retry: RequestRetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._now = now
        self._retry = retry or RequestRetryPolicy()
        self._timeout = timeout or httpx.Timeout(15.0, connect=5.0)
        # Signatures carry transport time (the receiver's replay window), not the service clock.
        self._wall_clock = wall_clock
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, headers={"User-Agent": "bulkcall"})
        return self._client

    async def _post(
        self, connection: ConnectionInfo, message: dict[str, Any], message_id: str, extra: dict[str, str] | None = None
    ) -> httpx.Response:
        body = json.dumps(message, separators=(",", ":"), default=str).encode()
        signed = standard_webhooks.sign(_secret(connection), message_id, int(self._wall_clock()), body)
        headers = {"content-type": "application/json", **signed.as_dict(), **(extra or {})}
        return await self._http().post(_config(connection).url, content=body, headers=headers)

    # -- placing calls ---------------------------------------------------------------------------------------

    async def place_call(self, connection: ConnectionInfo, request: CallRequest) -> PlacedCall:
        message = call_request_body(connection, request)
        may_have_arrived = False
        last = ""
        for try_number in range(1, self._retry.tries + 1):
            retry_after: str | None = None
            try:
                response = await self._post(
                    connection, message, request.idempotency_key, {"idempotency-key": request.idempotency_key}
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = f"agent unreachable: {type(exc).__name__}"
            except httpx.HTTPError as exc:
                may_have_arrived = True
                last = f"agent did not answer: {type(exc).__name__}"
            else:
                status = response.status_code
                if 200 <= status < 300 or status == 409:  # 409: "I already have this key", with the call id
                    return PlacedCall(_call_id(response, request))
                if status == 429 or status == 503:
                    last = f"agent busy (HTTP {status})"
                    retry_after = response.headers.get("retry-after")
                elif status >= 500:
                    may_have_arrived = True
                    last = f"agent error (HTTP {status})"
                else:
                    raise _refusal(response)
            if try_number < self._retry.tries:
                await asyncio.sleep(self._retry.delay(try_number, retry_after))
        log.warning("http_agent_request_gave_up", attempt_id=request.attempt_id, tries=self._retry.tries)
        if may_have_arrived:
            raise CallMaybePlaced(f"{last} after {self._retry.tries} tries; the call may exist, not sent again")
        raise CallNotPlaced(Outcome.FAILED, f"{last} (after {self._retry.tries} tries)")

    # -- callbacks -------------------------------------------------------------------------------------------

    def callback_connection_id(self, request: CallbackRequest) -> int | None:
        query = dict(request.query) or dict(parse_qsl(request.url.partition("?")[2]))
        value = query.get("connection", "")
        return int(value) if value.isdigit() and len(value) < 19 else None

    def parse_callback(self, connection: ConnectionInfo, request: CallbackRequest) -> list[CallEvent]:
        try:
            secret = _secret(connection)
            message_id = standard_webhooks.verify(secret, request.headers, request.body, self._wall_clock())
        except standard_webhooks.SignatureError as exc:
            raise CallbackRejected(str(exc)) from None
        try:
            data = json.loads(request.body)
        except ValueError:
            raise CallbackMalformed("the body is not JSON") from None
        if not isinstance(data, dict):
            raise CallbackMalformed("the body must be a JSON object")
        # The message id is unique per event and repeated on redelivery; scoped to the connection.
        return [event_from_report(data, f"{connection.id}:{message_id}")]

    # -- reconciliation and checks ---------------------------------------------------------------------------

    async def fetch_status(self, connection: ConnectionInfo, provider_call_id: str) -> CallEvent | None:
        """``call.lookup``: the agent answers with the call's latest event (same shape as a callback) or 404."""
        message = {"type": "call.lookup", "version": PROTOCOL_VERSION, "call_id": provider_call_id}
        response = await self._post(connection, message, f"lookup_{secrets.token_hex(12)}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RuntimeError(f"http_agent call lookup: HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise RuntimeError("http_agent call lookup: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise RuntimeError("http_agent call lookup: the answer must be a JSON object")
        try:
            event = event_from_report(data, f"{connection.id}:lookup:{provider_call_id}:{data.get('status')}")
        except CallbackMalformed as exc:
            raise RuntimeError(f"http_agent call lookup: {exc}") from None
        return event

    async def check_connection(self, connection: ConnectionInfo) -> ConnectionCheck:
        """A signed ``ping``; the agent answers 2xx (the example stub answers ``{"ok": true}``)."""
        url = _config(connection).url
        message = {"type": "ping", "version": PROTOCOL_VERSION}
        try:
            response = await self._post(connection, message, f"ping_{secrets.token_hex(12)}")
        except httpx.HTTPError as exc:
            return ConnectionCheck(False, f"agent unreachable at {url}: {type(exc).__name__}")
        if 200 <= response.status_code < 300:
            return ConnectionCheck(True, f"agent at {url} answered the signed ping (HTTP {response.status_code})")
        if response.status_code in (401, 403):
            return ConnectionCheck(
                False, f"agent at {url} refused the signature (HTTP {response.status_code}); check signing_secret"
            )
        return ConnectionCheck(False, f"agent at {url} answered the ping with HTTP {response.status_code}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _call_id(response: httpx.Response, request: CallRequest) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    call_id = data.get("call_id") if isinstance(data, dict) else None
    if isinstance(call_id, str | int) and str(call_id) and len(str(call_id)) <= 120:
        return str(call_id)
    return request.idempotency_key  # the agent gave no id of its own: the key names the call


def _refusal(response: httpx.Response) -> CallNotPlaced:
    status = response.status_code
    if status in (401, 403):
        return CallNotPlaced(Outcome.FAILED, f"agent refused the signature (HTTP {status}); check signing_secret")
    try:
        data = response.json()
    except ValueError:
        data = None
    outcome = Outcome.FAILED
    reason = ""
    if isinstance(data, dict):
        raw = data.get("outcome")
        if isinstance(raw, str) and raw in {o.value for o in REFUSAL_OUTCOMES}:
            outcome = Outcome(raw)
        if isinstance(data.get("error"), str):
            reason = ": " + data["error"][:300]
    prefix = "invalid number" if outcome is Outcome.INVALID_NUMBER else "agent refused the call"
    return CallNotPlaced(outcome, f"{prefix} (HTTP {status}){reason}")


def event_from_report(data: dict[str, Any], dedupe_key: str) -> CallEvent:
    """A ``call.event`` body as a call event; raises :class:`CallbackMalformed` naming the bad field."""
    try:
        status = CallStatus(data["status"])
    except (KeyError, ValueError):
        raise CallbackMalformed(f"status must be one of {', '.join(s.value for s in CallStatus)}") from None
    outcome: Outcome | None = None
    if data.get("outcome") is not None:
        try:
            outcome = Outcome(data["outcome"])
        except ValueError:
            raise CallbackMalformed(f"outcome must be one of {', '.join(o.value for o in Outcome)}") from None
    if status is CallStatus.COMPLETED and outcome is None:
        raise CallbackMalformed("a completed event needs an outcome")
    attempt_id = data.get("attempt_id")
    if attempt_id is not None and (not isinstance(attempt_id, int) or isinstance(attempt_id, bool)):
        raise CallbackMalformed("attempt_id must be an integer")
    call_id = data.get("call_id")
    if call_id is not None and not isinstance(call_id, str | int):
        raise CallbackMalformed("call_id must be a string")
    if attempt_id is None and call_id is None:
        raise CallbackMalformed("an event needs attempt_id or call_id")
    extracted = data.get("extracted_data")
    if extracted is not None and not isinstance(extracted, dict):
        raise CallbackMalformed("extracted_data must be an object")
    return CallEvent(
        dedupe_key=dedupe_key,
        status=status,
        attempt_id=attempt_id,
        provider_call_id=str(call_id) if call_id is not None else None,
        outcome=outcome,
        answered_by=_text(data, "answered_by", 32),
        duration_seconds=_number(data, "duration_seconds"),
        cost=_number(data, "cost"),
        hangup_reason=_text(data, "hangup_reason", 200),
        recording_url=_text(data, "recording_url", 2000),
        transcript=_text(data, "transcript", MAX_TEXT),
        extracted_data=extracted,
        error=_text(data, "error", 500),
    )


def _text(data: dict[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CallbackMalformed(f"{name} must be a string")
    return value[:limit]


def _number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise CallbackMalformed(f"{name} must be a non-negative number")
    return float(value)
