"""Outbound webhooks end to end: a campaign runs on the engine, a real HTTP receiver on 127.0.0.1 checks every
signature with the reference ``standardwebhooks`` library, and the fixed clock drives retries (no sleeping)."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from bulkcall.db.engine import Database
from bulkcall.db.models import CallTask, CampaignEvent, WebhookDelivery, WebhookEndpoint
from bulkcall.db.repositories import webhooks as queries
from bulkcall.db.repositories.task_events import txid_expression
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.dispatch.webhooks import WebhookConfig, WebhookSender
from bulkcall.domain.webhooks import DeliveryRetryPolicy
from bulkcall.kit.clock import FixedClock
from tests.conftest import POSTGRES_URL, data
from tests.dispatch.conftest import make_world, settle

TERMINAL = {"completed", "failed", "skipped", "cancelled"}


# -- the receiver ------------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A tiny threaded HTTP server: answers ``status`` (with ``headers``) and records what arrived."""

    port: int = 0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                reply = b'{"ok": true}' if receiver.status < 300 else b"receiver is down for maintenance"
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # a batch of deliveries connects at once
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: connections are refused until ``start`` again (same port)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every body received, each checked against its signature by the reference library."""
        hook = Webhook(secret)
        bodies = []
        for headers, body in self.received:
            payload = hook.verify(body, headers)
            assert headers["webhook-id"] == str(payload["event_id"])
            bodies.append(payload)
        return bodies


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def sender_for(database: Database, clock: FixedClock, **overrides: Any) -> WebhookSender:
    policy = overrides.pop("policy", DeliveryRetryPolicy(base_seconds=10, max_seconds=3600, max_attempts=15))
    options: dict[str, Any] = {"timeout_seconds": 5, "allow_private": True, "batch_size": 50, **overrides}
    config = WebhookConfig(policy=policy, **options)
    return WebhookSender(database, clock, config, rng=random.Random(7))


@pytest.fixture
async def sender(database: Database, clock: FixedClock) -> AsyncIterator[WebhookSender]:
    webhook_sender = sender_for(database, clock)
    yield webhook_sender
    await webhook_sender.aclose()


async def drain(sender: WebhookSender) -> None:
    """Run rounds until nothing is due now."""
    for _ in range(100):
        if await sender.run_once() == 0:
            return
    raise AssertionError("the sender kept sending")


async def rows(database: Database, model: Any, *where: Any) -> list[Any]:
    async with database.session(write=False) as session:
        return list((await session.execute(select(model).where(*where).order_by(model.id))).scalars())


async def assert_one_task_completed_per_terminal_task(database: Database, campaign_id: int) -> None:
    tasks = await rows(database, CallTask, CallTask.campaign_id == campaign_id)
    events = await rows(
        database, CampaignEvent, CampaignEvent.campaign_id == campaign_id, CampaignEvent.type == "task.completed"
    )
    by_task: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        by_task.setdefault(event.data["task_id"], []).append(event.data)
    for task in tasks:
        found = by_task.get(task.id, [])
        if task.status in TERMINAL:
            assert len(found) == 1, (task.id, task.status, found)
            assert (found[0]["status"], found[0]["skip_reason"]) == (task.status, task.skip_reason)
            assert found[0]["contact_id"] == task.contact_id
        else:
            assert found == [], (task.id, task.status)
    assert set(by_task) <= {task.id for task in tasks}


# -- at least once, across an outage -----------------------------------------------------------------------------


async def test_every_event_arrives_signed_at_least_once_across_a_receiver_outage(
    api: httpx.AsyncClient,
    engine: DispatchEngine,
    database: Database,
    clock: FixedClock,
    receiver: Receiver,
    sender: WebhookSender,
) -> None:
    endpoint = data(await api.post("/webhook_endpoints", json={"url": receiver.url}), 201)
    world = await make_world(api, simulator={"outcomes": {"answered": 0.5, "no_answer": 0.5}})
    await world.contacts([f"+1415555{n:04d}" for n in range(12)])
    data(await api.post("/dnc", json={"phone_e164": "+14155550003"}), 201)
    world.contact_ids.append(world.contact_ids[0])  # a duplicate: skipped at launch
    receiver.status = 503  # the receiver is failing when the campaign starts
    campaign = await world.launch(max_retries=1)
    await settle(engine)
    assert data(await api.get(f"/bulk_call_campaigns/{campaign['id']}"))["status"] == "completed"
    await assert_one_task_completed_per_terminal_task(database, campaign["id"])

    await drain(sender)  # first attempts: all 503
    events = await rows(database, CampaignEvent)
    deliveries = await rows(database, WebhookDelivery)
    assert len(deliveries) == len(events) > 12
    assert {(d.status, d.attempts, d.last_status_code) for d in deliveries} == {("pending", 1, 503)}
    assert len(receiver.received) == len(events)

    receiver.stop()  # then down: connections refused
    clock.set(clock.now() + timedelta(minutes=5))
    await drain(sender)
    down = await rows(database, WebhookDelivery)
    assert {(d.status, d.attempts, d.last_status_code) for d in down} == {("pending", 2, None)}
    assert all(d.last_error for d in down)

    receiver.start()  # back, healthy
    receiver.status = 200
    receiver.received.clear()
    for _ in range(10):
        clock.set(clock.now() + timedelta(hours=1))
        await drain(sender)
    delivered = await rows(database, WebhookDelivery)
    assert {d.status for d in delivered} == {"succeeded"}
    payloads = receiver.verified(endpoint["secret"])
    assert {p["event_id"] for p in payloads} == {e.id for e in events}
    by_id = {e.id: e for e in events}
    for p in payloads:
        event = by_id[p["event_id"]]
        assert (p["type"], p["data"]) == (event.type, event.data)
        assert p["created_at"] == event.created_at.isoformat().replace("+00:00", "Z")
    types = {p["type"] for p in payloads}
    assert {"campaign.launched", "campaign.completed", "call.completed", "task.completed"} <= types
    tasks = await rows(database, CallTask, CallTask.campaign_id == campaign["id"])
    completed = [p["data"]["task_id"] for p in payloads if p["type"] == "task.completed"]
    assert sorted(completed) == sorted(task.id for task in tasks)

    listed = await api.get(f"/webhook_endpoints/{endpoint['id']}/deliveries", params={"per_page": 100})
    page = data(listed)
    assert listed.json()["meta"]["count"] == len(events)
    sample = page[0]
    assert sample["status"] == "succeeded"
    assert sample["attempts"] == len(sample["attempt_log"]) >= 3
    first, second, last = sample["attempt_log"][0], sample["attempt_log"][1], sample["attempt_log"][-1]
    assert (first["status_code"], first["response_body"]) == (503, "receiver is down for maintenance")
    assert second["status_code"] is None
    assert second["error"]
    assert last["status_code"] == 200
    assert last["latency_ms"] is not None
    assert endpoint["secret"] not in listed.text
    endpoint_now = data(await api.get(f"/webhook_endpoints/{endpoint['id']}"))
    assert (endpoint_now["enabled"], endpoint_now["consecutive_failures"]) == (True, 0)


async def test_filters_and_workspaces_decide_who_receives_what(
    api: httpx.AsyncClient,
    other_api: httpx.AsyncClient,
    engine: DispatchEngine,
    database: Database,
    receiver: Receiver,
    sender: WebhookSender,
) -> None:
    only_lifecycle = data(
        await api.post(
            "/webhook_endpoints",
            json={"url": receiver.url, "events": ["campaign.launched", "campaign.completed"]},
        ),
        201,
    )
    data(await other_api.post("/webhook_endpoints", json={"url": receiver.url}), 201)  # another tenant's
    disabled = data(await api.post("/webhook_endpoints", json={"url": receiver.url, "enabled": False}), 201)
    world = await make_world(api)
    await world.contacts(["+14155550001", "+14155550002"])
    await world.launch()
    await settle(engine)
    await drain(sender)
    payloads = receiver.verified(only_lifecycle["secret"])
    assert sorted(p["type"] for p in payloads) == ["campaign.completed", "campaign.launched"]
    assert data(await api.get(f"/webhook_endpoints/{disabled['id']}/deliveries")) == []


# -- retries -----------------------------------------------------------------------------------------------------


async def _one_event(api: httpx.AsyncClient, engine: DispatchEngine) -> None:
    """A campaign whose every contact is on the DNC list: launched and completed at once (4 events)."""
    world = await make_world(api)
    await world.contacts(["+14155550001"])
    data(await api.post("/dnc", json={"phone_e164": "+14155550001"}), 201)
    await world.launch()


async def test_retry_after_is_honoured(
    api: httpx.AsyncClient,
    engine: DispatchEngine,
    database: Database,
    clock: FixedClock,
    receiver: Receiver,
    sender: WebhookSender,
) -> None:
    data(await api.post("/webhook_endpoints", json={"url": receiver.url, "events": ["campaign.launched"]}), 201)
    await _one_event(api, engine)
    receiver.status, receiver.headers = 429, {"Retry-After": "120"}
    await drain(sender)
    [delivery] = await rows(database, WebhookDelivery)
    assert delivery.next_attempt_at == clock.now() + timedelta(seconds=120)  # the backoff alone is at most 10 s
    clock.set(clock.now() + timedelta(seconds=119))
    assert await sender.run_once() == 0
    receiver.status, receiver.headers = 200, {}
    clock.set(clock.now() + timedelta(seconds=1))
    assert await sender.run_once() == 1
    [delivery] = await rows(database, WebhookDelivery)
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)


async def test_backoff_grows_and_a_delivery_gives_up_after_the_last_attempt(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, clock: FixedClock, receiver: Receiver
) -> None:
    sender = sender_for(database, clock, policy=DeliveryRetryPolicy(base_seconds=10, max_seconds=3600, max_attempts=4))
    data(await api.post("/webhook_endpoints", json={"url": receiver.url, "events": ["campaign.launched"]}), 201)
    await _one_event(api, engine)
    receiver.status = 500
    waits = []
    for _ in range(4):
        await drain(sender)
        [delivery] = await rows(database, WebhookDelivery)
        if delivery.status == "pending":
            waits.append((delivery.next_attempt_at - clock.now()).total_seconds())
            clock.set(delivery.next_attempt_at)
    await sender.aclose()
    assert (delivery.status, delivery.attempts, delivery.completed_at) == ("failed", 4, clock.now())
    assert len(receiver.received) == 4
    assert len(waits) == 3
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(waits, (10, 20, 40), strict=True))


async def test_an_endpoint_is_disabled_after_consecutive_failed_deliveries_and_enabled_again(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, clock: FixedClock, receiver: Receiver
) -> None:
    sender = sender_for(database, clock, policy=DeliveryRetryPolicy(max_attempts=1), disable_after=3)
    endpoint = data(await api.post("/webhook_endpoints", json={"url": receiver.url}), 201)
    await _one_event(api, engine)  # launched, task.completed (dnc), completed: 3 events
    receiver.status = 503
    await drain(sender)
    await sender.aclose()
    found = data(await api.get(f"/webhook_endpoints/{endpoint['id']}"))
    assert (found["enabled"], found["consecutive_failures"]) == (False, 3)
    assert "3 deliveries in a row failed" in found["disabled_reason"]
    assert found["disabled_at"]
    failed = data(await api.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    assert {d["status"] for d in failed} == {"failed"}
    # A disabled endpoint gets no new deliveries and cannot be redelivered to.
    assert (await api.post(f"/webhook_deliveries/{failed[0]['id']}/redeliver")).status_code == 409
    enabled = data(await api.patch(f"/webhook_endpoints/{endpoint['id']}", json={"enabled": True}))
    assert (enabled["enabled"], enabled["consecutive_failures"], enabled["disabled_reason"]) == (True, 0, None)


async def test_a_success_resets_the_failure_count(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, receiver: Receiver, clock: FixedClock
) -> None:
    sender = sender_for(database, clock, policy=DeliveryRetryPolicy(max_attempts=1), disable_after=3)
    endpoint = data(await api.post("/webhook_endpoints", json={"url": receiver.url}), 201)
    await _one_event(api, engine)
    receiver.status = 503
    await drain(sender)
    assert data(await api.get(f"/webhook_endpoints/{endpoint['id']}"))["enabled"] is False
    data(await api.patch(f"/webhook_endpoints/{endpoint['id']}", json={"enabled": True}))
    receiver.status = 200
    deliveries = data(await api.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    data(await api.post(f"/webhook_deliveries/{deliveries[0]['id']}/redeliver"), 202)
    await drain(sender)
    await sender.aclose()
    found = data(await api.get(f"/webhook_endpoints/{endpoint['id']}"))
    assert (found["enabled"], found["consecutive_failures"]) == (True, 0)


async def test_redeliver_sends_the_same_message_again(
    api: httpx.AsyncClient,
    engine: DispatchEngine,
    database: Database,
    receiver: Receiver,
    sender: WebhookSender,
    other_api: httpx.AsyncClient,
) -> None:
    endpoint = data(
        await api.post("/webhook_endpoints", json={"url": receiver.url, "events": ["campaign.launched"]}), 201
    )
    await _one_event(api, engine)
    await drain(sender)
    [delivery] = data(await api.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 1)
    assert (await other_api.post(f"/webhook_deliveries/{delivery['id']}/redeliver")).status_code == 404
    again = data(await api.post(f"/webhook_deliveries/{delivery['id']}/redeliver"), 202)
    assert (again["status"], again["completed_at"]) == ("pending", None)
    await drain(sender)
    [delivery] = data(await api.get(f"/webhook_endpoints/{endpoint['id']}/deliveries"))
    assert (delivery["status"], delivery["attempts"], len(delivery["attempt_log"])) == ("succeeded", 2, 2)
    first, second = receiver.verified(endpoint["secret"])
    assert first == second
    assert receiver.received[0][0]["webhook-id"] == receiver.received[1][0]["webhook-id"]


async def test_deleting_an_endpoint_stops_its_deliveries(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, receiver: Receiver, sender: WebhookSender
) -> None:
    endpoint = data(await api.post("/webhook_endpoints", json={"url": receiver.url}), 201)
    await _one_event(api, engine)
    receiver.status = 503
    await drain(sender)
    sent = len(receiver.received)
    assert sent > 0
    assert (await api.delete(f"/webhook_endpoints/{endpoint['id']}")).status_code == 204
    assert await rows(database, WebhookDelivery) == []
    assert await sender.run_once() == 0
    assert len(receiver.received) == sent


async def test_a_private_destination_is_refused_at_send_time_unless_allowed(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, clock: FixedClock, receiver: Receiver
) -> None:
    data(await api.post("/webhook_endpoints", json={"url": receiver.url, "events": ["campaign.launched"]}), 201)
    await _one_event(api, engine)
    strict = WebhookSender(database, clock, WebhookConfig(allow_private=False), rng=random.Random(1))
    assert await strict.run_once() == 1  # one delivery (launched) attempted, refused before sending
    await strict.aclose()
    [delivery] = await rows(database, WebhookDelivery)
    assert delivery.status == "pending"
    assert "private" in (delivery.last_error or "")
    assert receiver.received == []


# -- two senders ---------------------------------------------------------------------------------------------------


async def test_two_senders_never_send_the_same_delivery_twice(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, clock: FixedClock, receiver: Receiver
) -> None:
    endpoint = data(await api.post("/webhook_endpoints", json={"url": receiver.url}), 201)
    world = await make_world(api)
    await world.contacts([f"+1415555{n:04d}" for n in range(30)])
    await world.launch()
    await settle(engine)
    first, second = (sender_for(database, clock, batch_size=7) for _ in range(2))
    await asyncio.gather(first.fan_out_once(), second.fan_out_once())
    for _ in range(30):
        done = await asyncio.gather(first.send_once(), second.send_once())
        if sum(done) == 0:
            break
    await first.aclose()
    await second.aclose()
    ids = [headers["webhook-id"] for headers, _ in receiver.received]
    events = await rows(database, CampaignEvent)
    assert sorted(int(i) for i in ids) == sorted(e.id for e in events)  # each exactly once
    assert first.sent > 0
    assert second.sent > 0
    assert {d.attempts for d in await rows(database, WebhookDelivery)} == {1}
    assert receiver.verified(endpoint["secret"])


@pytest.mark.skipif(not POSTGRES_URL, reason="BULKCALL_TEST_POSTGRES_URL is not set")
async def test_postgres_claims_skip_rows_another_sender_holds(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, clock: FixedClock, receiver: Receiver
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL row locks")
    data(await api.post("/webhook_endpoints", json={"url": receiver.url}), 201)
    world = await make_world(api)
    await world.contacts([f"+1415555{n:04d}" for n in range(10)])
    await world.launch()
    await settle(engine)
    fan = sender_for(database, clock)
    await fan.fan_out_once()
    await fan.aclose()
    total = len(await rows(database, WebhookDelivery))
    wall = clock.now() + timedelta(days=365 * 10)  # leases are wall-clock: far ahead of the fixed clock
    lease = wall + timedelta(minutes=1)
    async with database.session(write=True) as one, database.session(write=True) as two:
        async with one.begin():
            held = await queries.claim_due(one, clock.now(), wall, lease, "one", 4)
            async with two.begin():  # while the first claim is not committed, its rows are skipped
                other = await queries.claim_due(two, clock.now(), wall, lease, "two", 100)
        assert len(held) == 4
        assert len(other) == total - 4
        assert not {c.delivery_id for c in held} & {c.delivery_id for c in other}
    async with database.session(write=True) as three, three.begin():  # leased rows are not due again
        assert await queries.claim_due(three, clock.now(), wall, lease, "three", 100) == []
    endpoint_rows = await rows(database, WebhookEndpoint)
    assert len(endpoint_rows) == 1


async def test_postgres_fan_out_never_skips_an_event_committed_late(
    api: httpx.AsyncClient, database: Database, clock: FixedClock, receiver: Receiver
) -> None:
    """An older transaction still open: its event (smaller transaction id) must not be passed over by the
    cursor when a newer transaction's event commits first."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    data(await api.post("/webhook_endpoints", json={"url": receiver.url}), 201)
    [endpoint] = await rows(database, WebhookEndpoint)

    def event(session: Any, n: int) -> CampaignEvent:
        return CampaignEvent(
            workspace_id=endpoint.workspace_id,
            campaign_id=None,
            type="campaign.launched",
            data={"n": n},
            created_at=clock.now(),
            txid=txid_expression(session),
        )

    sender = sender_for(database, clock)
    older = database.session(write=True)
    try:
        await older.begin()
        older.add(event(older, 1))
        await older.flush()
        async with database.session(write=True) as newer, newer.begin():
            newer.add(event(newer, 2))
        assert await sender.fan_out_once() == 0  # the newer event waits for the older transaction
        await older.commit()
    finally:
        await older.close()
    assert await sender.fan_out_once() == 2
    assert await sender.fan_out_once() == 0
    await drain(sender)
    await sender.aclose()
    assert sorted(p["data"]["n"] for p in receiver.verified(endpoint.secret)) == [1, 2]
