"""``POST /telephony_connections/{id}/test``: each provider checked without placing a call; a provider's
credentials never appear in the answer or in any log line."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import text

from bulkcall.db.engine import Database
from bulkcall.kit.standard_webhooks import new_secret, verify
from tests.conftest import data
from tests.providers.twilio_double import ACCOUNT_SID, AUTH_TOKEN, twilio_double


async def _connection(api: httpx.AsyncClient, provider: str, config: dict[str, Any]) -> int:
    body = {"name": provider, "provider": provider, "config": config}
    connection_id: int = data(await api.post("/telephony_connections", json=body), 201)["id"]
    return connection_id


async def test_simulator_is_always_ok(api: httpx.AsyncClient) -> None:
    connection_id = await _connection(api, "simulator", {})
    result = data(await api.post(f"/telephony_connections/{connection_id}/test"))
    assert (result["ok"], result["provider"]) == (True, "simulator")
    assert isinstance(result["latency_ms"], int)
    assert result["latency_ms"] >= 0


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[pytest.LogCaptureFixture, list[Any]]]:
    """Every stdlib log line at DEBUG (httpx and httpcore log each request) and every structlog event.

    SQL statement logs are held at WARNING as ``configure_logging`` does (they would show stored
    secrets as bound parameters); the end-to-end test reads a real ``bulkcall serve`` log at DEBUG.
    """
    for name in ("aiosqlite", "sqlalchemy"):
        caplog.set_level(logging.WARNING, logger=name)
    caplog.set_level(logging.DEBUG)  # last: it also sets the capturing handler's level
    with structlog.testing.capture_logs() as events:
        yield caplog, events


async def test_twilio_fetches_the_account_and_never_shows_or_logs_the_token(
    api: httpx.AsyncClient, debug_logging: tuple[pytest.LogCaptureFixture, list[Any]]
) -> None:
    caplog, events = debug_logging
    with twilio_double() as double:
        config = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "api_base_url": double.base_url}
        connection_id = await _connection(api, "twilio", config)
        good = await api.post(f"/telephony_connections/{connection_id}/test")
        await api.patch(
            f"/telephony_connections/{connection_id}", json={"config": {"auth_token": "wrong-" + AUTH_TOKEN}}
        )
        bad = await api.post(f"/telephony_connections/{connection_id}/test")
        requests = list(double.requests)
    assert data(good) == {
        "ok": True,
        "provider": "twilio",
        "detail": f"twilio account {ACCOUNT_SID} is active",
        "latency_ms": data(good)["latency_ms"],
    }
    assert data(bad)["ok"] is False
    assert data(bad)["detail"].startswith("twilio authentication failed (HTTP 401, code 20003)")
    assert [(r.method, r.path) for r in requests] == [("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}.json")] * 2
    assert "connection_tested" in [event["event"] for event in events]  # the check is logged, without the secret
    assert "HTTP Request: GET" in caplog.text  # httpx's own request lines were captured too
    for shown in (good.text, bad.text, caplog.text, repr(events)):
        assert AUTH_TOKEN not in shown


async def test_twilio_unreachable_is_not_ok(api: httpx.AsyncClient) -> None:
    with twilio_double() as gone:
        base_url = gone.base_url
    config = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "api_base_url": base_url}
    connection_id = await _connection(api, "twilio", config)
    result = data(await api.post(f"/telephony_connections/{connection_id}/test"))
    assert (result["ok"], result["detail"]) == (False, f"twilio unreachable at {base_url}: ConnectError")


@pytest.fixture
def ping_agent() -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """An agent that verifies the signature and answers a ping (the example stub's behaviour)."""
    secret = new_secret()
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            try:
                verify(secret, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                seen.append(json.loads(body))
                status, answer = 200, b'{"ok": true}'
            except ValueError:
                status, answer = 403, b"{}"
            self.send_response(status)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/agent", secret, seen
    server.shutdown()
    server.server_close()


async def test_http_agent_sends_a_signed_ping(
    api: httpx.AsyncClient, ping_agent: tuple[str, str, list[dict[str, Any]]]
) -> None:
    url, secret, seen = ping_agent
    connection_id = await _connection(api, "http_agent", {"url": url, "signing_secret": secret})
    good = await api.post(f"/telephony_connections/{connection_id}/test")
    await api.patch(f"/telephony_connections/{connection_id}", json={"config": {"signing_secret": new_secret()}})
    bad = data(await api.post(f"/telephony_connections/{connection_id}/test"))
    assert data(good)["ok"] is True
    assert [message["type"] for message in seen] == ["ping"]
    assert bad["ok"] is False
    assert "check signing_secret" in bad["detail"]
    assert secret not in good.text


async def test_no_database_lock_is_held_while_the_provider_is_waited_for(
    api: httpx.AsyncClient, database: Database
) -> None:
    """A slow provider must not stall the service: on SQLite the request's write lock would block every
    other writer (the dispatcher above all) for as long as the provider takes to answer."""
    arrived, release = threading.Event(), threading.Event()

    class SlowAgent(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            arrived.set()
            release.wait(30)
            self.send_response(200)
            self.send_header("content-length", "12")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowAgent)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/agent"
        connection_id = await _connection(api, "http_agent", {"url": url, "signing_secret": new_secret()})
        check = asyncio.create_task(api.post(f"/telephony_connections/{connection_id}/test"))
        assert await asyncio.to_thread(arrived.wait, 10), "the agent was never asked"

        async def write_elsewhere() -> None:
            async with database.session(write=True) as session, session.begin():
                await session.execute(text("UPDATE workspaces SET name = name"))

        # While the agent holds its answer, another writer gets through (it would wait 30 s for the lock).
        await asyncio.wait_for(write_elsewhere(), timeout=10)
        release.set()
        assert data(await check)["ok"] is True
    finally:
        release.set()
        server.shutdown()
        server.server_close()


async def test_another_workspaces_connection_is_not_found(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    connection_id = await _connection(api, "simulator", {})
    assert (await other_api.post(f"/telephony_connections/{connection_id}/test")).status_code == 404
    assert (await api.post("/telephony_connections/999999/test")).status_code == 404
