"""The API's documents as typed models: what `GET /predictions/{id}` and the other routes answer,
and the body `POST /predictions` takes.

Attributes are snake_case, the JSON is camelCase (`created_at` ↔ `createdAt`). Answers are read
leniently: a field the API adds later is kept (`model_extra`, and in `to_json()`), never an error.
`tests/unit/test_client_openapi.py` compares these fields with the schemas of docs/openapi.json.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PlainSerializer
from pydantic.alias_generators import to_camel


def _iso(moment: datetime) -> str:
    """As the API writes a moment: UTC, milliseconds, `Z` (2026-11-22T03:10:07.000Z)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Moment = Annotated[datetime, PlainSerializer(_iso, return_type=str, when_used="json")]


class _Document(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)

    def to_json(self) -> dict[str, Any]:
        """The document as the API sent it (fields it did not send stay absent)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def __str__(self) -> str:
        return json.dumps(self.to_json())


class Status(StrEnum):
    """A prediction's status. `awaiting_input → queued → running → succeeded | failed | canceled`;
    `expired` when no input came before the upload URL expired; `skipped` for an ensemble step whose
    condition was false."""

    AWAITING_INPUT = "awaiting_input"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        """No status follows this one."""
        return self in _TERMINAL


_TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.EXPIRED, Status.SKIPPED})
UNSUCCESSFUL = frozenset({Status.FAILED, Status.CANCELED, Status.EXPIRED})


class StepStatus(StrEnum):
    """An ensemble step's status: a child prediction's, or `pending` (not started yet) and `not_run`
    (its ensemble ended first)."""

    PENDING = "pending"
    AWAITING_INPUT = "awaiting_input"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    NOT_RUN = "not_run"

    @property
    def finished(self) -> bool:
        return self not in {StepStatus.PENDING, StepStatus.AWAITING_INPUT, StepStatus.QUEUED, StepStatus.RUNNING}


class ErrorDetail(_Document):
    """Why something failed: `code` is stable, for programs; `message` says what to fix."""

    code: str
    message: str


class ErrorResponse(_Document):
    """Every error answer of the API: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


class Metrics(_Document):
    wait_seconds: float | None = None  # input arrived → dispatched to the model
    run_seconds: float | None = None  # dispatched → result
    total_seconds: float | None = None  # submitted → result


class Output(_Document):
    """Where a succeeded prediction's output is: a presigned GET (no token) until `expires_at`."""

    url: str
    content_type: str
    expires_at: Moment


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DISABLED = "disabled"


class Delivery(_Document):
    """The latest callback event's delivery (a webhook or an e-mail)."""

    event: Literal["start", "completed"]
    status: DeliveryStatus
    attempts: int
    last_attempt_at: Moment | None = None
    last_error: str | None = None
    next_attempt_at: Moment | None = None


class ItemError(_Document):
    """One failed item of a fanned-out step."""

    item: int
    code: str
    message: str


class Step(_Document):
    """One declared step of an ensemble prediction, in declaration order."""

    name: str
    kind: Literal["model", "ensemble", "rule"]
    service: str | None = None  # None for a rule step
    status: StepStatus
    id: str | None = None  # the step's child prediction (the latest attempt's)
    ids: list[str] | None = None  # a fanned-out step's items, in order
    items: int | None = None
    failed_items: int | None = None
    item_errors: list[ItemError] | None = None
    started_at: Moment | None = None
    completed_at: Moment | None = None
    duration_seconds: float | None = None
    attempts: int | None = None
    version: str | None = None  # the model version that served a model step
    error: ErrorDetail | None = None
    decision: dict[str, Any] | None = None  # why a condition or rule went the way it did


class PredictionSummary(_Document):
    """A prediction in a listing (`GET /predictions`): its representation without what costs a
    call per item (`output`, `steps`, the callback's delivery). `Client.get()` reads the rest."""

    id: str
    service: str
    kind: Literal["model", "ensemble", "rule"]
    status: Status
    created_at: Moment
    updated_at: Moment | None = None
    started_at: Moment | None = None
    completed_at: Moment | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: Metrics = Field(default_factory=Metrics)
    deadline_at: Moment | None = None
    version: str | None = None  # the model version that served it (`v1` is the registry's endpoint)
    parent_id: str | None = None  # for an ensemble's step
    step_name: str | None = None
    error: ErrorDetail | None = None  # once failed, canceled or expired

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def raise_for_status(self) -> Self:
        """This prediction, or `PredictionFailed` if it failed, was canceled or expired."""
        from chorus_client.errors import PredictionFailed

        if self.status in UNSUCCESSFUL:
            raise PredictionFailed(self)
        return self


class Prediction(PredictionSummary):
    """`GET /predictions/{id}`, and the body of every webhook: a prediction as it is now."""

    output: Output | None = None  # once succeeded
    steps: list[Step] | None = None  # for an ensemble
    webhook: Delivery | None = None  # with a webhook callback, once an event it asked for is due
    email: Delivery | None = None


class Upload(_Document):
    """The presigned S3 POST of a new prediction: send every field of `fields`, then the file (at
    most `max_bytes`, of `content_type`), as multipart/form-data to `url` before `expires_at`."""

    url: str
    method: Literal["POST"] = "POST"
    fields: dict[str, str]
    expires_at: Moment
    max_bytes: int
    content_type: str


class CreatedPrediction(Prediction):
    """`POST /predictions`: the new prediction, with its upload form unless the input was inline."""

    upload: Upload | None = None


class PredictionPage(_Document):
    """`GET /predictions`: one page, newest first; `next_cursor` fetches the next (None: the last)."""

    predictions: list[PredictionSummary]
    next_cursor: str | None = None


class ServiceStep(_Document):
    name: str
    service: str | None = None  # None for a rule step


class Service(_Document):
    name: str
    kind: Literal["model", "ensemble"]
    description: str = ""
    enabled: bool = True
    content_types: list[str]
    max_input_bytes: int
    timeout_seconds: int
    steps: list[ServiceStep] | None = None


class ServiceList(_Document):
    """`GET /services`."""

    services: list[Service]


class WebhookSecret(_Document):
    """`GET /webhooks/secret`: the secret the tenant's webhooks are signed with now."""

    key: str


class RotatedWebhookSecret(WebhookSecret):
    """`POST /webhooks/secret/rotate`: the new secret; the previous one signs beside it until then."""

    previous_key_expires_at: Moment | None = None


# --- what the client sends -------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class WebhookCallbackRequest(_Request):
    type: Literal["webhook"] = "webhook"
    url: str
    events: list[Literal["start", "step", "completed"]] | None = None  # the API's default: ["completed"]


class EmailCallbackRequest(_Request):
    type: Literal["email"] = "email"
    address: str


class PredictionRequest(_Request):
    """The body of `POST /predictions`."""

    service: str
    input: JsonValue = None  # inline JSON (≤ 256 KB); without it the answer carries an upload form
    content_type: str | None = None
    callback: WebhookCallbackRequest | EmailCallbackRequest | None = Field(default=None, discriminator="type")
    metadata: dict[str, JsonValue] | None = None
    deadline_seconds: int | None = None
