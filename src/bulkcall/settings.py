"""Runtime settings, read from ``BULKCALL_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob the service reads from its environment (prefix ``BULKCALL_``)."""

    model_config = SettingsConfigDict(env_prefix="BULKCALL_", extra="ignore")

    database_url: str = "sqlite:///./bulkcall.db"
    bootstrap_api_key: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8000"
    allow_private_webhook_urls: bool = False
    # Request bodies: JSON is small by nature; CSV uploads may be a million rows.
    max_json_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    # The dispatcher. Service-clock seconds after which a call whose result never came is ``unknown``.
    call_result_timeout_seconds: float = Field(default=7200.0, gt=0)
    # Wall-clock seconds a claimed call may wait for its request to leave before another worker frees it.
    claim_lease_seconds: float = Field(default=60.0, gt=0)
    # Most calls one dispatch round starts (``bulkcall worker --concurrency`` overrides it).
    dispatch_batch_size: int = Field(default=100, ge=1, le=10_000)
    # Outbound webhooks: the HTTP timeout of one POST, retries with exponential backoff and full jitter
    # (attempt n waits a random time up to min(max, base * 2^(n-1)) seconds, or Retry-After if longer),
    # giving up after ``webhook_max_attempts`` or ``webhook_give_up_after_seconds`` since the delivery was
    # created; an endpoint is disabled after this many deliveries given up in a row.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=4 * 3600.0, gt=0)
    webhook_max_attempts: int = Field(default=15, ge=1, le=100)
    webhook_give_up_after_seconds: float = Field(default=24 * 3600.0, gt=0)
    webhook_disable_after_failures: int = Field(default=20, ge=1)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    # Append every simulated call's start and end to this JSON-lines file (tests, audits).
    simulator_event_log: str | None = None
    log_level: str = "INFO"
    log_json: bool = False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
