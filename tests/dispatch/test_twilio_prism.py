"""Every request bulkcall makes to Twilio, validated against Twilio's own API description.

Stoplight Prism (installed by ``.ci/run``; its path in ``BULKCALL_TEST_PRISM``) serves Twilio's published
OpenAPI file (``tests/data/twilio/``) on 127.0.0.1 and answers 422 to any request that breaks the schema. A
``twilio`` connection points at it; campaigns using each kind of agent runtime (``twiml_url``, ``twiml``,
``stream_url``), with and without recording and machine detection, are dialed by the engine; the connection
test fetches the account and the result sweep looks calls up. Nothing may get a 422.

One adapter stands between bulkcall and Prism: Prism reads a repeated form key as one value overriding the
others (stoplightio/prism#2473, open), so an array such as ``StatusCallbackEvent`` sent the way Twilio's own
SDK and docs send it (``StatusCallbackEvent=initiated&StatusCallbackEvent=ringing``) would fail its check. The
adapter renames the keys the schema declares as arrays to ``Name[]``, the spelling Prism's parser reads as an
array, and changes nothing else (values, order, headers).

Run it locally: ``npm install --prefix .cache/prism @stoplight/prism-cli@5.14.2`` then
``BULKCALL_TEST_PRISM=.cache/prism/node_modules/.bin/prism uv run pytest -m prism``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.kit.clock import FixedClock
from tests.conftest import data
from tests.dispatch.conftest import ALWAYS, START, attempt_rows

PRISM = os.environ.get("BULKCALL_TEST_PRISM")
SPEC = Path(__file__).resolve().parents[1] / "data" / "twilio" / "twilio_api_v2010.json"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "prism-auth-token"
# What Prism logs when a request breaks the schema (it then answers 422).
VIOLATIONS = ("Request did not pass the validation rules", "UNPROCESSABLE_ENTITY")

pytestmark = [
    pytest.mark.prism,
    pytest.mark.skipif(not PRISM, reason="BULKCALL_TEST_PRISM is not set (.ci/run installs Prism)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _array_fields() -> frozenset[str]:
    """The create-call form fields Twilio's schema declares as arrays."""
    spec = json.loads(SPEC.read_text())
    body = spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Calls.json"]["post"]["requestBody"]
    schema = body["content"]["application/x-www-form-urlencoded"]["schema"]
    return frozenset(name for name, prop in schema["properties"].items() if prop.get("type") == "array")


@contextmanager
def array_adapter(target: str) -> Iterator[tuple[str, list[int]]]:
    """A pass-through to ``target`` that spells array form keys ``Name[]`` (see the module docstring); yields
    its URL and the status of every answer it relayed."""
    arrays = _array_fields()
    statuses: list[int] = []

    class Relay(BaseHTTPRequestHandler):
        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if body and self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                pairs = parse_qsl(body.decode(), keep_blank_values=True)
                body = urlencode([(f"{k}[]" if k in arrays else k, v) for k, v in pairs]).encode()
            skip = {"host", "content-length", "connection", "accept-encoding"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            answer = httpx.request(self.command, target + self.path, content=body or None, headers=headers, timeout=30)
            statuses.append(answer.status_code)
            self.send_response(answer.status_code)
            self.send_header("content-type", answer.headers.get("content-type", "application/json"))
            self.send_header("content-length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = _relay

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", statuses
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def prism(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``prism mock -d`` (a fresh random ``CA...`` sid per call) on 127.0.0.1; yields its URL and its log."""
    assert PRISM is not None
    port = _free_port()
    log_path = tmp_path / "prism.log"
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [PRISM, "mock", "-d", "-h", "127.0.0.1", "-p", str(port), str(SPEC)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"prism exited:\n{log_path.read_text()}")
                try:
                    httpx.get(f"{base}/healthz-not-in-spec", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"prism did not start:\n{log_path.read_text()}") from None
                    time.sleep(0.2)
            yield base, log_path
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_prism_rejects_a_request_that_breaks_twilios_schema(prism: tuple[str, Path]) -> None:
    """The check below means something: a create without ``From``, or with a non-integer ``Timeout``, is a 422;
    through the adapter, repeated ``StatusCallbackEvent`` keys pass (and would not without it)."""
    base, _ = prism
    url = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    good = [("To", "+12125550001"), ("From", "+14155550100"), ("Url", "https://agent.example.com/twiml")]
    events = [("StatusCallbackEvent", "initiated"), ("StatusCallbackEvent", "ringing")]
    with array_adapter(base) as (adapter, _):
        for broken in (good[::2], [*good, ("Timeout", "soon")]):
            response = httpx.post(adapter + url, data=dict(broken), auth=(ACCOUNT_SID, AUTH_TOKEN))
            assert response.status_code == 422, broken
        form = {"content-type": "application/x-www-form-urlencoded"}
        body = urlencode(good + events)
        assert httpx.post(adapter + url, content=body, headers=form, auth=(ACCOUNT_SID, AUTH_TOKEN)).status_code == 201
    direct = httpx.post(base + url, content=body, headers=form, auth=(ACCOUNT_SID, AUTH_TOKEN))
    assert direct.status_code == 422  # Prism's own parsing of repeated keys, which the adapter works around


async def test_every_request_to_twilio_passes_twilios_schema(
    prism: tuple[str, Path], api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock
) -> None:
    prism_url, log_path = prism
    with array_adapter(prism_url) as (base, statuses):
        await _run_campaigns(base, api, engine, clock)
    assert statuses, "nothing reached Prism"
    assert 422 not in statuses
    log = log_path.read_text()
    for violation in VIOLATIONS:
        assert violation not in log, log
    assert log.count(f"post /2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json") >= 6
    assert log.count(f"get /2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA") >= 6
    assert f"get /2010-04-01/Accounts/{ACCOUNT_SID}.json" in log


async def _run_campaigns(base: str, api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock) -> None:
    connection = data(
        await api.post(
            "/telephony_connections",
            json={
                "name": "twilio via prism",
                "provider": "twilio",
                "config": {
                    "account_sid": ACCOUNT_SID,
                    "auth_token": AUTH_TOKEN,
                    "api_base_url": base,
                    "machine_detection": "DetectMessageEnd",
                },
                "concurrency_limit": 50,
                "calls_per_second": 1000,
            },
        ),
        201,
    )
    check = data(await api.post(f"/telephony_connections/{connection['id']}/test"))
    assert "HTTP 422" not in check["detail"]
    number = data(
        await api.post("/phone_numbers", json={"e164": "+14155550100", "telephony_connection_id": connection["id"]}),
        201,
    )
    contacts = [
        data(await api.post("/contacts", json={"phone_e164": phone, "first_name": "Ada"}), 201)["id"]
        for phone in ("+12125550001", "+12125550002")
    ]
    runtimes: list[tuple[dict[str, Any], bool]] = [
        ({"twiml_url": "https://agent.example.com/twiml"}, True),
        ({"twiml": "<Response><Say>Hello</Say></Response>"}, False),
        ({"stream_url": "wss://agent.example.com/stream"}, True),
    ]
    for index, (runtime, record) in enumerate(runtimes):
        agent = data(await api.post("/agents", json={"name": f"agent {index}", "runtime": runtime}), 201)
        campaign = data(
            await api.post(
                "/bulk_call_campaigns",
                json={
                    "name": f"prism {index}",
                    "agent_id": agent["id"],
                    "timezone": "UTC",
                    "campaign_phone_number_ids": [number["id"]],
                    "contact_ids": contacts,
                    "call_windows": ALWAYS,
                    "record_calls": record,
                    "call_variables": {"offer": "spring & summer <sale>"},
                },
            ),
            201,
        )
        data(await api.post(f"/bulk_call_campaigns/{campaign['id']}/launch"))

    assert await engine.dispatch_once() == 6
    attempts = await attempt_rows(engine.database)
    assert len(attempts) == 6
    assert [(a.error, (a.provider_call_id or "")[:2]) for a in attempts] == [(None, "CA")] * 6

    # Calls whose callbacks never came are looked up (GET .../Calls/{sid}.json) by the result sweep.
    clock.set(START + timedelta(hours=1))
    await engine.sweep_once()
    assert all(a.ended_at is not None for a in await attempt_rows(engine.database))
