"""Real campaigns through ``bulkcall serve`` against real carriers' stand-ins on 127.0.0.1: a local
Twilio-compatible server, and the example ``http_agent`` stub (examples/http_agent_stub.py) as its own process.

Twilio, checked from the carrier's side: what each create carried (form parameters, Basic auth, a callback URL naming
connection and attempt), that a rate-limited create was retried into exactly one call and a create whose
answer left the outcome open was never sent again. Then status callbacks, signed by the ``twilio`` package's
own ``RequestValidator`` as Twilio signs them, drive each task to its outcome; a callback with a bad
signature gets 403 and changes nothing; a duplicated callback counts once; a call whose final callback never
came is reconciled by fetching it from the carrier. The auth token never appears in the server's DEBUG log.

http_agent: the stub receives one signed call request per call (the attempt as idempotency key), talks, and
reports back signed events that end each task with its outcome, transcript and extracted data; a refused
request ends as ``invalid_number``; a result the stub never sends is found by ``call.lookup``; a forged event
gets 403 and a repeated one counts once.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from twilio.request_validator import RequestValidator

from bulkcall.kit.standard_webhooks import new_secret, sign
from tests.e2e.conftest import free_port, running_server
from tests.providers.twilio_double import ACCOUNT_SID, AUTH_TOKEN, Answer, Received, TwilioDouble, twilio_double

pytestmark = pytest.mark.e2e

API_KEY = "sk_e2e_twilio_key_0123456789abcdef"
ALWAYS = {
    day: {"enabled": True, "start": "00:00", "end": "24:00"}
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}
CALLER = "+14155550100"
TWIML_URL = "https://agent.example.com/twiml"
# Seconds after which a silent call is looked up at the carrier (then ``unknown`` if it has no answer). The
# test's callbacks must all arrive well within it (they take ~3 s on a busy machine); the lost call waits it out.
RESULT_TIMEOUT = 10
BASIC_AUTH = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()

HUMAN, MACHINE, BUSY, NO_ANSWER = "+12125550101", "+12125550102", "+12125550103", "+12125550104"
INVALID, RATE_LIMITED, LOST, OPEN = "+12125550105", "+12125550106", "+12125550107", "+12125550108"
PHONES = (HUMAN, MACHINE, BUSY, NO_ANSWER, INVALID, RATE_LIMITED, LOST, OPEN)


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def post_callback(
    carrier: httpx.Client, create: Received, params: dict[str, str], *, token: str = AUTH_TOKEN
) -> httpx.Response:
    """POST a status callback to the URL bulkcall gave Twilio, signed as Twilio signs it."""
    url = create.param("StatusCallback")
    assert url is not None
    signature = RequestValidator(token).compute_signature(url, params)
    return carrier.post(url, data=params, headers={"X-Twilio-Signature": signature})


def status(sid: str, call_status: str, **extra: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT_SID, "CallSid": sid, "CallStatus": call_status, "ApiVersion": "2010-04-01", **extra}


@dataclass
class Server:
    base: str
    log: Path
    double: TwilioDouble
    workdir: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base}/api/v1", headers={"X-Api-Key": API_KEY}, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``bulkcall serve`` (starting one is the slow part) with a Twilio double, shared by the tests here."""
    workdir = tmp_path_factory.mktemp("carriers")
    port = free_port()
    env = {
        "BULKCALL_DATABASE_URL": f"sqlite:///{workdir}/carriers.db",
        "BULKCALL_BOOTSTRAP_API_KEY": API_KEY,
        "BULKCALL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BULKCALL_CALL_RESULT_TIMEOUT_SECONDS": str(RESULT_TIMEOUT),
        "BULKCALL_LOG_LEVEL": "DEBUG",
    }
    with twilio_double() as double, running_server(["serve"], env, workdir, port=port) as base:
        yield Server(base=base, log=workdir / f"server-{port}.log", double=double, workdir=workdir)


def test_a_twilio_campaign_end_to_end(server: Server) -> None:
    double = server.double
    double.script[INVALID] = [Answer(400, 21211, "The 'To' number is not a valid phone number.")]
    double.script[RATE_LIMITED] = [Answer(429, 20429, "Too Many Requests"), Answer()]
    double.script[OPEN] = [Answer(500, 20500, "Internal Server Error", create=True)]
    with server.client() as client:
        campaign_id, connection_id = set_up(client, double)
        run_and_check(client, double, campaign_id, connection_id)
    log = server.log.read_text()
    assert "HTTP Request: POST" in log  # the DEBUG log did record the carrier requests...
    assert AUTH_TOKEN not in log  # ...and never the credentials


def set_up(client: httpx.Client, double: TwilioDouble) -> tuple[int, int]:
    def created(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()["data"]
        return body

    agent = created(client.post("/agents", json={"name": "Ava", "runtime": {"twiml_url": TWIML_URL}}))
    config = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "api_base_url": double.base_url,
        "machine_detection": "Enable",
    }
    connection = created(
        client.post(
            "/telephony_connections",
            json={
                "name": "twilio",
                "provider": "twilio",
                "config": config,
                "concurrency_limit": 20,
                "calls_per_second": 100,
            },
        )
    )
    check = client.post(f"/telephony_connections/{connection['id']}/test").json()["data"]
    assert check["ok"] is True, check
    number = created(client.post("/phone_numbers", json={"e164": CALLER, "telephony_connection_id": connection["id"]}))
    contacts = [created(client.post("/contacts", json={"phone_e164": phone}))["id"] for phone in PHONES]
    campaign = created(
        client.post(
            "/bulk_call_campaigns",
            json={
                "name": "twilio e2e",
                "agent_id": agent["id"],
                "timezone": "UTC",
                "campaign_phone_number_ids": [number["id"]],
                "contact_ids": contacts,
                "call_windows": ALWAYS,
                "max_retries": 0,
                "record_calls": True,
            },
        )
    )
    launched = client.post(f"/bulk_call_campaigns/{campaign['id']}/launch")
    assert launched.status_code == 200, launched.text
    return campaign["id"], connection["id"]


def run_and_check(client: httpx.Client, double: TwilioDouble, campaign_id: int, connection_id: int) -> None:
    # The carrier's side: one keep-alive connection for its many callbacks.
    with httpx.Client(timeout=30) as carrier:
        _run_and_check(client, carrier, double, campaign_id, connection_id)


def _run_and_check(
    client: httpx.Client, carrier: httpx.Client, double: TwilioDouble, campaign_id: int, connection_id: int
) -> None:
    # Every number got its create; the rate-limited one twice (429, then the call).
    wait_for(lambda: len(double.creates()) == len(PHONES) + 1, "the creates")
    creates = {phone: double.creates(phone) for phone in PHONES}
    assert {phone: len(sent) for phone, sent in creates.items()} == {
        **dict.fromkeys(PHONES, 1),
        RATE_LIMITED: 2,
    }
    assert {phone: len(double.created_calls(phone)) for phone in PHONES} == {
        **dict.fromkeys(PHONES, 1),
        INVALID: 0,
    }
    attempts: dict[str, str] = {}
    for phone, sent in creates.items():
        for create in sent:
            assert create.headers["authorization"] == BASIC_AUTH
            assert (create.param("To"), create.param("From"), create.param("Url")) == (phone, CALLER, TWIML_URL)
            assert create.params("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]
            assert (create.param("MachineDetection"), create.param("Record"), create.param("Timeout")) == (
                "Enable",
                "true",
                "30",
            )
            callback = urlsplit(create.param("StatusCallback") or "")
            assert f"{callback.scheme}://{callback.netloc}{callback.path}" == (
                client.base_url.copy_with(path="/api/v1/webhooks/telephony/twilio").__str__()
            )
            query = dict(parse_qsl(callback.query))
            assert query["connection"] == str(connection_id)
            attempts.setdefault(phone, query["attempt"])
        assert {dict(parse_qsl(urlsplit(c.param("StatusCallback") or "").query))["attempt"] for c in sent} == {
            attempts[phone]
        }  # a retried create is the same attempt
    sid = {phone: double.created_calls(phone)[0]["sid"] for phone in PHONES if phone != INVALID}
    last = {phone: sent[-1] for phone, sent in creates.items()}

    def send(phone: str, params: dict[str, str], token: str = AUTH_TOKEN) -> httpx.Response:
        return post_callback(carrier, last[phone], params, token=token)

    def verdict(response: httpx.Response) -> str:
        assert response.status_code == 200, response.text
        result: str = response.json()["data"]["verdict"]
        return result

    # A forged callback (signed with another token) is refused and changes nothing.
    forged = send(HUMAN, status(sid[HUMAN], "completed", AnsweredBy="human"), token="not-the-token")
    assert forged.status_code == 403, forged.text
    assert forged.json()["error_code"] == "INVALID_SIGNATURE"
    tampered_url = last[HUMAN].param("StatusCallback") or ""
    params = status(sid[HUMAN], "busy")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(tampered_url, params)
    tampered = carrier.post(
        tampered_url, data={**params, "CallStatus": "completed"}, headers={"X-Twilio-Signature": signature}
    )
    assert tampered.status_code == 403
    assert task_of(client, campaign_id, HUMAN)["status"] in ("queued", "calling")

    # Progress and results, as Twilio would send them.
    assert verdict(send(HUMAN, status(sid[HUMAN], "initiated"))) == "out_of_order"  # already dialing
    assert verdict(send(HUMAN, status(sid[HUMAN], "ringing"))) == "applied"
    assert verdict(send(HUMAN, status(sid[HUMAN], "in-progress", AnsweredBy="human"))) == "applied"
    final = status(sid[HUMAN], "completed", AnsweredBy="human", CallDuration="61", Duration="2", Price="-0.0200")
    assert verdict(send(HUMAN, final)) == "applied"
    assert verdict(send(HUMAN, final)) == "duplicate"  # Twilio retried: counted once
    results = {
        MACHINE: status(sid[MACHINE], "completed", AnsweredBy="machine_end_beep", CallDuration="20"),
        BUSY: status(sid[BUSY], "busy"),
        NO_ANSWER: status(sid[NO_ANSWER], "no-answer"),
        RATE_LIMITED: status(sid[RATE_LIMITED], "completed", AnsweredBy="human", CallDuration="5"),
        # The create answered 500 but Twilio made the call: its callbacks name the attempt and settle it.
        OPEN: status(sid[OPEN], "completed", AnsweredBy="human", CallDuration="9"),
    }
    for phone, result in results.items():
        assert verdict(send(phone, status(sid[phone], "ringing"))) == "applied"
        assert verdict(send(phone, result)) == "applied"
    # The lost call: it rang, then its callbacks stopped; the carrier knows how it ended.
    assert verdict(send(LOST, status(sid[LOST], "ringing"))) == "applied"
    double.set_status(sid[LOST], "completed", answered_by="human", duration="33", price="-0.011")

    def finished() -> dict[str, dict[str, Any]] | None:
        tasks = all_tasks(client, campaign_id)
        return tasks if all(task["completed_at"] is not None for task in tasks.values()) else None

    tasks = wait_for(finished, "every task to end", seconds=RESULT_TIMEOUT + 30)
    assert {phone: task["last_outcome"] for phone, task in tasks.items()} == {
        HUMAN: "answered",
        MACHINE: "voicemail",
        BUSY: "busy",
        NO_ANSWER: "no_answer",
        INVALID: "invalid_number",
        RATE_LIMITED: "answered",
        LOST: "answered",
        OPEN: "answered",
    }
    assert all(task["attempts"] == 1 for task in tasks.values())
    human = detail(client, campaign_id, tasks[HUMAN]["id"])
    (attempt,) = human["call_attempts"]
    assert (attempt["provider"], attempt["provider_call_id"], attempt["outcome"], attempt["answered_by"]) == (
        "twilio",
        sid[HUMAN],
        "answered",
        "human",
    )
    assert (attempt["duration_seconds"], attempt["cost"], human["cost"], human["talk_seconds"]) == (61, 0.02, 0.02, 61)
    assert str(attempt["id"]) == attempts[HUMAN]
    (invalid,) = detail(client, campaign_id, tasks[INVALID]["id"])["call_attempts"]
    assert invalid["error"].startswith("invalid number (HTTP 400, code 21211)")
    (lost,) = detail(client, campaign_id, tasks[LOST]["id"])["call_attempts"]
    assert (lost["outcome"], lost["duration_seconds"], lost["cost"]) == ("answered", 33, 0.011)
    lookups = [r for r in double.requests if r.method == "GET" and "/Calls/" in r.path]
    assert any(r.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid[LOST]}.json" for r in lookups)
    (open_attempt,) = detail(client, campaign_id, tasks[OPEN]["id"])["call_attempts"]
    assert open_attempt["provider_call_id"] == sid[OPEN]  # learned from its callbacks
    campaign = client.get(f"/bulk_call_campaigns/{campaign_id}").json()["data"]
    assert campaign["status"] == "completed"
    # A late callback for an ended call is stored and changes nothing.
    late = send(LOST, status(sid[LOST], "completed", AnsweredBy="human", CallDuration="33"))
    assert verdict(late) in ("duplicate", "out_of_order")
    assert all_tasks(client, campaign_id)[LOST]["attempts"] == 1


def all_tasks(client: httpx.Client, campaign_id: int) -> dict[str, dict[str, Any]]:
    response = client.get(f"/bulk_call_campaigns/{campaign_id}/tasks", params={"per_page": 100})
    assert response.status_code == 200, response.text
    return {task["phone_e164"]: task for task in response.json()["data"]}


def task_of(client: httpx.Client, campaign_id: int, phone: str) -> dict[str, Any]:
    return all_tasks(client, campaign_id)[phone]


def detail(client: httpx.Client, campaign_id: int, task_id: int) -> dict[str, Any]:
    response = client.get(f"/bulk_call_campaigns/{campaign_id}/tasks/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["data"]
    return body


# -- http_agent ----------------------------------------------------------------------------------------------

STUB = Path(__file__).resolve().parents[2] / "examples" / "http_agent_stub.py"
AGENT_CALLER = "+14155550200"
ANSWERS, VOICEMAIL, AGENT_BUSY, REFUSED, AGENT_LOST = (
    "+12125550201",
    "+12125550202",
    "+12125550203",
    "+12125550204",
    "+12125550205",
)
AGENT_CONTACTS: dict[str, dict[str, Any]] = {
    ANSWERS: {"first_name": "Ada"},
    VOICEMAIL: {"custom_fields": {"stub_outcome": "voicemail"}},
    AGENT_BUSY: {"custom_fields": {"stub_outcome": "busy"}},
    REFUSED: {"custom_fields": {"stub_outcome": "invalid_number"}},
    AGENT_LOST: {"first_name": "Lin", "custom_fields": {"stub_lose_result": "yes"}},
}


@pytest.fixture
def stub_agent(server: Server) -> Iterator[tuple[str, str, Path]]:
    """The example agent (examples/http_agent_stub.py) as its own process on 127.0.0.1."""
    secret = new_secret()
    port = free_port()
    log = server.workdir / "stub-requests.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            str(STUB),
            "--port",
            str(port),
            "--secret",
            secret,
            "--log",
            str(log),
            "--talk-seconds",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "listening" in process.stdout.readline()
        yield f"http://127.0.0.1:{port}/calls", secret, log
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_an_http_agent_campaign_end_to_end_with_the_example_stub(
    server: Server, stub_agent: tuple[str, str, Path]
) -> None:
    url, secret, stub_log = stub_agent
    with server.client() as client:
        agent = client.post("/agents", json={"name": "Own agent", "runtime": {"assistant": "sales-v2"}}).json()["data"]
        connection = client.post(
            "/telephony_connections",
            json={"name": "own", "provider": "http_agent", "config": {"url": url, "signing_secret": secret}},
        ).json()["data"]
        assert client.post(f"/telephony_connections/{connection['id']}/test").json()["data"]["ok"] is True
        number = client.post(
            "/phone_numbers", json={"e164": AGENT_CALLER, "telephony_connection_id": connection["id"]}
        ).json()["data"]
        contacts = [
            client.post("/contacts", json={"phone_e164": phone, **fields}).json()["data"]["id"]
            for phone, fields in AGENT_CONTACTS.items()
        ]
        campaign = client.post(
            "/bulk_call_campaigns",
            json={
                "name": "agent e2e",
                "agent_id": agent["id"],
                "timezone": "UTC",
                "campaign_phone_number_ids": [number["id"]],
                "contact_ids": contacts,
                "call_windows": ALWAYS,
                "max_retries": 0,
                "record_calls": True,
                "call_variables": {"offer": "spring"},
            },
        ).json()["data"]
        assert client.post(f"/bulk_call_campaigns/{campaign['id']}/launch").status_code == 200

        def finished() -> dict[str, dict[str, Any]] | None:
            tasks = all_tasks(client, campaign["id"])
            return tasks if all(task["completed_at"] is not None for task in tasks.values()) else None

        tasks = wait_for(finished, "every task to end", seconds=RESULT_TIMEOUT + 30)
        assert {phone: task["last_outcome"] for phone, task in tasks.items()} == {
            ANSWERS: "answered",
            VOICEMAIL: "voicemail",
            AGENT_BUSY: "busy",
            REFUSED: "invalid_number",
            AGENT_LOST: "answered",  # its result was never sent: found by call.lookup after the timeout
        }
        (answered,) = detail(client, campaign["id"], tasks[ANSWERS]["id"])["call_attempts"]
        assert answered["transcript"].startswith("Agent: Hello Ada")
        assert answered["extracted_data"] == {"interested": True, "callback_requested": False}
        assert (answered["duration_seconds"], answered["cost"], answered["answered_by"]) == (42, 0.02, "human")
        assert answered["recording_url"] == f"https://recordings.example.com/{answered['provider_call_id']}.mp3"
        (refused,) = detail(client, campaign["id"], tasks[REFUSED]["id"])["call_attempts"]
        assert refused["error"] == "invalid number (HTTP 422): the stub refuses this number"

        # What the agent received: one signed request per call, the attempt as idempotency key, and lookups.
        received = [json.loads(line) for line in stub_log.read_text().splitlines()]
        requests = [r for r in received if r["type"] == "call.request"]
        assert sorted(r["contact"]["phone_e164"] for r in requests) == sorted(AGENT_CONTACTS)
        for request in requests:
            assert request["idempotency_key"] == f"attempt-{request['attempt_id']}"
            assert (
                request["headers"]["webhook-id"] == request["headers"]["idempotency-key"] == request["idempotency_key"]
            )
            assert (
                request["callback_url"]
                == f"{server.base}/api/v1/webhooks/telephony/http_agent?connection={connection['id']}"
            )
            assert (request["caller_id"], request["record"], request["agent"]) == (
                AGENT_CALLER,
                True,
                {"id": agent["id"], "runtime": {"assistant": "sales-v2"}},
            )
            assert request["variables"]["offer"] == "spring"
        assert "call.lookup" in [r["type"] for r in received]

        # A forged event is refused; a repeated one (same message id) counts once.
        event = {"type": "call.event", "call_id": answered["provider_call_id"], "attempt_id": answered["id"]}
        final = json.dumps({**event, "status": "completed", "outcome": "busy"}).encode()
        callback = f"{server.base}/api/v1/webhooks/telephony/http_agent?connection={connection['id']}"
        forged = sign(new_secret(), f"{answered['provider_call_id']}-completed", int(time.time()), final)
        response = httpx.post(callback, content=final, headers={**forged.as_dict(), "content-type": "application/json"})
        assert response.status_code == 403, response.text
        again = sign(secret, f"{answered['provider_call_id']}-completed", int(time.time()), final)
        response = httpx.post(callback, content=final, headers={**again.as_dict(), "content-type": "application/json"})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["verdict"] == "duplicate"
        after = all_tasks(client, campaign["id"])[ANSWERS]
        assert (after["last_outcome"], after["attempts"]) == ("answered", 1)
    assert secret not in server.log.read_text()
