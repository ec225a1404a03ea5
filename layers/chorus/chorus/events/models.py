"""Typed event bodies: S3 notifications as they arrive through SQS, SNS-wrapped SageMaker results,
and the invocation Step Functions sends to get-transform-call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SqsRecordModel
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Json, JsonValue, Tag

from chorus.events.base import LooseModel
from chorus.events.sagemaker import InferenceResult
from chorus.model.records import CallbackEvent, delivery_key


class S3Bucket(LooseModel):
    name: str


class S3Object(LooseModel):
    key: str
    size: int | None = None

    @property
    def decoded_key(self) -> str:
        # S3 URL-encodes keys in notifications (a space arrives as '+').
        return unquote_plus(self.key)


class S3Entity(LooseModel):
    bucket: S3Bucket
    object: S3Object


class S3Record(LooseModel):
    event_name: str = Field(alias="eventName")
    s3: S3Entity


class S3EventNotification(LooseModel):
    records: list[S3Record] = Field(alias="Records")


class S3TestEvent(LooseModel):
    """Sent once when a bucket notification is configured; carries no object."""

    event: Literal["s3:TestEvent"] = Field(alias="Event")


class Deadline(LooseModel):
    prediction_id: str = Field(alias="predictionId", min_length=1, max_length=64)
    at: datetime


class DeadlineMessage(LooseModel):
    """Sent (delayed) to the deadline queue when a request carries `deadlineSeconds`."""

    deadline: Deadline


class UploadRecord(SqsRecordModel):
    """A process-input message: an S3 upload event, S3's test event, or a due deadline — from the
    upload or deadline queue, or from their dead-letter queue once they failed too often."""

    body: Json[S3EventNotification | S3TestEvent | DeadlineMessage]  # type: ignore[assignment]


class DeliveryRequest(LooseModel):
    prediction_id: str = Field(alias="predictionId", min_length=1, max_length=64)
    event: CallbackEvent
    series: int = Field(ge=1)
    attempt: int = Field(ge=1, le=100)
    # Attempts further out than one SQS delay (15 min) are re-queued until this moment.
    not_before: datetime | None = Field(default=None, alias="notBefore")
    step_id: str | None = Field(default=None, alias="stepId", min_length=1, max_length=64)  # a `step` event's step

    @property
    def key(self) -> str:
        return delivery_key(self.event, self.step_id)


class DeliveryMessage(LooseModel):
    """One callback attempt, on the delivery queue."""

    delivery: DeliveryRequest


class DeliveryRecord(SqsRecordModel):
    body: Json[DeliveryMessage]  # type: ignore[assignment]


class StepLocation(LooseModel):
    """One step's outcome in the execution state: where its output is (the task's result), or, for
    a step that produced none, why: `status` skipped (its condition was false), or the `Error` and
    `Cause` Step Functions caught for an optional step that failed."""

    id: str | None = None
    bucket: str | None = None
    key: str | None = None
    content_type: str | None = Field(default=None, alias="contentType")
    status: str = "succeeded"
    error: str | None = Field(default=None, alias="Error")
    cause: str | None = Field(default=None, alias="Cause")

    @property
    def outcome(self) -> str:
        """succeeded, skipped or failed."""
        if self.error is not None:
            return "failed"
        if self.status != "succeeded" or self.bucket is None or self.key is None:
            return self.status if self.status != "succeeded" else "failed"
        return "succeeded"


class FanOutOutcome(LooseModel):
    """A fanned-out step in the execution state: its item indices, whether its condition skipped
    it, and each item's outcome in order (the Map state's result)."""

    items: list[int] = []
    skipped: bool = False
    outcomes: list[StepLocation] = []
    error: str | None = Field(default=None, alias="Error")
    cause: str | None = Field(default=None, alias="Cause")


def _outcome_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "fan_out" if "items" in value or "outcomes" in value else "step"
    return "fan_out" if isinstance(value, FanOutOutcome) else "step"


Outcome = Annotated[
    Annotated[StepLocation, Tag("step")] | Annotated[FanOutOutcome, Tag("fan_out")],
    Discriminator(_outcome_kind),
]


class StepParent(LooseModel):
    id: str
    service: str | None = None
    input: StepLocation


class StepDeclarationEvent(BaseModel):
    """Which step of the parent's ensemble to run; its declaration is the registry's."""

    model_config = ConfigDict(extra="ignore")

    name: str
    service: str | None = None


class StepInvocation(BaseModel):
    """What an ensemble state machine sends get-transform-call.

    - `action` step (with a task token): run a step, or one item of a fanned-out step (`item`);
      `attempt` is the task's retry count (`$$.State.RetryCount`).
    - `action` items (no token): evaluate a fanned-out step's condition and list, store each item's
      input, answer the item indices.
    - `action` output (no token): render the ensemble's output mapping.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: Literal["step", "items", "output"] | None = None
    task_token: str | None = Field(default=None, alias="taskToken", max_length=8192)
    parent: StepParent
    step: StepDeclarationEvent | None = None
    item: int | None = Field(default=None, ge=0)
    attempt: int = Field(default=0, ge=0, le=100)
    output: JsonValue = None
    outputs: dict[str, Outcome] = {}

    @property
    def kind(self) -> str:
        if self.action is not None:
            return self.action
        return "step" if self.task_token is not None else "output"


class ExecutionDetail(LooseModel):
    name: str  # the execution name is the prediction id
    status: str
    error: str | None = None
    cause: str | None = None

    def as_result(self) -> InferenceResult:
        reason = f"the ensemble's execution ended {self.status}" + (f": {self.error}" if self.error else "")
        return InferenceResult.model_validate(
            {"inferenceId": self.name, "invocationStatus": "Failed", "failureReason": reason}
        )


class ExecutionStatusChange(EventBridgeModel):
    """EventBridge's "Step Functions Execution Status Change" (FAILED, TIMED_OUT, ABORTED)."""

    detail: ExecutionDetail  # type: ignore[assignment]


class FailedInvocation(LooseModel):
    """Lambda's on-failure destination record: the event an asynchronous invocation gave up on."""

    request_payload: dict[str, Any] = Field(alias="requestPayload")


class NotificationDeadLetter(SqsRecordModel):
    """A notification that failed every attempt: from SNS through Lambda's on-failure destination,
    or an EventBridge event the rule could not deliver (EventBridge sends the event itself)."""

    body: Json[FailedInvocation | dict[str, Any]]  # type: ignore[assignment]
