"""Twilio as a provider: calls created with the REST API over ``httpx``, status callbacks verified with
``X-Twilio-Signature``, lost callbacks reconciled by fetching the call.

**No second call.** Twilio's ``Calls.json`` has no idempotency key, so a create is sent again only when
Twilio's answer proves no call was made: a 429 (rate limit) or a 503 (service unavailable), or a connection
that was never established. Anything else that leaves the outcome open (a read timeout, a dropped
connection, another 5xx, a 2xx without a sid) raises :class:`CallMaybePlaced`: the attempt is never sent
again; if Twilio did create the call, its status callbacks still name the attempt (``?attempt=<id>`` in the
callback URL) and settle it, otherwise the result timeout ends it as ``unknown``. Within one process a
repeated request for an attempt already placed returns the same call sid without asking Twilio.

Refusals become attempt outcomes with an ``error`` that starts with a stable reason (``twilio rate
limited``, ``twilio unavailable``, ``twilio unreachable``, ``twilio authentication failed``, ``twilio
refused``, ``invalid number``) so dispatch health can count them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode
from xml.sax.saxutils import quoteattr

import httpx

from bulkcall.domain.calls import CallStatus
from bulkcall.domain.retries import Outcome
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
from bulkcall.providers.retry import RequestRetryPolicy
from bulkcall.providers.twilio import signature as twilio_signature
from bulkcall.providers.twilio.config import TwilioConfig

log = get_logger("bulkcall.providers.twilio")

API_VERSION = "2010-04-01"
# Seconds the phone may ring before Twilio gives up (``no-answer``); Twilio's own default is 60.
RING_TIMEOUT_SECONDS = 30
STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
_REMEMBERED_KEYS = 200_000
# Twilio error codes that say the callee's number is not a callable number.
INVALID_NUMBER_CODES = frozenset({21211, 21214, 21217, 13223, 13224})
# Codes that say this account may not call that destination: calling again cannot help.
NOT_ALLOWED_CODES = frozenset({21215, 21216})
RATE_LIMIT_CODES = frozenset({20429})


def _config(connection: ConnectionInfo) -> TwilioConfig:
    config = connection.config
    assert isinstance(config, TwilioConfig)
    return config


def _twilio_error(response: httpx.Response) -> tuple[int | None, str]:
    """Twilio's error ``code`` and ``message`` from an error answer (its JSON body), if it has them."""
    try:
        body = response.json()
    except ValueError:
        return None, response.reason_phrase or f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return None, f"HTTP {response.status_code}"
    code = body.get("code")
    message = str(body.get("message") or response.reason_phrase or f"HTTP {response.status_code}")
    return (code if isinstance(code, int) else None), message[:300]


def twiml_for(runtime: dict[str, Any], request: CallRequest) -> dict[str, str]:
    """``Url`` or ``Twiml`` from the agent's runtime: ``twiml_url``, ``twiml`` or ``stream_url``."""
    if isinstance(runtime.get("twiml_url"), str) and runtime["twiml_url"]:
        return {"Url": runtime["twiml_url"]}
    if isinstance(runtime.get("twiml"), str) and runtime["twiml"]:
        return {"Twiml": runtime["twiml"]}
    if isinstance(runtime.get("stream_url"), str) and runtime["stream_url"]:
        parameters = {"attempt_id": str(request.attempt_id), "campaign_id": str(request.campaign_id)}
        parameters.update(
            {str(name): str(value) for name, value in request.variables.items() if isinstance(value, str | int | float)}
        )
        stream = quoteattr(runtime["stream_url"])
        inner = "".join(
            f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>" for name, value in parameters.items()
        )
        twiml = f"<Response><Connect><Stream url={stream}>{inner}</Stream></Connect></Response>"
        if len(twiml) > 4000:  # Twilio's limit on inline TwiML: drop the variables, keep the attempt
            inner = f'<Parameter name="attempt_id" value="{request.attempt_id}"/>'
            twiml = f"<Response><Connect><Stream url={stream}>{inner}</Stream></Connect></Response>"
        return {"Twiml": twiml}
    raise CallNotPlaced(
        Outcome.FAILED, "twilio refused: the agent's runtime has no twiml_url, twiml or stream_url (nothing to say)"
    )


def status_callback_url(request: CallRequest, connection: ConnectionInfo) -> str:
    """Where Twilio reports this call: names the connection (whose auth token verifies) and the attempt."""
    return f"{request.callback_url}?{urlencode({'connection': connection.id, 'attempt': request.attempt_id})}"


def create_params(connection: ConnectionInfo, request: CallRequest) -> list[tuple[str, str]]:
    """The form parameters of ``POST .../Calls.json`` for one call."""
    config = _config(connection)
    params: list[tuple[str, str]] = [("To", request.to), ("From", request.from_)]
    params.extend(twiml_for(request.agent_runtime, request).items())
    params.append(("StatusCallback", status_callback_url(request, connection)))
    params.append(("StatusCallbackMethod", "POST"))
    params.extend(("StatusCallbackEvent", event) for event in STATUS_CALLBACK_EVENTS)
    params.append(("Timeout", str(RING_TIMEOUT_SECONDS)))
    params.append(("Record", "true" if request.record else "false"))
    if config.machine_detection is not None:
        params.append(("MachineDetection", config.machine_detection))
    return params


def event_from_status(
    call_sid: str,
    status: str,
    *,
    attempt_id: int | None,
    answered_by: str | None,
    duration: str | None,
    price: str | None,
    recording_url: str | None = None,
    error: str | None = None,
) -> CallEvent | None:
    """A Twilio ``CallStatus`` (callback or fetched call) as a call event; None for a status we do not track."""
    dedupe_key = f"{call_sid}:{status}"
    common: dict[str, Any] = {"dedupe_key": dedupe_key, "attempt_id": attempt_id, "provider_call_id": call_sid}
    if status in ("queued", "initiated"):
        return CallEvent(status=CallStatus.INITIATED, **common)
    if status == "ringing":
        return CallEvent(status=CallStatus.RINGING, **common)
    if status == "in-progress":
        return CallEvent(status=CallStatus.ANSWERED, answered_by=_answered_by(answered_by), **common)
    seconds = _number(duration)
    cost = _number(price)
    final: dict[str, Any] = {
        **common,
        "status": CallStatus.COMPLETED,
        "duration_seconds": seconds,
        "cost": abs(cost) if cost is not None else None,  # Twilio reports a charge as a negative price
        "recording_url": recording_url or None,
        "hangup_reason": status,
    }
    if status == "completed":
        who = answered_by or ""
        if who.startswith("machine"):
            return CallEvent(outcome=Outcome.VOICEMAIL, answered_by="machine", **final)
        if who == "fax":
            return CallEvent(outcome=Outcome.FAILED, answered_by="fax", error="answered by a fax machine", **final)
        return CallEvent(outcome=Outcome.ANSWERED, answered_by=_answered_by(answered_by) or "human", **final)
    if status == "busy":
        return CallEvent(outcome=Outcome.BUSY, **final)
    if status == "no-answer":
        return CallEvent(outcome=Outcome.NO_ANSWER, **final)
    if status == "failed":
        return CallEvent(outcome=Outcome.FAILED, error=f"twilio call failed: {error or 'no reason given'}", **final)
    if status == "canceled":
        return CallEvent(outcome=Outcome.FAILED, error="twilio call canceled before it was answered", **final)
    return None


def _answered_by(value: str | None) -> str | None:
    if not value:
        return None
    if value.startswith("machine"):
        return "machine"
    return value if value in ("human", "fax") else None


def _number(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


class TwilioProvider:
    name = "twilio"

    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        retry: RequestRetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self._now = now
        self._retry = retry or RequestRetryPolicy()
        self._timeout = timeout or httpx.Timeout(15.0, connect=5.0)
        self._client: httpx.AsyncClient | None = None
        self._placed: OrderedDict[str, str] = OrderedDict()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, headers={"User-Agent": "bulkcall"})
        return self._client

    @staticmethod
    def _account_url(config: TwilioConfig, suffix: str = "") -> str:
        return f"{config.api_base_url.rstrip('/')}/{API_VERSION}/Accounts/{quote(config.account_sid)}{suffix}"

    @staticmethod
    def _auth(config: TwilioConfig) -> httpx.BasicAuth:
        return httpx.BasicAuth(config.account_sid, config.auth_token.get_secret_value())

    # -- placing calls ---------------------------------------------------------------------------------------

    async def place_call(self, connection: ConnectionInfo, request: CallRequest) -> PlacedCall:
        known = self._placed.get(request.idempotency_key)
        if known is not None:
            return PlacedCall(known)
        config = _config(connection)
        params = create_params(connection, request)
        url = self._account_url(config, "/Calls.json")
        last_refusal = ""
        for try_number in range(1, self._retry.tries + 1):
            try:
                response = await self._http().post(url, data=_form(params), auth=self._auth(config))
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The connection never opened: the request cannot have reached Twilio.
                last_refusal = f"twilio unreachable: {type(exc).__name__}"
                await self._pause(try_number, None)
                continue
            except httpx.HTTPError as exc:
                raise CallMaybePlaced(
                    f"twilio: no answer to the create ({type(exc).__name__}); the call may exist, not sent again"
                ) from None
            status = response.status_code
            if 200 <= status < 300:
                return self._placed_call(request, response)
            code, message = _twilio_error(response)
            if status == 429 or code in RATE_LIMIT_CODES:
                last_refusal = f"twilio rate limited (HTTP {status}, code {code}): {message}"
                await self._pause(try_number, response.headers.get("retry-after"))
                continue
            if status == 503:
                last_refusal = f"twilio unavailable (HTTP 503, code {code}): {message}"
                await self._pause(try_number, response.headers.get("retry-after"))
                continue
            if status >= 500:
                raise CallMaybePlaced(
                    f"twilio: HTTP {status} to the create (code {code}: {message}); the call may exist, not sent again"
                )
            raise self._refusal(status, code, message)
        log.warning("twilio_create_gave_up", attempt_id=request.attempt_id, tries=self._retry.tries)
        raise CallNotPlaced(Outcome.FAILED, f"{last_refusal} (after {self._retry.tries} tries)")

    async def _pause(self, try_number: int, retry_after: str | None) -> None:
        if try_number < self._retry.tries:
            await asyncio.sleep(self._retry.delay(try_number, retry_after))

    def _placed_call(self, request: CallRequest, response: httpx.Response) -> PlacedCall:
        try:
            sid = response.json().get("sid")
        except (ValueError, AttributeError):
            sid = None
        if not isinstance(sid, str) or not sid:
            raise CallMaybePlaced(f"twilio: HTTP {response.status_code} without a call sid; not sent again")
        self._placed[request.idempotency_key] = sid
        if len(self._placed) > _REMEMBERED_KEYS:
            self._placed.popitem(last=False)
        return PlacedCall(sid)

    @staticmethod
    def _refusal(status: int, code: int | None, message: str) -> CallNotPlaced:
        detail = f"(HTTP {status}, code {code}): {message}"
        if code in INVALID_NUMBER_CODES:
            return CallNotPlaced(Outcome.INVALID_NUMBER, f"invalid number {detail}")
        if code in NOT_ALLOWED_CODES:
            return CallNotPlaced(Outcome.REJECTED, f"twilio refused: destination not allowed {detail}")
        if status in (401, 403) or code == 20003:
            return CallNotPlaced(
                Outcome.FAILED, f"twilio authentication failed {detail}; check account_sid and auth_token"
            )
        return CallNotPlaced(Outcome.FAILED, f"twilio refused {detail}")

    # -- callbacks -------------------------------------------------------------------------------------------

    def callback_connection_id(self, request: CallbackRequest) -> int | None:
        return _query_int(request, "connection")

    def parse_callback(self, connection: ConnectionInfo, request: CallbackRequest) -> list[CallEvent]:
        config = _config(connection)
        try:
            params = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise CallbackMalformed("the body is not UTF-8 form data") from None
        given = request.headers.get(twilio_signature.SIGNATURE_HEADER, "")
        if not twilio_signature.is_valid(config.auth_token.get_secret_value(), request.url, params, given):
            raise CallbackRejected("missing or wrong X-Twilio-Signature")
        form = dict(params)
        if form.get("AccountSid") not in (None, config.account_sid):
            raise CallbackRejected("AccountSid is not this connection's account")
        call_sid = form.get("CallSid", "")
        status = form.get("CallStatus", "")
        if not call_sid or not status:
            raise CallbackMalformed("a status callback needs CallSid and CallStatus")
        event = event_from_status(
            call_sid,
            status,
            attempt_id=_query_int(request, "attempt"),
            answered_by=form.get("AnsweredBy"),
            duration=form.get("CallDuration") or form.get("Duration"),
            price=form.get("Price"),
            recording_url=form.get("RecordingUrl"),
            error=" ".join(filter(None, (form.get("ErrorCode"), form.get("ErrorMessage")))) or None,
        )
        if event is None:
            raise CallbackMalformed(f"unknown CallStatus {status[:40]!r}")
        return [event]

    # -- reconciliation and checks ---------------------------------------------------------------------------

    async def fetch_status(self, connection: ConnectionInfo, provider_call_id: str) -> CallEvent | None:
        """``GET .../Calls/{sid}.json``: the call's state as Twilio has it (for calls whose callbacks were lost)."""
        config = _config(connection)
        url = self._account_url(config, f"/Calls/{quote(provider_call_id, safe='')}.json")
        response = await self._http().get(url, auth=self._auth(config))
        if response.status_code != 200:
            code, message = _twilio_error(response)
            raise RuntimeError(f"twilio call lookup: HTTP {response.status_code} (code {code}): {message}")
        call = response.json()
        if not isinstance(call, dict) or not isinstance(call.get("status"), str):
            raise RuntimeError("twilio call lookup: the answer has no status")
        return event_from_status(
            provider_call_id,
            call["status"],
            attempt_id=None,
            answered_by=_text(call.get("answered_by")),
            duration=_text(call.get("duration")),
            price=_text(call.get("price")),
        )

    async def check_connection(self, connection: ConnectionInfo) -> ConnectionCheck:
        """Fetch the account (``GET .../Accounts/{sid}.json``): credentials and reachability, no call placed."""
        config = _config(connection)
        try:
            response = await self._http().get(self._account_url(config, ".json"), auth=self._auth(config))
        except httpx.HTTPError as exc:
            return ConnectionCheck(False, f"twilio unreachable at {config.api_base_url}: {type(exc).__name__}")
        if response.status_code != 200:
            code, message = _twilio_error(response)
            reason = "authentication failed" if response.status_code in (401, 403) else "error"
            return ConnectionCheck(False, f"twilio {reason} (HTTP {response.status_code}, code {code}): {message}")
        try:
            account = response.json()
        except ValueError:
            account = {}
        status = account.get("status") if isinstance(account, dict) else None
        if status not in (None, "active"):
            return ConnectionCheck(False, f"twilio account {config.account_sid} is {status}")
        return ConnectionCheck(True, f"twilio account {config.account_sid} is {status or 'reachable'}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _form(params: list[tuple[str, str]]) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    for name, value in params:
        form.setdefault(name, []).append(value)
    return form


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _query_int(request: CallbackRequest, name: str) -> int | None:
    query = dict(request.query) or dict(parse_qsl(request.url.partition("?")[2]))
    value = query.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None
