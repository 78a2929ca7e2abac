"""``/webhook_endpoints`` and ``/webhook_deliveries``: outbound events, signed per Standard Webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from bulkcall.api.deps import Pagination, SettingsDep, WebhooksRead, WebhooksWrite
from bulkcall.api.responses import error_responses, ok, paged
from bulkcall.db.models import WebhookDelivery, WebhookDeliveryAttempt
from bulkcall.schemas.base import MAX_ROW_ID, Envelope, ListEnvelope
from bulkcall.schemas.webhooks import (
    DeliveryAttemptOut,
    DeliveryStatus,
    WebhookDeliveryOut,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
)
from bulkcall.services import webhooks

EndpointId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Webhook endpoint id")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Webhook delivery id")]

router = APIRouter(prefix="/webhook_endpoints", tags=["webhooks"])
deliveries_router = APIRouter(prefix="/webhook_deliveries", tags=["webhooks"])


def _delivery(row: WebhookDelivery, attempts: list[WebhookDeliveryAttempt]) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        completed_at=row.completed_at,
        attempt_log=[DeliveryAttemptOut.model_validate(attempt) for attempt in attempts],
    )


@router.get("", operation_id="list_webhook_endpoints", summary="List webhook endpoints, newest first")
async def list_endpoints(ctx: WebhooksRead, pagination: Pagination) -> ListEnvelope[WebhookEndpointOut]:
    rows, total = await webhooks.list_endpoints(ctx, pagination.page, pagination.per_page)
    return paged([WebhookEndpointOut.model_validate(row) for row in rows], total, pagination.page, pagination.per_page)


@router.post(
    "",
    status_code=201,
    operation_id="create_webhook_endpoint",
    summary="Add a webhook endpoint; the response holds its signing secret, shown only this once",
)
async def create_endpoint(
    ctx: WebhooksWrite, settings: SettingsDep, body: WebhookEndpointCreate
) -> Envelope[WebhookEndpointCreated]:
    endpoint = await webhooks.create_endpoint(ctx, body, allow_private=settings.allow_private_webhook_urls)
    return ok(WebhookEndpointCreated.model_validate(endpoint))


@router.get(
    "/{endpoint_id}",
    operation_id="get_webhook_endpoint",
    summary="Get a webhook endpoint (never its secret)",
    responses=error_responses(404),
)
async def get_endpoint(ctx: WebhooksRead, endpoint_id: EndpointId) -> Envelope[WebhookEndpointOut]:
    return ok(WebhookEndpointOut.model_validate(await webhooks.get_endpoint(ctx, endpoint_id)))


@router.patch(
    "/{endpoint_id}",
    operation_id="update_webhook_endpoint",
    summary="Change a webhook endpoint; enabled: true re-enables one disabled after failures",
    responses=error_responses(404),
)
async def update_endpoint(
    ctx: WebhooksWrite, settings: SettingsDep, endpoint_id: EndpointId, body: WebhookEndpointUpdate
) -> Envelope[WebhookEndpointOut]:
    endpoint = await webhooks.update_endpoint(ctx, endpoint_id, body, allow_private=settings.allow_private_webhook_urls)
    return ok(WebhookEndpointOut.model_validate(endpoint))


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    operation_id="delete_webhook_endpoint",
    summary="Delete a webhook endpoint with its deliveries; nothing more is sent to it",
    responses=error_responses(404),
)
async def delete_endpoint(ctx: WebhooksWrite, endpoint_id: EndpointId) -> Response:
    await webhooks.delete_endpoint(ctx, endpoint_id)
    return Response(status_code=204)


@router.get(
    "/{endpoint_id}/deliveries",
    operation_id="list_webhook_deliveries",
    summary="An endpoint's deliveries, newest first, each with its attempts",
    responses=error_responses(404),
)
async def list_deliveries(
    ctx: WebhooksRead,
    endpoint_id: EndpointId,
    pagination: Pagination,
    status: Annotated[DeliveryStatus | None, Query(description="Only deliveries with this status")] = None,
) -> ListEnvelope[WebhookDeliveryOut]:
    rows, total = await webhooks.list_deliveries(ctx, endpoint_id, status, pagination.page, pagination.per_page)
    return paged([_delivery(row, attempts) for row, attempts in rows], total, pagination.page, pagination.per_page)


@deliveries_router.post(
    "/{delivery_id}/redeliver",
    status_code=202,
    operation_id="redeliver_webhook_delivery",
    summary="Send a delivery again: it becomes pending and due now (202; the attempt follows shortly)",
    responses=error_responses(404, 409),
)
async def redeliver(ctx: WebhooksWrite, delivery_id: DeliveryId) -> Envelope[WebhookDeliveryOut]:
    delivery, attempts = await webhooks.redeliver(ctx, delivery_id)
    return ok(_delivery(delivery, attempts))
