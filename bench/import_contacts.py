"""Contact import benchmark: a generated CSV of N contacts through the real import path.

The CSV mixes US numbers over many area codes (E.164, and national format read with
default_region=US), India, UK and Brazil mobiles, ~2% invalid numbers and ~1% phones repeated in the
file. It is imported with the service functions ``POST /contacts/import`` uses, called directly (no
HTTP): ``spool_csv`` (copy + UTF-8 check), ``create_csv_import`` (validation, job row), then
``run_import`` (the background job: parse, normalise, dedupe, batched upsert, progress, error rows).

Printed: rows/s end to end, peak RSS (the API process, the parsing process, and their sum), and the
ratio against a bare insert of the same already normalised rows measured in the same run (SQLite:
sqlite3 ``executemany``; PostgreSQL: ``COPY``).

    uv run python bench/import_contacts.py [--rows 1000000] [--postgres URL]

PostgreSQL runs too when --postgres or BULKCALL_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    peak_rss_mb,
    pg_dsn,
    postgres_database,
    postgres_url_from_env,
    sqlite_database,
    sqlite_path,
)
from bulkcall.db.engine import Database
from bulkcall.kit.clock import SystemClock
from bulkcall.services import contact_imports
from bulkcall.services.context import ServiceContext
from bulkcall.services.workspaces import create_key

# Real US area codes (a spread over every state); exchanges 200-999 are drawn at random.
US_AREA_CODES = [
    201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 224, 225, 228, 229,
    231, 234, 239, 240, 248, 251, 252, 253, 254, 256, 260, 262, 267, 269, 270, 276, 281, 301, 302, 303, 304,
    305, 307, 308, 309, 310, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 323, 325, 330, 334, 336, 337,
    339, 347, 351, 352, 360, 361, 386, 401, 402, 404, 405, 406, 407, 408, 409, 410, 412, 413, 414, 415, 417,
    419, 423, 424, 425, 432, 434, 435, 440, 443, 469, 478, 479, 480, 484, 501, 502, 503, 504, 505, 507, 508,
    509, 510, 512, 513, 515, 516, 517, 518, 520, 530, 540, 541, 551, 559, 561, 562, 563, 567, 570, 571, 573,
    574, 575, 580, 585, 586, 601, 602, 603, 605, 606, 607, 608, 609, 610, 612, 614, 615, 616, 617, 618, 619,
    620, 623, 626, 630, 631, 636, 641, 646, 650, 651, 660, 661, 662, 678, 682, 701, 702, 703, 704, 706, 707,
    708, 712, 713, 714, 715, 716, 717, 718, 719, 720, 724, 727, 731, 732, 734, 740, 754, 757, 760, 763, 765,
    770, 772, 773, 774, 775, 781, 785, 786, 801, 802, 803, 804, 805, 806, 808, 810, 812, 813, 814, 815, 816,
    817, 818, 828, 830, 831, 832, 843, 845, 847, 848, 850, 856, 857, 858, 859, 860, 862, 863, 864, 865, 870,
    878, 901, 903, 904, 906, 907, 908, 909, 910, 912, 913, 914, 915, 916, 917, 918, 919, 920, 925, 928, 931,
    936, 937, 940, 941, 947, 949, 951, 952, 954, 956, 970, 971, 972, 973, 978, 979, 980, 985, 989,
]  # fmt: skip
FIRST = ["Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lea", "Max", "Noa"]
LAST = ["Smith", "Jones", "Patel", "Silva", "Brown", "Khan", "Costa", "Lee", "Garcia", "Singh"]
PLANS = ["free", "pro", "team", "enterprise"]


def _phone(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.64:
        return f"+1{rng.choice(US_AREA_CODES)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
    if roll < 0.72:
        area = rng.choice(US_AREA_CODES)
        return f"({area}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"  # national, default_region US
    if roll < 0.81:
        return f"+91{rng.choice('6789')}{rng.randint(0, 999_999_999):09d}"
    if roll < 0.90:
        return f"+447{rng.choice('1234579')}{rng.randint(0, 99_999_999):08d}"
    if roll < 0.98:
        return f"+55{rng.choice([11, 21, 31, 41, 51, 61, 71, 81])}9{rng.randint(0, 99_999_999):08d}"
    return rng.choice(["+1555", "12345", "+99912345678", "n/a", "+44 20 0000", ""])  # invalid


def generate_csv(path: Path, rows: int, seed: int = 7) -> None:
    """Stream ``rows`` contacts to ``path`` (never all in memory); ~1% repeat an earlier phone."""
    rng = random.Random(seed)
    recent: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Phone", "First name", "Last name", "Email", "Company", "Tags", "Plan"])
        for index in range(rows):
            if recent and rng.random() < 0.01:
                phone = rng.choice(recent)
            else:
                phone = _phone(rng)
                if len(recent) < 1000:
                    recent.append(phone)
                else:
                    recent[rng.randrange(1000)] = phone
            first, last = rng.choice(FIRST), rng.choice(LAST)
            writer.writerow(
                [
                    phone,
                    first,
                    last,
                    f"{first.lower()}.{last.lower()}{index}@example.com" if rng.random() < 0.7 else "",
                    f"Company {index % 5000}",
                    "lead;2024" if rng.random() < 0.3 else "",
                    rng.choice(PLANS),
                ]
            )


MAPPING = (
    '{"Phone": "phone_e164", "First name": "first_name", "Last name": "last_name", "Email": "email", '
    '"Company": "company", "Tags": "tags", "Plan": "cf:plan"}'
)


async def run_import(url: str, csv_path: Path, parsers: int | None) -> tuple[float, dict[str, int | None], int]:
    """The real import path, timed from the upload copy to the job's end; returns (seconds, counts, workspace)."""
    database = Database(url)
    clock = SystemClock()
    try:
        async with database.session(write=True) as session, session.begin():
            workspace, _ = await create_key(session, "bench", None, clock.now())
        started = time.perf_counter()
        cpu_started = _cpu()
        with csv_path.open("rb") as upload:
            spooled = await asyncio.to_thread(contact_imports.spool_csv, upload)
        async with database.session(write=True) as session, session.begin():
            ctx = ServiceContext(session=session, workspace_id=workspace.id, now=clock.now())
            row, job = await contact_imports.create_csv_import(
                ctx,
                upload=spooled,
                filename=csv_path.name,
                column_mapping=MAPPING,
                default_region="US",
                contact_list_id=None,
            )
        await contact_imports.run_import(database, clock, job, max_parsers=parsers)
        elapsed = time.perf_counter() - started
        main_cpu, parser_cpu = (now - then for now, then in zip(_cpu(), cpu_started, strict=True))
        print(f"  CPU seconds: this process {main_cpu:.1f}, parsing process {parser_cpu:.1f}")
        async with database.session(write=False) as session:
            ctx = ServiceContext(session=session, workspace_id=workspace.id, now=clock.now())
            done = await contact_imports.get_import(ctx, row.id)
        counts = {
            "status_completed": int(done.status == "completed"),
            "total_rows": done.total_rows,
            "processed_rows": done.processed_rows,
            "created": done.created,
            "updated": done.updated,
            "skipped": done.skipped,
        }
        return elapsed, counts, workspace.id
    finally:
        await database.dispose()


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


CONTACT_COLUMNS = (
    "workspace_id, phone_e164, first_name, last_name, email, company, timezone, country, phone_timezones, "
    "tags, custom_fields, created_at, updated_at"
)


def sqlite_baseline(url: str) -> tuple[float, int]:
    """sqlite3 executemany of the imported (already normalised) rows into an empty copy of the table."""
    path = sqlite_path(url)
    with sqlite3.connect(path) as source:
        rows = source.execute(f"SELECT {CONTACT_COLUMNS} FROM contacts").fetchall()
    with tempfile.TemporaryDirectory() as tmp:
        target = sqlite3.connect(Path(tmp) / "baseline.db", isolation_level=None)
        schema = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master WHERE name = 'contacts'").fetchone()[0]
        target.execute("PRAGMA journal_mode=WAL")
        target.execute("PRAGMA synchronous=NORMAL")
        target.execute(schema)
        marks = ",".join("?" * 13)
        started = time.perf_counter()
        for start in range(0, len(rows), 5000):
            target.execute("BEGIN")
            target.executemany(f"INSERT INTO contacts ({CONTACT_COLUMNS}) VALUES ({marks})", rows[start : start + 5000])
            target.execute("COMMIT")
        elapsed = time.perf_counter() - started
        target.close()
    return elapsed, len(rows)


def postgres_baseline(url: str) -> tuple[float, int]:
    """COPY of the imported (already normalised) rows into an empty copy of the table, indexes included."""
    with psycopg.connect(pg_dsn(url)) as conn:
        # jsonb as text: the baseline sends exactly what the import's COPY sends.
        columns = CONTACT_COLUMNS.replace("tags, custom_fields", "tags::text, custom_fields::text")
        rows = conn.execute(f"SELECT {columns} FROM contacts").fetchall()
        conn.execute("CREATE TABLE contacts_baseline (LIKE contacts INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(f"COPY contacts_baseline ({CONTACT_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
    return elapsed, len(rows)


def report(name: str, rows: int, elapsed: float, counts: dict[str, int | None], baseline: float, peak: str) -> None:
    print(f"[{name}] {rows:,} rows in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s end to end")
    print(f"[{name}] counts: {counts}")
    print(f"[{name}] peak RSS of the import: {peak}")
    print(f"[{name}] baseline (bare insert of the normalised rows): {baseline:.1f} s; import/baseline = "
          f"{elapsed / baseline:.1f}x")  # fmt: skip


def run_backend(backend: str, csv_path: Path, rows: int, postgres: str | None, parsers: int | None) -> None:
    """One backend, in its own process so its peak memory is its own."""
    print(f"[{backend}] peak RSS before importing: {peak_rss_mb():.0f} MB")
    if backend == "sqlite":
        with sqlite_database() as url:
            elapsed, counts, _ = asyncio.run(run_import(url, csv_path, parsers))
            peak = _peaks()
            baseline, _ = sqlite_baseline(url)
    else:
        assert postgres is not None
        with postgres_database(postgres) as url:
            elapsed, counts, _ = asyncio.run(run_import(url, csv_path, parsers))
            peak = _peaks()
            baseline, _ = postgres_baseline(url)
    report(backend, rows, elapsed, counts, baseline, peak)


def _peaks() -> str:
    """Peak RSS of this (the API's) process, of the largest parsing process, and both together: the two
    run side by side, so the import's footprint on the machine is their sum."""
    own = peak_rss_mb()
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return f"API process {own:.0f} MB + parsing process {child:.0f} MB = {own + child:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=postgres_url_from_env(), help="PostgreSQL admin URL")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--parsers", type=int, default=None, help="parsing processes (default: cores - 1)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend is not None:
        run_backend(args.backend, args.csv, args.rows, args.postgres, args.parsers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "contacts.csv"
        started = time.perf_counter()
        generate_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f} s")
        print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}")
        backends = ([] if args.skip_sqlite else ["sqlite"]) + (["postgresql"] if args.postgres else [])
        for backend in backends:
            command = [sys.executable, __file__, "--backend", backend, "--csv", str(csv_path), "--rows", str(args.rows)]
            if args.postgres:
                command += ["--postgres", args.postgres]
            if args.parsers:
                command += ["--parsers", str(args.parsers)]
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
