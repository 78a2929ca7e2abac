"""The seed page's curl calls, run with the real ``curl`` binary against a real server.

The commands below are copied verbatim from the seed (bulk-call-campaigns-overview.txt). Only the host is
replaced by the local server, and the create body's ``agent_id`` and ``campaign_phone_number_ids`` by the ids
this test created.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import running_server

pytestmark = pytest.mark.e2e

API_KEY = "sk_e2e_seed_curl_key_0123456789"
SEED_HOST = "https://api.callaro.ai"
SEED_BODY = (
    '{"name":"Q2 Pipeline Reactivation","agent_id":42,"timezone":"Asia/Kolkata",'
    '"campaign_phone_number_ids":[101,102],"concurrency_limit":3}'
)
CREATE = f"""curl -X POST "https://api.callaro.ai/api/v1/bulk_call_campaigns" \\
  -H "X-Api-Key: $CALLARO_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{SEED_BODY}'"""
LAUNCH = """curl -X POST "https://api.callaro.ai/api/v1/bulk_call_campaigns/123/launch" \\
  -H "X-Api-Key: $CALLARO_API_KEY\""""
LIST = (
    """curl "https://api.callaro.ai/api/v1/bulk_call_campaigns?page=1&per_page=20" -H "X-Api-Key: $CALLARO_API_KEY\""""
)
PAUSE = (
    """curl -X POST "https://api.callaro.ai/api/v1/bulk_call_campaigns/123/pause" -H "X-Api-Key: $CALLARO_API_KEY\""""
)
RESUME = (
    """curl -X POST "https://api.callaro.ai/api/v1/bulk_call_campaigns/123/resume" -H "X-Api-Key: $CALLARO_API_KEY\""""
)
DISPATCH_HEALTH = (
    """curl "https://api.callaro.ai/api/v1/bulk_call_campaigns/123/dispatch_health" -H "X-Api-Key: $CALLARO_API_KEY\""""
)
ANALYTICS = (
    'curl "https://api.callaro.ai/api/v1/bulk_call_campaigns/123/analytics?from=2026-04-01&to=2026-04-30" '
    '-H "X-Api-Key: $CALLARO_API_KEY"'
)


def curl(command: str, base: str, cwd: Path) -> tuple[int, dict[str, Any]]:
    """Run a seed curl command through bash (so ``$CALLARO_API_KEY`` expands as for a user); status and JSON."""
    local = command.replace(SEED_HOST, base) + " -sS -w '\\n%{http_code}'"
    result = subprocess.run(
        ["bash", "-c", local],
        env={**os.environ, "CALLARO_API_KEY": API_KEY},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    parsed: dict[str, Any] = json.loads(body)
    return int(status), parsed


def ok_envelope(status: int, body: dict[str, Any], expected: int = 200) -> Any:
    assert status == expected, body
    assert set(body) >= {"data", "meta", "message", "request_id"}
    return body["data"]


def test_seed_curl_calls_create_launch_list_pause_and_resume(tmp_path: Path) -> None:
    env = {"BULKCALL_DATABASE_URL": f"sqlite:///{tmp_path}/seed.db", "BULKCALL_BOOTSTRAP_API_KEY": API_KEY}
    with running_server(["serve"], env, tmp_path) as base:
        client = httpx.Client(base_url=f"{base}/api/v1", headers={"X-Api-Key": API_KEY}, timeout=30)
        with client:
            agent = client.post("/agents", json={"name": "Ava"}).json()["data"]
            connection = client.post(
                "/telephony_connections", json={"name": "sim", "provider": "simulator", "concurrency_limit": 5}
            ).json()["data"]
            numbers = [
                client.post("/phone_numbers", json={"e164": e164, "telephony_connection_id": connection["id"]}).json()[
                    "data"
                ]["id"]
                for e164 in ("+919810000001", "+919810000002")
            ]
            contacts = [
                client.post("/contacts", json={"phone_e164": phone}).json()["data"]["id"]
                for phone in ("+919820000001", "+919820000002")
            ]

            seed_body = json.loads(SEED_BODY)
            body = {**seed_body, "agent_id": agent["id"], "campaign_phone_number_ids": numbers}
            create = CREATE.replace(SEED_BODY, json.dumps(body, separators=(",", ":")))
            campaign = ok_envelope(*curl(create, base, tmp_path), expected=201)
            assert campaign["status"] == "draft"
            assert {key: campaign[key] for key in seed_body} == body

            # The seed's create has no audience; give it one before launching.
            added = client.post(f"/bulk_call_campaigns/{campaign['id']}/contacts", json={"contact_ids": contacts})
            assert added.status_code == 200, added.text

            def for_campaign(command: str) -> str:
                return command.replace("/bulk_call_campaigns/123/", f"/bulk_call_campaigns/{campaign['id']}/")

            launched = ok_envelope(*curl(for_campaign(LAUNCH), base, tmp_path))
            assert launched["status"] == "running"
            assert launched["total_contacts"] == 2

            health = ok_envelope(*curl(for_campaign(DISPATCH_HEALTH), base, tmp_path))
            assert health["status"] in ("healthy", "degraded", "stalled", "idle")
            assert {"reasons", "limits", "in_flight", "queue", "tasks_by_status", "numbers"} <= set(health)
            assert sum(health["tasks_by_status"].values()) == 2

            analytics = ok_envelope(*curl(for_campaign(ANALYTICS), base, tmp_path))
            # April 2026 is before anything this test dialed: the range is empty, the campaign's tasks are not.
            assert analytics["totals"]["attempts"] == 0
            assert analytics["totals"]["tasks_total"] == 2
            assert analytics["range"]["timezone"] == "Asia/Kolkata"

            status, listing = curl(LIST, base, tmp_path)
            rows = ok_envelope(status, listing)
            assert [row["id"] for row in rows] == [campaign["id"]]
            assert listing["meta"] == {"count": 1, "page": 1, "per_page": 20, "pages": 1}

            paused = ok_envelope(*curl(for_campaign(PAUSE), base, tmp_path))
            assert (paused["status"], paused["pause_reason"]) == ("paused", "manual")

            resumed = ok_envelope(*curl(for_campaign(RESUME), base, tmp_path))
            assert resumed["status"] == "running"
            assert resumed["resumed_at"] is not None
