"""A local Twilio-compatible HTTP server on 127.0.0.1 (the outbound boundary of the ``twilio`` provider).

It speaks the three requests bulkcall makes: create a call (``POST .../Calls.json``), fetch a call
(``GET .../Calls/{sid}.json``) and fetch the account (``GET .../Accounts/{sid}.json``); checks HTTP Basic
auth; records every request as received; and answers creates from a script per ``To`` number (a list of
answers, the last repeating), so tests can play rate limits, outages and refusals. Calls it "created" keep a
status the test sets, which is what a call lookup returns.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-auth-token-5f1e9c-never-logged"


@dataclass(frozen=True)
class Answer:
    """One scripted answer to a create: ``status`` and Twilio's error ``code``; ``hang`` seconds first.
    ``create`` makes the call even though the answer is an error (a carrier that fails after acting)."""

    status: int = 201
    code: int | None = None
    message: str = ""
    hang: float = 0.0
    retry_after: str | None = None
    create: bool = False


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: list[tuple[str, str]]

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.form if key == name), None)

    def params(self, name: str) -> list[str]:
        return [value for key, value in self.form if key == name]


@dataclass
class TwilioDouble:
    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[Answer]] = field(default_factory=dict)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # sid -> call resource
    account_status: str = "active"
    lock: threading.Lock = field(default_factory=threading.Lock)
    _sids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def creates(self, to: str | None = None) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r.method == "POST" and r.path.endswith("/Calls.json") and (to is None or r.param("To") == to)
            ]

    def created_calls(self, to: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [call for call in self.calls.values() if to is None or call["to"] == to]

    def set_status(self, sid: str, status: str, **fields: Any) -> None:
        with self.lock:
            self.calls[sid].update(status=status, **fields)

    def _next_answer(self, to: str) -> Answer:
        with self.lock:
            answers = self.script.get(to)
            if not answers:
                return Answer()
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def _create(self, form: list[tuple[str, str]]) -> dict[str, Any]:
        values = dict(form)
        with self.lock:
            sid = f"CA{next(self._sids):032x}"
            call = {
                "sid": sid,
                "account_sid": ACCOUNT_SID,
                "to": values.get("To"),
                "from": values.get("From"),
                "status": "queued",
                "answered_by": None,
                "duration": None,
                "price": None,
                "api_version": "2010-04-01",
                "status_callback": values.get("StatusCallback"),
            }
            self.calls[sid] = call
            return dict(call)


def _handler(double: TwilioDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _read(self) -> Received:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            parts = urlsplit(self.path)
            received = Received(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                headers={name.lower(): value for name, value in self.headers.items()},
                form=parse_qsl(body, keep_blank_values=True),
            )
            with double.lock:
                double.requests.append(received)
            return received

        def _authorized(self, received: Received) -> bool:
            expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            if received.headers.get("authorization") == expected:
                return True
            self._json(401, {"code": 20003, "message": "Authenticate", "status": 401})
            return False

        def do_POST(self) -> None:
            received = self._read()
            if not self._authorized(received):
                return
            if received.path != f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json":
                self._json(404, {"code": 20404, "message": "not found", "status": 404})
                return
            answer = double._next_answer(received.param("To") or "")
            if answer.create and answer.status != 201:
                double._create(received.form)
            if answer.hang:
                time.sleep(answer.hang)
            if answer.status == 201:
                self._json(201, double._create(received.form))
                return
            headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
            body = {"code": answer.code, "message": answer.message or "scripted", "status": answer.status}
            self._json(answer.status, body, headers)

        def do_GET(self) -> None:
            received = self._read()
            if not self._authorized(received):
                return
            prefix = f"/2010-04-01/Accounts/{ACCOUNT_SID}"
            if received.path == f"{prefix}.json":
                self._json(200, {"sid": ACCOUNT_SID, "status": double.account_status, "friendly_name": "test"})
                return
            if received.path.startswith(f"{prefix}/Calls/") and received.path.endswith(".json"):
                sid = received.path.removeprefix(f"{prefix}/Calls/").removesuffix(".json")
                with double.lock:
                    call = dict(double.calls[sid]) if sid in double.calls else None
                if call is not None:
                    self._json(200, call)
                    return
            self._json(404, {"code": 20404, "message": "not found", "status": 404})

        def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a scripted hang)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def twilio_double() -> Iterator[TwilioDouble]:
    double = TwilioDouble()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(double))
    server.daemon_threads = True
    double.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
