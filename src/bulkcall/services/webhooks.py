"""Webhook endpoints: create (the secret shown once), change, delete; their deliveries; redelivery."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from bulkcall.db.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from bulkcall.db.repositories.webhooks import WebhookEndpointRepository
from bulkcall.domain.webhooks import private_address
from bulkcall.kit import net
from bulkcall.kit.errors import Conflict, NotFound, ValidationFailed
from bulkcall.kit.standard_webhooks import new_secret
from bulkcall.schemas.webhooks import WebhookEndpointCreate, WebhookEndpointUpdate
from bulkcall.services.context import ServiceContext

RESOLVE_SECONDS = 3.0


async def url_problem(url: str, *, allow_private: bool, within_seconds: float = RESOLVE_SECONDS) -> str | None:
    """Why ``url`` may not receive webhooks (None when it may): not http(s), a name that does not resolve, or
    an address that is loopback/private/link-local/reserved while ``allow_private`` is false."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "has an invalid port"
    if allow_private:
        return None
    host = parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = await net.resolve(host, port, within_seconds)
        except TimeoutError:
            return f"host {host} did not resolve within {within_seconds:g} s"
        except (OSError, UnicodeError, ValueError):  # UnicodeError: a name IDNA cannot encode
            return f"host {host} does not resolve"
    blocked = [address for address in addresses if private_address(address)]
    if blocked:
        return (
            f"resolves to a private, loopback or reserved address ({blocked[0]}); "
            "set BULKCALL_ALLOW_PRIVATE_WEBHOOK_URLS=true to allow it"
        )
    return None


def _repo(ctx: ServiceContext) -> WebhookEndpointRepository:
    return WebhookEndpointRepository(ctx.session, ctx.workspace_id)


async def _check_url(ctx: ServiceContext, url: str, allow_private: bool) -> None:
    await ctx.release_locks()  # resolving the name may take seconds; nothing was written yet
    problem = await url_problem(url, allow_private=allow_private)
    if problem is not None:
        raise ValidationFailed.single("url", problem)


async def get_endpoint(ctx: ServiceContext, endpoint_id: int) -> WebhookEndpoint:
    endpoint = await _repo(ctx).get(endpoint_id)
    if endpoint is None:
        raise NotFound("webhook endpoint", endpoint_id)
    return endpoint


async def list_endpoints(ctx: ServiceContext, page: int, per_page: int) -> tuple[list[WebhookEndpoint], int]:
    repo = _repo(ctx)
    return await repo.page(repo.scoped(), page, per_page)


async def create_endpoint(ctx: ServiceContext, body: WebhookEndpointCreate, *, allow_private: bool) -> WebhookEndpoint:
    await _check_url(ctx, body.url, allow_private)
    endpoint = WebhookEndpoint(
        workspace_id=ctx.workspace_id,
        url=body.url,
        description=body.description,
        events=list(body.events),
        enabled=body.enabled,
        secret=new_secret(),
        consecutive_failures=0,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    repo = _repo(ctx)
    repo.add(endpoint)
    await repo.flush()
    return endpoint


async def update_endpoint(
    ctx: ServiceContext, endpoint_id: int, changes: WebhookEndpointUpdate, *, allow_private: bool
) -> WebhookEndpoint:
    """Change an endpoint; ``enabled: true`` also clears an automatic disable and its failure count."""
    endpoint = await get_endpoint(ctx, endpoint_id)
    values: dict[str, Any] = changes.model_dump(exclude_unset=True)
    if not values:
        return endpoint
    if "url" in values and values["url"] != endpoint.url:
        await _check_url(ctx, values["url"], allow_private)
    if values.get("enabled") is True:
        values.update(consecutive_failures=0, disabled_at=None, disabled_reason=None)
    for field, value in values.items():
        setattr(endpoint, field, list(value) if field == "events" else value)
    endpoint.updated_at = ctx.now
    await _repo(ctx).flush()
    return endpoint


async def delete_endpoint(ctx: ServiceContext, endpoint_id: int) -> None:
    endpoint = await get_endpoint(ctx, endpoint_id)
    await _repo(ctx).delete_with_deliveries(endpoint)


async def list_deliveries(
    ctx: ServiceContext, endpoint_id: int, status: str | None, page: int, per_page: int
) -> tuple[list[tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]], int]:
    await get_endpoint(ctx, endpoint_id)
    repo = _repo(ctx)
    rows, total = await repo.page_deliveries(repo.deliveries_query(endpoint_id, status), page, per_page)
    attempts = await repo.attempts_of([row.id for row in rows])
    return [(row, attempts[row.id]) for row in rows], total


async def redeliver(ctx: ServiceContext, delivery_id: int) -> tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]:
    """Schedule one more attempt now (pending again, due now); a failure of it follows the usual retry rules."""
    repo = _repo(ctx)
    delivery = await repo.delivery(delivery_id, for_update=True)
    if delivery is None:
        raise NotFound("webhook delivery", delivery_id)
    endpoint = await repo.get(delivery.endpoint_id)
    if endpoint is None:
        raise NotFound("webhook delivery", delivery_id)
    if not endpoint.enabled:
        raise Conflict(
            f"webhook endpoint {endpoint.id} is disabled; enable it first (PATCH enabled: true)",
            details={"endpoint_id": endpoint.id, "disabled_reason": endpoint.disabled_reason},
        )
    delivery.status = "pending"
    delivery.next_attempt_at = ctx.now
    delivery.completed_at = None
    await repo.flush()
    attempts = await repo.attempts_of([delivery.id])
    return delivery, attempts[delivery.id]
