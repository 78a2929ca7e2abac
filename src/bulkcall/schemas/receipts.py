"""Response shape of ``/webhook_receipts``: every inbound provider callback with its dedupe verdict."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bulkcall.schemas.base import ResponseModel, UtcDatetime

ReceiptVerdict = Literal["applied", "duplicate", "out_of_order", "unknown_call", "rejected_signature", "malformed"]


class ReceiptOut(ResponseModel):
    id: int
    provider: str
    telephony_connection_id: int | None = Field(description="The connection the callback named (null if unknown)")
    event_type: str | None = Field(description="ringing, answered or completed; null when no event could be read")
    dedupe_key: str | None = Field(
        description="The event's identity (e.g. the provider's event id): duplicates share it"
    )
    verdict: ReceiptVerdict = Field(
        description=(
            "applied; duplicate (its event id was seen before); out_of_order (older than what the attempt already "
            "knew: stored, changed nothing); unknown_call; rejected_signature; malformed"
        )
    )
    campaign_id: int | None = Field(description="What the event touched (null when it matched no call)")
    task_id: int | None
    attempt_id: int | None
    received_at: UtcDatetime
    error: str | None = Field(description="Why it was rejected or malformed")
    payload: str = Field(description="The body as received (first 64 KiB)")
