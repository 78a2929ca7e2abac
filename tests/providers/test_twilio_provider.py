"""The ``twilio`` provider against a local Twilio-compatible server: what a create sends, which answers are
retried (only those proving no call was made) and which end the attempt how, callbacks verified exactly as
Twilio signs them (checked against the ``twilio`` package's ``RequestValidator``), the status mapping, the
call lookup and the connection check."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from bulkcall.domain.calls import CallStatus
from bulkcall.domain.retries import Outcome
from bulkcall.providers.base import (
    CallbackMalformed,
    CallbackRejected,
    CallbackRequest,
    CallMaybePlaced,
    CallNotPlaced,
    CallRequest,
    ConnectionInfo,
)
from bulkcall.providers.retry import RequestRetryPolicy
from bulkcall.providers.twilio.config import TwilioConfig
from bulkcall.providers.twilio.provider import TwilioProvider, event_from_status
from bulkcall.providers.twilio.signature import is_valid, signature
from tests.providers.twilio_double import ACCOUNT_SID, AUTH_TOKEN, Answer, TwilioDouble, twilio_double

NOW = datetime(2026, 6, 3, 15, 0, tzinfo=UTC)
CALLBACK = "https://bulkcall.example.com/api/v1/webhooks/telephony/twilio"
CALLEE = "+12125550001"
FAST = RequestRetryPolicy(tries=3, backoff_seconds=0.01, max_delay_seconds=0.05)


@pytest.fixture
def double() -> Iterator[TwilioDouble]:
    with twilio_double() as server:
        yield server


def connection(base_url: str, **config: Any) -> ConnectionInfo:
    return ConnectionInfo(
        id=7,
        workspace_id=1,
        provider="twilio",
        config=TwilioConfig(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base_url=base_url, **config),
        signing_secret="unused",
    )


def request(attempt_id: int = 11, *, to: str = CALLEE, record: bool = True, **runtime: Any) -> CallRequest:
    return CallRequest(
        attempt_id=attempt_id,
        idempotency_key=f"attempt-{attempt_id}",
        campaign_id=1,
        task_id=100 + attempt_id,
        attempt_number=1,
        to=to,
        from_="+14155550100",
        telephony_connection_id=7,
        caller_phone_number_id=3,
        variables={"first_name": "Ada"},
        record=record,
        agent_id=1,
        agent_runtime=runtime or {"twiml_url": "https://agent.example.com/twiml"},
        callback_url=CALLBACK,
        requested_at=NOW,
    )


def provider(**kwargs: Any) -> TwilioProvider:
    return TwilioProvider(lambda: NOW, retry=FAST, **kwargs)


# -- the signature -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "params"),
    [
        (CALLBACK + "?connection=7&attempt=11", [("CallSid", "CA1"), ("CallStatus", "completed")]),
        ("https://example.com:8443/hook?a=1", [("B", "2"), ("A", "1"), ("A", "0"), ("Empty", "")]),
        ("http://127.0.0.1:8000/x", [("Caller", "+1 (415) 555-0100"), ("Name", "Zoë & co")]),
        ("https://example.com/no-params", []),
    ],
)
def test_signature_is_the_one_twilios_request_validator_computes_and_accepts(
    url: str, params: list[tuple[str, str]]
) -> None:
    validator = RequestValidator(AUTH_TOKEN)
    as_dict = dict(params)
    ours = signature(AUTH_TOKEN, url, params)
    if len({name for name, _ in params}) == len(params):  # a plain dict carries no repeated names
        assert ours == validator.compute_signature(url, as_dict)
        assert validator.validate(url, as_dict, ours)
    theirs = validator.compute_signature(url, as_dict)
    if len({name for name, _ in params}) == len(params):
        assert is_valid(AUTH_TOKEN, url, params, theirs)
    assert not is_valid(AUTH_TOKEN + "x", url, params, ours)
    assert not is_valid(AUTH_TOKEN, url + "&tampered=1", params, ours)


def test_signature_accepts_the_url_with_or_without_the_default_port_like_twilio() -> None:
    params = [("CallSid", "CA1")]
    signed_with_port = RequestValidator(AUTH_TOKEN).compute_signature("https://example.com:443/hook?x=1", dict(params))
    assert is_valid(AUTH_TOKEN, "https://example.com/hook?x=1", params, signed_with_port)
    assert not is_valid(AUTH_TOKEN, "https://example.com/hook?x=2", params, signed_with_port)


# -- placing calls -------------------------------------------------------------------------------------------


async def test_create_sends_twilios_form_with_basic_auth_and_a_callback_naming_connection_and_attempt(
    double: TwilioDouble,
) -> None:
    twilio = provider()
    try:
        placed = await twilio.place_call(connection(double.base_url, machine_detection="DetectMessageEnd"), request())
    finally:
        await twilio.aclose()
    (sent,) = double.creates()
    assert placed.provider_call_id == double.created_calls()[0]["sid"]
    assert sent.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    assert sent.headers["authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.param("To") == CALLEE
    assert sent.param("From") == "+14155550100"
    assert sent.param("Url") == "https://agent.example.com/twiml"
    assert sent.param("Twiml") is None
    assert sent.param("StatusCallback") == CALLBACK + "?connection=7&attempt=11"
    assert sent.param("StatusCallbackMethod") == "POST"
    assert sent.params("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]
    assert sent.param("MachineDetection") == "DetectMessageEnd"
    assert sent.param("Timeout") == "30"
    assert sent.param("Record") == "true"


async def test_inline_twiml_and_stream_url_become_twiml(double: TwilioDouble) -> None:
    twilio = provider()
    try:
        await twilio.place_call(
            connection(double.base_url), request(1, record=False, twiml="<Response><Say>Hi</Say></Response>")
        )
        await twilio.place_call(connection(double.base_url), request(2, stream_url="wss://agent.example.com/s?a=1&b=2"))
    finally:
        await twilio.aclose()
    inline, stream = double.creates()
    assert inline.param("Twiml") == "<Response><Say>Hi</Say></Response>"
    assert (inline.param("Url"), inline.param("Record"), inline.param("MachineDetection")) == (None, "false", None)
    assert stream.param("Twiml") == (
        '<Response><Connect><Stream url="wss://agent.example.com/s?a=1&amp;b=2">'
        '<Parameter name="attempt_id" value="2"/><Parameter name="campaign_id" value="1"/>'
        '<Parameter name="first_name" value="Ada"/></Stream></Connect></Response>'
    )


async def test_a_runtime_without_twiml_is_refused_before_anything_is_sent(double: TwilioDouble) -> None:
    twilio = provider()
    try:
        with pytest.raises(CallNotPlaced) as refused:
            await twilio.place_call(connection(double.base_url), request(agent_prompt="hi"))
    finally:
        await twilio.aclose()
    assert refused.value.outcome is Outcome.FAILED
    assert "twiml_url, twiml or stream_url" in refused.value.error
    assert double.creates() == []


async def test_a_repeated_request_for_a_placed_attempt_makes_no_second_call(double: TwilioDouble) -> None:
    twilio = provider()
    try:
        first = await twilio.place_call(connection(double.base_url), request())
        again = await twilio.place_call(connection(double.base_url), request())
    finally:
        await twilio.aclose()
    assert first == again
    assert len(double.creates()) == 1


async def test_rate_limit_and_unavailable_are_retried_and_make_one_call(double: TwilioDouble) -> None:
    double.script[CALLEE] = [Answer(429, 20429, "Too Many Requests", retry_after="0"), Answer(503, None), Answer()]
    twilio = provider()
    try:
        placed = await twilio.place_call(connection(double.base_url), request())
    finally:
        await twilio.aclose()
    assert len(double.creates()) == 3
    assert [call["sid"] for call in double.created_calls()] == [placed.provider_call_id]


async def test_rate_limited_on_every_try_is_not_placed_with_a_countable_error(double: TwilioDouble) -> None:
    double.script[CALLEE] = [Answer(429, 20429, "Too Many Requests")]
    twilio = provider()
    try:
        with pytest.raises(CallNotPlaced) as refused:
            await twilio.place_call(connection(double.base_url), request())
    finally:
        await twilio.aclose()
    assert len(double.creates()) == FAST.tries
    assert refused.value.outcome is Outcome.FAILED
    assert refused.value.error.startswith("twilio rate limited (HTTP 429, code 20429)")
    assert double.created_calls() == []


@pytest.mark.parametrize(
    ("answer", "outcome", "prefix"),
    [
        (
            Answer(400, 21211, "Invalid 'To' Phone Number"),
            Outcome.INVALID_NUMBER,
            "invalid number (HTTP 400, code 21211)",
        ),
        (Answer(400, 21215, "Geo permission"), Outcome.REJECTED, "twilio refused: destination not allowed"),
        (Answer(400, 21210, "'From' not verified"), Outcome.FAILED, "twilio refused (HTTP 400, code 21210)"),
    ],
)
async def test_refusals_end_the_attempt_with_their_outcome_and_are_not_retried(
    double: TwilioDouble, answer: Answer, outcome: Outcome, prefix: str
) -> None:
    double.script[CALLEE] = [answer]
    twilio = provider()
    try:
        with pytest.raises(CallNotPlaced) as refused:
            await twilio.place_call(connection(double.base_url), request())
    finally:
        await twilio.aclose()
    assert (refused.value.outcome, len(double.creates())) == (outcome, 1)
    assert refused.value.error.startswith(prefix)


async def test_wrong_credentials_are_a_clear_failure_without_the_token(double: TwilioDouble) -> None:
    info = ConnectionInfo(
        id=7,
        workspace_id=1,
        provider="twilio",
        config=TwilioConfig(account_sid=ACCOUNT_SID, auth_token="wrong-token", api_base_url=double.base_url),
        signing_secret="unused",
    )
    twilio = provider()
    try:
        with pytest.raises(CallNotPlaced) as refused:
            await twilio.place_call(info, request())
    finally:
        await twilio.aclose()
    assert refused.value.error.startswith("twilio authentication failed (HTTP 401, code 20003)")
    assert "wrong-token" not in refused.value.error


@pytest.mark.parametrize("answer", [Answer(500, 20500, "Internal"), Answer(502, None), Answer(hang=1.0)])
async def test_an_open_outcome_is_maybe_placed_and_never_sent_again(double: TwilioDouble, answer: Answer) -> None:
    double.script[CALLEE] = [answer]
    twilio = provider(timeout=httpx.Timeout(0.3, connect=2.0))
    try:
        with pytest.raises(CallMaybePlaced, match="not sent again"):
            await twilio.place_call(connection(double.base_url), request())
    finally:
        await twilio.aclose()
    assert len(double.creates()) == 1


async def test_an_unreachable_server_is_retried_then_not_placed() -> None:
    with twilio_double() as gone:
        base_url = gone.base_url  # closed when the block ends: nothing listens there any more
    twilio = provider()
    try:
        with pytest.raises(CallNotPlaced) as refused:
            await twilio.place_call(connection(base_url), request())
    finally:
        await twilio.aclose()
    assert refused.value.error.startswith("twilio unreachable: ConnectError")
    assert refused.value.error.endswith(f"(after {FAST.tries} tries)")


# -- callbacks -----------------------------------------------------------------------------------------------


def callback(params: dict[str, str], *, token: str = AUTH_TOKEN, attempt: int = 11) -> CallbackRequest:
    url = f"{CALLBACK}?{urlencode({'connection': 7, 'attempt': attempt})}"
    body = urlencode(params).encode()
    headers = {
        "x-twilio-signature": RequestValidator(token).compute_signature(url, params),
        "content-type": "application/x-www-form-urlencoded",
    }
    return CallbackRequest(url=url, headers=headers, body=body, query={"connection": "7", "attempt": str(attempt)})


def status_params(status: str, **extra: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT_SID, "CallSid": "CA42", "CallStatus": status, "SequenceNumber": "3", **extra}


@pytest.mark.parametrize(
    ("params", "status", "outcome", "answered_by"),
    [
        (status_params("ringing"), CallStatus.RINGING, None, None),
        (status_params("in-progress", AnsweredBy="human"), CallStatus.ANSWERED, None, "human"),
        (
            status_params("completed", AnsweredBy="human", CallDuration="61"),
            CallStatus.COMPLETED,
            Outcome.ANSWERED,
            "human",
        ),
        (status_params("completed", CallDuration="12"), CallStatus.COMPLETED, Outcome.ANSWERED, "human"),
        (status_params("completed", AnsweredBy="machine_end_beep"), CallStatus.COMPLETED, Outcome.VOICEMAIL, "machine"),
        (status_params("completed", AnsweredBy="fax"), CallStatus.COMPLETED, Outcome.FAILED, "fax"),
        (status_params("no-answer"), CallStatus.COMPLETED, Outcome.NO_ANSWER, None),
        (status_params("busy"), CallStatus.COMPLETED, Outcome.BUSY, None),
        (status_params("failed", ErrorCode="32009"), CallStatus.COMPLETED, Outcome.FAILED, None),
        (status_params("canceled"), CallStatus.COMPLETED, Outcome.FAILED, None),
    ],
)
def test_status_callbacks_map_to_events(
    params: dict[str, str], status: CallStatus, outcome: Outcome | None, answered_by: str | None
) -> None:
    (event,) = provider().parse_callback(connection("https://api.twilio.com"), callback(params))
    assert (event.status, event.outcome, event.answered_by) == (status, outcome, answered_by)
    assert (event.attempt_id, event.provider_call_id) == (11, "CA42")
    assert event.dedupe_key == f"CA42:{params['CallStatus']}"


def test_a_completed_callback_carries_duration_price_and_recording() -> None:
    params = status_params(
        "completed", CallDuration="61", Price="-0.0130", RecordingUrl="https://api.twilio.com/rec/RE1"
    )
    (event,) = provider().parse_callback(connection("https://api.twilio.com"), callback(params))
    assert (event.duration_seconds, event.cost, event.recording_url) == (61.0, 0.013, "https://api.twilio.com/rec/RE1")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: CallbackRequest(r.url, {**r.headers, "x-twilio-signature": "AAAA"}, r.body, r.query),
        lambda r: CallbackRequest(r.url, {k: v for k, v in r.headers.items() if k != "x-twilio-signature"}, r.body),
        lambda r: CallbackRequest(r.url, r.headers, r.body.replace(b"completed", b"no-answer"), r.query),
        lambda r: CallbackRequest(r.url.replace("attempt=11", "attempt=12"), r.headers, r.body, {"attempt": "12"}),
    ],
)
def test_a_callback_not_signed_by_the_connections_token_is_rejected(tamper: Any) -> None:
    signed = callback(status_params("completed", AnsweredBy="human"))
    with pytest.raises(CallbackRejected, match="X-Twilio-Signature"):
        provider().parse_callback(connection("https://api.twilio.com"), tamper(signed))
    with pytest.raises(CallbackRejected):
        provider().parse_callback(connection("https://api.twilio.com"), callback(status_params("busy"), token="other"))


def test_a_callback_for_another_account_or_without_a_status_is_refused() -> None:
    with pytest.raises(CallbackRejected, match="AccountSid"):
        provider().parse_callback(
            connection("https://api.twilio.com"), callback(status_params("busy", AccountSid="AC" + "f" * 32))
        )
    with pytest.raises(CallbackMalformed):
        provider().parse_callback(connection("https://api.twilio.com"), callback({"CallSid": "CA42"}))
    with pytest.raises(CallbackMalformed, match="unknown CallStatus"):
        provider().parse_callback(connection("https://api.twilio.com"), callback(status_params("exploded")))


def test_callback_connection_and_attempt_come_from_the_query() -> None:
    signed = callback(status_params("busy"), attempt=99)
    assert provider().callback_connection_id(signed) == 7
    assert provider().callback_connection_id(CallbackRequest(CALLBACK, {}, b"")) is None


def test_unknown_statuses_are_not_events() -> None:
    assert event_from_status("CA1", "weird", attempt_id=None, answered_by=None, duration=None, price=None) is None


# -- lookup and check ----------------------------------------------------------------------------------------


async def test_fetch_status_reads_the_call_from_twilio(double: TwilioDouble) -> None:
    twilio = provider()
    try:
        placed = await twilio.place_call(connection(double.base_url), request())
        double.set_status(
            placed.provider_call_id, "completed", answered_by="machine_start", duration="7", price="-0.02"
        )
        event = await twilio.fetch_status(connection(double.base_url), placed.provider_call_id)
        double.set_status(placed.provider_call_id, "in-progress")
        running = await twilio.fetch_status(connection(double.base_url), placed.provider_call_id)
        with pytest.raises(RuntimeError, match="HTTP 404"):
            await twilio.fetch_status(connection(double.base_url), "CAmissing")
    finally:
        await twilio.aclose()
    assert event is not None
    assert running is not None
    assert (event.status, event.outcome, event.duration_seconds, event.cost) == (
        CallStatus.COMPLETED,
        Outcome.VOICEMAIL,
        7.0,
        0.02,
    )
    assert event.dedupe_key == f"{placed.provider_call_id}:completed"  # a late callback is then a duplicate
    assert running.status is CallStatus.ANSWERED
    lookup = double.requests[-1]
    assert (lookup.method, lookup.path) == ("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CAmissing.json")


async def test_check_connection_fetches_the_account(double: TwilioDouble) -> None:
    twilio = provider()
    try:
        good = await twilio.check_connection(connection(double.base_url))
        double.account_status = "suspended"
        suspended = await twilio.check_connection(connection(double.base_url))
    finally:
        await twilio.aclose()
    assert (good.ok, suspended.ok) == (True, False)
    assert "suspended" in suspended.detail
    assert all(r.method == "GET" and r.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}.json" for r in double.requests)
    assert double.creates() == []
