from __future__ import annotations

from typing import Any

import httpx
import phonenumbers
import pytest

from bulkcall.db.engine import Database
from tests.conftest import data, new_key

US_PHONE = "+14155552671"
GB_PHONE = "+442079460958"


async def add(api: httpx.AsyncClient, status: int = 201, **fields: Any) -> dict[str, Any]:
    body = {"phone_e164": US_PHONE, **fields}
    result: dict[str, Any] = data(await api.post("/dnc", json=body), status)
    return result


async def upload(api: httpx.AsyncClient, content: bytes, *, filename: str = "dnc.csv", **form: str) -> httpx.Response:
    return await api.post("/dnc/import", files={"file": (filename, content, "text/csv")}, data=form)


async def listed(api: httpx.AsyncClient) -> list[str]:
    return [row["phone_e164"] for row in data(await api.get("/dnc", params={"per_page": 100}))]


def bad_request(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "BAD_REQUEST"
    message: str = body["error"]
    return message


# --- single entries -------------------------------------------------------------------------------


async def test_add_dnc_entry_returns_201(api: httpx.AsyncClient) -> None:
    entry = await add(api, reason="asked twice")
    assert entry["phone_e164"] == US_PHONE
    assert entry["reason"] == "asked twice"
    assert entry["created_at"].endswith("Z")


async def test_add_dnc_entry_normalises_national_number(api: httpx.AsyncClient) -> None:
    entry = await add(api, phone_e164="020 7946 0958", default_region="GB")
    assert entry["phone_e164"] == GB_PHONE


async def test_add_existing_dnc_entry_is_200_with_same_entry(api: httpx.AsyncClient) -> None:
    first = await add(api, reason="asked")
    again = await add(api, 200, phone_e164="+1 (415) 555-2671")
    assert again["id"] == first["id"]
    assert again["reason"] == "asked"


async def test_add_existing_dnc_entry_updates_reason_when_given(api: httpx.AsyncClient) -> None:
    first = await add(api, reason="asked")
    again = await add(api, 200, reason="lawyer letter")
    assert again["id"] == first["id"]
    assert again["reason"] == "lawyer letter"
    assert data(await api.get("/dnc"))[0]["reason"] == "lawyer letter"


async def test_add_dnc_entry_invalid_phone_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/dnc", json={"phone_e164": "12"})
    assert response.status_code == 422
    assert "phone_e164" in response.json()["errors"]


async def test_add_dnc_entry_national_number_without_region_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/dnc", json={"phone_e164": "020 7946 0958"})
    assert response.status_code == 422
    assert "country code" in response.json()["errors"]["phone_e164"][0]


async def test_add_dnc_entry_rejects_unknown_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/dnc", json={"phone_e164": US_PHONE, "note": "x"})
    assert response.status_code == 422
    assert response.json()["errors"] == {"note": ["Unknown field"]}


async def test_add_dnc_entry_needs_contacts_write_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["contacts:read"])
    response = await anon.post("/api/v1/dnc", json={"phone_e164": US_PHONE}, headers={"X-Api-Key": key})
    assert response.status_code == 403


async def test_import_needs_contacts_write_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["contacts:read"])
    response = await anon.post(
        "/api/v1/dnc/import", files={"file": ("d.csv", b"phone\n+14155552671\n")}, headers={"X-Api-Key": key}
    )
    assert response.status_code == 403


async def test_list_dnc_needs_contacts_read_scope(anon: httpx.AsyncClient, database: Database) -> None:
    key = await new_key(database, scopes=["contacts:write"])
    assert (await anon.get("/api/v1/dnc", headers={"X-Api-Key": key})).status_code == 403


async def test_list_dnc_newest_first_with_meta(api: httpx.AsyncClient) -> None:
    await add(api)
    await add(api, phone_e164=GB_PHONE)
    response = await api.get("/dnc")
    assert [row["phone_e164"] for row in data(response)] == [GB_PHONE, US_PHONE]
    assert response.json()["meta"]["count"] == 2


async def test_list_dnc_search_matches_digits_and_reason(api: httpx.AsyncClient) -> None:
    await add(api, reason="Complaint")
    await add(api, phone_e164=GB_PHONE, reason="other")
    assert [row["phone_e164"] for row in data(await api.get("/dnc", params={"search": "415 555"}))] == [US_PHONE]
    assert [row["phone_e164"] for row in data(await api.get("/dnc", params={"search": "complaint"}))] == [US_PHONE]


@pytest.mark.parametrize("path_value", ["%2B14155552671", "+14155552671", "%2B1%20(415)%20555-2671"])
async def test_delete_dnc_entry_accepts_any_form_of_the_number(api: httpx.AsyncClient, path_value: str) -> None:
    await add(api)
    response = await api.delete(f"/dnc/{path_value}")
    assert response.status_code == 204
    assert await listed(api) == []


async def test_delete_dnc_entry_reads_national_form_with_default_region(api: httpx.AsyncClient) -> None:
    await add(api, phone_e164=GB_PHONE)
    response = await api.delete("/dnc/020%207946%200958", params={"default_region": "GB"})
    assert response.status_code == 204
    assert await listed(api) == []


async def test_delete_absent_dnc_entry_is_404(api: httpx.AsyncClient) -> None:
    response = await api.delete("/dnc/%2B14155552671")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


async def test_delete_dnc_entry_with_invalid_number_is_422(api: httpx.AsyncClient) -> None:
    response = await api.delete("/dnc/not-a-number")
    assert response.status_code == 422
    assert "phone_e164" in response.json()["errors"]


async def test_delete_dnc_entry_with_unknown_region_is_422(api: httpx.AsyncClient) -> None:
    response = await api.delete("/dnc/020%207946%200958", params={"default_region": "ZZ"})
    assert response.status_code == 422
    assert "default_region" in response.json()["errors"]


# --- import ---------------------------------------------------------------------------------------


async def test_import_adds_numbers_and_reports_counts(api: httpx.AsyncClient) -> None:
    csv = b"phone,reason\n+14155552671,asked\n+44 20 7946 0958,\n"
    result = data(await upload(api, csv))
    assert result == {"added": 2, "already_present": 0, "invalid": 0, "errors": []}
    assert sorted(await listed(api)) == sorted([US_PHONE, GB_PHONE])


async def test_import_stores_reason_column(api: httpx.AsyncClient) -> None:
    await upload(api, b"phone,reason\n+14155552671,asked twice\n")
    assert data(await api.get("/dnc"))[0]["reason"] == "asked twice"


async def test_import_works_without_reason_column(api: httpx.AsyncClient) -> None:
    result = data(await upload(api, b"phone\n+14155552671\n"))
    assert result["added"] == 1


async def test_import_accepts_utf8_bom_and_crlf(api: httpx.AsyncClient) -> None:
    result = data(await upload(api, "\ufeffPhone,Reason\r\n+14155552671,Réclamation\r\n".encode()))
    assert result["added"] == 1
    assert data(await api.get("/dnc"))[0]["reason"] == "Réclamation"


async def test_import_accepts_columns_in_any_order_with_extras(api: httpx.AsyncClient) -> None:
    result = data(await upload(api, b"name,reason,phone\nAda,asked,+14155552671\n"))
    assert result["added"] == 1
    assert data(await api.get("/dnc"))[0]["reason"] == "asked"


async def test_import_counts_numbers_already_present(api: httpx.AsyncClient) -> None:
    await add(api)
    result = data(await upload(api, b"phone\n+1 415 555 2671\n+442079460958\n"))
    assert (result["added"], result["already_present"]) == (1, 1)


async def test_import_counts_repeats_within_the_file_once(api: httpx.AsyncClient) -> None:
    result = data(await upload(api, b"phone\n+14155552671\n(415) 555-2671\n", default_region="US"))
    assert (result["added"], result["already_present"]) == (1, 1)


async def test_import_reports_invalid_rows_with_spreadsheet_row_numbers(api: httpx.AsyncClient) -> None:
    csv = b"phone,reason\n+14155552671,ok\nnot a phone,x\n\n,empty\n"
    result = data(await upload(api, csv))
    assert result["added"] == 1
    assert result["invalid"] == 2
    assert [(error["row"], error["phone"]) for error in result["errors"]] == [(3, "not a phone"), (5, None)]
    assert all(error["reason"] for error in result["errors"])


async def test_import_reads_national_numbers_with_default_region(api: httpx.AsyncClient) -> None:
    result = data(await upload(api, b"phone\n020 7946 0958\n", default_region="GB"))
    assert result["added"] == 1
    assert await listed(api) == [GB_PHONE]


async def test_import_national_numbers_without_region_are_invalid(api: httpx.AsyncClient) -> None:
    result = data(await upload(api, b"phone\n020 7946 0958\n"))
    assert (result["added"], result["invalid"]) == (0, 1)


async def test_import_with_unknown_default_region_is_422(api: httpx.AsyncClient) -> None:
    response = await upload(api, b"phone\n020 7946 0958\n", default_region="QQ")
    assert response.status_code == 422
    assert "default_region" in response.json()["errors"]


async def test_import_keeps_only_first_hundred_errors(api: httpx.AsyncClient) -> None:
    csv = b"phone\n" + b"bad\n" * 150
    result = data(await upload(api, csv))
    assert result["invalid"] == 150
    assert len(result["errors"]) == 100
    assert result["errors"][-1]["row"] == 101


async def test_import_handles_several_batches(api: httpx.AsyncClient) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(2500)]
    valid = [n for n in numbers if phonenumbers.is_valid_number(phonenumbers.parse(n))]
    csv = ("phone,reason\n" + "".join(f"{n},bulk\n" for n in numbers)).encode()
    result = data(await upload(api, csv))
    assert result["added"] == len(valid)
    assert result["invalid"] == len(numbers) - len(valid)
    assert (await api.get("/dnc")).json()["meta"]["count"] == len(valid)


async def test_import_rejects_overlong_reason_row(api: httpx.AsyncClient) -> None:
    csv = b"phone,reason\n+14155552671," + b"r" * 1001 + b"\n"
    result = data(await upload(api, csv))
    assert (result["added"], result["invalid"]) == (0, 1)


async def test_import_empty_file_is_400(api: httpx.AsyncClient) -> None:
    assert "empty" in bad_request(await upload(api, b""))


async def test_import_bom_only_file_is_400(api: httpx.AsyncClient) -> None:
    assert "empty" in bad_request(await upload(api, b"\xef\xbb\xbf"))


async def test_import_without_phone_column_is_400(api: httpx.AsyncClient) -> None:
    assert "phone column" in bad_request(await upload(api, b"name,reason\nAda,x\n"))


async def test_import_binary_file_is_400(api: httpx.AsyncClient) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\xff\xfe"
    bad_request(await upload(api, png, filename="logo.png"))


async def test_import_file_with_nul_bytes_is_400(api: httpx.AsyncClient) -> None:
    assert "NUL" in bad_request(await upload(api, b"phone\n+14155552671\x00\n"))


async def test_import_invalid_utf8_halfway_is_400_and_adds_nothing(api: httpx.AsyncClient) -> None:
    csv = b"phone\n" + b"+14155552671\n" * 3000 + b"\xff\xfe\n"
    bad_request(await upload(api, csv))
    assert await listed(api) == []


async def test_import_without_file_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/dnc/import", data={"default_region": "US"})
    assert response.status_code == 422
    assert "file" in response.json()["errors"]


async def test_import_header_only_adds_nothing(api: httpx.AsyncClient) -> None:
    result = data(await upload(api, b"phone,reason\n"))
    assert result == {"added": 0, "already_present": 0, "invalid": 0, "errors": []}


# --- tenant isolation -----------------------------------------------------------------------------


async def test_list_dnc_shows_only_own(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    await add(api)
    await add(other_api, phone_e164=GB_PHONE)
    assert await listed(api) == [US_PHONE]


async def test_other_workspace_cannot_delete_dnc_entry(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    await add(api)
    assert (await other_api.delete("/dnc/%2B14155552671")).status_code == 404
    assert await listed(api) == [US_PHONE]


async def test_same_number_may_be_on_two_workspaces_lists(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    mine = await add(api, reason="mine")
    theirs = await add(other_api, reason="theirs")
    assert mine["id"] != theirs["id"]
    assert data(await api.get("/dnc"))[0]["reason"] == "mine"


async def test_import_counts_only_own_workspace_entries(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    await add(other_api)
    result = data(await upload(api, b"phone\n+14155552671\n"))
    assert (result["added"], result["already_present"]) == (1, 0)
    assert await listed(other_api) == [US_PHONE]
