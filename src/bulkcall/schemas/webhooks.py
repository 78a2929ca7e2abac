"""Request and response shapes of ``/webhook_endpoints`` and ``/webhook_deliveries``."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field

from bulkcall.domain.webhooks import EVENT_TYPES
from bulkcall.providers.base import HttpUrlText
from bulkcall.schemas.base import PatchModel, RequestModel, ResponseModel, ShortText, UtcDatetime

EventType = Literal[
    "campaign.launched",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.cancelled",
    "campaign.completed",
    "campaign.health_degraded",
    "call.completed",
    "task.completed",
]
if set(get_args(EventType)) != set(EVENT_TYPES):  # one list of event types (domain/webhooks.py)
    raise RuntimeError("schemas.webhooks.EventType differs from domain.webhooks.EVENT_TYPES")

DeliveryStatus = Literal["pending", "succeeded", "failed"]


def _distinct(events: list[str]) -> list[str]:
    return list(dict.fromkeys(events))


Events = Annotated[
    list[EventType],
    Field(max_length=len(EVENT_TYPES), description="Event types to receive; empty (or omitted) = every type"),
    AfterValidator(_distinct),
]
WebhookUrl = Annotated[
    HttpUrlText,
    Field(description="http(s) URL the events are POSTed to; private or loopback addresses are refused"),
]


class WebhookEndpointCreate(RequestModel):
    url: WebhookUrl
    events: Events = Field(default_factory=list)
    enabled: bool = True
    description: ShortText | None = None


class WebhookEndpointUpdate(PatchModel):
    nullable_fields = frozenset({"description"})

    url: WebhookUrl | None = None
    events: Events | None = None
    enabled: bool | None = Field(default=None, description="true re-enables an auto-disabled endpoint")
    description: ShortText | None = None


class WebhookEndpointOut(ResponseModel):
    id: int
    url: str
    events: list[str] = Field(description="Subscribed event types; empty = every type")
    enabled: bool
    description: str | None
    consecutive_failures: int = Field(description="Deliveries given up in a row (reset by a success)")
    disabled_at: UtcDatetime | None = Field(description="When the endpoint was disabled after repeated failures")
    disabled_reason: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(description="The signing secret (whsec_...); returned only in this response")


class DeliveryAttemptOut(ResponseModel):
    attempt_number: int
    started_at: UtcDatetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when no response came")
    latency_ms: float | None
    response_body: str | None = Field(description="The start of the response body (at most 1,000 characters)")
    error: str | None = Field(description="Why the attempt failed without a response (timeout, refused, ...)")
    retry_after_seconds: float | None = Field(description="The receiver's Retry-After, in seconds")


class WebhookDeliveryOut(ResponseModel):
    id: int
    endpoint_id: int
    event_id: int
    event_type: str
    status: DeliveryStatus
    attempts: int = Field(description="Attempts made so far")
    next_attempt_at: UtcDatetime | None = Field(description="When the next attempt is due (pending only)")
    last_attempt_at: UtcDatetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: UtcDatetime
    completed_at: UtcDatetime | None = Field(description="When it succeeded or was given up")
    attempt_log: list[DeliveryAttemptOut] = Field(description="Every attempt, oldest first")
