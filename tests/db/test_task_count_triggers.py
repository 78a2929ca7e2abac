"""The triggers keep ``campaign_task_counts`` equal to a count of the tasks, whatever statement changed them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from bulkcall.db.engine import Database
from bulkcall.db.repositories.insight import campaigns_task_counts

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)

# Tasks are never inserted with the triggers' help (launch adds the counts it inserted), so seed both.
_TASKS = """
    INSERT INTO call_tasks (id, workspace_id, campaign_id, contact_id, phone_e164, status, attempts,
        voicemail_attempts, cost, talk_seconds, created_at, updated_at)
    VALUES (:id, 1, :campaign_id, :id, '+14155550100', :status, 0, 0, 0, 0, :now, :now)
"""


async def _recount(database: Database) -> dict[int, dict[str, int]]:
    async with database.session(write=False) as session:
        rows = await session.execute(
            text("SELECT campaign_id, status, count(*) FROM call_tasks GROUP BY campaign_id, status")
        )
        counted: dict[int, dict[str, int]] = {1: {}, 2: {}}
        for campaign_id, status, tasks in rows:
            counted[int(campaign_id)][status] = int(tasks)
        return counted


async def _counters(database: Database) -> dict[int, dict[str, int]]:
    async with database.session(write=False) as session:
        return await campaigns_task_counts(session, [1, 2])


async def test_counters_follow_updates_that_move_some_rows_and_deletes(database: Database) -> None:
    seeded = [(task_id, 1, "pending") for task_id in range(1, 7)] + [(7, 2, "pending"), (8, 2, "completed")]
    async with database.session(write=True) as session, session.begin():
        await session.execute(
            text(_TASKS), [{"id": i, "campaign_id": c, "status": s, "now": NOW} for i, c, s in seeded]
        )
        await session.execute(
            text(
                "INSERT INTO campaign_task_counts (campaign_id, status, shard, tasks) "
                "VALUES (1, 'pending', 0, 6), (2, 'pending', 0, 1), (2, 'completed', 0, 1)"
            )
        )
    statements = [
        # One statement over rows that change status and rows that keep it (their deltas must cancel out).
        "UPDATE call_tasks SET status = CASE WHEN id <= 3 THEN 'queued' ELSE status END, updated_at = updated_at",
        # Rows that swap statuses both ways in one statement.
        "UPDATE call_tasks SET status = CASE status WHEN 'queued' THEN 'pending' ELSE 'queued' END WHERE id IN (1, 4)",
        # A task moving to another campaign, keeping its status.
        "UPDATE call_tasks SET campaign_id = 2 WHERE id = 5",
        # A statement that changes no status at all.
        "UPDATE call_tasks SET next_eligible_at = updated_at",
        "DELETE FROM call_tasks WHERE id IN (2, 8)",
    ]
    for statement in statements:
        async with database.session(write=True) as session, session.begin():
            await session.execute(text(statement))
        assert await _counters(database) == await _recount(database), statement
    assert await _recount(database) == {1: {"pending": 2, "queued": 2}, 2: {"pending": 2}}
