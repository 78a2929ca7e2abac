"""The do-not-call list: single entries, removal, and bulk CSV import."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from starlette.concurrency import run_in_threadpool

from bulkcall.db.models import DncEntry
from bulkcall.db.repositories.dnc import BATCH_SIZE, DncRepository
from bulkcall.domain.phones import InvalidPhone, normalize, region_code
from bulkcall.kit.errors import BadRequest, NotFound, ValidationFailed
from bulkcall.schemas.dnc import MAX_IMPORT_ERRORS, DncCreate, DncImportError, DncImportResult
from bulkcall.services.context import ServiceContext

PHONE_COLUMNS = ("phone", "phone_e164", "phone_number")
REASON_COLUMN = "reason"
MAX_REASON = 1000


async def list_entries(ctx: ServiceContext, search: str | None, page: int, per_page: int) -> tuple[list[DncEntry], int]:
    repo = DncRepository(ctx.session, ctx.workspace_id)
    return await repo.page(repo.list_query(search), page, per_page)


async def add_entry(ctx: ServiceContext, body: DncCreate) -> tuple[DncEntry, bool]:
    """Put a number on the list; returns the entry and whether it is new.

    An existing entry keeps its id and date; its reason is replaced when one is given.
    """
    repo = DncRepository(ctx.session, ctx.workspace_id)
    created = await repo.add_many([(body.phone_e164, body.reason)], ctx.now) == 1
    entry = await repo.by_phone(body.phone_e164)
    assert entry is not None  # inserted above, or already there
    if not created and body.reason is not None and entry.reason != body.reason:
        entry.reason = body.reason
        await repo.flush()
    return entry, created


async def remove_entry(ctx: ServiceContext, raw_phone: str, default_region: str | None) -> None:
    """Take a number off the list; ``raw_phone`` may be in any input form."""
    try:
        e164 = normalize(raw_phone, _region(default_region)).e164
    except InvalidPhone as exc:
        raise ValidationFailed.single("phone_e164", str(exc)) from None
    repo = DncRepository(ctx.session, ctx.workspace_id)
    entry = await repo.by_phone(e164)
    if entry is None:
        raise NotFound("dnc_entry", e164)
    await repo.delete(entry)


def _region(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return region_code(raw)
    except InvalidPhone as exc:
        raise ValidationFailed.single("default_region", str(exc)) from None


@dataclass
class _Batch:
    valid: list[tuple[str, str | None]] = field(default_factory=list)
    invalid: list[DncImportError] = field(default_factory=list)
    finished: bool = False


class _DncCsv:
    """Reads an uploaded ``phone,reason`` CSV record by record (the file is never held in memory whole)."""

    def __init__(self, stream: IO[bytes], default_region: str | None) -> None:
        # utf-8-sig drops a BOM when there is one; newline="" lets csv handle quoted line breaks.
        self._text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        self._records: Iterator[list[str]] = csv.reader(self._text)
        self._region = default_region
        self._row = 0
        self._phone_index = 0
        self._reason_index: int | None = None

    def close(self) -> None:
        # Leave the upload open: its owner (the framework) closes it.
        self._text.detach()

    def _next(self) -> list[str] | None:
        try:
            record = next(self._records, None)
        except UnicodeDecodeError:
            raise BadRequest(f"The file is not UTF-8 text (row {self._row + 1}); upload a UTF-8 CSV") from None
        except csv.Error as exc:
            raise BadRequest(f"The file is not a readable CSV (row {self._row + 1}): {exc}") from None
        if record is None:
            return None
        self._row += 1
        if any("\x00" in cell for cell in record):
            raise BadRequest(f"The file contains NUL bytes (row {self._row}): it is not a CSV text file")
        return record

    def read_header(self) -> None:
        header = self._next()
        if header is None or not any(cell.strip() for cell in header):
            raise BadRequest("The file is empty: expected a header row phone,reason")
        names = [cell.strip().lower() for cell in header]
        phone_index = next((names.index(name) for name in PHONE_COLUMNS if name in names), None)
        if phone_index is None:
            raise BadRequest(
                "The file has no phone column: the first row must be a header such as phone,reason "
                f"(found {', '.join(repr(cell) for cell in header[:10])})",
                details={"columns": header[:50]},
            )
        self._phone_index = phone_index
        self._reason_index = names.index(REASON_COLUMN) if REASON_COLUMN in names else None

    def read_batch(self) -> _Batch:
        """Up to ``BATCH_SIZE`` non-blank records, normalised; CPU-bound, so run it off the event loop."""
        batch = _Batch()
        while len(batch.valid) + len(batch.invalid) < BATCH_SIZE:
            record = self._next()
            if record is None:
                batch.finished = True
                break
            if not any(cell.strip() for cell in record):
                continue
            phone = record[self._phone_index].strip() if self._phone_index < len(record) else ""
            reason: str | None = None
            if self._reason_index is not None and self._reason_index < len(record):
                reason = record[self._reason_index].strip() or None
            if not phone:
                batch.invalid.append(DncImportError(row=self._row, phone=None, reason="phone is empty"))
                continue
            if reason is not None and len(reason) > MAX_REASON:
                batch.invalid.append(
                    DncImportError(row=self._row, phone=phone, reason=f"reason is longer than {MAX_REASON} characters")
                )
                continue
            try:
                e164 = normalize(phone, self._region).e164
            except InvalidPhone as exc:
                batch.invalid.append(DncImportError(row=self._row, phone=phone[:100], reason=str(exc)))
                continue
            batch.valid.append((e164, reason))
        return batch


async def import_entries(ctx: ServiceContext, stream: IO[bytes], default_region: str | None) -> DncImportResult:
    """Add every number of a ``phone,reason`` CSV, in batches, skipping those already listed.

    Runs in the request's transaction: a file that turns out unreadable halfway adds nothing.
    """
    region = _region(default_region)
    repo = DncRepository(ctx.session, ctx.workspace_id)
    reader = _DncCsv(stream, region)
    added = already_present = invalid = 0
    errors: list[DncImportError] = []
    try:
        await run_in_threadpool(reader.read_header)
        finished = False
        while not finished:
            batch = await run_in_threadpool(reader.read_batch)
            finished = batch.finished
            invalid += len(batch.invalid)
            errors.extend(batch.invalid[: MAX_IMPORT_ERRORS - len(errors)])
            if batch.valid:
                new = await repo.add_many(batch.valid, ctx.now)
                added += new
                already_present += len(batch.valid) - new
    finally:
        reader.close()
    return DncImportResult(added=added, already_present=already_present, invalid=invalid, errors=errors)
