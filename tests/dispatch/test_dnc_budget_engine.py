"""Invariants 2 and 4 in the engine: never a number on the do-not-call list, and one attempt budget.

DNC is checked at launch and again right before each dial: a number listed mid-campaign, even between
the claim and the dial, gets no further call. The budget: whatever mix of outcomes the simulator produces,
a task has at most ``1 + max_retries`` attempts numbered 1..n, each retry waits at least its outcome's
delay, and the task stops exactly when an independent reading of the retry rules says it must.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bulkcall.db.engine import Database
from bulkcall.db.models import CallTask
from bulkcall.dispatch.engine import DispatchEngine
from bulkcall.kit.clock import FixedClock
from tests.conftest import data
from tests.dispatch.conftest import attempts_by_task, campaign, make_world, settle, tasks

NO_ANSWER = {"outcomes": {"no_answer": 1.0}}
WAITING = ("pending", "retry_pending")


async def task_rows(database: Database, campaign_id: int) -> list[CallTask]:
    async with database.session(write=False) as session:
        rows = await session.execute(select(CallTask).where(CallTask.campaign_id == campaign_id).order_by(CallTask.id))
        return list(rows.scalars())


async def run_to_the_end(engine: DispatchEngine, clock: FixedClock, database: Database, campaign_id: int) -> None:
    """Settle, then move the clock to the earliest waiting task's next eligible instant; until none waits."""
    for _ in range(100):
        await settle(engine)
        waiting = [row for row in await task_rows(database, campaign_id) if row.status in WAITING]
        if not waiting:
            return
        due = min(row.next_eligible_at for row in waiting if row.next_eligible_at is not None)
        clock.set(max(due, clock.now() + timedelta(seconds=1)))
    raise AssertionError("the campaign never finished")


# -- DNC -------------------------------------------------------------------------------------------------------


async def test_a_number_on_the_dnc_list_at_launch_is_skipped_and_never_dialed(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database
) -> None:
    world = await make_world(api, simulator={"outcomes": {"answered": 1.0}})
    listed, free = "+12125550101", "+12125550102"
    data(await api.post("/dnc", json={"phone_e164": listed, "reason": "asked"}), 201)
    await world.contacts([listed, free])
    launched = await world.launch()
    by_phone = {row["phone_e164"]: row for row in await tasks(api, launched["id"])}
    assert by_phone[listed]["status"] == "skipped"
    assert by_phone[listed]["skip_reason"] == "dnc"

    await settle(engine)
    attempts = await attempts_by_task(database, launched["id"])
    assert by_phone[listed]["id"] not in attempts
    assert [a.callee_e164 for a in attempts[by_phone[free]["id"]]] == [free]
    assert (await campaign(api, launched["id"]))["status"] == "completed"


async def test_a_number_listed_after_a_first_attempt_is_not_dialed_again(
    api: httpx.AsyncClient, engine: DispatchEngine, clock: FixedClock, database: Database
) -> None:
    world = await make_world(api, simulator=NO_ANSWER)
    listed, free = "+12125550101", "+12125550102"
    await world.contacts([listed, free])
    launched = await world.launch(max_retries=3, retry_delay_minutes=30)
    await settle(engine)
    by_phone = {row["phone_e164"]: row for row in await tasks(api, launched["id"])}
    assert by_phone[listed]["status"] == "retry_pending"
    assert by_phone[listed]["attempts"] == 1

    data(await api.post("/dnc", json={"phone_e164": listed, "reason": "opted out on the call"}), 201)
    await run_to_the_end(engine, clock, database, launched["id"])

    row = data(await api.get(f"/bulk_call_campaigns/{launched['id']}/tasks/{by_phone[listed]['id']}"))
    assert row["status"] == "skipped", row
    assert row["skip_reason"] == "dnc", row
    assert [a["attempt_number"] for a in row["call_attempts"]] == [1]
    other = data(await api.get(f"/bulk_call_campaigns/{launched['id']}/tasks/{by_phone[free]['id']}"))
    assert [a["attempt_number"] for a in other["call_attempts"]] == [1, 2, 3, 4]  # the engine kept going
    assert (await campaign(api, launched["id"]))["status"] == "completed"


async def test_a_number_listed_between_claim_and_dial_is_not_dialed(
    api: httpx.AsyncClient, engine: DispatchEngine, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last check before the point of no return sees an opt-out that arrived after the task was claimed."""
    world = await make_world(api, simulator={"outcomes": {"answered": 1.0}})
    listed = "+12125550101"
    await world.contacts([listed])
    launched = await world.launch()
    claim = engine._claim

    async def claim_then_opt_out(*args: Any, **kwargs: Any) -> Any:
        claimed = await claim(*args, **kwargs)
        if claimed:
            data(await api.post("/dnc", json={"phone_e164": listed}), 201)
        return claimed

    monkeypatch.setattr(engine, "_claim", claim_then_opt_out)
    assert await engine.dispatch_once() == 0
    await settle(engine)
    assert await attempts_by_task(database, launched["id"]) == {}
    [row] = await tasks(api, launched["id"])
    assert row["status"] == "skipped", row
    assert row["skip_reason"] == "dnc", row


# -- the attempt budget ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    max_retries: int
    retry_delay_minutes: int = 10
    retry_delays: dict[str, int] = field(default_factory=dict)
    retry_on_voicemail: bool = False
    max_voicemail_attempts: int | None = None

    def campaign_fields(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_retries,
            "retry_delay_minutes": self.retry_delay_minutes,
            "retry_delays": self.retry_delays,
            "retry_on_voicemail": self.retry_on_voicemail,
            "max_voicemail_attempts": self.max_voicemail_attempts,
        }

    def delay(self, outcome: str) -> timedelta:
        return timedelta(minutes=self.retry_delays.get(outcome, self.retry_delay_minutes))


def after(policy: Policy, outcomes: list[str]) -> str:
    """The oracle, read from dialing.md and api.md: ``retry`` or the task's final status after these outcomes."""
    attempt, last = len(outcomes), outcomes[-1]
    budget_left = attempt < 1 + policy.max_retries
    if last == "answered":
        return "completed"
    if last == "voicemail":
        voicemails = outcomes.count("voicemail")
        cap = policy.max_voicemail_attempts
        wants = policy.retry_on_voicemail and (cap is None or voicemails < cap)
        return "retry" if wants and budget_left else "completed"
    return "retry" if budget_left else "failed"


async def check_budget(database: Database, campaign_id: int, policy: Policy) -> list[list[str]]:
    """Every task of the campaign against the oracle; returns the outcome sequences seen."""
    attempts = await attempts_by_task(database, campaign_id)
    sequences: list[list[str]] = []
    for task in await task_rows(database, campaign_id):
        calls = attempts.get(task.id, [])
        assert calls, f"task {task.id} was never dialed"
        numbers = [a.attempt_number for a in calls]
        assert numbers == list(range(1, len(calls) + 1)), numbers
        assert len(calls) <= 1 + policy.max_retries, (len(calls), policy)
        assert task.attempts == len(calls)
        outcomes = [str(a.outcome) for a in calls]
        assert all(a.ended_at is not None and a.dialed_at is not None for a in calls)
        for index, (previous, following) in enumerate(itertools.pairwise(calls)):
            assert after(policy, outcomes[: index + 1]) == "retry", (outcomes, policy)
            assert previous.ended_at is not None
            assert following.dialed_at is not None
            earliest = previous.ended_at + policy.delay(outcomes[index])
            assert following.dialed_at >= earliest, (outcomes, previous.ended_at, following.dialed_at, policy)
        final = after(policy, outcomes)
        assert final != "retry", (outcomes, task.status, policy)
        assert task.status == final, (outcomes, task.status, policy)
        sequences.append(outcomes)
    return sequences


async def run_budget_case(
    api: httpx.AsyncClient,
    engine: DispatchEngine,
    clock: FixedClock,
    database: Database,
    *,
    mix: dict[str, float],
    policy: Policy,
    phones: list[str],
    seed: int = 0,
) -> list[list[str]]:
    world = await make_world(api, simulator={"outcomes": mix, "seed": seed}, numbers=(next_caller_id(),))
    await world.contacts(phones)
    launched = await world.launch(**policy.campaign_fields())
    await run_to_the_end(engine, clock, database, launched["id"])
    assert (await campaign(api, launched["id"]))["status"] == "completed"
    return await check_budget(database, launched["id"], policy)


_caller_ids = itertools.count()
_callees = itertools.count()


def next_caller_id() -> str:
    return f"+1415555{next(_caller_ids) % 10_000:04d}"


def next_phones(count: int) -> list[str]:
    return [f"+1212555{next(_callees) % 10_000:04d}" for _ in range(count)]


@pytest.mark.parametrize(
    ("mix", "policy", "attempts_each"),
    [
        pytest.param({"no_answer": 1.0}, Policy(max_retries=0), 1, id="no_answer-0-retries"),
        pytest.param({"no_answer": 1.0}, Policy(max_retries=5, retry_delays={"no_answer": 3}), 6, id="no_answer-5"),
        pytest.param(
            {"busy": 0.5, "failed": 0.5},
            Policy(max_retries=2, retry_delays={"busy": 5, "failed": 20}),
            3,
            id="busy_failed-2",
        ),
        pytest.param({"voicemail": 1.0}, Policy(max_retries=3), 1, id="voicemail-not-retried"),
        pytest.param(
            {"voicemail": 1.0},
            Policy(max_retries=5, retry_on_voicemail=True, max_voicemail_attempts=1),
            1,
            id="voicemail-cap-1",
        ),
        pytest.param(
            {"voicemail": 1.0},
            Policy(max_retries=1, retry_on_voicemail=True, retry_delays={"voicemail": 90}),
            2,
            id="voicemail-uncapped-1",
        ),
        pytest.param(
            {"voicemail": 0.4, "no_answer": 0.3, "busy": 0.2, "answered": 0.1},
            Policy(max_retries=5, retry_delays={"no_answer": 30, "busy": 7}, retry_on_voicemail=True),
            None,
            id="mixed-5",
        ),
    ],
)
async def test_attempts_stay_within_the_budget(
    api: httpx.AsyncClient,
    engine: DispatchEngine,
    clock: FixedClock,
    database: Database,
    mix: dict[str, float],
    policy: Policy,
    attempts_each: int | None,
) -> None:
    contacts = 2 if len(mix) == 1 else 4  # a single-outcome network treats every contact alike
    phones = next_phones(contacts)
    sequences = await run_budget_case(api, engine, clock, database, mix=mix, policy=policy, phones=phones)
    assert len(sequences) == contacts
    if attempts_each is not None:
        assert [len(s) for s in sequences] == [attempts_each] * contacts, sequences


OUTCOMES = ("answered", "voicemail", "no_answer", "busy", "failed")


@st.composite
def outcome_mixes(draw: st.DrawFn) -> dict[str, float]:
    weights = draw(st.lists(st.integers(0, 4), min_size=len(OUTCOMES), max_size=len(OUTCOMES)))
    if sum(weights[1:]) == 0:
        weights[2] = 1  # keep something retryable in every mix
    total = sum(weights)
    return {name: weight / total for name, weight in zip(OUTCOMES, weights, strict=True) if weight}


policies = st.builds(
    Policy,
    max_retries=st.sampled_from([0, 1, 2, 5]),
    # Few distinct delays, so tasks often retry at the same instant and an example needs few engine rounds.
    retry_delay_minutes=st.sampled_from([0, 10, 60]),
    retry_delays=st.dictionaries(
        st.sampled_from(["no_answer", "busy", "failed", "voicemail"]), st.sampled_from([0, 5, 30, 120])
    ),
    retry_on_voicemail=st.booleans(),
    max_voicemail_attempts=st.sampled_from([None, 1, 2]),
).filter(  # launch refuses a voicemail cap above the attempt budget
    lambda policy: policy.max_voicemail_attempts is None or policy.max_voicemail_attempts <= 1 + policy.max_retries
)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mix=outcome_mixes(), policy=policies, seed=st.integers(0, 2**32))
async def test_any_outcome_mix_stays_within_the_budget(
    api: httpx.AsyncClient,
    engine: DispatchEngine,
    clock: FixedClock,
    database: Database,
    mix: dict[str, float],
    policy: Policy,
    seed: int,
) -> None:
    """Each example is its own campaign in the same workspace; the clock only moves forward."""
    await run_budget_case(api, engine, clock, database, mix=mix, policy=policy, phones=next_phones(3), seed=seed)
