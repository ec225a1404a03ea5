"""Typed function settings, read from the environment at call time (never at import time)."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Network = IPv4Network | IPv6Network


class Settings(BaseSettings):
    """The environment every Chorus function receives from template.yaml (see docs/contracts.md)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    predictions_table: str
    payloads_bucket: str
    idempotency_table: str = ""
    success_topic_arn: str = ""
    error_topic_arn: str = ""
    registry_file: str = ""
    state_machine_arn_prefix: str = ""
    webhook_secret_parameter: str = ""
    # A secret given directly wins over the SSM parameter (handy for `sam local invoke`).
    webhook_secret: SecretStr | None = None
    webhook_allowed_networks: str = ""
    sender_email: str = ""
    deadline_queue_url: str = ""
    upload_url_ttl_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    output_url_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    record_ttl_days: int = Field(default=30, ge=1)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    webhook_attempts: int = Field(default=3, ge=1, le=10)
    webhook_backoff_seconds: float = Field(default=1.0, ge=0)

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ip_network(part, strict=False)
        return value

    @property
    def allowed_networks(self) -> tuple[Network, ...]:
        parts = filter(None, (p.strip() for p in self.webhook_allowed_networks.split(",")))
        return tuple(ip_network(p, strict=False) for p in parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # values come from the environment
