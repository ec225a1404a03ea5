"""Typed event bodies: S3 notifications as they arrive through SQS, SNS-wrapped SageMaker results,
and the invocation Step Functions sends to get-transform-call."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SqsRecordModel
from pydantic import BaseModel, ConfigDict, Field, Json, JsonValue

from chorus.events.base import LooseModel
from chorus.events.sagemaker import InferenceResult
from chorus.model.records import CallbackEvent


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


class DeliveryMessage(LooseModel):
    """One callback attempt, on the delivery queue."""

    delivery: DeliveryRequest


class DeliveryRecord(SqsRecordModel):
    body: Json[DeliveryMessage]  # type: ignore[assignment]


class StepLocation(LooseModel):
    id: str | None = None
    bucket: str
    key: str
    content_type: str = Field(alias="contentType")


class StepParent(LooseModel):
    id: str
    service: str | None = None
    input: StepLocation


class StepDeclarationEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    service: str
    input: JsonValue


class StepInvocation(BaseModel):
    """What an ensemble state machine sends get-transform-call. Without a task token it asks for
    the ensemble's output mapping to be rendered instead of a step to be run."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    task_token: str | None = Field(default=None, alias="taskToken", max_length=8192)
    parent: StepParent
    step: StepDeclarationEvent | None = None
    output: JsonValue = None
    outputs: dict[str, StepLocation] = {}

    def locations(self) -> dict[str, Any]:
        return {"input": self.parent.input, **self.outputs}


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
