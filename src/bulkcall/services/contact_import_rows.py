"""Reading and checking contact-import rows: pure CPU work, kept light to import.

This module imports nothing heavy (no database, no web framework) because big imports run it in a
second process (``spawn``), whose start-up cost is the import time of this module.
"""

from __future__ import annotations

import csv
import gc
import json
import multiprocessing.queues
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any

from bulkcall.domain import phones
from bulkcall.domain.timezones import canonical_zone

# Values of one contact for the upsert, in column order: (phone_e164, first_name, last_name, email,
# company, timezone, country, phone_timezones, tags_json, custom_json); None = "not given".
ContactValues = tuple[
    str, str | None, str | None, str | None, str | None, str | None, str | None, str | None, str | None, str | None
]
ErrorRow = tuple[int, str | None, str]  # (row, phone as given, reason)
PreparedRow = tuple[int, str, ContactValues]  # (row, phone as given, values)

# The JSON text stored in tags / custom_fields; one encoder object skips json.dumps' per-call set-up.
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_TAG_SPLIT = re.compile(r"[;,]")


@dataclass(frozen=True)
class ColumnPlan:
    """Where each field sits in a CSV row (indexes into the header)."""

    width: int
    phone: int
    text: tuple[int | None, ...]  # first_name, last_name, email, company, timezone
    tags: int | None
    custom: tuple[tuple[str, int], ...]


def open_csv(path: str) -> IO[str]:
    # utf-8-sig drops a BOM if there is one (Excel writes it).
    return open(path, encoding="utf-8-sig", newline="")  # closed by the caller


def _records(path: str) -> Iterator[list[str] | csv.Error]:
    """Data records after the header; blank lines are not rows. A malformed record yields its error."""
    with open_csv(path) as text:
        reader = csv.reader(text)
        header_seen = False
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if header_seen:
                    yield exc.with_traceback(None)  # no traceback: it would pin this generator's frame
                continue
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if not header_seen:
                header_seen = any(cell.strip() for cell in record)
                continue
            yield record


def count_csv_rows(path: str) -> int:
    """Data rows the job will process (the same rows ``_records`` yields)."""
    return sum(1 for _ in _records(path))


@lru_cache(maxsize=4096)
def _zone(value: str) -> str | None:
    return canonical_zone(value)


def tags_json(value: str | list[str] | None) -> str | None:
    if value is None:
        return None
    parts = _TAG_SPLIT.split(value) if isinstance(value, str) else value
    tags = list(dict.fromkeys(tag.strip() for tag in parts if tag.strip()))
    return dumps(tags) if tags else None


def prepare_row(
    row: int,
    phone_raw: str,
    texts: list[str | None],
    tags_json: str | None,
    custom: dict[str, Any] | None,
    region: str | None,
    prepared: list[PreparedRow],
    errors: list[ErrorRow],
) -> None:
    """Validate one row and append it to ``prepared`` or its reason to ``errors``."""
    try:
        number = phones.normalize(phone_raw, region)
    except phones.InvalidPhone as exc:
        errors.append((row, phone_raw.strip() or None, str(exc)))
        return
    first_name, last_name, email, company, zone = texts
    if zone is not None:
        canonical = _zone(zone)
        if canonical is None:
            errors.append((row, phone_raw.strip(), f"invalid timezone {zone!r}: use an IANA name such as Europe/Paris"))
            return
        zone = canonical
    if email is not None and _EMAIL.fullmatch(email) is None:
        errors.append((row, phone_raw.strip(), f"invalid email {email!r}"))
        return
    prepared.append(
        (
            row,
            phone_raw.strip(),
            (
                number.e164,
                first_name,
                last_name,
                email,
                company,
                zone,
                number.country,
                number.timezones_key,
                tags_json,
                dumps(custom) if custom else None,
            ),
        )
    )


def prepare_csv_rows(
    records: Sequence[tuple[int, list[str] | csv.Error]], plan: ColumnPlan, region: str | None
) -> tuple[list[PreparedRow], list[ErrorRow]]:
    """Turn numbered CSV records into upsert values and per-row errors."""
    prepared: list[PreparedRow] = []
    errors: list[ErrorRow] = []
    width = plan.width
    for row, record in records:
        if isinstance(record, csv.Error):
            errors.append((row, None, f"malformed CSV row: {record}"))
            continue
        if len(record) != width:
            if len(record) > width and any(cell.strip() for cell in record[width:]):
                phone = record[plan.phone].strip() or None
                errors.append((row, phone, f"row has {len(record)} cells but the header has {width} columns"))
                continue
            # Spreadsheets drop trailing empty cells: a short row means empty values.
            record = (record + [""] * width)[:width]
        texts = [(record[i].strip() or None) if i is not None else None for i in plan.text]
        tags = tags_json(record[plan.tags]) if plan.tags is not None else None
        custom = {key: value for key, i in plan.custom if (value := record[i].strip())} if plan.custom else None
        prepare_row(row, record[plan.phone], texts, tags, custom, region, prepared, errors)
    return prepared, errors


Batch = tuple[int, list[PreparedRow], list[ErrorRow]]  # (rows read, prepared rows, error rows)


class CsvBatches:
    """Numbered, prepared batches of ``size`` rows of a CSV file; ``next`` blocks (run it off the event loop).

    With ``shards`` > 1 it prepares only batches ``shard``, ``shard + shards``, ... and merely reads the
    others, so several processes can split the parsing and a reader taking their batches in turn sees
    the file in order.
    """

    def __init__(
        self, path: str, plan: ColumnPlan, region: str | None, size: int, shard: int = 0, shards: int = 1
    ) -> None:
        self.records = _records(path)
        self.plan = plan
        self.region = region
        self.size = size
        self.shard = shard
        self.shards = shards
        self.index = 0
        self.row = 0

    def next(self) -> Batch | None:
        while True:
            mine = self.index % self.shards == self.shard
            self.index += 1
            batch: list[tuple[int, list[str] | csv.Error]] = []
            for record in self.records:
                self.row += 1
                if mine:
                    batch.append((self.row, record))
                if self.row % self.size == 0:
                    break
            else:
                if not batch:
                    return None
            if mine:
                prepared, errors = prepare_csv_rows(batch, self.plan, self.region)
                return len(batch), prepared, errors

    def close(self) -> None:
        close = getattr(self.records, "close", None)
        if close is not None:
            close()


def prepare_in_process(
    path: str,
    plan: ColumnPlan,
    region: str | None,
    size: int,
    shard: int,
    shards: int,
    out: multiprocessing.queues.Queue[Any],
) -> None:
    """Body of a parsing process: its prepared batches into ``out``, then None (or an error message)."""
    # Rows are tuples of strings, freed by reference counting; the cycle collector would only rescan
    # them (measured: about a third of the parsing time). This process ends with the import.
    gc.disable()
    try:
        batches = CsvBatches(path, plan, region, size, shard, shards)
        while (batch := batches.next()) is not None:
            out.put(batch)
        out.put(None)
    except BaseException as exc:  # reported to the job, which records it on the import
        out.put(f"{type(exc).__name__}: {exc}")
