"""One module per resource; ``ROUTERS`` is what the app mounts under ``/api/v1``."""

from fastapi import APIRouter

from bulkcall.api.routes import (
    agents,
    campaigns,
    contact_imports,
    contact_lists,
    contacts,
    dnc,
    insight,
    phone_numbers,
    planning,
    provider_callbacks,
    telephony_connections,
    webhook_receipts,
    webhooks,
    workspace,
)

ROUTERS: list[APIRouter] = [
    workspace.router,
    agents.router,
    telephony_connections.router,
    phone_numbers.router,
    contacts.router,
    contact_imports.router,
    contact_lists.router,
    dnc.router,
    planning.router,
    campaigns.router,
    campaigns.templates_router,
    insight.router,
    provider_callbacks.router,
    webhook_receipts.router,
    webhooks.router,
    webhooks.deliveries_router,
]
