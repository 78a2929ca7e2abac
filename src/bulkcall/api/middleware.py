"""ASGI middleware applying the API's conventions to every request, one mechanism each.

Order, outermost first: request context (id, 500 envelope) → body size limit → unstorable text (NUL, lone
surrogates)
→ idempotency. Each is plain ASGI so a streamed upload is never buffered unless it must be.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from sqlalchemy.exc import IntegrityError

from bulkcall.api.errors import error_response
from bulkcall.db.engine import Database
from bulkcall.db.repositories.idempotency import IdempotencyRepository
from bulkcall.kit.clock import Clock
from bulkcall.kit.context import request_id_var
from bulkcall.kit.logging import get_logger
from bulkcall.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = get_logger("bulkcall.http")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _send_response(send: Send, response: Any) -> None:
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-Id``), logs it, and turns any escape into a 500 envelope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        response_started = False
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal response_started, status
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(key.lower() == b"x-request-id" for key, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled_error", method=scope.get("method"), path=scope.get("path"))
            if not response_started:
                status = 500
                await _send_response(send, error_response(500, "INTERNAL_ERROR", "Internal server error"))
        finally:
            log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            request_id_var.reset(token)


class _TooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """413 for bodies over the limit: JSON bodies are small, multipart uploads may be large."""

    def __init__(self, app: ASGIApp, *, settings: Callable[[], Settings]) -> None:
        self.app = app
        self.settings = settings  # read per request, like the app's other state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings()
        content_type = (_header(scope, b"content-type") or "").lower()
        limit = settings.max_upload_bytes if content_type.startswith("multipart/") else settings.max_json_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_response(send, _too_large(limit))
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await _send_response(send, _too_large(limit))


def _too_large(limit: int) -> Any:
    return error_response(
        413, "PAYLOAD_TOO_LARGE", f"Request body is larger than {limit} bytes", details={"max_bytes": limit}
    )


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay_receive(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _unstorable(text: str) -> bool:
    """NUL and lone UTF-16 surrogates: valid in JSON, but no database can store them as text."""
    return "\x00" in text or any("\ud800" <= char <= "\udfff" for char in text)


def _unstorable_in_json(value: Any) -> bool:
    if isinstance(value, str):
        return _unstorable(value)
    if isinstance(value, dict):
        return any(_unstorable_in_json(k) or _unstorable_in_json(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable_in_json(v) for v in value)
    return False


# Cheap byte-level hints that a JSON body may hold such characters; only then is it parsed.
_SUSPECT = re.compile(rb"\x00|\\u0000|\\u[dD][89a-fA-F]")


class UnstorableTextMiddleware:
    """Reject text no database can store (NUL, lone surrogates) as a 422, before it reaches a query."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode()
        for part in (raw_path, scope.get("query_string", b"")):
            if _unstorable(unquote(part.decode("latin-1"), errors="surrogateescape")):
                await _send_response(send, _unstorable_error("query"))
                return
        content_type = (_header(scope, b"content-type") or "").lower()
        if "json" not in content_type:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if _SUSPECT.search(body):
            try:
                rejected = b"\x00" in body or _unstorable_in_json(json.loads(body))
            except ValueError:
                rejected = False  # malformed JSON: the 400 comes from the JSON parser
            if rejected:
                await _send_response(send, _unstorable_error("body"))
                return
        await self.app(scope, replay_receive(body), send)


def _unstorable_error(where: str) -> Any:
    message = "NUL characters and unpaired surrogates are not allowed"
    return error_response(422, "VALIDATION_ERROR", message, errors={where: [message]})


IDEMPOTENCY_TTL = timedelta(hours=24)
_SPOOL_MEMORY = 1024 * 1024


class IdempotencyMiddleware:
    """``Idempotency-Key`` on POST: the first response is stored and replayed for 24 h.

    Scoped by the caller's API key. A different body under a used key is 422
    ``IDEMPOTENCY_KEY_REUSED``; a concurrent request with the same key is 409. Server errors are
    not stored, so a retry runs again.
    """

    def __init__(self, app: ASGIApp, *, database: Callable[[], Database], clock: Callable[[], Clock]) -> None:
        self.app = app
        self.database = database
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= 255:
            await _send_response(
                send,
                error_response(
                    422,
                    "VALIDATION_ERROR",
                    "Idempotency-Key must be 1 to 255 characters",
                    errors={"Idempotency-Key": ["must be 1 to 255 characters"]},
                ),
            )
            return
        credential = _header(scope, b"x-api-key") or _header(scope, b"authorization") or ""
        idem_scope = hashlib.sha256(credential.encode()).hexdigest()
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
            digest = hashlib.sha256()
            digest.update(f"{scope['method']} {scope['path']}?{scope.get('query_string', b'').decode()}\n".encode())
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunk = message.get("body", b"")
                digest.update(chunk)
                spool.write(chunk)
                if not message.get("more_body", False):
                    break
            request_hash = digest.hexdigest()
            spool.seek(0)
            await self._run(scope, spool, send, idem_scope, key, request_hash)

    async def _run(self, scope: Scope, spool: Any, send: Send, idem_scope: str, key: str, request_hash: str) -> None:
        database = self.database()
        now = self.clock().now()
        async with database.session(write=True) as session, session.begin():
            repo = IdempotencyRepository(session)
            record = await repo.get(idem_scope, key)
            if record is not None and record.created_at < now - IDEMPOTENCY_TTL:
                await repo.delete(record)
                record = None
            if record is None:
                stored: tuple[str, int | None, bytes | None, str | None] | None = None
                try:
                    await repo.start(idem_scope, key, request_hash, now)
                except IntegrityError:  # another request with this key got there first
                    stored = (request_hash, None, None, None)
            else:
                stored = (record.request_hash, record.status_code, record.response_body, record.content_type)
        if stored is not None:
            await self._answer_existing(send, request_hash, *stored)
            return

        async def spooled_receive() -> Message:
            chunk = spool.read(64 * 1024)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

        status = 500
        content_type: str | None = None
        body_parts: list[bytes] = []

        async def recording_send(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                body_parts.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, spooled_receive, recording_send)
        finally:
            async with database.session(write=True) as session, session.begin():
                repo = IdempotencyRepository(session)
                if status >= 500 or status in (401, 403, 429):
                    await repo.forget(idem_scope, key)
                else:
                    await repo.finish(idem_scope, key, status, b"".join(body_parts), content_type)

    async def _answer_existing(
        self,
        send: Send,
        request_hash: str,
        stored_hash: str,
        status: int | None,
        body: bytes | None,
        ctype: str | None,
    ) -> None:
        if stored_hash != request_hash:
            await _send_response(
                send,
                error_response(
                    422,
                    "IDEMPOTENCY_KEY_REUSED",
                    "This Idempotency-Key was already used with a different request",
                    errors={"Idempotency-Key": ["already used with a different request"]},
                ),
            )
            return
        if status is None:
            await _send_response(
                send,
                error_response(409, "CONFLICT", "A request with this Idempotency-Key is still in progress"),
            )
            return
        headers = [(b"idempotent-replayed", b"true")]
        if ctype:
            headers.append((b"content-type", ctype.encode("latin-1")))
        original_id = _request_id_of(body or b"")
        if original_id:
            headers.append((b"x-request-id", original_id.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body or b""})


def _request_id_of(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("request_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
