"""Contact import: the JSON request shape and the import job as the API shows it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from bulkcall.schemas.base import MAX_ROW_ID, RequestModel, ResponseModel, UtcDatetime

ImportStatus = Literal["queued", "running", "completed", "failed"]
CellText = Annotated[str, StringConstraints(max_length=1000)]


class ContactImportRow(RequestModel):
    """One contact of a JSON import. Missing or empty values never erase what a contact already has."""

    phone_e164: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="Any form: E.164, international, or national with default_region"
    )
    first_name: CellText | None = None
    last_name: CellText | None = None
    email: CellText | None = None
    company: CellText | None = None
    timezone: CellText | None = Field(default=None, description="IANA zone; legacy names are canonicalised")
    tags: list[CellText] | None = Field(default=None, description="Replaces the contact's tags when non-empty")
    custom_fields: dict[str, Any] | None = Field(default=None, description="Merged into the contact's, by key")


class ContactImportJson(RequestModel):
    """``POST /contacts/import`` with ``Content-Type: application/json``."""

    rows: list[ContactImportRow] = Field(min_length=1)
    default_region: str | None = Field(default=None, description="ISO 3166 alpha-2, for national-format numbers")
    contact_list_id: int | None = Field(
        default=None, ge=1, le=MAX_ROW_ID, description="Add every imported contact to this list"
    )


class ContactImportOut(ResponseModel):
    """An import job and its progress: ``created + updated + skipped == processed_rows`` at every step."""

    id: int
    status: ImportStatus
    source: Literal["csv", "json"]
    filename: str | None
    contact_list_id: int | None
    default_region: str | None
    column_mapping: dict[str, str] | None
    total_rows: int | None = Field(description="Data rows in the file (header excluded); null until counted")
    processed_rows: int
    created: int
    updated: int
    skipped: int
    errors_count: int = Field(description="Rows in the error report (each skipped row has one)")
    failure_reason: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
