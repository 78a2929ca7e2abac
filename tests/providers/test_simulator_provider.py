"""The simulator as a provider: it verifies its own signatures and refuses tampered ones, places one call per
idempotency key, reports exactly what its model decided (in order, through the callback sink), drops the
result when the model says the callback goes missing, and reads only well-formed events."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bulkcall.domain.calls import CallStatus
from bulkcall.domain.retries import Outcome
from bulkcall.providers.base import (
    CallbackMalformed,
    CallbackRejected,
    CallbackRequest,
    CallEvent,
    CallRequest,
    ConnectionInfo,
)
from bulkcall.providers.simulator.config import SimulatorConfig
from bulkcall.providers.simulator.model import simulate_call
from bulkcall.providers.simulator.provider import SIGNATURE_HEADER, SimulatorProvider, sign

NOW = datetime(2026, 6, 3, 15, 0, tzinfo=UTC)
SECRET = "s3cret-signing-key"
CALLEE = "+12125550001"


def connection(**config: Any) -> ConnectionInfo:
    return ConnectionInfo(
        id=7,
        workspace_id=1,
        provider="simulator",
        config=SimulatorConfig(speed=100_000, **config),
        signing_secret=SECRET,
    )


def request(attempt_id: int, *, to: str = CALLEE) -> CallRequest:
    return CallRequest(
        attempt_id=attempt_id,
        idempotency_key=f"attempt-{attempt_id}",
        campaign_id=1,
        task_id=100 + attempt_id,
        attempt_number=1,
        to=to,
        from_="+14155550100",
        telephony_connection_id=7,
        caller_phone_number_id=3,
        variables={},
        record=False,
        agent_id=1,
        agent_runtime={},
        callback_url="http://testserver/api/v1/webhooks/telephony/simulator",
        requested_at=NOW,
    )


class Network:
    """A simulator provider with a callback sink and an event log, and how to wait for it to play out."""

    def __init__(self, tmp_path: Path) -> None:
        self.delivered: list[tuple[str, CallbackRequest]] = []
        self.event_log = tmp_path / "sim.jsonl"
        self.provider = SimulatorProvider(self._deliver, lambda: NOW, self.event_log)

    def _deliver(self, provider: str, callback: CallbackRequest) -> None:
        self.delivered.append((provider, callback))

    async def played_out(self) -> None:
        for _ in range(2000):
            if self.provider.pending_reports() == 0:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the simulator still had calls in progress")

    def events(self, kind: str) -> list[dict[str, Any]]:
        lines = (
            [json.loads(line) for line in self.event_log.read_text().splitlines()] if self.event_log.exists() else []
        )
        return [line for line in lines if line["event"] == kind]

    def reports(self, info: ConnectionInfo) -> list[CallEvent]:
        return [event for _, callback in self.delivered for event in self.provider.parse_callback(info, callback)]


@pytest.fixture
async def network(tmp_path: Path) -> Network:
    return Network(tmp_path)


def signed(body: bytes, secret: str = SECRET, **query: str) -> CallbackRequest:
    return CallbackRequest(
        url="http://testserver/api/v1/webhooks/telephony/simulator?connection=7",
        headers={SIGNATURE_HEADER: sign(secret, body)},
        body=body,
        query=query,
    )


EVENT = {"call_id": "SIM1", "attempt_id": 1, "status": "completed", "outcome": "busy", "event_id": "SIM1:completed"}


def test_its_own_signature_is_accepted() -> None:
    provider = SimulatorProvider(None, lambda: NOW)
    (event,) = provider.parse_callback(connection(), signed(json.dumps(EVENT).encode()))
    assert event == CallEvent(
        dedupe_key="SIM1:completed",
        status=CallStatus.COMPLETED,
        attempt_id=1,
        provider_call_id="SIM1",
        outcome=Outcome.BUSY,
    )


@pytest.mark.parametrize("tampering", ["body", "signature", "secret", "missing header", "unprefixed digest"])
def test_a_tampered_callback_is_rejected(tampering: str) -> None:
    provider = SimulatorProvider(None, lambda: NOW)
    body = json.dumps(EVENT).encode()
    callback = signed(body)
    if tampering == "body":
        callback = CallbackRequest(callback.url, callback.headers, body.replace(b"busy", b"answered"))
    elif tampering == "signature":
        digest = callback.headers[SIGNATURE_HEADER]
        flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
        callback = CallbackRequest(callback.url, {SIGNATURE_HEADER: flipped}, body)
    elif tampering == "secret":
        callback = signed(body, secret=SECRET + "!")
    elif tampering == "missing header":
        callback = CallbackRequest(callback.url, {}, body)
    else:
        callback = CallbackRequest(callback.url, {SIGNATURE_HEADER: callback.headers[SIGNATURE_HEADER][3:]}, body)
    with pytest.raises(CallbackRejected):
        provider.parse_callback(connection(), callback)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b"null",
        json.dumps({**EVENT, "status": "exploded"}).encode(),
        json.dumps({**EVENT, "outcome": "maybe"}).encode(),
        json.dumps({k: v for k, v in EVENT.items() if k != "event_id"}).encode(),
        json.dumps({k: v for k, v in EVENT.items() if k != "attempt_id"}).encode(),
        json.dumps({**EVENT, "attempt_id": "one"}).encode(),
        json.dumps({k: v for k, v in EVENT.items() if k != "outcome"}).encode(),
        json.dumps({**EVENT, "duration_seconds": "long"}).encode(),
        b'{"call_id": "SIM1", "attempt_id": 1, "status": "completed", "outcome": "busy", "event_id": "e", "cost": NaN}',
    ],
    ids=[
        "not json",
        "a list",
        "null",
        "unknown status",
        "unknown outcome",
        "no event id",
        "no attempt id",
        "attempt id not a number",
        "completed without outcome",
        "duration not a number",
        "cost not finite",
    ],
)
def test_a_signed_body_that_is_not_an_event_raises_callback_malformed(body: bytes) -> None:
    provider = SimulatorProvider(None, lambda: NOW)
    with pytest.raises(CallbackMalformed):
        provider.parse_callback(connection(), signed(body))


def test_the_connection_is_read_from_the_query_or_the_url() -> None:
    provider = SimulatorProvider(None, lambda: NOW)
    assert provider.callback_connection_id(signed(b"{}", connection="12")) == 12
    assert provider.callback_connection_id(signed(b"{}")) == 7  # from the URL when no parsed query is given
    assert provider.callback_connection_id(signed(b"{}", connection="12; drop")) is None
    assert provider.callback_connection_id(signed(b"{}", connection="9" * 40)) is None


async def test_the_same_idempotency_key_places_one_call(network: Network) -> None:
    info = connection(outcomes={"answered": 1.0})
    first = await network.provider.place_call(info, request(1))
    again = await network.provider.place_call(info, request(1))
    other = await network.provider.place_call(info, request(2))
    assert first == again
    assert first.provider_call_id != other.provider_call_id
    await network.played_out()
    assert [line["attempt_id"] for line in network.events("start")] == [1, 2]
    assert sorted(line["attempt_id"] for line in network.events("end")) == [1, 2]
    completed = [event for event in network.reports(info) if event.status is CallStatus.COMPLETED]
    assert sorted(event.attempt_id or 0 for event in completed) == [1, 2]


async def test_reports_follow_the_models_outcome(network: Network) -> None:
    info = connection(seed=3)
    config = info.config
    assert isinstance(config, SimulatorConfig)
    expected = {n: simulate_call(config, attempt_key=f"attempt-{n}", callee_e164=CALLEE) for n in range(1, 41)}
    assert len({call.outcome for call in expected.values()}) >= 4, "the sample covers several outcomes"
    for n in expected:
        await network.provider.place_call(info, request(n))
    await network.played_out()

    by_attempt: dict[int, list[CallEvent]] = {}
    for event in network.reports(info):
        assert event.attempt_id is not None
        by_attempt.setdefault(event.attempt_id, []).append(event)
    assert set(by_attempt) == set(expected)
    for n, call in expected.items():
        events = by_attempt[n]
        picked_up = call.outcome in (Outcome.ANSWERED, Outcome.VOICEMAIL)
        statuses = [CallStatus.RINGING, *([CallStatus.ANSWERED] if picked_up else []), CallStatus.COMPLETED]
        assert [event.status for event in events] == statuses, (n, call)
        final = events[-1]
        assert final.outcome is call.outcome
        assert final.duration_seconds == pytest.approx(call.talk_seconds, abs=1e-3)
        assert final.answered_by == {Outcome.ANSWERED: "human", Outcome.VOICEMAIL: "machine"}.get(call.outcome)
        assert all(event.provider_call_id == f"SIM{n}" for event in events)
        assert len({event.dedupe_key for event in events}) == len(events)
    ends = {line["attempt_id"]: line["outcome"] for line in network.events("end")}
    assert ends == {n: call.outcome.value for n, call in expected.items()}


async def test_a_missing_result_is_never_reported_and_a_duplicate_is_reported_twice(network: Network) -> None:
    silent = connection(outcomes={"answered": 1.0}, callback_faults={"missing": 1.0})
    await network.provider.place_call(silent, request(1))
    await network.played_out()
    assert [event.status for event in network.reports(silent)] == [CallStatus.RINGING, CallStatus.ANSWERED]
    assert [line["missing"] for line in network.events("end")] == [True]

    network.delivered.clear()
    twice = connection(outcomes={"busy": 1.0}, callback_faults={"duplicate": 1.0})
    await network.provider.place_call(twice, request(2))
    await network.played_out()
    reports = network.reports(twice)
    assert [event.status for event in reports] == [CallStatus.RINGING, CallStatus.COMPLETED, CallStatus.COMPLETED]
    assert reports[1] == reports[2]


async def test_reordered_progress_reports_arrive_after_the_result(network: Network) -> None:
    late = connection(outcomes={"answered": 1.0}, callback_faults={"reordered": 1.0})
    await network.provider.place_call(late, request(1))
    await network.played_out()
    assert [event.status for event in network.reports(late)] == [
        CallStatus.COMPLETED,
        CallStatus.RINGING,
        CallStatus.ANSWERED,
    ]


async def test_closing_stops_calls_in_progress(network: Network) -> None:
    slow = connection(outcomes={"answered": 1.0}, ring_seconds=(5_000, 5_000))
    await network.provider.place_call(slow, request(1))
    assert network.provider.pending_reports() > 0
    await network.provider.aclose()
    assert network.provider.pending_reports() == 0
    await asyncio.sleep(0.01)
    assert [event.status for event in network.reports(slow)] == []
