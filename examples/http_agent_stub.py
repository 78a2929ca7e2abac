"""A tiny voice agent speaking bulkcall's ``http_agent`` protocol (docs/http_agent_protocol.md).

It places no real call: it verifies each signed request, "talks" for a moment, and reports the call's
progress and result back to bulkcall, signed the same way. Start it, then create an ``http_agent`` connection
whose ``url`` is this server and whose ``signing_secret`` is the same secret:

    python examples/http_agent_stub.py --port 8765 --secret whsec_...   # or HTTP_AGENT_SIGNING_SECRET=...

What a call ends as comes from the task's variables (so a campaign can script it): ``stub_outcome``
(``answered`` by default; ``voicemail``, ``no_answer``, ``busy``, ``failed``; ``invalid_number`` refuses the
request instead) and ``stub_lose_result`` (any non-empty value: the final report is never sent, so bulkcall's
``call.lookup`` has to find it). ``--log FILE`` appends every verified request as a JSON line.

Signing uses bulkcall's own Standard Webhooks module; an agent in another language can use any Standard
Webhooks library (https://www.standardwebhooks.com), e.g. ``pip install standardwebhooks``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bulkcall.kit import standard_webhooks

OUTCOMES = ("answered", "voicemail", "no_answer", "busy", "failed")


class Agent:
    """The agent's memory: one call per idempotency key, and each call's latest event (for ``call.lookup``)."""

    def __init__(self, secret: str, talk_seconds: float, log_path: str | None) -> None:
        self.secret = secret
        self.talk_seconds = talk_seconds
        self.log_path = log_path
        self.lock = threading.Lock()
        self.calls: dict[str, str] = {}  # idempotency key -> call id
        self.latest: dict[str, dict[str, Any]] = {}  # call id -> latest event (final included, even if unsent)

    def log(self, entry: dict[str, Any]) -> None:
        if self.log_path:
            with self.lock, open(self.log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")

    def start_call(self, request: dict[str, Any]) -> tuple[str, bool]:
        """The call id for this request's key; True when the call is new (a repeat makes no second call)."""
        key = str(request["idempotency_key"])
        with self.lock:
            if key in self.calls:
                return self.calls[key], False
            call_id = f"stub-{len(self.calls) + 1}"
            self.calls[key] = call_id
        threading.Thread(target=self.talk, args=(call_id, request), daemon=True).start()
        return call_id, True

    def talk(self, call_id: str, request: dict[str, Any]) -> None:
        variables = request.get("variables") or {}
        outcome = str(variables.get("stub_outcome") or "answered")
        if outcome not in OUTCOMES:
            outcome = "failed"
        base = {"type": "call.event", "call_id": call_id, "attempt_id": request["attempt_id"]}
        self.report(request, {**base, "status": "ringing"})
        final: dict[str, Any] = {**base, "status": "completed", "outcome": outcome}
        if outcome in ("answered", "voicemail"):
            answered_by = "human" if outcome == "answered" else "machine"
            self.report(request, {**base, "status": "answered", "answered_by": answered_by})
            time.sleep(self.talk_seconds)
            name = (request.get("contact") or {}).get("first_name") or "there"
            final.update(
                answered_by=answered_by,
                duration_seconds=42.0,
                cost=0.02,
                transcript=f"Agent: Hello {name}, this is a test call.\nContact: Sounds good, thanks.",
                extracted_data={"interested": outcome == "answered", "callback_requested": False},
                recording_url=f"https://recordings.example.com/{call_id}.mp3" if request.get("record") else None,
            )
        else:
            time.sleep(self.talk_seconds)
            final["hangup_reason"] = outcome
        with self.lock:
            self.latest[call_id] = final
        if not variables.get("stub_lose_result"):
            self.report(request, final)

    def report(self, request: dict[str, Any], event: dict[str, Any]) -> None:
        """POST one event to the request's callback URL, signed; the message id is stable across retries."""
        if event["status"] != "completed":  # the final event is remembered before it is sent (or lost)
            with self.lock:
                self.latest[event["call_id"]] = event
        body = json.dumps(event).encode()
        message_id = f"{event['call_id']}-{event['status']}"
        for try_number in range(3):
            signed = standard_webhooks.sign(self.secret, message_id, int(time.time()), body)
            headers = {"content-type": "application/json", **signed.as_dict()}
            url = str(request["callback_url"])
            if not url.startswith(("http://", "https://")):
                return
            post = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - checked above
            try:
                with urllib.request.urlopen(post, timeout=10) as answer:  # noqa: S310 - checked above
                    answer.read()
                return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return  # bulkcall read it and said no: sending again cannot help
            except OSError:
                pass
            time.sleep(0.2 * (try_number + 1))


def handler_for(agent: Agent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                standard_webhooks.verify(agent.secret, headers, body, time.time())
            except standard_webhooks.SignatureError as exc:
                self.answer(403, {"error": str(exc)})
                return
            message = json.loads(body)
            agent.log({"headers": {k: v for k, v in headers.items() if k.startswith(("webhook-", "idem"))}, **message})
            kind = message.get("type")
            if kind == "ping":
                self.answer(200, {"ok": True, "agent": "bulkcall example stub"})
            elif kind == "call.request":
                if (message.get("variables") or {}).get("stub_outcome") == "invalid_number":
                    self.answer(422, {"outcome": "invalid_number", "error": "the stub refuses this number"})
                    return
                call_id, new = agent.start_call(message)
                self.answer(200 if new else 409, {"call_id": call_id})
            elif kind == "call.lookup":
                with agent.lock:
                    latest = agent.latest.get(str(message.get("call_id")))
                self.answer(200, latest) if latest else self.answer(404, {"error": "unknown call"})
            else:
                self.answer(400, {"error": f"unknown type {kind!r}"})

        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--secret", default=os.environ.get("HTTP_AGENT_SIGNING_SECRET"))
    parser.add_argument("--talk-seconds", type=float, default=0.2, help="how long each answered call 'talks'")
    parser.add_argument("--log", help="append every verified request to this JSON-lines file")
    args = parser.parse_args()
    if not args.secret:
        parser.error("give --secret or HTTP_AGENT_SIGNING_SECRET (the connection's signing_secret)")
    agent = Agent(args.secret, args.talk_seconds, args.log)
    server = ThreadingHTTPServer((args.host, args.port), handler_for(agent))
    print(f"http_agent stub listening on http://{args.host}:{server.server_port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
