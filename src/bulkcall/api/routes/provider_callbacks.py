"""``/webhooks/telephony/{provider}``: where carriers report call progress (no API key: the provider's
signature is the authentication)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from bulkcall.api.responses import error_responses, ok
from bulkcall.dispatch.ingestion import Ingestion
from bulkcall.kit.errors import InvalidSignature, MalformedCallback, NotFound
from bulkcall.providers import known_providers
from bulkcall.providers.base import CallbackRequest
from bulkcall.schemas.base import Envelope

router = APIRouter(prefix="/webhooks/telephony", tags=["provider callbacks"])


class CallbackVerdict(BaseModel):
    verdict: str  # applied | duplicate | out_of_order | unknown_call


@router.post(
    "/{provider}",
    operation_id="receive_provider_callback",
    summary="A provider's call-status callback: verified, stored raw, deduplicated, applied",
    description=(
        "Answers 200 with the dedupe verdict (`applied`, `duplicate`, `out_of_order`, `unknown_call`) so the "
        "provider stops retrying; 403 when the signature is missing or wrong (stored as `rejected_signature`, "
        "applied never); 400 when the body cannot be read. Providers: " + ", ".join(known_providers()) + "."
    ),
    responses=error_responses(400, 403, 404),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            },
        }
    },
)
async def receive_provider_callback(
    request: Request, provider: Annotated[str, Path(max_length=32, description="Provider name")]
) -> Envelope[CallbackVerdict]:
    if provider not in known_providers():
        raise NotFound("provider", provider)
    body = await request.body()
    public = request.app.state.settings.public_url.rstrip("/")
    url = public + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    callback = CallbackRequest(
        url=url,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        query=dict(request.query_params),
    )
    ingestion: Ingestion = request.app.state.ingestion
    (verdict,) = await ingestion.ingest([(provider, callback)])
    if verdict.verdict in ("rejected_signature", "unknown_provider"):
        raise InvalidSignature(f"callback rejected: {verdict.error}")
    if verdict.verdict == "malformed":
        raise MalformedCallback(f"callback could not be read: {verdict.error}")
    return ok(CallbackVerdict(verdict=verdict.verdict))
