"""The second process of a SQLite results export (``ExportRepository._sqlite_two_process_lines``).

SQLite runs a statement on one core, and Python's ``sqlite3`` holds the GIL between row steps, so two threads
cannot write lines at once; two processes can. This one is started as a script (standard library only, so it
starts in milliseconds) and speaks over its pipes in frames: an 8-byte little-endian length, then a
``marshal`` body (ints, text, None, tuples and lists only).

1. The parent sends ``{"path", "sql", "params"}``.
2. It sends ``b"B"`` while it holds SQLite's write lock: this process begins its read transaction (its
   snapshot is then the parent's, as no commit can happen meanwhile) and answers ``b"R"``. ``b"X"`` instead:
   nothing to do, exit.
3. The parent sends the list of ``(after, upto)`` id ranges; each range's rows go back as one frame, in order.
"""

from __future__ import annotations

import marshal
import sqlite3
import struct
import sys
from typing import Any, BinaryIO

LENGTH = struct.Struct("<Q")


def frame(value: Any) -> bytes:
    body = marshal.dumps(value)
    return LENGTH.pack(len(body)) + body


def value_of(body: bytes) -> Any:
    # Only ever bodies this module wrote, over the pipes between the two processes of one export.
    return marshal.loads(body)  # noqa: S302


def read_frame(stream: BinaryIO) -> Any:
    (size,) = LENGTH.unpack(stream.read(LENGTH.size))
    return value_of(stream.read(size))


def main() -> None:
    incoming, outgoing = sys.stdin.buffer, sys.stdout.buffer
    job = read_frame(incoming)
    connection = sqlite3.connect(job["path"], isolation_level=None)
    if incoming.read(1) != b"B":
        return
    connection.execute("BEGIN")
    connection.execute("SELECT 1 FROM call_tasks LIMIT 1").fetchall()  # the snapshot is taken at the first read
    outgoing.write(b"R")
    outgoing.flush()
    for after, upto in read_frame(incoming):
        rows = connection.execute(job["sql"], {**job["params"], "after": after, "upto": upto}).fetchall()
        outgoing.write(frame(rows))
        outgoing.flush()
    connection.execute("ROLLBACK")


if __name__ == "__main__":
    main()
