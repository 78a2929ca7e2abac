"""Base classes and field types every request and response shape builds on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

T = TypeVar("T")

# Ids are 64-bit on PostgreSQL: a larger value can never name a row (and must not reach the driver).
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


def _iso_utc(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# Times leave the API as ISO 8601 in UTC with a ``Z``.
UtcDatetime = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str, when_used="json")]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(max_length=1000)]
LongText = Annotated[str, StringConstraints(max_length=10_000)]


class RequestModel(BaseModel):
    """Every request body: unknown fields are an error, so typos are never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PatchModel(RequestModel):
    """A partial update: omitted fields stay as they are; ``null`` only where a field may be empty."""

    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _reject_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable_fields:
            raise ValueError("may not be null")
        return value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # Fields are typed ``X | None = None`` only so they may be omitted; the schema must say null is refused.
        schema = handler.resolve_ref_schema(handler(core_schema))
        for name, prop in schema.get("properties", {}).items():
            variants = prop.get("anyOf")
            if name in cls.nullable_fields or not variants:
                continue
            kept = [variant for variant in variants if variant.get("type") != "null"]
            prop.pop("anyOf")
            if len(kept) == 1:
                prop.update(kept[0])
            else:
                prop["anyOf"] = kept
            if prop.get("default", ...) is None:
                prop.pop("default")
        return schema


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageMeta(BaseModel):
    count: int = Field(description="Total rows matching the query")
    page: int
    per_page: int
    pages: int = Field(description="Total pages")


class Envelope(BaseModel, Generic[T]):
    """The success envelope of every JSON response."""

    data: T
    meta: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    request_id: str


class ListEnvelope(BaseModel, Generic[T]):
    """The success envelope of a paginated list."""

    data: list[T]
    meta: PageMeta
    message: str | None = None
    request_id: str


class ErrorEnvelope(BaseModel):
    """The error envelope of every failed request."""

    error: str
    error_code: str
    details: dict[str, Any] = Field(default_factory=dict)
    errors: dict[str, list[str]] = Field(default_factory=dict)
    request_id: str
