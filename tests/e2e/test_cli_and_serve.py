"""The command line as a user runs it: ``serve`` on a fresh SQLite file, ``keys create``, ``db upgrade``, ``api``."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from bulkcall.db.admin import scratch_postgres_database
from tests.e2e.conftest import run_cli, running_server

pytestmark = pytest.mark.e2e

BOOTSTRAP_KEY = "sk_e2e_bootstrap_key_0123456789"


def test_serve_migrates_a_fresh_sqlite_file_and_accepts_the_bootstrap_key(tmp_path: Path) -> None:
    env = {"BULKCALL_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db", "BULKCALL_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY}
    with running_server(["serve"], env, tmp_path) as base:
        response = httpx.get(f"{base}/api/v1/workspace", headers={"X-Api-Key": BOOTSTRAP_KEY})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["name"] == "default"
        assert httpx.get(f"{base}/api/v1/workspace").status_code == 401
    assert (tmp_path / "fresh.db").exists()


def test_serve_uses_bulkcall_db_in_working_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"BULKCALL_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY}
    monkeypatch.delenv("BULKCALL_DATABASE_URL", raising=False)
    with running_server(["serve"], env, tmp_path) as base:
        assert httpx.get(f"{base}/api/v1/workspace", headers={"X-Api-Key": BOOTSTRAP_KEY}).status_code == 200
    assert (tmp_path / "bulkcall.db").exists()


def test_keys_create_prints_a_working_key_on_the_last_line(tmp_path: Path) -> None:
    env = {"BULKCALL_DATABASE_URL": f"sqlite:///{tmp_path}/keys.db"}
    result = run_cli(["keys", "create", "--workspace", "acme", "--scope", "contacts:read"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("sk_")
    with running_server(["serve"], env, tmp_path) as base:
        headers = {"X-Api-Key": key}
        workspace = httpx.get(f"{base}/api/v1/workspace", headers=headers)
        assert workspace.json()["data"]["name"] == "acme"
        forbidden = httpx.patch(f"{base}/api/v1/workspace", json={"concurrency_cap": 3}, headers=headers)
        assert forbidden.status_code == 403


def test_keys_create_rejects_an_unknown_scope(tmp_path: Path) -> None:
    env = {"BULKCALL_DATABASE_URL": f"sqlite:///{tmp_path}/keys.db"}
    result = run_cli(["keys", "create", "--workspace", "acme", "--scope", "everything"], env, tmp_path)
    assert result.returncode == 2
    assert "unknown scope" in result.stderr


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("BULKCALL_TEST_POSTGRES_URL"), reason="BULKCALL_TEST_POSTGRES_URL is not set")
def test_db_upgrade_then_api_on_postgresql(tmp_path: Path) -> None:
    with scratch_postgres_database(os.environ["BULKCALL_TEST_POSTGRES_URL"], "bulkcall_e2e") as url:
        env = {"BULKCALL_DATABASE_URL": url, "BULKCALL_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY}
        upgraded = run_cli(["db", "upgrade"], env, tmp_path)
        assert upgraded.returncode == 0, upgraded.stderr
        with running_server(["api"], env, tmp_path) as base:
            response = httpx.get(f"{base}/api/v1/workspace", headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"})
            assert response.status_code == 200, response.text
