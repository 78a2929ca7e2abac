"""Database triggers: ``campaign_task_counts`` follows every change of a task's status, whatever code made it.

Tasks change status in many set-based statements (launch, claims, dials, results, releases, skips, cancel,
``ends_at``); counting them again per request costs a scan of the campaign's tasks (a second at a million on
SQLite). The triggers keep per-campaign, per-status counts exact in the same transaction instead:

- SQLite: row triggers (one writer at a time, so one counter row per status).
- PostgreSQL: statement triggers over the transition tables (one grouped upsert per statement), adding to the
  counter row of shard ``txid % 16``, so concurrent transactions of one campaign rarely wait on the same row.

Both only follow updates and deletes. Tasks are only ever created by launch and added contacts
(``services.campaigns._materialize``), which adds what it inserted from the statements' row counts
(``repositories.insight.add_task_counts``): an insert trigger cost a launch of a million tasks 65 % more time on
SQLite (a row trigger, ~10 us a row), and roughly a fifth more on PostgreSQL (a statement trigger; measured on a
busy machine). The update trigger captures nothing for an ``INSERT``: disabling both changed a million-task
launch's backend CPU by nothing measurable (``bench/README.md``).

The initial migration creates them (``script.py.mako`` calls :func:`create`); readers sum the shards.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

SHARDS = 16

_SQLITE = [
    """CREATE TRIGGER tr_call_tasks_count_update AFTER UPDATE OF status, campaign_id ON call_tasks
    WHEN OLD.status IS NOT NEW.status OR OLD.campaign_id IS NOT NEW.campaign_id BEGIN
        INSERT INTO campaign_task_counts (campaign_id, status, shard, tasks) VALUES (OLD.campaign_id, OLD.status, 0, -1)
        ON CONFLICT (campaign_id, status, shard) DO UPDATE SET tasks = tasks - 1;
        INSERT INTO campaign_task_counts (campaign_id, status, shard, tasks) VALUES (NEW.campaign_id, NEW.status, 0, 1)
        ON CONFLICT (campaign_id, status, shard) DO UPDATE SET tasks = tasks + 1;
    END""",
    """CREATE TRIGGER tr_call_tasks_count_delete AFTER DELETE ON call_tasks BEGIN
        INSERT INTO campaign_task_counts (campaign_id, status, shard, tasks) VALUES (OLD.campaign_id, OLD.status, 0, -1)
        ON CONFLICT (campaign_id, status, shard) DO UPDATE SET tasks = tasks - 1;
    END""",
]

# Fixed text throughout: no value is ever joined into these statements. Groups whose changes cancel out are
# left alone (no counter row is touched for them).
_UPSERT = (
    "INSERT INTO campaign_task_counts (campaign_id, status, shard, tasks)"  # noqa: S608
    f" SELECT campaign_id, status, CAST(txid_current() % {SHARDS} AS integer), sum(delta) FROM ({{deltas}}) AS d"
    " GROUP BY campaign_id, status HAVING sum(delta) <> 0"
    " ON CONFLICT (campaign_id, status, shard) DO UPDATE SET tasks = campaign_task_counts.tasks + EXCLUDED.tasks"
)


def _function(name: str, deltas: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"{_UPSERT.format(deltas=deltas)}; RETURN NULL; END $$"
    )


_POSTGRESQL = [
    # Every old row counts -1 and every new row +1 under its (campaign, status): a row whose status and campaign
    # did not change adds nothing, so no join of old to new rows is needed (the trigger joining them twice took
    # 1.7-2.3 s of a 990,000-task cancel; this takes 0.3 s).
    _function(
        "bulkcall_task_counts_update",
        "SELECT campaign_id, status, -1 AS delta FROM old_rows UNION ALL SELECT campaign_id, status, 1 FROM new_rows",
    ),
    _function("bulkcall_task_counts_delete", "SELECT campaign_id, status, -1 AS delta FROM old_rows"),
    "CREATE TRIGGER tr_call_tasks_count_update AFTER UPDATE ON call_tasks"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION"
    " bulkcall_task_counts_update()",
    "CREATE TRIGGER tr_call_tasks_count_delete AFTER DELETE ON call_tasks REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION bulkcall_task_counts_delete()",
]

_DROP_POSTGRESQL = [
    "DROP FUNCTION IF EXISTS bulkcall_task_counts_update() CASCADE",
    "DROP FUNCTION IF EXISTS bulkcall_task_counts_delete() CASCADE",
]


def create(connection: Connection) -> None:
    """Create the triggers (after the tables exist)."""
    statements = _POSTGRESQL if connection.dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        connection.execute(text(statement))


def drop(connection: Connection) -> None:
    """Drop what :func:`create` made that dropping the tables leaves behind (PostgreSQL's functions)."""
    if connection.dialect.name == "postgresql":
        for statement in _DROP_POSTGRESQL:
            connection.execute(text(statement))
