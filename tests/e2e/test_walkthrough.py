"""docs/walkthrough.md, run as written: every shell block, in order, through bash and the real ``curl``
against a real ``bulkcall serve``; every request must succeed (2xx), so the page cannot drift from the code."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import running_server

pytestmark = pytest.mark.e2e

WALKTHROUGH = Path(__file__).resolve().parents[2] / "docs" / "walkthrough.md"
API_KEY = "sk_local_development_key"
# Each curl reports its status on a line of its own (after the body, or alone when -o writes the body).
CURL_WITH_STATUS = "curl() { command curl -sS -w '\\n@@status %{http_code} %{url_effective}\\n' \"$@\"; }\n"


def shell_blocks() -> list[str]:
    """The page's ```sh blocks, but the two that start the server and set the variables (the test does both)."""
    blocks = re.findall(r"```sh\n(.*?)```", WALKTHROUGH.read_text(), re.S)
    return [block for block in blocks if "bulkcall serve" not in block and "export BULKCALL=" not in block]


def test_every_command_of_the_walkthrough_succeeds_against_a_real_server(tmp_path: Path) -> None:
    blocks = shell_blocks()
    assert len(blocks) >= 5, "the page walks five steps"
    env = {"BULKCALL_DATABASE_URL": f"sqlite:///{tmp_path}/walk.db", "BULKCALL_BOOTSTRAP_API_KEY": API_KEY}
    with running_server(["serve"], env, tmp_path) as base:
        shell_env = {**os.environ, "BULKCALL": f"{base}/api/v1", "KEY": API_KEY}
        for block in blocks:
            result = subprocess.run(
                ["bash", "-c", CURL_WITH_STATUS + block],
                env=shell_env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, (block, result.stderr)
            statuses = re.findall(r"^@@status (\d{3}) (\S+)$", result.stdout, re.M)
            assert len(statuses) == block.count("curl "), (block, result.stdout)
            failed = [(code, url) for code, url in statuses if not code.startswith("2")]
            assert not failed, (block, result.stdout)
