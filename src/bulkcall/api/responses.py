"""Building success envelopes and documenting error responses, the same way for every endpoint."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from bulkcall.kit.context import request_id_var
from bulkcall.schemas.base import Envelope, ErrorEnvelope, ListEnvelope, PageMeta

T = TypeVar("T")


def ok(data: T, message: str | None = None) -> Envelope[T]:
    return Envelope[Any](data=data, message=message, request_id=request_id_var.get())


def paged(items: Sequence[T], total: int, page: int, per_page: int) -> ListEnvelope[T]:
    meta = PageMeta(count=total, page=page, per_page=per_page, pages=math.ceil(total / per_page) if total else 0)
    return ListEnvelope[Any](data=list(items), meta=meta, request_id=request_id_var.get())


_ERROR_TEXT = {
    400: "Malformed request (invalid JSON or CSV)",
    401: "Missing or unknown API key",
    403: "The API key lacks the required scope",
    404: "Not found (or owned by another workspace)",
    409: "Conflict with the resource's current state",
    413: "Request body too large",
    422: "Validation failed; `errors` maps field paths to messages",
    429: "Rate limited; see Retry-After",
    500: "Internal error (never with a stack trace)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses, all with the error envelope."""
    return {code: {"model": ErrorEnvelope, "description": _ERROR_TEXT[code]} for code in codes}


# Every authenticated endpoint can answer these.
COMMON_ERRORS = error_responses(400, 401, 403, 413, 422, 500)


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
