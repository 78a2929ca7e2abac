"""One place that renders every error as the API's error envelope."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bulkcall.kit.context import request_id_var
from bulkcall.kit.errors import AppError

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}


def error_response(
    status_code: int,
    error_code: str,
    message: str,
    *,
    details: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request_id = request_id_var.get()
    body = {
        "error": message,
        "error_code": error_code,
        "details": details or {},
        "errors": errors or {},
        "request_id": request_id,
    }
    return JSONResponse(body, status_code=status_code, headers={**(headers or {}), "X-Request-Id": request_id})


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("body", "contacts", 3, "phone_e164")`` → ``contacts.3.phone_e164``; query/path/header keep the name."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        source = parts.pop(0)
        if not parts:
            return str(source)
    return ".".join(str(part) for part in parts)


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "Unknown field"
    message = str(error.get("msg", "Invalid value"))
    return message.removeprefix("Value error, ")


def validation_errors(raw_errors: Any) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for error in raw_errors:
        errors.setdefault(field_path(tuple(error.get("loc", ()))), []).append(_message(error))
    return errors


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(
        exc.status_code,
        exc.error_code,
        exc.message,
        details=exc.details,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in raw):
        return error_response(400, "BAD_REQUEST", "Request body is not valid JSON")
    errors = validation_errors(raw)
    first_field, first_messages = next(iter(errors.items()))
    return error_response(422, "VALIDATION_ERROR", f"{first_field}: {first_messages[0]}", errors=errors)


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "ERROR")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").capitalize()
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
