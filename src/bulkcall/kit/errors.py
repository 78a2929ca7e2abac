"""One error root: every failure the API reports is an ``AppError`` with a real status and code."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 500
    error_code = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.errors = errors or {}
        self.headers = headers or {}


class BadRequest(AppError):
    status_code = 400
    error_code = "BAD_REQUEST"


class Unauthorized(AppError):
    status_code = 401
    error_code = "UNAUTHORIZED"


class Forbidden(AppError):
    status_code = 403
    error_code = "FORBIDDEN"


class NotFound(AppError):
    status_code = 404
    error_code = "NOT_FOUND"

    def __init__(self, resource: str, resource_id: object | None = None) -> None:
        text = f"{resource} not found" if resource_id is None else f"{resource} {resource_id} not found"
        super().__init__(text, details={"resource": resource})


class Conflict(AppError):
    status_code = 409
    error_code = "CONFLICT"


class PayloadTooLarge(AppError):
    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"


class ValidationFailed(AppError):
    """422 with a message per field path; collect every problem before raising."""

    status_code = 422
    error_code = "VALIDATION_ERROR"

    def __init__(
        self,
        errors: dict[str, list[str]],
        message: str = "Validation failed",
        *,
        error_code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, errors=errors, details=details)
        if error_code is not None:
            self.error_code = error_code

    @classmethod
    def single(cls, field: str, message: str) -> ValidationFailed:
        return cls({field: [message]}, message=f"{field}: {message}")


class FieldErrors:
    """Collects field problems so a request reports all of them at once."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            first_field, first_messages = next(iter(self.errors.items()))
            raise ValidationFailed(self.errors, message=f"{first_field}: {first_messages[0]}")


class InvalidSignature(Forbidden):
    """A provider callback failed verification."""

    error_code = "INVALID_SIGNATURE"


class MalformedCallback(BadRequest):
    error_code = "MALFORMED_CALLBACK"
