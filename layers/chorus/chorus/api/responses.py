"""What the REST API answers (v1), for its OpenAPI document (docs/openapi.json): the bodies, as
pydantic models, and every status each route can answer, as Powertools' `responses` of the route
decorators (`declare`).

The handlers keep returning the dicts that views.py and the domain build; these models describe
them (tests/unit/test_openapi.py validates real representations against the document, allowing no
undeclared field, and the schema fuzzer checks live answers). A field the API omits when it has
no value is optional here; one it always sends, possibly as null, is required and nullable.

Besides each route's own answers, every route can be answered by API Gateway before any function
runs (401, 403, 413, 429 and 5xx, in the error shape through the template's GatewayResponses) and
by the edge screening of every request (400, 415: api/edge.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, cast

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from chorus.model.records import DeliveryStatus, Kind, Status


class _Answer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ErrorBody(_Answer):
    code: str = Field(description="Stable and machine-readable, e.g. `not_found`, `invalid_request`")
    message: str = Field(description="What went wrong and what to fix, for a person")


class ErrorResponse(_Answer):
    """Every refusal, from a function or from API Gateway itself."""

    error: ErrorBody


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# -- a prediction --------------------------------------------------------------------------------


class Metrics(_Answer):
    """Seconds, each present once measured."""

    wait_seconds: float | None = Field(None, description="From the input's arrival to dispatch")
    run_seconds: float | None = Field(None, description="From dispatch to the result")
    total_seconds: float | None = Field(None, description="From submission to the result")


class Output(_Answer):
    url: str = Field(description="A presigned GET of the output; needs no token")
    content_type: str
    expires_at: datetime = Field(description="When `url` stops working; read the prediction again for a new one")


class Delivery(_Answer):
    """The callback's delivery of the latest event the prediction reached."""

    event: Literal["start", "completed"]
    status: DeliveryStatus
    attempts: int
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = Field(None, description="While `pending`, when the next attempt is due")


class ItemError(_Answer):
    item: int = Field(description="The failed item's index in the step's list")
    code: str
    message: str


StepStatus = Literal[
    "pending",  # the ensemble has not reached it yet
    "not_run",  # the ensemble finished without it
    "awaiting_input",
    "queued",
    "running",
    "succeeded",
    "failed",
    "canceled",
    "expired",
    "skipped",  # its `when` condition was false
]


class Step(_Answer):
    """One declared step of an ensemble, in declaration order. A step that ran has `id` (a
    fanned-out one `ids`, `items`, `failedItems` and `itemErrors` instead); one that has not has
    only `name`, `kind`, `service` and `status`."""

    name: str
    kind: Kind
    service: str | None = Field(description="The model or ensemble it runs; null for a rule step")
    status: StepStatus
    id: str | None = Field(None, description="The step's own prediction (`GET /predictions/{id}`)")
    ids: list[str] | None = Field(None, description="A fanned-out step's item predictions, in item order")
    items: int | None = Field(None, description="A fanned-out step's number of items")
    failed_items: int | None = None
    item_errors: list[ItemError] | None = Field(None, description="The first 10 failed items' errors")
    attempts: int | None = Field(None, description="Present when the step was retried")
    version: str | None = Field(None, description="The model version that served a model step (`v1`, `v2`…)")
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    error: ErrorBody | None = None
    decision: dict[str, JsonValue] | None = Field(
        None, description="Why it ran as it did: the condition and the values it read, the rule case that matched"
    )


class PredictionSummary(_Answer):
    """A prediction in a listing (`GET /predictions`): its representation without `output`,
    `steps` and the callback's delivery."""

    id: str
    service: str
    kind: Kind = Field(description="`rule` only for an ensemble's rule step")
    status: Status
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    deadline_at: datetime | None = Field(None, description="Present when the request set `deadlineSeconds`")
    version: str | None = Field(None, description="The model version that served it, once dispatched (model services)")
    metadata: dict[str, JsonValue] = Field(description="As the request gave it")
    metrics: Metrics
    parent_id: str | None = Field(None, description="An ensemble step's ensemble prediction")
    step_name: str | None = Field(None, description="An ensemble step's name (with `parentId`)")
    error: ErrorBody | None = Field(None, description="Why it failed, was canceled or expired")


class Prediction(PredictionSummary):
    """`GET /predictions/{id}`, and the body of every webhook and e-mail."""

    output: Output | None = Field(None, description="On success")
    webhook: Delivery | None = Field(None, description="With a webhook callback, once an event it asked for is due")
    email: Delivery | None = Field(None, description="With an e-mail callback, once the prediction finished")
    steps: list[Step] | None = Field(None, description="An ensemble's steps")


class Upload(_Answer):
    """A presigned S3 POST: send every field of `fields`, then the file, as multipart/form-data."""

    url: str
    method: Literal["POST"]
    fields: dict[str, str]
    expires_at: datetime
    max_bytes: int
    content_type: str


class CreatedPrediction(Prediction):
    """The answer to `POST /predictions`: the prediction, and where to upload its input."""

    upload: Upload | None = Field(None, description="Present unless the request gave `input` inline")


class PredictionPage(_Answer):
    predictions: list[PredictionSummary] = Field(description="Newest first (an ensemble's steps in step order)")
    next_cursor: str | None = Field(description="`cursor` for the next page; null on the last")


# -- the rest ------------------------------------------------------------------------------------


class ServiceStep(_Answer):
    name: str
    service: str | None = Field(description="null for a rule step")


class Service(_Answer):
    name: str
    kind: Literal["model", "ensemble"]
    description: str
    enabled: bool
    content_types: list[str] = Field(description="Accepted input content types; the first is the default")
    max_input_bytes: int
    timeout_seconds: int
    steps: list[ServiceStep] | None = Field(None, description="An ensemble's steps")


class ServiceList(_Answer):
    services: list[Service]


class EndpointAnswer(_Answer):
    name: str
    mode: Literal["async", "sync"]


class SideEvidence(_Answer):
    runs: int
    failures: int
    failure_rate: float | None
    p50_ms: float | None
    mean_ms: float | None


class VersionEvidence(_Answer):
    """A candidate against the live version, over its trial's predictions."""

    mode: Literal["shadow", "canary"]
    live: SideEvidence
    candidate: SideEvidence
    compared: int = Field(description="Predictions both versions answered with a `label`")
    agreed: int
    agreement_rate: float | None


class ModelVersionAnswer(_Answer):
    id: str = Field(description="`v1` is the registry's endpoint; later versions are registered at run time")
    endpoint: EndpointAnswer
    model_package_arn: str | None = None
    description: str
    registered_by: str
    registered_at: datetime | None = Field(None, description="Absent for a v1 not recorded yet")
    status: Literal["pending", "approved", "canary", "live", "retired", "rejected", "expired", "rolled_back"]
    shadow_percent: float
    canary_percent: float
    bake_minutes: float
    approval_expires_at: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None
    live_since: datetime | None = None
    canary_started_at: datetime | None = None
    evidence: VersionEvidence | None = Field(None, description="A shadowed candidate's evidence so far")


class VersionEvent(_Answer):
    """One transition of a version (the audit trail, also published on EventBridge)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="allow")
    at: datetime
    version: str
    event: str = Field(
        description="registered, shadowing, approved, rejected, canary_started, promoted, rolled_back, expired"
    )
    actor: str = Field(description="Who: the registering identity, the approver's address, or `workflow`")


class ServiceDetail(Service):
    """`GET /services/{name}`: a model service adds its live version, candidate, versions and history."""

    version: str | None = Field(None, description="The live version of a model service")
    candidate: str | None = Field(None, description="The version in trial (awaiting approval or canary), if any")
    versions: list[ModelVersionAnswer] | None = None
    history: list[VersionEvent] | None = None


class CaptureSettings(_Answer):
    sampling_percent: float = Field(description="The share of finished predictions captured, 0 to 100")
    inputs: bool
    outputs: bool


class Window(_Answer):
    since: datetime
    until: datetime


class DriftViolation(_Answer):
    feature: str = Field(description="A flattened input field (`pixels[27]`, `image.mean`) or `label` (the output's)")
    measure: Literal["psi", "jensen_shannon_distance", "missing_fraction", "constant_changed_fraction"]
    value: float
    threshold: float
    p_value: float | None = Field(None, description="The chi-square test's, for `psi` and the distance")
    baseline: float | None = Field(None, description="A constant feature's baseline value")


class BaselineSummary(_Answer):
    created_at: datetime
    records: int


class ReportKeys(_Answer):
    statistics: str = Field(description="The window's statistics, in the payloads bucket")
    violations: str = Field(description="`constraint_violations.json`, in the payloads bucket")
    report: str


class DriftReport(_Answer):
    """One monitor run over one window of captured predictions (docs/monitoring.md)."""

    service: str
    window: Window
    created_at: datetime
    records: int = Field(description="Captured predictions in the window (duplicates removed)")
    unreadable_records: int
    status: Literal["ok", "drift", "no_baseline", "too_few_records"]
    violations: list[DriftViolation] = Field(description="Each drifted feature with its measure, value and threshold")
    tests: int = Field(description="Features (and the label) judged; the family-wise alpha is split across them")
    alpha_per_test: float | None
    baseline: BaselineSummary | None
    keys: ReportKeys


class Monitoring(_Answer):
    service: str
    capture: CaptureSettings | None = Field(description="null: the service captures nothing, so it is not monitored")
    report: DriftReport | None = Field(description="The latest report; null before the first run")


class WebhookSecret(_Answer):
    key: str = Field(description="`whsec_…`, the Standard Webhooks signing secret")


class RotatedWebhookSecret(WebhookSecret):
    previous_key_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too (null when there was none)"
    )


# -- statuses ------------------------------------------------------------------------------------

# Every route, before or around its own logic: the edge screening (400, 415) and API Gateway.
COMMON_ERRORS: dict[int, str] = {
    400: "`invalid_request`: a body that is not UTF-8 or not strict JSON, or a malformed `Idempotency-Key`",
    401: "`unauthorized`: no bearer token, or a malformed, unknown, expired or revoked one (API Gateway)",
    403: (
        "`forbidden`: the token lacks the route's scope, or its tenant has no usage plan yet (API Gateway); "
        "also API Gateway's answer to a path or method the API does not have"
    ),
    413: "`REQUEST_TOO_LARGE`: the request is larger than API Gateway's 10 MB",
    415: "`unsupported_media_type`: a body sent as anything but `application/json`",
    429: (
        "`rate_limited` (the tenant's rate or the stage's) or `quota_exceeded` (its daily quota): "
        "retry after `Retry-After` seconds (API Gateway)"
    ),
}
# Every route, as the OpenAPI range `5XX` (scripts/openapi.py adds it: Powertools takes integer statuses).
SERVER_ERROR = (
    "`authorizer_failure` (500), a function error (502) or timeout (504), in the error shape (API Gateway); retry"
)
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer` (API Gateway)", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "Seconds: 1 over a rate, 3600 over a quota",
            "required": True,
            "schema": {"type": "integer"},
        }
    },
}


def answer(
    model: type[BaseModel],
    description: str,
    *,
    headers: Mapping[str, Any] | None = None,
    links: Mapping[str, Any] | None = None,
) -> OpenAPIResponse:
    """A success answer of `model` as JSON, with its response headers and OpenAPI links."""
    declared: dict[str, Any] = {"description": description, "content": {"application/json": {"model": model}}}
    if headers:
        declared["headers"] = dict(headers)
    if links:
        declared["links"] = dict(links)
    return cast(OpenAPIResponse, declared)


# Where a created prediction is read, canceled and redelivered: OpenAPI links, which generated
# clients and the fuzzer's stateful run follow.
CREATED_LINKS = {
    operation: {"operationId": operation, "parameters": {"prediction_id": "$response.body#/id"}}
    for operation in ("getPrediction", "cancelPrediction", "redeliverWebhook")
}
CREATED_HEADERS = {
    "Location": {"description": "`/predictions/{id}`", "required": True, "schema": {"type": "string"}},
    "Preference-Applied": {"description": "`wait=N` when the answer waited", "schema": {"type": "string"}},
}


def created(description: str) -> OpenAPIResponse:
    """An answer to `POST /predictions`."""
    return answer(CreatedPrediction, description, headers=CREATED_HEADERS, links=CREATED_LINKS)


def declare(
    answers: Mapping[int, OpenAPIResponse], errors: Mapping[int, str] | None = None
) -> dict[int, OpenAPIResponse]:
    """Powertools' `responses` for a route: its `answers`, its own `errors` (status → description;
    one of COMMON_ERRORS' statuses here replaces that description) and every route's."""
    declared = dict(answers)
    for status, description in sorted({**COMMON_ERRORS, **(errors or {})}.items()):
        declared[status] = answer(ErrorResponse, description, headers=_HEADERS.get(status))
    return declared
