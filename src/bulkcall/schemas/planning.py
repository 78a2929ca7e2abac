"""Request and response shapes of the planning helpers: capacity preview and audience timezone analysis."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from bulkcall.schemas.base import RequestModel, ResponseModel, RowId, UtcDatetime
from bulkcall.schemas.campaigns import MAX_AUDIENCE_IDS, CallWindows, TimezoneMode
from bulkcall.schemas.contacts import RegionCode, TimezoneName

MAX_PHONES = 10_000

AvgCallSeconds = Annotated[
    float,
    Field(gt=0, le=86_400, description="Average seconds one attempt holds a line (ringing and talking, any outcome)"),
]
AnswerRate = Annotated[
    float,
    Field(ge=0, le=1, description="Share of attempts answered; every other attempt is assumed to be retried"),
]


class PlanningAudience(RequestModel):
    """An audience given by reference: ids, a list, or bare phone numbers (looked up, never created)."""

    contact_ids: list[RowId] | None = Field(default=None, max_length=MAX_AUDIENCE_IDS)
    contact_list_id: RowId | None = None
    phones: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=MAX_PHONES,
        description="Numbers in E.164 (or national format with default_region); unknown numbers use their "
        "number's zones, unreadable ones count as invalid",
    )
    default_region: RegionCode | None = None
    call_windows: CallWindows | None = None
    timezone: TimezoneName = Field(default="UTC", description="The campaign's IANA zone")
    timezone_mode: TimezoneMode = "callee_local"


class CapacityPreviewBody(PlanningAudience):
    campaign_phone_number_ids: list[RowId] = Field(max_length=1000)
    concurrency_limit: int | None = Field(default=None, ge=1, le=100_000)
    contacts: int | None = Field(
        default=None, ge=0, le=100_000_000, description="A head count, instead of an audience (campaign timezone)"
    )
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_delay_minutes: int = Field(default=60, ge=0, le=60 * 24 * 30)
    scheduled_at: AwareDatetime | None = Field(default=None, description="When dialing would start (default now)")
    ends_at: AwareDatetime | None = None
    avg_call_seconds: AvgCallSeconds = 90.0
    expected_answer_rate: AnswerRate = 0.45


class TimezoneAnalysisBody(PlanningAudience):
    at: AwareDatetime | None = Field(default=None, description="The instant analysed (default now)")


class PlanningWarning(ResponseModel):
    code: str
    message: str
    count: int | None = None


class ConnectionCapacity(ResponseModel):
    id: int
    name: str
    provider: str
    concurrency_limit: int
    calls_per_second: float
    numbers: list[int]


class ZoneHours(ResponseModel):
    timezone: str = Field(description="The zone key: canonical IANA names, '|'-joined for numbers in several")
    contacts: int
    weekly_callable_hours: float


class CapacityPreviewOut(ResponseModel):
    pool_capacity: int
    tenant_cap: int | None
    concurrency_limit: int | None
    effective_concurrency: int
    binding_limit: Literal["pool_capacity", "tenant_cap", "concurrency_limit", "calls_per_second"]
    calls_per_second: float
    connections: list[ConnectionCapacity]
    contacts: int
    estimate_basis: Literal["inputs", "history"]
    avg_call_seconds: float
    expected_answer_rate: float
    expected_attempts_per_contact: float
    expected_calls: float
    max_possible_calls: int
    calls_per_hour: float
    weekly_callable_hours: float = Field(description="Callable hours in a week, averaged over the audience")
    zones: list[ZoneHours]
    estimated_start_at: UtcDatetime
    estimated_duration_hours: float | None
    estimated_completion_at: UtcDatetime | None
    warnings: list[PlanningWarning]


class ZoneSources(ResponseModel):
    contact_field: int
    phone_number: int
    fallback: int


class ZoneAnalysis(ResponseModel):
    timezone: str = Field(description="The zone key: canonical IANA names, '|'-joined for numbers in several")
    contacts: int
    sources: ZoneSources
    utc_offset: str
    local_time: str
    callable_now: bool
    next_window_opens_at: UtcDatetime | None


class CountryCount(ResponseModel):
    country: str | None
    contacts: int


class TimezoneAnalysisOut(ResponseModel):
    at: UtcDatetime
    timezone: str
    timezone_mode: str
    total: int
    callable_now: int
    invalid: int
    ambiguous: int
    fallback: int
    timezones: list[ZoneAnalysis]
    countries: list[CountryCount]
    grid: list[list[float]] = Field(
        description="7 rows (Mon..Sun) × 24 campaign-timezone hours of the week holding `at`: the share of the "
        "audience callable, averaged over the hour"
    )
    warnings: list[PlanningWarning]
