"""Results export (one row per task) and collection export (one row per campaign), as CSV or JSON lines.

Both are produced batch by batch from the export repository's cursors and written to bytes one batch at a
time, so memory stays flat in the number of rows. CSV: UTF-8, one fixed header, nested objects as compact
JSON in one cell, and any text cell a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or CR) prefixed with ``'``; numbers written here are numbers, not text, and a phone number that is
strictly E.164 (``+`` and digits) is a number to a spreadsheet, not a formula, so it stays as it is.
JSON lines: one object per line, nested objects as objects, ``attempt_outcomes`` as a list.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import Any, cast

from bulkcall.db.engine import Database
from bulkcall.db.models import Campaign
from bulkcall.db.repositories.campaigns import CampaignRepository
from bulkcall.db.repositories.exports import RESULT_FIELDS, ExportRepository, ResultFilters
from bulkcall.domain.date_ranges import check_range, utc_bounds
from bulkcall.domain.lifecycle import CampaignStatus
from bulkcall.domain.variables import CONTACT_VARIABLES
from bulkcall.kit.logging import get_logger
from bulkcall.services.campaigns import TASK_STATUSES, get_campaign
from bulkcall.services.context import ServiceContext

log = get_logger("bulkcall.exports")

BATCH_SIZE = 5000
CAMPAIGN_BATCH_SIZE = 500


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


MEDIA_TYPES = {ExportFormat.CSV: "text/csv; charset=utf-8", ExportFormat.JSONL: "application/x-ndjson; charset=utf-8"}

_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_FORMULA_START = frozenset("=+-@\t\r")
_E164 = re.compile(r"\+[0-9]{1,15}")


def safe_text(value: str) -> str:
    """A text cell a spreadsheet will not evaluate: a leading formula character gets a ``'`` before it."""
    return "'" + value if value and value[0] in _FORMULA_START else value


# -- results export ------------------------------------------------------------------------------------------

RESULT_COLUMNS: tuple[str, ...] = (*RESULT_FIELDS[:10], "variables", *RESULT_FIELDS[10:])


@dataclass(frozen=True)
class ResultsExport:
    """What a results export needs once its request has been checked, so streaming can start on its own."""

    filters: ResultFilters
    call_variables: Mapping[str, Any]
    fmt: ExportFormat
    filename: str


async def prepare_results_export(
    ctx: ServiceContext,
    campaign_id: int,
    fmt: ExportFormat,
    status: str | None,
    outcome: str | None,
    date_from: date | None,
    date_to: date | None,
) -> ResultsExport:
    """Check the request (404, 422) before a byte is streamed; the rows are read by ``results_chunks``."""
    campaign = await get_campaign(ctx, campaign_id)
    check_range(date_from, date_to)
    lower, upper = utc_bounds(date_from, date_to, campaign.timezone)
    span = ""
    if date_from is not None or date_to is not None:
        span = f"_{date_from.isoformat() if date_from else 'start'}_{date_to.isoformat() if date_to else 'end'}"
    return ResultsExport(
        filters=ResultFilters(campaign.id, status, outcome, lower, upper),
        call_variables=dict(campaign.call_variables),
        fmt=fmt,
        filename=f"campaign_{campaign.id}_results{span}.{fmt.value}",
    )


async def results_chunks(database: Database, workspace_id: int, export: ResultsExport) -> AsyncIterator[bytes]:
    """The export's bytes: the header (CSV), then one chunk per batch of tasks, from one read transaction.

    The request was checked by ``prepare_results_export``; this runs after the response has started. CSV lines
    come written by the database (``ExportRepository.csv_lines``); the few it leaves to Python (None) are read
    again with ``result_batches`` and written field by field (``_csv_row``).
    """
    if export.fmt is ExportFormat.CSV:
        yield _csv_bytes([RESULT_COLUMNS])
    async with _logged_failure("results_export", export.filters.campaign_id), database.session(write=False) as session:
        repo = ExportRepository(session, workspace_id)
        if export.fmt is ExportFormat.JSONL:
            write_jsonl = _jsonl_results(export)
            async for batch in repo.result_batches(export.filters, BATCH_SIZE):
                yield write_jsonl(batch)
            return
        write = _csv_results(export.call_variables, compact_json=repo.compact_json)
        by_id = replace(export.filters, status=None, outcome=None)
        async for lines in repo.csv_lines(export.filters, export.call_variables, BATCH_SIZE):
            slow = [task_id for task_id, line in lines if line is None]
            fields: dict[int, tuple[Any, ...]] = {}
            if slow:
                # By id: a task whose status or outcome changed since (PostgreSQL, when the snapshot is not
                # shared) still comes back; ids are only ever the filtered ones.
                async for rows in repo.result_batches(by_id, len(slow), slow):
                    fields.update((row[0], row) for row in rows)
            yield write(lines, fields)


@asynccontextmanager
async def _logged_failure(export: str, campaign_id: int | None) -> AsyncIterator[None]:
    """An error once streaming has begun cannot become an error response: log it and let it abort the transfer.

    The server then closes the connection without the final chunk, so a client sees an incomplete body (an
    error in any HTTP client) rather than a short file that looks complete.
    """
    try:
        yield
    except Exception:
        log.exception("export_failed", export=export, campaign_id=campaign_id)
        raise


def _row_variables(call_variables: Mapping[str, Any], row: Any, custom: Mapping[str, Any] | None) -> dict[str, Any]:
    """``domain.variables.task_variables`` for an export row, unrolled (it runs once per exported task)."""
    merged = dict(call_variables)
    if row[1] is not None:
        merged["contact_id"] = row[1]
        for name, index in _CONTACT_VARIABLE_COLUMNS:
            value = row[index]
            if value is not None:
                merged[name] = value
    if custom:
        for key, value in custom.items():
            if value is not None:
                merged[key] = value
    return merged


# (variable, column of the export row) in domain.variables.CONTACT_VARIABLES order, after contact_id.
_CONTACT_VARIABLE_COLUMNS = (
    ("phone_e164", 21),
    ("first_name", 3),
    ("last_name", 4),
    ("email", 5),
    ("company", 6),
    ("timezone", 8),
    ("country", 7),
)
assert tuple(name for name, _ in _CONTACT_VARIABLE_COLUMNS) == CONTACT_VARIABLES[1:]


def _custom(text: str | None) -> dict[str, Any] | None:
    return None if text is None or text == "{}" else cast(dict[str, Any], json.loads(text))


def _csv_results(
    call_variables: Mapping[str, Any], *, compact_json: bool
) -> Callable[[list[tuple[int, str | None]], Mapping[int, Any]], bytes]:
    """The CSV writer of a batch: ``write(lines, fields)`` with the database's ``(task_id, line)``, and the
    ``result_batches`` row of each task whose line the database left to Python (by task id).

    ``compact_json``: the JSON columns come compact already and are kept as they are, unless they escape
    non-ASCII characters (``\\u20ac``): those are written again so the cell shows ``€``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def python_line(row: Any) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(_csv_row(call_variables, row, compact_json))
        return buffer.getvalue()

    def write(lines: list[tuple[int, str | None]], fields: Mapping[int, Any]) -> bytes:
        if fields:
            text = "".join(line if line is not None else python_line(fields[task_id]) for task_id, line in lines)
        else:
            text = "".join([line for _, line in lines])  # type: ignore[misc]  # no None without fields
        return text.encode("utf-8")

    return write


def _csv_row(call_variables: Mapping[str, Any], row: Any, compact_json: bool) -> tuple[Any, ...]:
    """One CSV row from a ``result_batches`` row, in Python (what the database does in ``csv_lines``)."""
    formula = _FORMULA_START
    e164 = _E164.fullmatch
    phone, first_name, last_name, email, company, caller = row[2], row[3], row[4], row[5], row[6], row[15]
    if phone and phone[:1] in formula and not e164(phone):
        phone = "'" + phone
    if first_name and first_name[:1] in formula:
        first_name = "'" + first_name
    if last_name and last_name[:1] in formula:
        last_name = "'" + last_name
    if email and email[:1] in formula:
        email = "'" + email
    if company and company[:1] in formula:
        company = "'" + company
    if caller and caller[:1] in formula and not e164(caller):
        caller = "'" + caller
    custom = _custom(row[9])
    custom_cell = row[9]
    if custom and (not compact_json or "\\u" in custom_cell):
        custom_cell = _compact(custom)
    extracted = row[20]
    if extracted is not None and (not compact_json or "\\u" in extracted):
        extracted = _compact(json.loads(extracted))
    return (
        row[0],
        row[1],
        phone,
        first_name,
        last_name,
        email,
        company,
        row[7],
        row[8],
        custom_cell,
        _compact(_row_variables(call_variables, row, custom)),
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        caller,
        row[16],
        row[17],
        round(row[18] or 0.0, 3),
        round(row[19] or 0.0, 4),
        extracted,
    )


def _jsonl_results(export: ResultsExport) -> Callable[[list[Any]], bytes]:
    call_variables = export.call_variables
    names = RESULT_COLUMNS
    loads = json.loads

    def write(batch: list[Any]) -> bytes:
        lines = []
        for row in batch:
            custom = _custom(row[9])
            values = (
                *row[:9],
                None if row[9] is None else custom or {},
                _row_variables(call_variables, row, custom),
                row[10],
                row[11],
                row[12],
                row[13].split("|") if row[13] else [],
                row[14],
                row[15],
                row[16],
                row[17],
                round(row[18] or 0.0, 3),
                round(row[19] or 0.0, 4),
                None if row[20] is None else loads(row[20]),
            )
            lines.append(_compact(dict(zip(names, values, strict=True))))
        lines.append("")
        return "\n".join(lines).encode("utf-8")

    return write


def _csv_bytes(rows: list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


# -- collection export ---------------------------------------------------------------------------------------

CAMPAIGN_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "status",
    "timezone",
    "created_at",
    "updated_at",
    "launched_at",
    "started_at",
    "paused_at",
    "pause_reason",
    "resumed_at",
    "completed_at",
    "cancelled_at",
    "total_contacts",
)
CAMPAIGN_KPIS: tuple[str, ...] = ("attempts", "answered", "answer_rate", "talk_seconds", "cost")
CAMPAIGN_COLUMNS: tuple[str, ...] = (
    *CAMPAIGN_FIELDS,
    *(f"tasks_{status}" for status in TASK_STATUSES),
    *CAMPAIGN_KPIS,
)
_CAMPAIGN_TEXT = frozenset({"name", "pause_reason"})


async def campaigns_chunks(
    database: Database, workspace_id: int, status: str | None, search: str | None, fmt: ExportFormat
) -> AsyncIterator[bytes]:
    """Every campaign matching the list's filters, newest first, with its task counts and call KPIs."""
    if fmt is ExportFormat.CSV:
        yield _csv_bytes([CAMPAIGN_COLUMNS])
    async with _logged_failure("campaigns_export", None), database.session(write=False) as session:
        repo = ExportRepository(session, workspace_id)
        query = CampaignRepository(session, workspace_id).filtered(status, search)
        async for campaigns in repo.campaign_batches(query, CAMPAIGN_BATCH_SIZE):
            ids = [campaign.id for campaign in campaigns]
            counts = await repo.task_counts(ids)
            totals = await repo.call_totals(ids)
            drafts = await repo.audience_sizes([c for c in campaigns if c.status == CampaignStatus.DRAFT])
            records = [_campaign_record(c, counts[c.id], totals.get(c.id), drafts.get(c.id)) for c in campaigns]
            if fmt is ExportFormat.CSV:
                yield _csv_bytes([_campaign_csv_row(record) for record in records])
            else:
                yield "".join(_compact(record) + "\n" for record in records).encode("utf-8")


def _campaign_record(
    campaign: Campaign, counts: dict[str, int], totals: dict[str, Any] | None, audience: int | None
) -> dict[str, Any]:
    by_status = {status: counts.get(status, 0) for status in TASK_STATUSES}
    if audience is not None:
        by_status["pending"] = audience  # a draft's whole audience waits, as GET /bulk_call_campaigns shows it
    totals = totals or {"attempts": 0, "answered": 0, "talk_seconds": 0.0, "cost": 0.0}
    record: dict[str, Any] = {}
    for name in CAMPAIGN_FIELDS[:-1]:
        value = getattr(campaign, name)
        record[name] = value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else value
    record["total_contacts"] = sum(by_status.values())
    record["counts"] = by_status
    attempts = totals["attempts"]
    record.update(
        attempts=attempts,
        answered=totals["answered"],
        answer_rate=round(totals["answered"] / attempts, 4) if attempts else None,
        talk_seconds=totals["talk_seconds"],
        cost=totals["cost"],
    )
    return record


def _campaign_csv_row(record: dict[str, Any]) -> list[Any]:
    row: list[Any] = [
        safe_text(record[name]) if name in _CAMPAIGN_TEXT and record[name] is not None else record[name]
        for name in CAMPAIGN_FIELDS
    ]
    row.extend(record["counts"][status] for status in TASK_STATUSES)
    row.extend(record[name] for name in CAMPAIGN_KPIS)
    return row
