"""The ``http_agent`` provider against a local agent on 127.0.0.1: the call request it POSTs (signed so the
Standard Webhooks reference library accepts it, the attempt's key as message id and ``Idempotency-Key``),
which answers are retried (with the same key) and which end the attempt, callbacks verified the same way, the
call lookup, the ping, and the config's secret format."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import standardwebhooks
from pydantic import ValidationError

from bulkcall.domain.calls import CallStatus
from bulkcall.domain.retries import Outcome
from bulkcall.kit.standard_webhooks import new_secret, sign
from bulkcall.providers import parse_config
from bulkcall.providers.base import (
    CallbackMalformed,
    CallbackRejected,
    CallbackRequest,
    CallMaybePlaced,
    CallNotPlaced,
    CallRequest,
    ConnectionInfo,
)
from bulkcall.providers.http_agent.config import HttpAgentConfig
from bulkcall.providers.http_agent.provider import HttpAgentProvider
from bulkcall.providers.retry import RequestRetryPolicy

NOW = datetime(2026, 6, 3, 15, 0, tzinfo=UTC)
SECRET = new_secret()
CALLBACK = "https://bulkcall.example.com/api/v1/webhooks/telephony/http_agent"
FAST = RequestRetryPolicy(tries=3, backoff_seconds=0.01, max_delay_seconds=0.05)


@dataclass
class Agent:
    """Answers from a script (status, JSON body, seconds to hang first), the last repeating; records requests."""

    url: str = ""
    script: list[tuple[int, dict[str, Any], float]] = field(default_factory=lambda: [(200, {"call_id": "c-1"}, 0.0)])
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def agent() -> Iterator[Agent]:
    state = Agent()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status, answer, hang = state.script.pop(0) if len(state.script) > 1 else state.script[0]
            time.sleep(hang)
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_port}/calls"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def connection(url: str = "https://agent.example.com/calls", secret: str = SECRET) -> ConnectionInfo:
    return ConnectionInfo(
        id=9,
        workspace_id=1,
        provider="http_agent",
        config=HttpAgentConfig(url=url, signing_secret=secret),
        signing_secret="unused",
    )


def request(attempt_id: int = 21) -> CallRequest:
    return CallRequest(
        attempt_id=attempt_id,
        idempotency_key=f"attempt-{attempt_id}",
        campaign_id=4,
        task_id=300,
        attempt_number=2,
        to="+12125550001",
        from_="+14155550100",
        telephony_connection_id=9,
        caller_phone_number_id=3,
        variables={"first_name": "Ada", "contact_id": 5, "plan": "gold"},
        record=True,
        agent_id=8,
        agent_runtime={"assistant": "sales-v2"},
        callback_url=CALLBACK,
        requested_at=NOW,
    )


def provider(**kwargs: Any) -> HttpAgentProvider:
    return HttpAgentProvider(lambda: NOW, retry=FAST, **kwargs)


async def test_call_request_is_signed_with_the_attempt_key_and_carries_the_task(agent: Agent) -> None:
    http_agent = provider()
    try:
        placed = await http_agent.place_call(connection(agent.url), request())
    finally:
        await http_agent.aclose()
    assert placed.provider_call_id == "c-1"
    ((headers, body),) = agent.received
    standardwebhooks.Webhook(SECRET).verify(body, headers)  # the reference library accepts it
    assert headers["webhook-id"] == headers["idempotency-key"] == "attempt-21"
    message = json.loads(body)
    assert message == {
        "type": "call.request",
        "version": 1,
        "idempotency_key": "attempt-21",
        "attempt_id": 21,
        "attempt_number": 2,
        "task": {"id": 300, "campaign_id": 4},
        "contact": {"phone_e164": "+12125550001", "contact_id": 5, "first_name": "Ada", "last_name": None},
        "caller_id": "+14155550100",
        "variables": {"first_name": "Ada", "contact_id": 5, "plan": "gold"},
        "agent": {"id": 8, "runtime": {"assistant": "sales-v2"}},
        "record": True,
        "callback_url": CALLBACK + "?connection=9",
        "requested_at": NOW.isoformat(),
    }


async def test_open_answers_are_retried_with_the_same_key(agent: Agent) -> None:
    agent.script = [(503, {}, 0.0), (500, {}, 0.0), (409, {"call_id": "c-7"}, 0.0)]
    http_agent = provider()
    try:
        placed = await http_agent.place_call(connection(agent.url), request())
    finally:
        await http_agent.aclose()
    assert placed.provider_call_id == "c-7"
    assert [headers["idempotency-key"] for headers, _ in agent.received] == ["attempt-21"] * 3


async def test_an_agent_that_never_answers_leaves_the_call_maybe_placed(agent: Agent) -> None:
    agent.script = [(200, {"call_id": "late"}, 1.0)]
    http_agent = provider(timeout=httpx.Timeout(0.2, connect=2.0))
    try:
        with pytest.raises(CallMaybePlaced, match="not sent again"):
            await http_agent.place_call(connection(agent.url), request())
    finally:
        await http_agent.aclose()
    assert len(agent.received) == FAST.tries


async def test_a_busy_agent_is_not_placed_after_the_tries(agent: Agent) -> None:
    agent.script = [(429, {}, 0.0)]
    http_agent = provider()
    try:
        with pytest.raises(CallNotPlaced) as refused:
            await http_agent.place_call(connection(agent.url), request())
    finally:
        await http_agent.aclose()
    assert refused.value.error == "agent busy (HTTP 429) (after 3 tries)"


@pytest.mark.parametrize(
    ("status", "body", "outcome", "error"),
    [
        (
            422,
            {"outcome": "invalid_number", "error": "no such line"},
            Outcome.INVALID_NUMBER,
            "invalid number (HTTP 422): no such line",
        ),
        (400, {"outcome": "answered"}, Outcome.FAILED, "agent refused the call (HTTP 400)"),
        (403, {}, Outcome.FAILED, "agent refused the signature (HTTP 403); check signing_secret"),
    ],
)
async def test_refusals_end_the_attempt(
    agent: Agent, status: int, body: dict[str, Any], outcome: Outcome, error: str
) -> None:
    agent.script = [(status, body, 0.0)]
    http_agent = provider()
    try:
        with pytest.raises(CallNotPlaced) as refused:
            await http_agent.place_call(connection(agent.url), request())
    finally:
        await http_agent.aclose()
    assert (refused.value.outcome, refused.value.error, len(agent.received)) == (outcome, error, 1)


def signed_callback(event: dict[str, Any], *, secret: str = SECRET, message_id: str = "evt-1") -> CallbackRequest:
    body = json.dumps(event).encode()
    headers = sign(secret, message_id, int(time.time()), body).as_dict()
    return CallbackRequest(url=CALLBACK + "?connection=9", headers=headers, body=body, query={"connection": "9"})


def test_a_signed_result_becomes_a_completed_event_with_the_whole_report() -> None:
    report = {
        "type": "call.event",
        "attempt_id": 21,
        "call_id": "c-1",
        "status": "completed",
        "outcome": "answered",
        "answered_by": "human",
        "duration_seconds": 42.5,
        "cost": 0.03,
        "transcript": "Agent: hi",
        "extracted_data": {"interested": True},
        "recording_url": "https://rec.example.com/1.mp3",
    }
    (event,) = provider().parse_callback(connection(), signed_callback(report))
    assert (event.status, event.outcome, event.attempt_id, event.provider_call_id) == (
        CallStatus.COMPLETED,
        Outcome.ANSWERED,
        21,
        "c-1",
    )
    assert (event.duration_seconds, event.cost, event.transcript, event.extracted_data, event.recording_url) == (
        42.5,
        0.03,
        "Agent: hi",
        {"interested": True},
        "https://rec.example.com/1.mp3",
    )
    assert event.dedupe_key == "9:evt-1"


def test_the_reference_library_can_sign_callbacks_too() -> None:
    body = json.dumps({"attempt_id": 21, "status": "ringing"})
    headers = standardwebhooks.Webhook(SECRET).sign("evt-9", datetime.now(UTC), body)
    signed = CallbackRequest(
        url=CALLBACK,
        headers={"webhook-id": "evt-9", "webhook-timestamp": str(int(time.time())), "webhook-signature": headers},
        body=body.encode(),
    )
    (event,) = provider().parse_callback(connection(), signed)
    assert event.status is CallStatus.RINGING


def test_a_callback_signed_otherwise_is_rejected() -> None:
    event = {"attempt_id": 21, "status": "completed", "outcome": "answered"}
    with pytest.raises(CallbackRejected, match="webhook-signature"):
        provider().parse_callback(connection(), signed_callback(event, secret=new_secret()))
    stale = signed_callback(event)
    old = {**stale.headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    with pytest.raises(CallbackRejected, match="timestamp"):
        provider().parse_callback(connection(), CallbackRequest(stale.url, old, stale.body))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"attempt_id": 21, "status": "hung"}, "status must be one of"),
        ({"attempt_id": 21, "status": "completed"}, "needs an outcome"),
        ({"attempt_id": 21, "status": "completed", "outcome": "great"}, "outcome must be one of"),
        ({"status": "ringing"}, "attempt_id or call_id"),
        ({"attempt_id": "21", "status": "ringing"}, "attempt_id must be an integer"),
        ({"attempt_id": 21, "status": "completed", "outcome": "answered", "duration_seconds": -1}, "non-negative"),
        ({"attempt_id": 21, "status": "completed", "outcome": "answered", "extracted_data": [1]}, "must be an object"),
    ],
)
def test_malformed_events_name_their_field(event: dict[str, Any], message: str) -> None:
    with pytest.raises(CallbackMalformed, match=message):
        provider().parse_callback(connection(), signed_callback(event))


async def test_lookup_and_ping_are_signed_requests(agent: Agent) -> None:
    agent.script = [
        (200, {"call_id": "c-1", "attempt_id": 21, "status": "completed", "outcome": "voicemail"}, 0.0),
        (404, {}, 0.0),
        (200, {"ok": True}, 0.0),
        (401, {}, 0.0),
    ]
    http_agent = provider()
    try:
        found = await http_agent.fetch_status(connection(agent.url), "c-1")
        missing = await http_agent.fetch_status(connection(agent.url), "c-2")
        good = await http_agent.check_connection(connection(agent.url))
        bad = await http_agent.check_connection(connection(agent.url))
    finally:
        await http_agent.aclose()
    assert found is not None
    assert (found.status, found.outcome) == (CallStatus.COMPLETED, Outcome.VOICEMAIL)
    assert missing is None
    assert (good.ok, bad.ok) == (True, False)
    assert "check signing_secret" in bad.detail
    kinds = []
    for headers, body in agent.received:
        standardwebhooks.Webhook(SECRET).verify(body, headers)
        kinds.append(json.loads(body)["type"])
    assert kinds == ["call.lookup", "call.lookup", "ping", "ping"]


@pytest.mark.parametrize("secret", ["k", "not base64 at all!", "whsec_" + "QUJD"])
def test_the_signing_secret_must_be_a_standard_webhooks_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="signing_secret"):
        parse_config("http_agent", {"url": "https://agent.example.com", "signing_secret": secret})
    assert parse_config("http_agent", {"url": "https://agent.example.com", "signing_secret": SECRET})
