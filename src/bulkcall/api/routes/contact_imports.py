"""Contact import: ``POST /contacts/import`` (CSV or JSON) and the import jobs under ``/contact_imports``."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from bulkcall.api.deps import ContactsRead, ContactsWrite, Pagination
from bulkcall.api.errors import validation_errors
from bulkcall.api.responses import error_responses, ok, paged
from bulkcall.db.models import ContactImport
from bulkcall.kit.errors import BadRequest, FieldErrors, ValidationFailed
from bulkcall.schemas.base import MAX_ROW_ID, Envelope, ListEnvelope
from bulkcall.schemas.contact_imports import ContactImportJson, ContactImportOut
from bulkcall.services import contact_imports
from bulkcall.services.context import ServiceContext

router = APIRouter(tags=["contact_imports"])

ImportId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Contact import id")]

_CSV_FORM_FIELDS = {"file", "column_mapping", "default_region", "contact_list_id"}


def _json_body_schema() -> dict[str, Any]:
    # Inlined: openapi_extra bypasses FastAPI's component registry, so a $ref would dangle.
    schema = ContactImportJson.model_json_schema()
    definitions = schema.pop("$defs", {})
    schema["properties"]["rows"]["items"] = definitions["ContactImportRow"]
    return schema


_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "CSV, UTF-8 (BOM allowed)"},
                        "column_mapping": {
                            "type": "string",
                            "description": 'JSON object from CSV header to field, e.g. {"Mobile": "phone_e164", '
                            '"Plan": "cf:plan"}. Fields: phone_e164, first_name, last_name, email, company, '
                            "timezone, tags (split on ; or ,), cf:<key>. Omitted: headers named like a field "
                            "(and 'phone') are mapped.",
                        },
                        "default_region": {"type": "string", "description": "ISO 3166 alpha-2 for national numbers"},
                        "contact_list_id": {"type": "integer", "description": "Add every imported contact here"},
                    },
                }
            },
            "application/json": {"schema": _json_body_schema()},
        },
    }
}


@router.post(
    "/contacts/import",
    status_code=202,
    operation_id="import_contacts",
    summary="Import contacts from a CSV file or JSON rows, as a background job",
    description=(
        "Answers 202 with the queued import; follow it with `GET /contact_imports/{id}`. Bad rows never stop "
        "an import: they are skipped and listed in `GET /contact_imports/{id}/error_report`. Contacts are "
        "matched by phone, so importing the same file again updates and never duplicates. Files that cannot "
        "be imported at all (not UTF-8 text, empty, no header, no phone column) are refused with 400; a bad "
        "`column_mapping`, `default_region` or `contact_list_id` with 422."
    ),
    responses=error_responses(400, 413, 422),
    openapi_extra=_IMPORT_BODY,
)
async def import_contacts(
    request: Request, ctx: ContactsWrite, background: BackgroundTasks
) -> Envelope[ContactImportOut]:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        row, job = await _csv_import(request, ctx)
    elif content_type.startswith("application/json"):
        row, job = await contact_imports.create_json_import(ctx, await _json_body(request))
    else:
        raise BadRequest(
            "Send a CSV file as multipart/form-data (field 'file') or rows as application/json",
            details={"content_type": content_type or None},
        )
    # Started once the response is on its way, i.e. after the request's transaction committed the row.
    state = request.app.state
    background.add_task(contact_imports.start_job, state.jobs, state.database, state.clock, job)
    return ok(ContactImportOut.model_validate(row))


async def _json_body(request: Request) -> ContactImportJson:
    try:
        payload = json.loads(await request.body())
    except ValueError:
        raise BadRequest("Request body is not valid JSON") from None
    try:
        return ContactImportJson.model_validate(payload)
    except ValidationError as exc:
        errors = validation_errors(exc.errors())
        first_field, first_messages = next(iter(errors.items()))
        raise ValidationFailed(errors, message=f"{first_field}: {first_messages[0]}") from None


async def _csv_import(request: Request, ctx: ServiceContext) -> tuple[ContactImport, contact_imports.ImportJob]:
    async with request.form(max_files=1, max_fields=len(_CSV_FORM_FIELDS)) as form:
        problems = FieldErrors()
        for name in form:
            if name not in _CSV_FORM_FIELDS:
                problems.add(name, "Unknown field")
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            problems.add("file", "the CSV file is required, as a multipart file field named 'file'")
        texts: dict[str, str | None] = {}
        for name in ("column_mapping", "default_region", "contact_list_id"):
            value = form.get(name)
            if isinstance(value, UploadFile):
                problems.add(name, "must be a text field, not a file")
                value = None
            texts[name] = value
        contact_list_id: int | None = None
        if texts["contact_list_id"] not in (None, ""):
            try:
                contact_list_id = int(str(texts["contact_list_id"]))
            except ValueError:
                problems.add("contact_list_id", "must be an integer")
            else:
                if not 1 <= contact_list_id <= MAX_ROW_ID:
                    problems.add("contact_list_id", f"must be between 1 and {MAX_ROW_ID}")
        problems.raise_if_any()
        assert isinstance(upload, UploadFile)
        spooled = await asyncio.to_thread(contact_imports.spool_csv, upload.file)
    try:
        return await contact_imports.create_csv_import(
            ctx,
            upload=spooled,
            filename=upload.filename,
            column_mapping=texts["column_mapping"],
            default_region=texts["default_region"],
            contact_list_id=contact_list_id,
        )
    except BaseException:
        spooled.discard()
        raise


@router.get(
    "/contact_imports",
    operation_id="list_contact_imports",
    summary="List contact imports, newest first",
)
async def list_contact_imports(ctx: ContactsRead, pagination: Pagination) -> ListEnvelope[ContactImportOut]:
    rows, total = await contact_imports.list_imports(ctx, pagination.page, pagination.per_page)
    return paged([ContactImportOut.model_validate(row) for row in rows], total, pagination.page, pagination.per_page)


@router.get(
    "/contact_imports/{import_id}",
    operation_id="get_contact_import",
    summary="An import and its progress",
    responses=error_responses(404),
)
async def get_contact_import(ctx: ContactsRead, import_id: ImportId) -> Envelope[ContactImportOut]:
    return ok(ContactImportOut.model_validate(await contact_imports.get_import(ctx, import_id)))


@router.get(
    "/contact_imports/{import_id}/error_report",
    operation_id="get_contact_import_error_report",
    summary="Skipped rows of an import as CSV: row,phone,reason (row = 1-based data row, header excluded)",
    responses={**error_responses(404), 200: {"content": {"text/csv": {}}, "description": "The error report"}},
    response_class=StreamingResponse,
)
async def get_contact_import_error_report(
    request: Request, ctx: ContactsRead, import_id: ImportId
) -> StreamingResponse:
    await contact_imports.get_import(ctx, import_id)
    stream = contact_imports.error_report_csv(request.app.state.database, ctx.workspace_id, import_id)
    return StreamingResponse(
        stream,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="contact_import_{import_id}_errors.csv"'},
    )
