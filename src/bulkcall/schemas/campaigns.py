"""Request and response shapes of ``/bulk_call_campaigns`` and its templates and tasks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, ValidationInfo, field_validator

from bulkcall.schemas.base import Name, PatchModel, RequestModel, ResponseModel, RowId, UtcDatetime
from bulkcall.schemas.contacts import ContactCreate, TimezoneName

TriggerMode = Literal["immediate", "scheduled"]
TimezoneMode = Literal["callee_local", "campaign_timezone"]
CampaignStatusName = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
RetryOutcome = Literal["no_answer", "busy", "voicemail", "failed", "rejected", "unknown"]
TaskStatusName = Literal[
    "pending", "queued", "placing_call", "calling", "retry_pending", "completed", "failed", "skipped", "cancelled"
]

MAX_AUDIENCE_IDS = 100_000
MAX_INLINE_CONTACTS = 10_000

CallWindows = Annotated[
    dict[str, Any],
    Field(
        description=(
            "Weekly windows by day (mon..sun): {enabled, start, end} in HH:MM; end may be 24:00; an end before the "
            "start crosses midnight. Days left out are disabled. Default Mon–Fri 09:00–18:00."
        ),
        examples=[{"mon": {"enabled": True, "start": "09:00", "end": "18:00"}}],
    ),
]
RetryDelays = Annotated[
    dict[RetryOutcome, Annotated[int, Field(ge=0, le=60 * 24 * 30)]],
    Field(description="Per-outcome retry delay in minutes, overriding retry_delay_minutes"),
]
JsonObject = Annotated[dict[str, Any], Field(description="Free-form JSON object")]
Metadata = Annotated[
    dict[str, Any],
    Field(description="Free-form; metadata.budget_cap (money) pauses the campaign when spent"),
]


class InlineContactRow(ContactCreate):
    """An audience row given inline: created or updated as a contact at save time.

    A phone that cannot be read is not a request error: the row is kept and its task is skipped at launch as
    ``invalid_number``, so what was sent can be reconciled with the results export.
    """

    @field_validator("phone_e164")
    @classmethod
    def _normalize_phone(cls, value: str, info: ValidationInfo) -> str:
        return value


class CampaignFields(RequestModel):
    """Every configurable field; all optional here (defaults apply at create, templates may supply them)."""

    name: Name | None = None
    agent_id: RowId | None = None
    timezone: TimezoneName | None = Field(default=None, description="IANA zone; default UTC")
    campaign_phone_number_ids: list[RowId] | None = Field(default=None, max_length=1000)
    concurrency_limit: int | None = Field(default=None, ge=1, le=100_000)
    primary_phone_number_id: RowId | None = None
    trigger_mode: TriggerMode | None = None
    scheduled_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    call_windows: CallWindows | None = None
    timezone_mode: TimezoneMode | None = None
    max_retries: int | None = Field(default=None, ge=0, le=10)
    retry_delay_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 30)
    retry_delays: RetryDelays | None = None
    retry_on_voicemail: bool | None = None
    max_voicemail_attempts: int | None = Field(default=None, ge=1, le=11)
    priority: int | None = Field(default=None, ge=1, le=10)
    prefer_country_match: bool | None = None
    record_calls: bool | None = None
    call_variables: JsonObject | None = None
    metadata: Metadata | None = None


class AudienceFields(RequestModel):
    contact_ids: list[RowId] | None = Field(default=None, max_length=MAX_AUDIENCE_IDS)
    contact_list_id: RowId | None = None
    contacts: list[InlineContactRow] | None = Field(default=None, max_length=MAX_INLINE_CONTACTS)


class CampaignCreate(CampaignFields, AudienceFields):
    """Create a draft. ``name`` and ``agent_id`` are required unless ``template_id`` supplies them."""

    template_id: RowId | None = Field(default=None, description="Pre-fill from a template; explicit fields win")


class CampaignUpdate(PatchModel, CampaignFields, AudienceFields):
    """Change a campaign (draft and paused: everything; running: name, priority, concurrency_limit, metadata)."""

    nullable_fields = frozenset(
        {
            "concurrency_limit",
            "primary_phone_number_id",
            "scheduled_at",
            "ends_at",
            "max_voicemail_attempts",
            "contact_list_id",
        }
    )


class AudienceAdd(AudienceFields):
    """Contacts to add to a draft or running campaign."""


class PauseBody(RequestModel):
    reason: str | None = Field(default=None, max_length=500)


class CloneBody(RequestModel):
    name: Name | None = Field(default=None, description="Default: the source's name + ' (copy)'")
    include_audience: bool = True


class SaveAsTemplateBody(RequestModel):
    name: Name | None = Field(default=None, description="Default: the campaign's name")


class ReadinessCheck(ResponseModel):
    check: str
    passed: bool
    message: str


class LaunchReadiness(ResponseModel):
    ready: bool
    checks: list[ReadinessCheck]


class CampaignOut(ResponseModel):
    id: int
    name: str
    status: CampaignStatusName
    agent_id: int
    timezone: str
    timezone_mode: TimezoneMode
    campaign_phone_number_ids: list[int]
    primary_phone_number_id: int | None
    concurrency_limit: int | None
    effective_concurrency: int = Field(description="What dispatch will use: the tightest of limit, pool, tenant cap")
    trigger_mode: TriggerMode
    scheduled_at: UtcDatetime | None
    ends_at: UtcDatetime | None
    call_windows: dict[str, Any]
    max_retries: int
    retry_delay_minutes: int
    retry_delays: dict[str, int]
    retry_on_voicemail: bool
    max_voicemail_attempts: int | None
    priority: int
    prefer_country_match: bool
    record_calls: bool
    call_variables: dict[str, Any]
    metadata: dict[str, Any]
    contact_list_id: int | None
    template_id: int | None
    total_contacts: int = Field(description="Audience entries before launch; tasks after")
    counts: dict[str, int] = Field(description="Tasks by status (mutually exclusive, summing to total_contacts)")
    launch_readiness: LaunchReadiness | None = Field(description="The launch checklist while in draft")
    created_at: UtcDatetime
    updated_at: UtcDatetime
    launched_at: UtcDatetime | None
    started_at: UtcDatetime | None
    paused_at: UtcDatetime | None
    pause_reason: str | None
    resumed_at: UtcDatetime | None
    completed_at: UtcDatetime | None
    cancelled_at: UtcDatetime | None


class TemplateOut(ResponseModel):
    id: int
    name: str
    source_campaign_id: int | None
    config: dict[str, Any]
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ClonePrefill(ResponseModel):
    body: dict[str, Any] = Field(description="A body ready for POST /bulk_call_campaigns (not saved)")
    audience_total: int = Field(description="Contacts in the source's audience")
    contact_ids_truncated: bool = Field(description="True when body.contact_ids was capped")


class TaskOut(ResponseModel):
    id: int
    campaign_id: int
    contact_id: int | None
    phone_e164: str | None
    status: TaskStatusName
    skip_reason: str | None
    blocker: str | None
    next_eligible_at: UtcDatetime | None
    timezones: list[str]
    timezone_source: str | None
    attempts: int
    last_outcome: str | None
    caller_phone_number_id: int | None
    variables: dict[str, Any] = Field(
        default_factory=dict, description="What the agent gets: call_variables, then contact fields, then custom fields"
    )
    cost: float
    talk_seconds: float
    first_called_at: UtcDatetime | None
    last_called_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    completed_at: UtcDatetime | None

    @field_validator("timezones", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if value is None:
            return []
        return value.split("|") if isinstance(value, str) else value


class AttemptOut(ResponseModel):
    """One call of a task. Times are service-clock instants at which bulkcall learned of each step."""

    id: int
    attempt_number: int
    phone_number_id: int = Field(description="The caller ID used")
    caller_e164: str
    caller_id_reason: str = Field(description="Why this caller ID was chosen")
    telephony_connection_id: int
    provider: str
    provider_call_id: str | None
    state: str = Field(description="queued, dialing, ringing, in_progress or ended")
    queued_at: UtcDatetime
    dialed_at: UtcDatetime | None
    answered_at: UtcDatetime | None
    ended_at: UtcDatetime | None
    duration_seconds: float | None = Field(description="Talk time reported by the provider")
    outcome: str | None
    answered_by: str | None
    hangup_reason: str | None
    cost: float | None
    recording_url: str | None
    transcript: str | None
    extracted_data: dict[str, Any] | None
    error: str | None


class TaskDetailOut(TaskOut):
    call_attempts: list[AttemptOut] = Field(default_factory=list, description="Every call of this task, oldest first")
