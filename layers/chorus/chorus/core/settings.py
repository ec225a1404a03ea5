"""Typed settings, one small model per collaborator, read from the environment at call time.

A function gets only the environment variables of the collaborators it uses (template.yaml sets
them per function); reading a settings model whose variables are missing fails loudly, naming them.
"""

from __future__ import annotations

from functools import cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import TypeVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Network = IPv4Network | IPv6Network


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)


class TableSettings(_Settings):
    predictions_table: str
    record_ttl_days: int = Field(default=30, ge=1)


class TenantsSettings(_Settings):
    tenants_table: str


class TokensSettings(_Settings):
    tokens_table: str


class AuditSettings(_Settings):
    audit_table: str


class UsagePlanSettings(_Settings):
    """The REST API stage a tenant's usage plan applies to (`chorus admin` finds the API's id)."""

    rest_api_id: str
    api_stage: str = "v1"  # template.yaml's StageName


class WaitSettings(_Settings):
    """`Prefer: wait`: how many requests of one tenant may hold their answer at the same time."""

    max_waits_per_tenant: int = Field(default=10, ge=0, le=1000)


class IdempotencySettings(_Settings):
    idempotency_table: str


class PayloadSettings(_Settings):
    payloads_bucket: str
    upload_url_ttl_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    output_url_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)


class TopicSettings(_Settings):
    success_topic_arn: str
    error_topic_arn: str


class ExecutionSettings(_Settings):
    state_machine_arn_prefix: str


class RegistrySettings(_Settings):
    registry_file: str = ""


class DeadlineQueueSettings(_Settings):
    deadline_queue_url: str


class DeliveryQueueSettings(_Settings):
    delivery_queue_url: str


class CaptureSettings(_Settings):
    """The Firehose stream captured predictions go to (empty: capture is off for the stack)."""

    capture_stream: str = ""


class DeadLetterSettings(_Settings):
    """The dead-letter queues whose messages process-input turns into truthful final states."""

    upload_dlq_arn: str = ""


class WebhookGuardSettings(_Settings):
    webhook_allowed_networks: str = ""

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


class WebhookSettings(WebhookGuardSettings):
    # Webhooks are signed with their tenant's secrets (the tenants table), not with any setting.
    # The whole attempt (connect, send, read) must finish within this; a receiver that drips
    # bytes cannot hold a delivery worker longer.
    webhook_attempt_seconds: float = Field(default=10.0, gt=0, le=60)
    # Seconds before each attempt, the Standard Webhooks example schedule: 8 attempts over ~28 h.
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        delays = [int(part) for part in value.split(",")]
        if not delays or any(d < 0 for d in delays) or len(delays) > 20:
            raise ValueError("WEBHOOK_RETRY_SCHEDULE is 1 to 20 comma-separated non-negative seconds")
        return value

    @property
    def retry_delays(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.webhook_retry_schedule.split(","))


class EmailSettings(_Settings):
    sender_email: str


class VersionSettings(_Settings):
    """Model versions (the versions table). Routing is read at most once per `version_cache_seconds`
    per service and execution environment, so a promotion reaches every function within that time."""

    versions_table: str
    version_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    evidence_ttl_days: int = Field(default=90, ge=1)


class ApprovalSettings(_Settings):
    """The approval workflow: who decides, how links are signed, when a canary is rolled back."""

    approval_link_key_id: str  # a KMS HMAC key: approval links carry its MAC
    approval_timeout_hours: float = Field(default=72.0, gt=0, le=24 * 365)
    # A canary is rolled back when its failure rate exceeds the live version's by more than this.
    canary_failure_margin: float = Field(default=0.05, ge=0, le=1)


class ApprovalWorkflowSettings(_Settings):
    """Where registering a version starts its approval (the CLI and the SageMaker registry hook)."""

    approval_state_machine_arn: str


class EventBusSettings(_Settings):
    event_bus_name: str = "default"


S = TypeVar("S", bound=_Settings)


@cache
def load(kind: type[S]) -> S:
    """The settings of one collaborator, read once per execution environment."""
    return kind()
