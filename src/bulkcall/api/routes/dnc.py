"""``/dnc``: the workspace's do-not-call list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile

from bulkcall.api.deps import ContactsRead, ContactsWrite, Pagination
from bulkcall.api.responses import error_responses, ok, paged
from bulkcall.schemas.base import Envelope, ListEnvelope
from bulkcall.schemas.dnc import DncCreate, DncImportResult, DncOut
from bulkcall.services import dnc

router = APIRouter(prefix="/dnc", tags=["dnc"])


@router.get("", operation_id="list_dnc_entries", summary="List do-not-call numbers, newest first")
async def list_dnc_entries(
    ctx: ContactsRead,
    pagination: Pagination,
    search: Annotated[str | None, Query(max_length=200, description="Substring of the number or reason")] = None,
) -> ListEnvelope[DncOut]:
    rows, total = await dnc.list_entries(ctx, search, pagination.page, pagination.per_page)
    return paged([DncOut.model_validate(row) for row in rows], total, pagination.page, pagination.per_page)


@router.post(
    "",
    status_code=201,
    operation_id="create_dnc_entry",
    summary="Add a number to the do-not-call list (201 when new; 200 with the existing entry, reason updated if given)",
    responses={200: {"description": "Already on the list: the existing entry", "model": Envelope[DncOut]}},
)
async def create_dnc_entry(ctx: ContactsWrite, body: DncCreate, response: Response) -> Envelope[DncOut]:
    entry, created = await dnc.add_entry(ctx, body)
    if not created:
        response.status_code = 200
    return ok(DncOut.model_validate(entry))


@router.post(
    "/import",
    operation_id="import_dnc_entries",
    summary="Add the numbers of a CSV file (header phone,reason; UTF-8, BOM allowed); numbers already listed are kept",
    responses=error_responses(400),
)
async def import_dnc_entries(
    ctx: ContactsWrite,
    file: Annotated[UploadFile, File(description="CSV with a header row: phone (required) and reason (optional)")],
    default_region: Annotated[
        str | None, Form(max_length=10, description="ISO 3166 alpha-2 region for national-format numbers")
    ] = None,
) -> Envelope[DncImportResult]:
    return ok(await dnc.import_entries(ctx, file.file, default_region))


@router.delete(
    "/{phone_e164}",
    status_code=204,
    operation_id="delete_dnc_entry",
    summary="Take a number off the do-not-call list (any input form; URL-encode + as %2B); 204 with no body",
    responses=error_responses(404),
)
async def delete_dnc_entry(
    ctx: ContactsWrite,
    phone_e164: Annotated[str, Path(max_length=60, description="The number, in any input form")],
    default_region: Annotated[
        str | None, Query(max_length=10, description="ISO 3166 alpha-2 region for a national-format number")
    ] = None,
) -> None:
    await dnc.remove_entry(ctx, phone_e164, default_region)
