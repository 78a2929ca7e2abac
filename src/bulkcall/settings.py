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
    log_level: str = "INFO"
    log_json: bool = False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
