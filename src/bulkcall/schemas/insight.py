"""Runtime insight responses: a campaign's analytics and its dispatch health."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from bulkcall.schemas.base import UtcDatetime


class AnalyticsRange(BaseModel):
    from_: date | None = Field(alias="from", serialization_alias="from")
    to: date | None
    timezone: str
    starts_at: UtcDatetime | None = Field(description="First instant counted (local midnight of `from`), UTC")
    ends_at: UtcDatetime | None = Field(description="First instant no longer counted (local midnight after `to`)")

    model_config = {"populate_by_name": True}


class AnalyticsTotals(BaseModel):
    attempts: int
    answered: int
    voicemail: int
    no_answer: int
    busy: int
    failed: int
    rejected: int
    invalid_number: int
    unknown: int
    contacts: int = Field(description="Distinct tasks with at least one attempt ended in the range")
    contacts_reached: int = Field(description="Distinct tasks with an answered attempt ended in the range")
    tasks_total: int = Field(description="Every task of the campaign, whatever the range")


class TalkTime(BaseModel):
    total_seconds: float
    average_seconds: float | None
    median_seconds: float | None = Field(
        description="From a histogram: the middle answered call's bin midpoint (bins 5 s wide below 10 min, "
        "60 s to 1 h, 10 min to 6 h)"
    )
    answered_calls: int


class RetryStep(BaseModel):
    attempt_number: int
    attempts: int
    answered: int
    answer_rate: float | None


class CallerNumberFigures(BaseModel):
    phone_number_id: int
    e164: str | None
    attempts: int
    answered: int
    answer_rate: float | None
    talk_seconds: float
    cost: float


class DailyPoint(BaseModel):
    date: date
    attempts: int
    answered: int
    talk_seconds: float


class HourPoint(BaseModel):
    hour: int
    attempts: int
    answered: int
    talk_seconds: float


class Analytics(BaseModel):
    campaign_id: int
    range: AnalyticsRange
    totals: AnalyticsTotals
    answer_rate: float | None = Field(description="answered / attempts (null without attempts)")
    contact_rate: float | None = Field(description="contacts_reached / contacts (null without contacts)")
    talk_time: TalkTime
    cost: float
    retry_effectiveness: list[RetryStep]
    by_caller_number: list[CallerNumberFigures]
    daily: list[DailyPoint]
    hour_of_day: list[HourPoint]


class HealthReason(BaseModel):
    code: str
    message: str
    count: int


class HealthLimits(BaseModel):
    concurrency_limit: int | None
    pool_capacity: int
    tenant_cap: int | None
    effective_concurrency: int
    binding_limit: str
    dispatch_blocker: str | None = Field(description="What the engine last found holding due tasks back (null: none)")


class DialCounts(BaseModel):
    last_5_minutes: int
    last_15_minutes: int
    last_60_minutes: int
    last_dial_at: UtcDatetime | None


class HealthErrorRate(BaseModel):
    window_minutes: int
    attempts: int
    failed: int
    rate: float | None
    breaker_threshold: float
    breaker_min_attempts: int
    breaker_enabled: bool


class HealthQueue(BaseModel):
    eligible_now: int
    waiting_window: int
    waiting_retry: int
    waiting_other: int = Field(description="Waiting for anything else (a scheduled start, an unknown zone)")
    next_window_opens_at: UtcDatetime | None
    next_retry_at: UtcDatetime | None
    oldest_eligible_age_seconds: float | None


class NumberHealth(BaseModel):
    phone_number_id: int
    e164: str
    status: str
    spam_flagged: bool
    in_flight: int
    attempts_24h: int
    answered_24h: int
    answer_rate_24h: float | None
    consecutive_failures: int
    healthy: bool


class BudgetFigures(BaseModel):
    budget_cap: float | None
    spent: float


class DispatchHealth(BaseModel):
    campaign_id: int
    status: str
    reasons: list[HealthReason]
    limits: HealthLimits
    in_flight: int
    dials: DialCounts
    error_rate: HealthErrorRate
    queue: HealthQueue
    tasks_by_status: dict[str, int]
    time_to_first_dial_seconds: float | None
    budget: BudgetFigures
    numbers: list[NumberHealth]
    checked_at: UtcDatetime
