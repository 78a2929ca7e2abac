"""Contact import: validate the upload up front, then upsert it in batches as a background job.

The request checks everything that makes a whole file unusable (not UTF-8, not text, empty, no
header, a bad column mapping, no phone column) and answers 4xx without queuing anything. A job
never aborts on a bad row: the row is skipped and reported (``row,phone,reason``). Each batch is
its own transaction that also advances the job's counts, so progress is always consistent
(``created + updated + skipped == processed_rows``) and a re-import of the same file is safe.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import io
import json
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import os
import queue
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction

from bulkcall.db.engine import Database
from bulkcall.db.models import ContactImport
from bulkcall.db.repositories.contact_imports import (
    ContactImportJobStore,
    ContactImportRepository,
    mark_abandoned,
)
from bulkcall.domain import phones
from bulkcall.kit.clock import Clock
from bulkcall.kit.errors import BadRequest, FieldErrors, NotFound, ValidationFailed
from bulkcall.kit.logging import get_logger
from bulkcall.schemas.contact_imports import ContactImportJson, ContactImportRow
from bulkcall.services.contact_import_rows import (
    Batch,
    ColumnPlan,
    CsvBatches,
    ErrorRow,
    PreparedRow,
    count_csv_rows,
    open_csv,
    prepare_in_process,
    prepare_row,
    tags_json,
)
from bulkcall.services.context import ServiceContext

log = get_logger("bulkcall.contact_imports")

# Fields a CSV column can feed; anything else is ``cf:<key>``.
MAPPABLE_FIELDS = ("phone_e164", "first_name", "last_name", "email", "company", "timezone", "tags")
_TEXT_FIELDS = ("first_name", "last_name", "email", "company", "timezone")
CUSTOM_PREFIX = "cf:"
BATCH_SIZE = 5000
PARALLEL_MIN_ROWS = 50_000
_COPY_CHUNK = 1024 * 1024
_MAX_CUSTOM_KEY = 100
# A running job advances updated_at at least once a batch; one untouched for this long has no process.
ABANDONED_AFTER = timedelta(minutes=2)
INTERRUPTED_REASON = (
    "The import was interrupted (the server stopped or restarted while it ran). Rows already processed "
    "are saved; re-importing the same file is safe: existing contacts are updated, never duplicated."
)

# ----------------------------------------------------------------------------- column mapping


def _target_problem(target: str) -> str | None:
    if target in MAPPABLE_FIELDS:
        return None
    if target.startswith(CUSTOM_PREFIX):
        key = target[len(CUSTOM_PREFIX) :]
        if not key.strip():
            return "custom field needs a key: cf:<key>"
        if len(key) > _MAX_CUSTOM_KEY:
            return f"custom field key is longer than {_MAX_CUSTOM_KEY} characters"
        return None
    return f"unknown field {target!r}: use one of {', '.join(MAPPABLE_FIELDS)} or cf:<key>"


def parse_column_mapping(raw: str | None) -> dict[str, str] | None:
    """The ``column_mapping`` form field: a JSON object from CSV header to field."""
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValidationFailed.single("column_mapping", "must be a JSON object from CSV header to field") from None
    if (
        not isinstance(value, dict)
        or not value
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        raise ValidationFailed.single(
            "column_mapping", 'must be a non-empty JSON object of strings, e.g. {"Mobile": "phone_e164"}'
        )
    return {key: target.strip() for key, target in value.items()}


def _auto_mapping(header: Sequence[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for name in header:
        folded = name.strip().lower()
        if folded == "phone":
            mapping[name] = "phone_e164"
        elif folded in MAPPABLE_FIELDS:
            mapping[name] = folded
        elif folded.startswith(CUSTOM_PREFIX) and _target_problem(name.strip()) is None:
            mapping[name] = name.strip()
    return mapping


def plan_columns(header: Sequence[str], mapping: dict[str, str] | None) -> tuple[ColumnPlan, dict[str, str]]:
    """Check the mapping against the header; 422 for a bad mapping, 400 when the file has no phone column."""
    header = [name.strip() for name in header]
    given = mapping is not None
    chosen = {key.strip(): target for key, target in mapping.items()} if mapping is not None else _auto_mapping(header)
    problems = FieldErrors()
    seen_targets: dict[str, str] = {}
    for column, target in chosen.items():
        if column not in header:
            problems.add(f"column_mapping.{column}", f"no column {column!r} in the file's header")
        problem = _target_problem(target)
        if problem is not None:
            problems.add(f"column_mapping.{column}", problem)
        elif target in seen_targets:
            problems.add(f"column_mapping.{column}", f"{target} is already mapped from {seen_targets[target]!r}")
        else:
            seen_targets[target] = column
    if given and "phone_e164" not in seen_targets:
        problems.add("column_mapping", "map one column to phone_e164")
    problems.raise_if_any()
    if "phone_e164" not in seen_targets:
        raise BadRequest(
            "The file has no phone column: name a column 'phone' or 'phone_e164', or send column_mapping",
            details={"header": header[:50]},
        )
    for column in chosen:
        if header.count(column) > 1:
            raise BadRequest(f"Column {column!r} appears more than once in the header", details={"column": column})
    index = {name: position for position, name in enumerate(header)}
    plan = ColumnPlan(
        width=len(header),
        phone=index[seen_targets["phone_e164"]],
        text=tuple(index[seen_targets[name]] if name in seen_targets else None for name in _TEXT_FIELDS),
        tags=index[seen_targets["tags"]] if "tags" in seen_targets else None,
        custom=tuple(
            (target[len(CUSTOM_PREFIX) :], index[column])
            for target, column in seen_targets.items()
            if target.startswith(CUSTOM_PREFIX)
        ),
    )
    return plan, {column: chosen[column] for column in chosen}


# ----------------------------------------------------------------------------- the upload


@dataclass
class SpooledCsv:
    """An uploaded CSV copied to a private temp file, with its header; the job deletes the file."""

    path: str
    header: list[str]

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def spool_csv(source: IO[bytes]) -> SpooledCsv:
    """Copy an upload to a temp file in chunks (never whole in memory), checking it is UTF-8 text with a header.

    Blocking: call it in a thread. Raises BadRequest (nothing kept) when the file cannot be a CSV.
    """
    handle, path = tempfile.mkstemp(prefix="bulkcall-import-", suffix=".csv")
    spooled = SpooledCsv(path=path, header=[])
    try:
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        size = 0
        with os.fdopen(handle, "wb") as target:
            while chunk := source.read(_COPY_CHUNK):
                if b"\x00" in chunk:
                    raise BadRequest("The file contains NUL bytes: it is not a CSV text file")
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise BadRequest(
                        f"The file is not UTF-8 text (invalid byte at offset {size + exc.start}): save it as CSV UTF-8",
                        details={"offset": size + exc.start},
                    ) from None
                size += len(chunk)
                target.write(chunk)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise BadRequest("The file is not UTF-8 text (it ends inside a character)") from None
        if size == 0:
            raise BadRequest("The file is empty")
        spooled.header = _read_header(path)
    except BaseException:
        spooled.discard()
        raise
    return spooled


def _read_header(path: str) -> list[str]:
    """The header (first non-blank record); 400 if there is none or no data row follows it."""
    header: list[str] | None = None
    with open_csv(path) as text:
        try:
            for record in csv.reader(text):
                if not any(cell.strip() for cell in record):
                    continue
                if header is not None:
                    return header
                header = record
        except csv.Error as exc:
            raise BadRequest(f"The file is not a readable CSV: {exc}") from None
    if header is None:
        raise BadRequest("The file has no header row (it is blank)")
    raise BadRequest("The file has a header row but no data rows")


# ----------------------------------------------------------------------------- rows (pure, CPU-bound)


def prepare_json_rows(
    rows: Sequence[ContactImportRow], first_row: int, region: str | None
) -> tuple[list[PreparedRow], list[ErrorRow]]:
    """The JSON-import counterpart of ``prepare_csv_rows`` (row numbers are 1-based positions in ``rows``)."""
    prepared: list[PreparedRow] = []
    errors: list[ErrorRow] = []
    for offset, item in enumerate(rows):
        texts = [
            (value.strip() or None) if value is not None else None
            for value in (item.first_name, item.last_name, item.email, item.company, item.timezone)
        ]
        custom = (
            {key: value for key, value in item.custom_fields.items() if value is not None and value != ""}
            if item.custom_fields
            else None
        )
        prepare_row(first_row + offset, item.phone_e164, texts, tags_json(item.tags), custom, region, prepared, errors)
    return prepared, errors


# ----------------------------------------------------------------------------- creating the job


@dataclass
class ImportJob:
    """Everything the background job needs; built by the request, run after its commit."""

    import_id: int
    workspace_id: int
    default_region: str | None
    contact_list_id: int | None
    csv: SpooledCsv | None = None
    plan: ColumnPlan | None = None
    rows: list[ContactImportRow] = field(default_factory=list)


async def _check_common(ctx: ServiceContext, default_region: str | None, contact_list_id: int | None) -> str | None:
    problems = FieldErrors()
    region: str | None = None
    try:
        region = phones.region_code(default_region) if default_region and default_region.strip() else None
    except phones.InvalidPhone as exc:
        problems.add("default_region", str(exc))
    if contact_list_id is not None and not await ContactImportRepository(ctx.session, ctx.workspace_id).list_exists(
        contact_list_id
    ):
        problems.add("contact_list_id", f"contact list {contact_list_id} not found")
    problems.raise_if_any()
    return region


def _new_import(ctx: ServiceContext, **values: Any) -> ContactImport:
    return ContactImport(
        workspace_id=ctx.workspace_id,
        status="queued",
        processed_rows=0,
        created=0,
        updated=0,
        skipped=0,
        errors_count=0,
        created_at=ctx.now,
        updated_at=ctx.now,
        **values,
    )


async def create_csv_import(
    ctx: ServiceContext,
    *,
    upload: SpooledCsv,
    filename: str | None,
    column_mapping: str | None,
    default_region: str | None,
    contact_list_id: int | None,
) -> tuple[ContactImport, ImportJob]:
    """Validate a spooled CSV and its options, and queue the import (the caller starts the job after commit).

    From here the spooled file belongs to the request's transaction: unless it commits, the file is
    removed (a failed validation, or a commit that fails, queues no job that would delete it).
    """
    _discard_unless_committed(ctx.session, upload)
    mapping = parse_column_mapping(column_mapping)
    plan, effective_mapping = plan_columns(upload.header, mapping)
    region = await _check_common(ctx, default_region, contact_list_id)
    row = _new_import(
        ctx,
        source="csv",
        filename=(filename or None) and filename[:500],
        contact_list_id=contact_list_id,
        default_region=region,
        column_mapping=effective_mapping,
    )
    repo = ContactImportRepository(ctx.session, ctx.workspace_id)
    repo.add(row)
    await repo.flush()
    job = ImportJob(row.id, ctx.workspace_id, region, contact_list_id, csv=upload, plan=plan)
    return row, job


def _discard_unless_committed(session: AsyncSession, upload: SpooledCsv) -> None:
    """Delete ``upload`` when the session's transaction ends in anything but a commit.

    The job deletes the file when it ends, but the job only starts once the request's commit has
    succeeded; without this a commit failure would leave the upload in the temp directory for good.
    """
    # The listeners stay on the session (it is the request's, gone with it): SQLAlchemy does not allow
    # removing a listener while its event runs.
    sync_session = session.sync_session
    state = {"committed": False, "ended": False}

    def on_commit(_: Any) -> None:
        state["committed"] = True

    def on_end(_: Any, transaction: SessionTransaction) -> None:
        # A savepoint's end decides nothing: the outermost transaction's does, once.
        if transaction.parent is not None or state["ended"]:
            return
        state["ended"] = True
        if not state["committed"]:
            upload.discard()

    event.listen(sync_session, "after_commit", on_commit)
    event.listen(sync_session, "after_transaction_end", on_end)


async def create_json_import(ctx: ServiceContext, body: ContactImportJson) -> tuple[ContactImport, ImportJob]:
    """Queue a JSON import (``{"rows": [...]}``)."""
    region = await _check_common(ctx, body.default_region, body.contact_list_id)
    row = _new_import(
        ctx,
        source="json",
        filename=None,
        contact_list_id=body.contact_list_id,
        default_region=region,
        column_mapping=None,
        total_rows=len(body.rows),
    )
    repo = ContactImportRepository(ctx.session, ctx.workspace_id)
    repo.add(row)
    await repo.flush()
    return row, ImportJob(row.id, ctx.workspace_id, region, body.contact_list_id, rows=body.rows)


async def get_import(ctx: ServiceContext, import_id: int) -> ContactImport:
    row = await ContactImportRepository(ctx.session, ctx.workspace_id).get(import_id)
    if row is None:
        raise NotFound("contact import", import_id)
    return row


async def list_imports(ctx: ServiceContext, page: int, per_page: int) -> tuple[list[ContactImport], int]:
    repo = ContactImportRepository(ctx.session, ctx.workspace_id)
    return await repo.page(repo.scoped(), page, per_page)


async def error_report_csv(
    database: Database, workspace_id: int, import_id: int, page_size: int = 5000
) -> AsyncIterator[str]:
    """The error report as CSV text chunks (``row,phone,reason``), read page by page in short transactions.

    The caller has already checked that the import belongs to ``workspace_id``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("row", "phone", "reason"))
    after = 0
    while True:
        async with database.session(write=False) as session:
            chunk = await ContactImportRepository(session, workspace_id).errors_after(import_id, after, page_size)
        for error in chunk:
            writer.writerow((error.row, error.phone or "", error.reason))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(chunk) < page_size:
            return
        after = chunk[-1].row


# ----------------------------------------------------------------------------- running the job


class _Abandoned(Exception):
    """The job row left ``running`` under us (another process declared it dead): stop writing."""


class _ProcessBatches:
    """``CsvBatches`` split over parsing processes (batch i from process i mod n), so number parsing
    uses the other cores while this process writes. Queues are bounded: parsers stay a few batches
    ahead and memory stays flat. ``spawn``, not ``fork``: this process runs threads (the event loop's
    executor, the SQLite driver), which fork does not carry safely.
    """

    def __init__(self, path: str, plan: ColumnPlan, region: str | None, size: int, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.queues: list[multiprocessing.queues.Queue[Any]] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for shard in range(processes):
            out: multiprocessing.queues.Queue[Any] = context.Queue(maxsize=3)
            process = context.Process(
                target=prepare_in_process, args=(path, plan, region, size, shard, processes, out), daemon=True
            )
            process.start()
            self.queues.append(out)
            self.processes.append(process)
        self.index = 0

    def next(self) -> Batch | None:
        shard = self.index % len(self.queues)
        while True:
            try:
                item = self.queues[shard].get(timeout=1.0)
            except queue.Empty:
                if not self.processes[shard].is_alive():
                    raise RuntimeError("a parsing process stopped unexpectedly") from None
                continue
            if isinstance(item, str):
                raise RuntimeError(f"parsing process failed: {item}")
            self.index += 1
            result: Batch | None = item
            return result

    def close(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process, out in zip(self.processes, self.queues, strict=True):
            process.join(timeout=5)
            out.close()


class _JsonBatches:
    def __init__(self, job: ImportJob, size: int) -> None:
        self.rows = job.rows
        self.region = job.default_region
        self.size = size
        self.start = 0

    def next(self) -> tuple[int, list[PreparedRow], list[ErrorRow]] | None:
        chunk = self.rows[self.start : self.start + self.size]
        if not chunk:
            return None
        prepared, errors = prepare_json_rows(chunk, self.start + 1, self.region)
        self.start += len(chunk)
        return len(chunk), prepared, errors

    def close(self) -> None:
        self.rows = []


def _dedupe(prepared: list[PreparedRow], errors: list[ErrorRow]) -> list[PreparedRow]:
    """Keep the first row of each phone within the batch; later ones become errors.

    Repeats of an earlier batch are found by the upsert (the contact carries the import and row that
    wrote it), so nothing here outlives the batch: memory does not grow with the file.
    """
    first_rows: dict[str, int] = {}
    kept: list[PreparedRow] = []
    for item in prepared:
        row, phone_raw, values = item
        first = first_rows.setdefault(values[0], row)
        if first == row:
            kept.append(item)
        else:
            errors.append((row, phone_raw, _duplicate(first)))
    return kept


def _duplicate(first_row: int) -> str:
    return f"duplicate phone in file (first at row {first_row})"


async def run_import(
    database: Database,
    clock: Clock,
    job: ImportJob,
    batch_size: int = BATCH_SIZE,
    parallel_min_rows: int = PARALLEL_MIN_ROWS,
    max_parsers: int | None = None,
) -> None:
    """Run a queued import to the end. Never raises: a failure is recorded on the import with its reason.

    CSV files of ``parallel_min_rows`` rows or more are parsed in a second process (when there is a
    second core); smaller ones in a thread, where starting a process would cost more than it saves.
    """
    try:
        await _run(database, clock, job, batch_size, parallel_min_rows, max_parsers)
    except asyncio.CancelledError:
        await _finish_quietly(database, clock, job, "failed", INTERRUPTED_REASON)
        raise
    except _Abandoned:
        log.warning("contact_import_abandoned", import_id=job.import_id)
    except Exception as exc:
        log.exception("contact_import_failed", import_id=job.import_id)
        await _finish_quietly(
            database, clock, job, "failed", f"Internal error while importing ({type(exc).__name__}); {_SAFE_RETRY}"
        )
    finally:
        if job.csv is not None:
            job.csv.discard()


_SAFE_RETRY = "rows already processed are saved and re-importing the same file is safe"


async def _finish_quietly(database: Database, clock: Clock, job: ImportJob, status: str, reason: str) -> None:
    try:
        async with database.session(write=True) as session, session.begin():
            await ContactImportJobStore(session, job.workspace_id, job.import_id).finish(status, clock.now(), reason)
    except Exception:
        log.exception("contact_import_status_not_saved", import_id=job.import_id)


async def _run(
    database: Database,
    clock: Clock,
    job: ImportJob,
    batch_size: int,
    parallel_min_rows: int,
    max_parsers: int | None,
) -> None:
    batches: CsvBatches | _ProcessBatches | _JsonBatches
    if job.csv is not None:
        assert job.plan is not None
        total = await asyncio.to_thread(count_csv_rows, job.csv.path)
        cores = os.cpu_count() or 1
        if total >= parallel_min_rows and cores > 1:
            # One parser per spare core. Parsing costs about twice what writing does, but on a 2-core
            # machine a second parser measured slower (it competes with this process for the cores).
            parsers = max_parsers or max(1, cores - 1)
            batches = _ProcessBatches(job.csv.path, job.plan, job.default_region, batch_size, parsers)
        else:
            batches = CsvBatches(job.csv.path, job.plan, job.default_region, batch_size)
    else:
        total = len(job.rows)
        batches = _JsonBatches(job, batch_size)
    async with database.session(write=True) as session, session.begin():
        if not await ContactImportJobStore(session, job.workspace_id, job.import_id).mark_running(total, clock.now()):
            raise _Abandoned
    # Double buffering: the next batch is parsed in a thread while this one is written.
    pending = asyncio.ensure_future(asyncio.to_thread(batches.next))
    try:
        while (batch := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(batches.next))
            count, prepared, errors = batch
            await _write_batch(database, clock, job, count, _dedupe(prepared, errors), errors)
    finally:
        if not pending.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
        batches.close()
    async with database.session(write=True) as session, session.begin():
        await ContactImportJobStore(session, job.workspace_id, job.import_id).finish("completed", clock.now())


async def _write_batch(
    database: Database,
    clock: Clock,
    job: ImportJob,
    count: int,
    contacts: list[PreparedRow],
    errors: list[ErrorRow],
) -> None:
    now = clock.now()
    async with database.session(write=True) as session, session.begin():
        store = ContactImportJobStore(session, job.workspace_id, job.import_id)
        result = await store.upsert_contacts([(row, values) for row, _, values in contacts], now, job.contact_list_id)
        if result.repeated:
            errors = errors + [
                (row, phone_raw, _duplicate(result.repeated[row]))
                for row, phone_raw, _ in contacts
                if row in result.repeated
            ]
        await store.add_errors(errors)
        alive = await store.add_progress(
            processed=count,
            created=result.created,
            updated=result.updated,
            skipped=len(errors),
            errors=len(errors),
            now=now,
        )
        if not alive:
            raise _Abandoned  # rolls this batch back


async def fail_abandoned_imports(database: Database, now: datetime) -> int:
    """Mark imports no process is running any more as failed, with an honest reason; returns how many."""
    async with database.session(write=True) as session, session.begin():
        return await mark_abandoned(session, stale_before=now - ABANDONED_AFTER, now=now, reason=INTERRUPTED_REASON)


async def start_job(jobs: Any, database: Database, clock: Clock, job: ImportJob) -> None:
    """Hand a committed import to the app's background jobs (async: it must run on the event loop)."""
    jobs.start(f"contact_import:{job.import_id}", run_import(database, clock, job))
