"""Schemathesis fuzzes every operation of /openapi.json against a real server: no 500, no response off-schema.

Runs on SQLite always and on PostgreSQL when BULKCALL_TEST_POSTGRES_URL is set (PostgreSQL is the
stricter of the two: it refuses NUL characters and over-long values that SQLite would store).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from bulkcall.db.admin import scratch_postgres_database
from tests.e2e.conftest import running_server

pytestmark = pytest.mark.e2e

FUZZ_KEY = "sk_fuzz_0123456789abcdefghij"
HEADERS = {"X-Api-Key": FUZZ_KEY}
POSTGRES_URL = os.environ.get("BULKCALL_TEST_POSTGRES_URL")


def _seed(base: str) -> None:
    """A few real rows so that generated ids (small integers) sometimes hit existing resources."""
    api = f"{base}/api/v1"
    with httpx.Client(headers=HEADERS, timeout=10) as client:
        client.post(f"{api}/agents", json={"name": "Fuzz agent"})
        connection = client.post(f"{api}/telephony_connections", json={"name": "sim", "provider": "simulator"})
        connection_id = connection.json().get("data", {}).get("id", 1)
        client.post(f"{api}/phone_numbers", json={"e164": "+14155550100", "telephony_connection_id": connection_id})
        client.post(f"{api}/contacts", json={"phone_e164": "+14155552671", "first_name": "Ada"})
        client.post(f"{api}/contact_lists", json={"name": "Fuzz list"})
        client.post(f"{api}/dnc", json={"phone_e164": "+14155552672"})


def _serve(tmp_path: Path, database_url: str) -> Iterator[Any]:
    env = {
        "BULKCALL_DATABASE_URL": database_url,
        "BULKCALL_BOOTSTRAP_API_KEY": FUZZ_KEY,
        "BULKCALL_LOG_LEVEL": "WARNING",
    }
    with running_server(["serve"], env, tmp_path) as base:
        _seed(base)
        yield schemathesis.openapi.from_url(f"{base}/openapi.json")


@pytest.fixture(scope="module")
def sqlite_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp_path = tmp_path_factory.mktemp("fuzz-sqlite")
    yield from _serve(tmp_path, f"sqlite:///{tmp_path}/fuzz.db")


@pytest.fixture(scope="module")
def postgres_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not POSTGRES_URL:
        pytest.skip("BULKCALL_TEST_POSTGRES_URL is not set")
    with scratch_postgres_database(POSTGRES_URL, "bulkcall_fuzz") as url:
        yield from _serve(tmp_path_factory.mktemp("fuzz-pg"), url)


FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("BULKCALL_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


# Business rules (a valid phone number, an existing id, no NUL characters) rightly refuse some
# schema-valid input, so "every schema-valid request is accepted" is not a property of this API.
EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance]


def _fuzz(schema: Any) -> None:
    """Run every operation's generated cases; report every failing operation at once."""
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @FUZZ_SETTINGS
        def run(case: Any) -> None:
            case.call_and_validate(headers=HEADERS, excluded_checks=EXCLUDED_CHECKS)

        try:
            run()
        except Exception as exc:  # collect, so one run names every broken operation
            failures.append(f"{operation.label}: {exc}")
    assert operations > 10
    assert not failures, "\n\n".join(failures)


def test_no_server_error_and_responses_match_schema_on_sqlite(sqlite_api: Any) -> None:
    _fuzz(sqlite_api)


@pytest.mark.postgres
def test_no_server_error_and_responses_match_schema_on_postgresql(postgres_api: Any) -> None:
    _fuzz(postgres_api)
