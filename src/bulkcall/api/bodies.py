"""JSON bodies read leniently: shape problems are kept, not raised, so a service can add its own to one 422.

FastAPI validates a declared body before the endpoint runs, so a request with both a shape problem (a wrong type)
and a cross-record problem (an unknown agent) would need two round trips to learn both. An endpoint that wants
every problem at once reads its body with ``lenient_body`` instead: it gets the model built from the fields that
passed, plus the shape problems of the others, and hands both to its service.

Such an endpoint declares no body parameter, so FastAPI cannot document one; ``json_body_openapi`` documents it
(a ``$ref`` to the model) and ``add_body_schemas`` (called once from ``create_app``) puts the referenced schemas in
``components``, which FastAPI only fills with models it uses itself.
"""

from __future__ import annotations

import json
from email.message import Message
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from bulkcall.api.errors import validation_errors
from bulkcall.kit.errors import BadRequest, FieldErrors

M = TypeVar("M", bound=BaseModel)

_DOCUMENTED: dict[str, type[BaseModel]] = {}
_REF_TEMPLATE = "#/components/schemas/{model}"


def json_body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a required JSON body of ``model`` (whose schema is then added to components)."""
    _DOCUMENTED[model.__name__] = model
    schema = {"$ref": _REF_TEMPLATE.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_body_schemas(openapi: dict[str, Any]) -> None:
    """Add the schemas of every model documented with ``json_body_openapi`` (and the models they use)."""
    if not _DOCUMENTED:
        return
    _, top = models_json_schema([(model, "validation") for model in _DOCUMENTED.values()], ref_template=_REF_TEMPLATE)
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in top.get("$defs", {}).items():
        schemas.setdefault(name, schema)


async def lenient_body(request: Request, model: type[M]) -> tuple[M, FieldErrors]:
    """The body as ``model`` built from its valid fields, and the shape problems of the rest.

    For models whose fields are all optional (required ones are the service's to check), so that an empty
    model can always be built.

    Malformed JSON is a 400 (raised); a missing or non-object body is one ``body`` problem and an empty model.
    A field with a problem is left out of the model, so it reads as not given; callers skip checks that need it.
    """
    problems = FieldErrors()
    payload = await _json(request)
    if payload is None:
        problems.add("body", "Field required")
        return model.model_validate({}), problems
    try:
        return model.model_validate(payload), problems
    except ValidationError as exc:
        shape_errors = exc.errors()
    raw = [{**error, "loc": ("body", *error["loc"])} for error in shape_errors]
    for field, messages in validation_errors(raw).items():
        for message in messages:
            problems.add(field, message)
    if not isinstance(payload, dict):
        return model.model_validate({}), problems
    failed = {error["loc"][0] for error in shape_errors if error["loc"]}
    try:
        return model.model_validate({key: value for key, value in payload.items() if key not in failed}), problems
    except ValidationError:
        # Only a cross-field model validator could fail here; then nothing is trusted and nothing else checked.
        return model.model_validate({}), problems


async def _json(request: Request) -> Any:
    """Parsed like FastAPI parses a declared body: JSON unless the content type says otherwise; empty is missing."""
    raw = await request.body()
    if not raw:
        return None
    content_type = request.headers.get("content-type")
    if content_type:
        message = Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
            return raw.decode("utf-8", errors="replace")
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequest("Request body is not valid JSON") from None
