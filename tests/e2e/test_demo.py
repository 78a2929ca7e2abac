"""``bulkcall demo`` as a user runs it: a fresh SQLite file, a campaign dialed to completion on the fast service
clock, exit 0, and a results CSV whose rows show what the demo promises (every task terminal, answers, DNC and
unreadable numbers skipped, opt-outs added after the launch never dialed, many zones, calls only inside the
contacts' local windows), with the preflight printed before the launch. It also refuses to delete a file at
``--database`` that is not a demo database."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e

TERMINAL = {"completed", "failed", "skipped", "cancelled"}
# The demo's windows: Monday to Friday, 09:00-18:00 in the contact's zone.
WINDOW_START = time(9, 0)
# Service time runs thousands of times faster than wall time, so the instant a call is recorded as dialed may
# trail the instant its window was checked by some service minutes; a call is never recorded before the check.
WINDOW_END_SLACK = time(18, 30)


def _local(stamp: str, zone: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))


def test_demo_runs_a_campaign_to_completion_and_writes_the_results(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    results = tmp_path / "demo.csv"
    args = ["demo", "--contacts", "200", "--no-live", "--rate", "3000", "--database", str(database)]
    finished = run_cli([*args, "--results", str(results)], {}, tmp_path)

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert str(database) in finished.stdout
    assert str(results) in finished.stdout
    assert "completed" in finished.stdout
    # The preflight (capacity preview and timezone analysis) comes before the launch, and its estimate is sane.
    preflight = finished.stdout.index("preflight (capacity preview):")
    assert preflight < finished.stdout.index("preflight (audience time zones):") < finished.stdout.index("launched")
    assert re.search(r"200 contacts in \d+ zone keys and \d+ countries", finished.stdout), finished.stdout
    estimate = re.search(r"estimated ([\d.]+) h, done", finished.stdout)
    simulated = re.search(r"simulated (?:(\d+) d )?(\d+) h (\d+) min", finished.stdout)
    assert estimate is not None, finished.stdout
    assert simulated is not None, finished.stdout
    actual_hours = 24 * int(simulated[1] or 0) + int(simulated[2]) + int(simulated[3]) / 60
    assert abs(float(estimate[1]) - actual_hours) < 0.35 * actual_hours, (estimate[0], simulated[0])
    # Opt-outs added to the do-not-call list after the launch are caught right before their dial.
    opt_outs = re.search(r"of the (\d+) opt-outs added after the launch, (\d+) were skipped", finished.stdout)
    assert opt_outs is not None, finished.stdout
    assert int(opt_outs[1]) > 0
    assert opt_outs[1] == opt_outs[2]
    with results.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200
    statuses = Counter(row["status"] for row in rows)
    assert set(statuses) <= TERMINAL, statuses
    assert statuses["completed"] > 0
    assert any(row["last_outcome"] == "answered" for row in rows)
    skipped = Counter(row["skip_reason"] for row in rows if row["status"] == "skipped")
    assert skipped["dnc"] > 0
    assert skipped["invalid_number"] > 0
    zones = {row["timezones"] for row in rows}
    assert len(zones) > 8, zones
    assert {"Asia/Kolkata", "America/St_Johns"} <= zones
    sources = Counter(row["timezone_source"] for row in rows)
    assert sources["contact_field"] > 0, sources
    assert sources["phone_number"] > 0, sources

    called = [row for row in rows if row["first_called_at"] and "|" not in row["timezones"]]
    assert called
    for row in called:
        for stamp in (row["first_called_at"], row["last_called_at"]):
            local = _local(stamp, row["timezones"])
            assert local.weekday() < 5, row
            assert WINDOW_START <= local.time() <= WINDOW_END_SLACK, row
        assert int(row["attempts"]) <= 3, row  # one attempt plus the demo's two retries


def test_demo_refuses_to_replace_a_file_that_is_not_a_demo_database(tmp_path: Path) -> None:
    precious = tmp_path / "notes.db"
    precious.write_text("not a database\n")

    finished = run_cli(["demo", "--no-live", "--database", str(precious)], {}, tmp_path)

    assert finished.returncode == 2, finished.stdout + finished.stderr
    assert "not a bulkcall demo database" in finished.stdout
    assert precious.read_text() == "not a database\n"
