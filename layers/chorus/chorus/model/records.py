"""The prediction record: what DynamoDB stores about one prediction, and its state machine."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from chorus.core.clock import iso
from chorus.model.tenancy import TENANT_NAME
from chorus.model.versions import VERSION_ID, Trial


class Status(StrEnum):
    AWAITING_INPUT = "awaiting_input"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    SKIPPED = "skipped"  # an ensemble step whose `when` condition was false: it never ran

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.EXPIRED, Status.SKIPPED})

# Which states each state may be entered from. Terminal states have no way out.
ALLOWED_FROM: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.AWAITING_INPUT}),
    Status.RUNNING: frozenset({Status.QUEUED}),
    Status.SUCCEEDED: frozenset({Status.QUEUED, Status.RUNNING}),
    Status.FAILED: frozenset({Status.AWAITING_INPUT, Status.QUEUED, Status.RUNNING}),
    Status.CANCELED: frozenset({Status.AWAITING_INPUT, Status.QUEUED, Status.RUNNING}),
    Status.EXPIRED: frozenset({Status.AWAITING_INPUT}),
    Status.SKIPPED: frozenset(),  # created skipped, never entered
}


class S3Location(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    content_type: str = Field(alias="contentType")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @classmethod
    def from_uri(cls, uri: str, content_type: str) -> S3Location:
        if not uri.startswith("s3://") or "/" not in uri[5:]:
            raise ValueError(f"not an S3 URI: {uri!r}")
        bucket, key = uri[5:].split("/", 1)
        return cls(bucket=bucket, key=key, contentType=content_type)

    def as_dict(self) -> dict[str, str]:
        return {"bucket": self.bucket, "key": self.key, "contentType": self.content_type}


MAX_ERROR_MESSAGE = 4096


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str

    @field_validator("message", mode="before")
    @classmethod
    def _bounded(cls, value: object) -> str:
        # Model errors can carry whole stack traces; keep the record readable and small.
        text = str(value)
        return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 1] + "…"


class CallbackEvent(StrEnum):
    """When a client is told: the prediction started running, one of an ensemble's steps finished,
    or it reached a terminal state."""

    START = "start"
    STEP = "step"
    COMPLETED = "completed"


WebhookEvent = Literal["start", "step", "completed"]


def delivery_key(event: CallbackEvent, step_id: str | None = None) -> str:
    """Where a callback's deliveries are tracked on its prediction: the event, or for a step event
    `step:<child id>` (each step's event is a delivery series of its own)."""
    return f"{event.value}:{step_id}" if event is CallbackEvent.STEP and step_id else event.value


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up: the schedule ran out, or the receiver answered a final 4xx
    DISABLED = "disabled"  # the receiver answered 410 Gone: nothing more is sent for the prediction


class Delivery(BaseModel):
    """One attempt series of one callback event (a redelivery starts the next series)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    series: int = 1
    attempts: int = 0
    status: DeliveryStatus = DeliveryStatus.PENDING
    last_attempt_at: datetime | None = Field(default=None, alias="lastAttemptAt")
    last_error: str | None = Field(default=None, alias="lastError")
    next_attempt_at: datetime | None = Field(default=None, alias="nextAttemptAt")
    lease_until: datetime | None = Field(default=None, alias="leaseUntil")


class WebhookCallback(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["webhook"] = "webhook"
    url: str
    events: tuple[WebhookEvent, ...] = ("completed",)


class EmailCallback(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["email"] = "email"
    address: str


class StepFunctionsCallback(BaseModel):
    """A child prediction of an ensemble: its result resumes the parent's waiting task."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    type: Literal["stepfunctions"] = "stepfunctions"
    task_token: Annotated[str, Field(alias="taskToken", max_length=8192)]


Callback = Annotated[WebhookCallback | EmailCallback | StepFunctionsCallback, Field(discriminator="type")]


Kind = Literal["model", "ensemble", "rule"]  # a rule is an ensemble step computed without a model


class PredictionRecord(BaseModel):
    """One item of the predictions table. Field aliases are the stored attribute names."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    # Whose prediction this is: every read and write checks it (another tenant's id is a 404).
    tenant: str = Field(pattern=TENANT_NAME)
    # The token that created it (a step: its ensemble's), so every function's logs can name it.
    token_id: str | None = Field(default=None, alias="tokenId")
    service: str
    kind: Kind
    status: Status
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    upload_expires_at: datetime | None = Field(default=None, alias="uploadExpiresAt")
    deadline_at: datetime | None = Field(default=None, alias="deadlineAt")
    queued_at: datetime | None = Field(default=None, alias="queuedAt")
    started_at: datetime | None = Field(default=None, alias="startedAt")
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    content_type: str = Field(alias="contentType")
    input: S3Location | None = None
    output: S3Location | None = None
    error: ErrorDetail | None = None
    metadata: dict[str, Any] = {}
    callback: Callback | None = None
    deliveries: dict[str, Delivery] = {}  # by delivery_key
    parent_id: str | None = Field(default=None, alias="parentId")
    step_name: str | None = Field(default=None, alias="stepName")
    # A step's ensemble (the parent's service): the `service` its metrics are counted under.
    parent_service: str | None = Field(default=None, alias="parentService")
    item_index: int | None = Field(default=None, alias="itemIndex")  # the item of a fanned-out step
    attempt: int | None = None  # the retry of a step (absent: the first attempt)
    # Why a step ran as it did (the audit trail): the condition and the values it read, the rule
    # case that matched.
    decision: dict[str, Any] | None = None
    # A step whose parent's webhook asked for `step` events: its end is announced to the parent.
    announce_to_parent: bool = Field(default=False, alias="announceToParent")
    execution_arn: str | None = Field(default=None, alias="executionArn")
    lease_until: datetime | None = Field(default=None, alias="leaseUntil")
    # Set at dispatch: past it, a prediction still running has lost its result and is timed out.
    run_deadline_at: datetime | None = Field(default=None, alias="runDeadlineAt")
    # An ensemble's secret key for its step ids (steps.child_id): 32 hex characters, set at creation.
    child_salt: str | None = Field(default=None, alias="childSalt", pattern=r"^[0-9a-f]{32}$")
    # The model version that served it (set at dispatch; model predictions and model steps only).
    version: str | None = Field(default=None, pattern=VERSION_ID)
    # It is evidence for a candidate version (shadowed, or served during a canary).
    trial: Trial | None = None
    # A shadow: the candidate's copy of this prediction, kept for evidence and never shown to anyone.
    shadow_of: str | None = Field(default=None, alias="shadowOf")
    ttl: int

    @field_serializer(
        "created_at",
        "updated_at",
        "upload_expires_at",
        "deadline_at",
        "queued_at",
        "started_at",
        "completed_at",
        "lease_until",
        "run_deadline_at",
        when_used="json",
    )
    def _stored_time(self, moment: datetime | None) -> str | None:
        # One format for every stored time (ISO 8601, milliseconds, `Z`): the conditional writes
        # compare these strings, and the by-tenant index sorts on createdAt.
        return iso(moment)

    def to_item(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
