from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from bulkcall.app import create_app
from bulkcall.db.engine import Database
from bulkcall.db.models import Contact, ContactImport, ContactList, ContactListMember
from bulkcall.kit.clock import SystemClock
from bulkcall.services import contact_imports
from bulkcall.services.contact_imports import INTERRUPTED_REASON
from bulkcall.services.context import ServiceContext
from bulkcall.settings import Settings
from tests.conftest import data

HEADER = "phone,first_name,last_name,email,company,timezone,tags\n"


async def _post_csv(
    api: httpx.AsyncClient,
    content: bytes | str,
    mapping: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    form = {key: str(value) for key, value in fields.items()}
    if mapping is not None:
        form["column_mapping"] = json.dumps(mapping)
    body = content.encode() if isinstance(content, str) else content
    return await api.post("/contacts/import", files={"file": ("contacts.csv", body, "text/csv")}, data=form)


async def _finished(api: httpx.AsyncClient, app: FastAPI, response: httpx.Response) -> dict[str, Any]:
    queued = data(response, 202)
    assert queued["status"] == "queued"
    await app.state.jobs.wait_idle()
    result: dict[str, Any] = data(await api.get(f"/contact_imports/{queued['id']}"))
    return result


async def import_csv(
    api: httpx.AsyncClient, app: FastAPI, content: bytes | str, mapping: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    return await _finished(api, app, await _post_csv(api, content, mapping, **fields))


async def error_report(api: httpx.AsyncClient, import_id: int) -> list[dict[str, str]]:
    response = await api.get(f"/contact_imports/{import_id}/error_report")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


async def contacts(database: Database) -> dict[str, Contact]:
    async with database.session(write=False) as session:
        rows = (await session.execute(select(Contact))).scalars().all()
    return {row.phone_e164: row for row in rows}


async def new_list(database: Database, api: httpx.AsyncClient, name: str = "Leads") -> int:
    workspace_id = data(await api.get("/workspace"))["id"]
    now = datetime.now(UTC)
    async with database.session(write=True) as session, session.begin():
        row = ContactList(workspace_id=workspace_id, name=name, created_at=now, updated_at=now)
        session.add(row)
        await session.flush()
        return row.id


async def test_csv_import_creates_contacts_with_every_field(
    api: httpx.AsyncClient, app: FastAPI, database: Database
) -> None:
    content = HEADER + '+14155552671,Ada,Lovelace,ada@example.com,Acme,asia/calcutta,"vip; east ,vip"\n'
    result = await import_csv(api, app, content)
    assert result["status"] == "completed"
    assert (result["created"], result["updated"], result["skipped"]) == (1, 0, 0)
    contact = (await contacts(database))["+14155552671"]
    assert (contact.first_name, contact.last_name, contact.email, contact.company) == (
        "Ada",
        "Lovelace",
        "ada@example.com",
        "Acme",
    )
    assert contact.timezone == "Asia/Kolkata"
    assert contact.country == "US"
    assert contact.phone_timezones == "America/Los_Angeles"
    assert contact.tags == ["vip", "east"]
    assert contact.custom_fields == {}


async def test_csv_with_utf8_bom_is_read(api: httpx.AsyncClient, app: FastAPI, database: Database) -> None:
    content = "\ufeffphone,first_name\n+447911123456,Zoë\n".encode()
    result = await import_csv(api, app, content)
    assert result["created"] == 1
    assert (await contacts(database))["+447911123456"].first_name == "Zoë"


async def test_column_mapping_with_custom_fields(api: httpx.AsyncClient, app: FastAPI, database: Database) -> None:
    content = "Mobile,Name,Plan,Seats\n+14155552671,Ada,gold,12\n"
    mapping = {"Mobile": "phone_e164", "Name": "first_name", "Plan": "cf:plan", "Seats": "cf:seats"}
    result = await import_csv(api, app, content, mapping)
    assert result["created"] == 1
    assert result["column_mapping"] == mapping
    contact = (await contacts(database))["+14155552671"]
    assert contact.first_name == "Ada"
    assert contact.custom_fields == {"plan": "gold", "seats": "12"}


async def test_default_region_reads_national_numbers(api: httpx.AsyncClient, app: FastAPI, database: Database) -> None:
    content = "phone\n07911 123456\n(020) 7946 0958\n"
    result = await import_csv(api, app, content, default_region="gb")
    assert result["created"] == 2
    assert result["default_region"] == "GB"
    assert set(await contacts(database)) == {"+447911123456", "+442079460958"}


async def test_bad_rows_are_skipped_and_reported_without_stopping(api: httpx.AsyncClient, app: FastAPI) -> None:
    content = (
        HEADER
        + "+14155552671,Ada,,,,,\n"
        + "not a phone,Bob,,,,,\n"
        + "+14155552672,Cy,,cy@nowhere,,,\n"
        + "+14155552673,Di,,,,Mars/Olympus,\n"
        + ",Ed,,,,,\n"
        + "+999123,Flo,,,,,\n"
        + "+14155552674,Gus,,,,,\n"
    )
    result = await import_csv(api, app, content)
    assert result["status"] == "completed"
    assert (result["created"], result["skipped"], result["errors_count"]) == (2, 5, 5)
    report = await error_report(api, result["id"])
    assert [(row["row"], row["phone"]) for row in report] == [
        ("2", "not a phone"),
        ("3", "+14155552672"),
        ("4", "+14155552673"),
        ("5", ""),
        ("6", "+999123"),
    ]
    reasons = [row["reason"] for row in report]
    assert "not a phone number" in reasons[0]
    assert "invalid email" in reasons[1]
    assert "invalid timezone" in reasons[2]
    assert reasons[3] == "phone number is empty"


async def test_phone_repeated_in_file_keeps_first_row(api: httpx.AsyncClient, app: FastAPI, database: Database) -> None:
    content = "phone,first_name\n+14155552671,First\n+1 415 555 2671,Second\n"
    result = await import_csv(api, app, content)
    assert (result["created"], result["skipped"]) == (1, 1)
    assert (await contacts(database))["+14155552671"].first_name == "First"
    report = await error_report(api, result["id"])
    assert report == [{"row": "2", "phone": "+1 415 555 2671", "reason": "duplicate phone in file (first at row 1)"}]


async def test_reimport_updates_and_never_duplicates(api: httpx.AsyncClient, app: FastAPI, database: Database) -> None:
    content = "phone,first_name\n+14155552671,Ada\n+447911123456,Bo\n+5511987654321,Cy\n"
    first = await import_csv(api, app, content)
    second = await import_csv(api, app, content)
    assert (first["created"], first["updated"]) == (3, 0)
    assert (second["created"], second["updated"], second["skipped"]) == (0, 3, 0)
    assert len(await contacts(database)) == 3


async def test_empty_cells_keep_values_and_custom_fields_merge(
    api: httpx.AsyncClient, app: FastAPI, database: Database
) -> None:
    await import_csv(api, app, "phone,first_name,email,cf:plan,cf:seats\n+14155552671,Ada,a@example.com,gold,3\n")
    result = await import_csv(api, app, "phone,first_name,email,cf:plan,cf:region\n+14155552671,,,platinum,west\n")
    assert result["updated"] == 1
    contact = (await contacts(database))["+14155552671"]
    assert (contact.first_name, contact.email) == ("Ada", "a@example.com")
    assert contact.custom_fields == {"plan": "platinum", "seats": "3", "region": "west"}


async def test_tags_are_replaced_when_given(api: httpx.AsyncClient, app: FastAPI, database: Database) -> None:
    await import_csv(api, app, "phone,tags\n+14155552671,a;b\n+14155552672,c\n")
    await import_csv(api, app, "phone,tags\n+14155552671,z\n+14155552672,\n")
    rows = await contacts(database)
    assert rows["+14155552671"].tags == ["z"]
    assert rows["+14155552672"].tags == ["c"]


async def test_target_list_receives_created_and_updated_contacts(
    api: httpx.AsyncClient, app: FastAPI, database: Database
) -> None:
    list_id = await new_list(database, api)
    await import_csv(api, app, "phone\n+14155552671\n")
    result = await import_csv(api, app, "phone\n+14155552671\n+14155552672\n", contact_list_id=list_id)
    again = await import_csv(api, app, "phone\n+14155552671\n+14155552672\n", contact_list_id=list_id)
    assert (result["created"], result["updated"]) == (1, 1)
    assert again["status"] == "completed"
    async with database.session(write=False) as session:
        members = (
            await session.execute(select(ContactListMember).where(ContactListMember.contact_list_id == list_id))
        ).all()
    assert len(members) == 2


async def test_json_rows_are_imported(api: httpx.AsyncClient, app: FastAPI, database: Database) -> None:
    body = {
        "rows": [
            {"phone_e164": "+14155552671", "first_name": "Ada", "tags": ["vip"], "custom_fields": {"plan": "gold"}},
            {"phone_e164": "020 7946 0958", "timezone": "Europe/London"},
            {"phone_e164": "12"},
        ],
        "default_region": "GB",
    }
    result = await _finished(api, app, await api.post("/contacts/import", json=body))
    assert result["source"] == "json"
    assert (result["total_rows"], result["created"], result["skipped"]) == (3, 2, 1)
    rows = await contacts(database)
    assert rows["+14155552671"].custom_fields == {"plan": "gold"}
    assert rows["+14155552671"].tags == ["vip"]
    assert rows["+442079460958"].timezone == "Europe/London"
    assert [row["row"] for row in await error_report(api, result["id"])] == ["3"]


async def test_json_import_with_unknown_row_field_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts/import", json={"rows": [{"phone_e164": "+14155552671", "nmae": "x"}]})
    assert response.status_code == 422
    assert response.json()["errors"] == {"rows.0.nmae": ["Unknown field"]}


async def test_json_import_with_no_rows_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts/import", json={"rows": []})
    assert response.status_code == 422
    assert "rows" in response.json()["errors"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "no header"),
        (b"phone,first_name\n\n", "no data rows"),
        (b"name,email\nAda,a@example.com\n", "no phone column"),
        (b"phone,name\n\xff\xfe+1415\n", "not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL"),
        (b'[\n  {"phone": "+14155552671"}\n]\n', "no phone column"),
    ],
    ids=["empty", "blank", "header-only", "no-phone-column", "not-utf8", "binary", "json-file"],
)
async def test_unusable_file_is_400_and_queues_nothing(
    api: httpx.AsyncClient, database: Database, content: bytes, message: str
) -> None:
    response = await _post_csv(api, content)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert message in response.json()["error"]
    assert data(await api.get("/contact_imports"))[:1] == []


async def test_mapping_naming_unknown_header_or_field_is_422(api: httpx.AsyncClient) -> None:
    response = await _post_csv(api, "Mobile,Name\n+14155552671,Ada\n", {"Mobil": "phone_e164", "Name": "nickname"})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"column_mapping.Mobil", "column_mapping.Name"}


async def test_mapping_that_is_not_json_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/contacts/import",
        files={"file": ("c.csv", b"phone\n+14155552671\n", "text/csv")},
        data={"column_mapping": "{phone: phone_e164"},
    )
    assert response.status_code == 422
    assert "column_mapping" in response.json()["errors"]


async def test_upload_without_file_field_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/contacts/import", files={"upload": ("c.csv", b"phone\n", "text/csv")})
    assert response.status_code == 422
    assert "file" in response.json()["errors"]


async def test_unknown_default_region_is_422(api: httpx.AsyncClient) -> None:
    response = await _post_csv(api, "phone\n07911123456\n", default_region="XX")
    assert response.status_code == 422
    assert "default_region" in response.json()["errors"]


async def test_other_workspaces_list_is_422(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, database: Database
) -> None:
    foreign_list = await new_list(database, other_api, "Theirs")
    response = await _post_csv(api, "phone\n+14155552671\n", contact_list_id=foreign_list)
    assert response.status_code == 422
    assert "contact_list_id" in response.json()["errors"]


async def test_other_workspaces_import_is_404(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, app: FastAPI
) -> None:
    result = await import_csv(api, app, "phone\n+14155552671\n")
    assert (await other_api.get(f"/contact_imports/{result['id']}")).status_code == 404
    assert (await other_api.get(f"/contact_imports/{result['id']}/error_report")).status_code == 404
    assert data(await other_api.get("/contact_imports")) == []


async def test_progress_counts_add_up_at_the_end(api: httpx.AsyncClient, app: FastAPI) -> None:
    lines = ["phone,first_name"]
    lines += [f"+1415555{2000 + i},P{i}" for i in range(120)]
    lines += ["garbage,X", "+14155552000,dup"]
    response = await _post_csv(api, "\n".join(lines) + "\n")
    # A small batch size is not reachable over HTTP; the totals must hold whatever the batching.
    result = await _finished(api, app, response)
    assert result["total_rows"] == result["processed_rows"] == 122
    assert result["created"] + result["updated"] + result["skipped"] == result["total_rows"]
    assert result["errors_count"] == result["skipped"] == 2
    assert result["started_at"] is not None
    assert result["finished_at"] is not None


async def test_list_imports_newest_first(api: httpx.AsyncClient, app: FastAPI) -> None:
    first = await import_csv(api, app, "phone\n+14155552671\n")
    second = await import_csv(api, app, "phone\n+14155552672\n")
    listed = await api.get("/contact_imports")
    assert [item["id"] for item in data(listed)] == [second["id"], first["id"]]
    assert listed.json()["meta"]["count"] == 2


async def _insert_import(database: Database, api: httpx.AsyncClient, status: str, updated_at: datetime) -> int:
    workspace_id = data(await api.get("/workspace"))["id"]
    async with database.session(write=True) as session, session.begin():
        row = ContactImport(
            workspace_id=workspace_id,
            source="csv",
            status=status,
            processed_rows=10,
            created=10,
            updated=0,
            skipped=0,
            errors_count=0,
            total_rows=100,
            created_at=updated_at,
            updated_at=updated_at,
        )
        session.add(row)
        await session.flush()
        return row.id


async def test_startup_fails_imports_a_dead_process_left_behind(
    api: httpx.AsyncClient, settings: Settings, database: Database
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    running = await _insert_import(database, api, "running", long_ago)
    queued = await _insert_import(database, api, "queued", long_ago)
    restarted = create_app(settings, database=database)
    async with restarted.router.lifespan_context(restarted):
        pass
    for import_id in (running, queued):
        result = data(await api.get(f"/contact_imports/{import_id}"))
        assert result["status"] == "failed"
        assert result["failure_reason"] == INTERRUPTED_REASON
        assert "re-importing the same file is safe" in result["failure_reason"]


async def test_startup_leaves_an_import_another_live_process_is_running(
    api: httpx.AsyncClient, settings: Settings, database: Database
) -> None:
    active = await _insert_import(database, api, "running", datetime.now(UTC))
    restarted = create_app(settings, database=database)
    async with restarted.router.lifespan_context(restarted):
        pass
    assert data(await api.get(f"/contact_imports/{active}"))["status"] == "running"


async def _run_service_import(database: Database, workspace_id: int, content: bytes, parallel_min_rows: int) -> int:
    spooled = contact_imports.spool_csv(io.BytesIO(content))
    async with database.session(write=True) as session, session.begin():
        ctx = ServiceContext(session=session, workspace_id=workspace_id, now=datetime.now(UTC))
        row, job = await contact_imports.create_csv_import(
            ctx, upload=spooled, filename="c.csv", column_mapping=None, default_region="US", contact_list_id=None
        )
    await contact_imports.run_import(database, SystemClock(), job, batch_size=7, parallel_min_rows=parallel_min_rows)
    return row.id


async def test_parsing_processes_give_the_same_result_as_in_process_parsing(
    api: httpx.AsyncClient, database: Database
) -> None:
    lines = ["phone,first_name"] + [f"(415) 555-{2000 + i},P{i}" for i in range(40)]
    lines[9] = "bogus,X"
    lines[30] = "+14155552003,again"
    content = ("\n".join(lines) + "\n").encode()
    workspace_id = data(await api.get("/workspace"))["id"]
    in_process = await _run_service_import(database, workspace_id, content, parallel_min_rows=10**9)
    in_parsers = await _run_service_import(database, workspace_id, content, parallel_min_rows=0)
    first = data(await api.get(f"/contact_imports/{in_process}"))
    second = data(await api.get(f"/contact_imports/{in_parsers}"))
    assert (first["created"], first["skipped"], first["processed_rows"]) == (38, 2, 40)
    assert (second["updated"], second["skipped"], second["processed_rows"]) == (38, 2, 40)
    assert await error_report(api, in_process) == await error_report(api, in_parsers)


async def _service_import(database: Database, workspace_id: int, content: bytes, batch_size: int) -> int:
    spooled = contact_imports.spool_csv(io.BytesIO(content))
    async with database.session(write=True) as session, session.begin():
        ctx = ServiceContext(session=session, workspace_id=workspace_id, now=datetime.now(UTC))
        row, job = await contact_imports.create_csv_import(
            ctx, upload=spooled, filename="c.csv", column_mapping=None, default_region="US", contact_list_id=None
        )
    await contact_imports.run_import(database, SystemClock(), job, batch_size=batch_size)
    return row.id


# Rows 1-3 are batch 1, 4-6 batch 2, 7 batch 3 (batch size 3): row 5 repeats row 2 from an earlier
# batch, row 7 repeats row 5's phone (itself a repeat) and row 6 repeats row 4 in the same batch.
CROSS_BATCH = (
    b"phone,first_name\n"
    b"+14155552671,A\n"
    b"+14155552672,B\n"
    b"not a phone,C\n"
    b"+14155552673,D\n"
    b"(415) 555-2672,E\n"
    b"+14155552673,F\n"
    b"+1 415 555 2672,G\n"
)


async def test_phone_repeated_in_a_later_batch_is_skipped_with_its_first_row(
    api: httpx.AsyncClient, database: Database
) -> None:
    workspace_id = data(await api.get("/workspace"))["id"]
    import_id = await _service_import(database, workspace_id, CROSS_BATCH, batch_size=3)
    result = data(await api.get(f"/contact_imports/{import_id}"))
    assert (result["created"], result["updated"], result["skipped"], result["processed_rows"]) == (3, 0, 4, 7)
    report = await error_report(api, import_id)
    assert [(row["row"], row["phone"], row["reason"]) for row in report[1:]] == [
        ("5", "(415) 555-2672", "duplicate phone in file (first at row 2)"),
        ("6", "+14155552673", "duplicate phone in file (first at row 4)"),
        ("7", "+1 415 555 2672", "duplicate phone in file (first at row 2)"),
    ]
    rows = await contacts(database)
    assert (rows["+14155552672"].first_name, rows["+14155552673"].first_name) == ("B", "D")


async def test_reimport_across_batches_updates_every_contact_and_reports_the_same_duplicates(
    api: httpx.AsyncClient, database: Database
) -> None:
    workspace_id = data(await api.get("/workspace"))["id"]
    first = await _service_import(database, workspace_id, CROSS_BATCH, batch_size=3)
    second = await _service_import(database, workspace_id, CROSS_BATCH, batch_size=3)
    result = data(await api.get(f"/contact_imports/{second}"))
    assert (result["created"], result["updated"], result["skipped"]) == (0, 3, 4)
    assert await error_report(api, second) == await error_report(api, first)
    assert len(await contacts(database)) == 3


def _exists(path: str) -> bool:
    return os.path.exists(path)


# A constraint checked only at COMMIT, in a temp table: the commit itself fails, as a real one can.
_FAILING_COMMIT = {
    "postgresql": [
        "CREATE TEMP TABLE once (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)",
        "INSERT INTO once VALUES (1), (1)",
    ],
    "sqlite": [
        "CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)",
        "CREATE TEMP TABLE child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        "INSERT INTO child VALUES (1)",
    ],
}


async def _queue(database: Database, workspace_id: int, upload: contact_imports.SpooledCsv, ending: str) -> None:
    """Queue an import in a request-like transaction that ends with ``ending``: commit, error, failing commit."""
    async with database.session(write=True) as session, session.begin():
        ctx = ServiceContext(session=session, workspace_id=workspace_id, now=datetime.now(UTC))
        await contact_imports.create_csv_import(
            ctx, upload=upload, filename="c.csv", column_mapping=None, default_region=None, contact_list_id=None
        )
        assert _exists(upload.path)
        if ending == "error":
            raise RuntimeError("commit never happens")
        if ending == "failing commit":
            for statement in _FAILING_COMMIT[session.get_bind().dialect.name]:
                await session.execute(text(statement))


async def test_spooled_upload_is_removed_when_the_request_transaction_does_not_commit(
    api: httpx.AsyncClient, database: Database
) -> None:
    workspace_id = data(await api.get("/workspace"))["id"]
    spooled = contact_imports.spool_csv(io.BytesIO(b"phone\n+14155552671\n"))
    with pytest.raises(RuntimeError, match="commit never happens"):
        await _queue(database, workspace_id, spooled, "error")
    assert not _exists(spooled.path)


async def test_spooled_upload_is_removed_when_the_request_commit_fails(
    api: httpx.AsyncClient, database: Database
) -> None:
    workspace_id = data(await api.get("/workspace"))["id"]
    spooled = contact_imports.spool_csv(io.BytesIO(b"phone\n+14155552671\n"))
    with pytest.raises(IntegrityError):
        await _queue(database, workspace_id, spooled, "failing commit")
    assert not _exists(spooled.path)


async def test_spooled_upload_is_kept_for_the_job_when_the_request_commits(
    api: httpx.AsyncClient, database: Database
) -> None:
    workspace_id = data(await api.get("/workspace"))["id"]
    spooled = contact_imports.spool_csv(io.BytesIO(b"phone\n+14155552671\n"))
    await _queue(database, workspace_id, spooled, "commit")
    try:
        assert _exists(spooled.path)
    finally:
        spooled.discard()
