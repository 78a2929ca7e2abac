"""Contact import jobs, their error rows, and the bulk contact upsert (dialect-specific SQL lives here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bulkcall.db.models import ContactImport, ContactImportError, ContactList
from bulkcall.db.repositories.base import WorkspaceRepository, rows_changed

# One contact ready for the upsert, in column order:
# (phone_e164, first_name, last_name, email, company, timezone, country, phone_timezones, tags_json, custom_json).
# ``None`` means "not given": the existing value stays. tags_json / custom_json are JSON text.
ContactValues = tuple[
    str, str | None, str | None, str | None, str | None, str | None, str | None, str | None, str | None, str | None
]

ACTIVE_STATUSES = ("queued", "running")

# Statements are short; big batches stay below SQLite's bound-parameter limit.
_SQLITE_IN_CHUNK = 500
# Rows per multi-row upsert statement (11 bound parameters a row, far below SQLite's limit). Measured:
# 256-512 rows a statement upsert as fast as the former ``executemany`` (512: fewest trips to
# aiosqlite's thread at that speed); 1,024 was slower, 2,500 three times slower. A shorter
# remainder goes in power-of-two pieces, so there are only a handful of statement texts and sqlite3's
# statement cache reuses them (one text per remainder size compiled a new statement every batch and
# kept them all: a first try peaked at 380 MB).
SQLITE_UPSERT_ROWS = 512
_SQLITE_ROW_PARAMS = 11

# ?1 workspace, ?2 timestamp, ?3 import: shared by every row of the statement. The DO UPDATE's WHERE
# skips a phone this import already wrote (an earlier row of the same file): it is not in RETURNING.
_SQLITE_UPSERT_HEAD = """
INSERT INTO contacts (workspace_id, created_at, updated_at, last_import_id, phone_e164, first_name, last_name,
                      email, company, timezone, country, phone_timezones, tags, custom_fields, last_import_row)
VALUES """
_SQLITE_UPSERT_TAIL = """
ON CONFLICT (workspace_id, phone_e164) DO UPDATE SET
    first_name = COALESCE(excluded.first_name, contacts.first_name),
    last_name = COALESCE(excluded.last_name, contacts.last_name),
    email = COALESCE(excluded.email, contacts.email),
    company = COALESCE(excluded.company, contacts.company),
    timezone = COALESCE(excluded.timezone, contacts.timezone),
    country = excluded.country,
    phone_timezones = excluded.phone_timezones,
    tags = CASE WHEN excluded.tags = '[]' THEN contacts.tags ELSE excluded.tags END,
    custom_fields = CASE WHEN excluded.custom_fields = '{}' THEN contacts.custom_fields
                         ELSE json_patch(COALESCE(contacts.custom_fields, '{}'), excluded.custom_fields) END,
    updated_at = excluded.updated_at,
    last_import_id = excluded.last_import_id,
    last_import_row = excluded.last_import_row
WHERE contacts.last_import_id IS NOT excluded.last_import_id
RETURNING id, last_import_row
"""

_SQLITE_FIRST_ROWS = """
SELECT phone_e164, last_import_row FROM contacts WHERE workspace_id = ? AND phone_e164 IN ({marks})
"""

_SQLITE_LIST_MEMBERS = """
INSERT INTO contact_list_members (contact_list_id, contact_id, added_at)
SELECT l.id, c.id, ? FROM contacts c JOIN contact_lists l ON l.id = ? AND l.workspace_id = ?
WHERE c.workspace_id = ? AND c.phone_e164 IN ({marks}) ON CONFLICT DO NOTHING
"""

_PG_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS contact_import_batch (
    phone_e164 text, first_name text, last_name text, email text, company text, timezone text,
    country text, phone_timezones text, tags jsonb, custom_fields jsonb, import_row integer
) ON COMMIT DELETE ROWS
"""

_PG_COPY = (
    "COPY contact_import_batch (phone_e164, first_name, last_name, email, company, timezone, country, "
    "phone_timezones, tags, custom_fields, import_row) FROM STDIN"
)

# xmax = 0 marks a row this statement inserted (PostgreSQL's documented upsert idiom): exact even when
# another transaction inserts the same phone concurrently, which a select-before-insert is not. The
# DO UPDATE's WHERE skips a phone this import already wrote (an earlier row of the same file).
_PG_UPSERT = """
INSERT INTO contacts AS c (workspace_id, phone_e164, first_name, last_name, email, company, timezone, country,
                           phone_timezones, tags, custom_fields, created_at, updated_at, last_import_id,
                           last_import_row)
SELECT %(workspace_id)s, phone_e164, first_name, last_name, email, company, timezone, country, phone_timezones,
       COALESCE(tags, '[]'::jsonb), COALESCE(custom_fields, '{}'::jsonb), %(now)s, %(now)s, %(import_id)s,
       import_row
FROM contact_import_batch
ON CONFLICT (workspace_id, phone_e164) DO UPDATE SET
    first_name = COALESCE(excluded.first_name, c.first_name),
    last_name = COALESCE(excluded.last_name, c.last_name),
    email = COALESCE(excluded.email, c.email),
    company = COALESCE(excluded.company, c.company),
    timezone = COALESCE(excluded.timezone, c.timezone),
    country = excluded.country,
    phone_timezones = excluded.phone_timezones,
    tags = CASE WHEN excluded.tags = '[]'::jsonb THEN c.tags ELSE excluded.tags END,
    custom_fields = COALESCE(c.custom_fields, '{}'::jsonb) || excluded.custom_fields,
    updated_at = excluded.updated_at,
    last_import_id = excluded.last_import_id,
    last_import_row = excluded.last_import_row
WHERE c.last_import_id IS DISTINCT FROM excluded.last_import_id
RETURNING (xmax = 0) AS inserted, last_import_row
"""

# The first rows of the phones the upsert skipped (few: looked up by the unique index).
_PG_FIRST_ROWS = """
SELECT phone_e164, last_import_row FROM contacts
WHERE workspace_id = %(workspace_id)s AND phone_e164 = ANY(%(phones)s)
"""

_PG_LIST_MEMBERS = """
INSERT INTO contact_list_members (contact_list_id, contact_id, added_at)
SELECT l.id, c.id, %(now)s
FROM contact_import_batch b
JOIN contacts c ON c.workspace_id = %(workspace_id)s AND c.phone_e164 = b.phone_e164
JOIN contact_lists l ON l.id = %(list_id)s AND l.workspace_id = %(workspace_id)s
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True)
class UpsertResult:
    """What one batch's upsert did; ``repeated`` maps a row this import had already written the phone
    of (in an earlier batch) to that earlier row. Those rows changed nothing."""

    created: int
    updated: int
    repeated: dict[int, int] = field(default_factory=dict)


class ContactImportRepository(WorkspaceRepository[ContactImport]):
    """Import jobs of one workspace (what the API reads)."""

    model = ContactImport

    async def list_exists(self, contact_list_id: int) -> bool:
        query = select(ContactList.id).where(
            ContactList.id == contact_list_id, ContactList.workspace_id == self.workspace_id
        )
        return (await self.session.execute(query)).first() is not None

    async def errors_after(self, import_id: int, after_row: int, limit: int) -> list[ContactImportError]:
        """Error rows of an import (of this workspace, checked by the caller) in row order, keyset-paged."""
        query = (
            select(ContactImportError)
            .where(ContactImportError.contact_import_id == import_id, ContactImportError.row > after_row)
            .order_by(ContactImportError.row)
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())


class ContactImportJobStore:
    """What a running import writes, in the job's own transactions (one per batch)."""

    def __init__(self, session: AsyncSession, workspace_id: int, import_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id
        self.import_id = import_id

    async def mark_running(self, total_rows: int, now: datetime) -> bool:
        """queued → running with the row count; False if the job is no longer queued (e.g. swept as dead)."""
        result = await self.session.execute(
            update(ContactImport)
            .where(ContactImport.id == self.import_id, ContactImport.status == "queued")
            .values(status="running", total_rows=total_rows, started_at=now, updated_at=now)
        )
        return rows_changed(result) == 1

    async def add_progress(
        self, *, processed: int, created: int, updated: int, skipped: int, errors: int, now: datetime
    ) -> bool:
        """Add one batch's counts; False if the job is no longer running (another process gave up on it)."""
        result = await self.session.execute(
            update(ContactImport)
            .where(ContactImport.id == self.import_id, ContactImport.status == "running")
            .values(
                processed_rows=ContactImport.processed_rows + processed,
                created=ContactImport.created + created,
                updated=ContactImport.updated + updated,
                skipped=ContactImport.skipped + skipped,
                errors_count=ContactImport.errors_count + errors,
                updated_at=now,
            )
        )
        return rows_changed(result) == 1

    async def finish(self, status: str, now: datetime, failure_reason: str | None = None) -> None:
        await self.session.execute(
            update(ContactImport)
            .where(ContactImport.id == self.import_id, ContactImport.status.in_(ACTIVE_STATUSES))
            .values(status=status, failure_reason=failure_reason, finished_at=now, updated_at=now)
        )

    async def add_errors(self, errors: Sequence[tuple[int, str | None, str]]) -> None:
        if errors:
            await self.session.execute(
                insert(ContactImportError),
                [
                    {"contact_import_id": self.import_id, "row": row, "phone": phone, "reason": reason}
                    for row, phone, reason in errors
                ],
            )

    async def upsert_contacts(
        self, contacts: Sequence[tuple[int, ContactValues]], now: datetime, contact_list_id: int | None
    ) -> UpsertResult:
        """Insert or update ``contacts`` ((row, values); phones unique within the batch), marking each with
        this import and its row; add them to the list if given.

        A phone this import already wrote in an earlier batch is left alone and reported in
        ``repeated`` with its first row: the file's first occurrence wins, and nothing is kept in memory
        across batches (the mark on the contact is the memory).
        """
        if not contacts:
            return UpsertResult(created=0, updated=0)
        connection = await self.session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        if connection.dialect.name == "postgresql":
            return await _upsert_postgresql(raw, self.workspace_id, self.import_id, contacts, now, contact_list_id)
        return await _upsert_sqlite(raw, self.workspace_id, self.import_id, contacts, now, contact_list_id)


@lru_cache(maxsize=16)
def _sqlite_upsert(rows: int) -> str:
    """The multi-row upsert for ``rows`` rows (the same text each time, so sqlite3 reuses its prepared statement)."""
    groups = []
    for index in range(rows):
        first = 4 + index * _SQLITE_ROW_PARAMS
        marks = [f"?{first + offset}" for offset in range(_SQLITE_ROW_PARAMS)]
        marks[8] = f"COALESCE({marks[8]}, '[]')"  # tags
        marks[9] = f"COALESCE({marks[9]}, '{{}}')"  # custom_fields
        groups.append(f"(?1, ?2, ?2, ?3, {', '.join(marks)})")
    return _SQLITE_UPSERT_HEAD + ",\n".join(groups) + _SQLITE_UPSERT_TAIL


async def _upsert_sqlite(
    raw: Any,
    workspace_id: int,
    import_id: int,
    contacts: Sequence[tuple[int, ContactValues]],
    now: datetime,
    contact_list_id: int | None,
) -> UpsertResult:
    # New rows take rowids above the current maximum (no AUTOINCREMENT: max + 1), and the write
    # transaction holds SQLite's lock (BEGIN IMMEDIATE), so the returned ids above it are exactly
    # the rows this batch created. Cheaper than looking every phone up before the upsert.
    cursor = await raw.execute("SELECT coalesce(max(id), 0) FROM contacts")
    max_before = int((await cursor.fetchone())[0])
    await cursor.close()
    # Same text format SQLAlchemy's SQLite DateTime writes (UTCDateTime stores naive UTC).
    stamp = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    created = 0
    written: set[int] = set()
    start = 0
    while start < len(contacts):
        left = len(contacts) - start
        size = SQLITE_UPSERT_ROWS if left >= SQLITE_UPSERT_ROWS else 1 << (left.bit_length() - 1)
        chunk = contacts[start : start + size]
        start += size
        params: list[Any] = [workspace_id, stamp, import_id]
        for row, values in chunk:
            params.extend(values)
            params.append(row)
        # One trip to aiosqlite's thread for execute, fetch and close.
        for contact_id, row in await raw.execute_fetchall(_sqlite_upsert(len(chunk)), params):
            written.add(row)
            if contact_id > max_before:
                created += 1
    repeated: dict[int, int] = {}
    if len(written) < len(contacts):
        skipped = {values[0]: row for row, values in contacts if row not in written}
        phones = list(skipped)
        for start in range(0, len(phones), _SQLITE_IN_CHUNK):
            chunk_phones = phones[start : start + _SQLITE_IN_CHUNK]
            found = await raw.execute_fetchall(
                _SQLITE_FIRST_ROWS.replace("{marks}", ",".join("?" * len(chunk_phones))),
                [workspace_id, *chunk_phones],
            )
            for phone, first_row in found:
                repeated[skipped[phone]] = int(first_row)
    if contact_list_id is not None:
        phones = [values[0] for _, values in contacts]
        for start in range(0, len(phones), _SQLITE_IN_CHUNK):
            chunk_phones = phones[start : start + _SQLITE_IN_CHUNK]
            marks = ",".join("?" * len(chunk_phones))
            await raw.execute(
                _SQLITE_LIST_MEMBERS.replace("{marks}", marks),
                [stamp, contact_list_id, workspace_id, workspace_id, *chunk_phones],
            )
    return UpsertResult(created=created, updated=len(written) - created, repeated=repeated)


async def _upsert_postgresql(
    raw: Any,
    workspace_id: int,
    import_id: int,
    contacts: Sequence[tuple[int, ContactValues]],
    now: datetime,
    contact_list_id: int | None,
) -> UpsertResult:
    params = {"workspace_id": workspace_id, "import_id": import_id, "now": now}
    repeated: dict[int, int] = {}
    async with raw.cursor() as cursor:
        await cursor.execute(_PG_STAGING)
        async with cursor.copy(_PG_COPY) as copy:
            for row, values in contacts:
                await copy.write_row((*values, row))
        await cursor.execute(_PG_UPSERT, params)
        written = await cursor.fetchall()
        if len(written) < len(contacts):
            written_rows = {row for _, row in written}
            skipped = {values[0]: row for row, values in contacts if row not in written_rows}
            await cursor.execute(_PG_FIRST_ROWS, {**params, "phones": list(skipped)})
            repeated = {skipped[phone]: int(first) for phone, first in await cursor.fetchall()}
        if contact_list_id is not None:
            await cursor.execute(_PG_LIST_MEMBERS, {**params, "list_id": contact_list_id})
        await cursor.execute("TRUNCATE contact_import_batch")
    created = sum(1 for inserted, _ in written if inserted)
    return UpsertResult(created=created, updated=len(written) - created, repeated=repeated)


async def mark_abandoned(session: AsyncSession, *, stale_before: datetime, now: datetime, reason: str) -> int:
    """Fail queued/running imports nobody has advanced since ``stale_before``; returns how many."""
    result = await session.execute(
        update(ContactImport)
        .where(ContactImport.status.in_(ACTIVE_STATUSES), ContactImport.updated_at < stale_before)
        .values(status="failed", failure_reason=reason, finished_at=now, updated_at=now)
    )
    return rows_changed(result)


async def count_active(session: AsyncSession) -> int:
    query = select(func.count()).select_from(ContactImport).where(ContactImport.status.in_(ACTIVE_STATUSES))
    return int((await session.execute(query)).scalar_one())


def dumps(value: Any) -> str:
    """JSON text as stored in the tags / custom_fields columns."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
