"""Request and response shapes of ``/dnc``, the workspace's do-not-call list."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from bulkcall.schemas.base import RequestModel, ResponseModel, ShortText, UtcDatetime
from bulkcall.schemas.contacts import PhoneInput, RegionCode, normalized_e164

MAX_IMPORT_ERRORS = 100


class DncCreate(RequestModel):
    # Declared before phone_e164 so the phone validator can read it.
    default_region: RegionCode | None = None
    phone_e164: PhoneInput
    reason: ShortText | None = Field(default=None, description="Why the number must not be called")

    @field_validator("phone_e164")
    @classmethod
    def _normalize_phone(cls, value: str, info: ValidationInfo) -> str:
        return normalized_e164(value, info)


class DncOut(ResponseModel):
    id: int
    phone_e164: str
    reason: str | None
    created_at: UtcDatetime


class DncImportError(BaseModel):
    row: int = Field(description="Row of the file, counting the header as row 1 (as a spreadsheet shows it)")
    phone: str | None = Field(description="The phone cell as written")
    reason: str = Field(description="Why the row was not imported")


class DncImportResult(BaseModel):
    added: int = Field(description="Numbers newly on the list")
    already_present: int = Field(description="Valid numbers already on the list (or repeated in the file)")
    invalid: int = Field(description="Rows that could not be read as a phone number")
    errors: list[DncImportError] = Field(description=f"The first {MAX_IMPORT_ERRORS} invalid rows")
