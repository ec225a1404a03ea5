"""results: GET /predictions, GET /predictions/{id}, GET /services, GET /services/{name},
GET /services/{name}/monitoring and GET /webhooks/secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.adapters.listings import Filters
from chorus.api.identity import authorize
from chorus.api.models import PREDICTION_ID_PATTERN, PredictionId, ServiceNameParameter
from chorus.api.resolver import create_resolver, json_response
from chorus.api.responses import (
    Monitoring,
    Prediction,
    PredictionPage,
    ServiceDetail,
    ServiceList,
    WebhookSecret,
    answer,
    declare,
)
from chorus.core.errors import InvalidRequest
from chorus.core.observability import logger, metrics, tracer
from chorus.domain import monitoring, queries, versions, webhook_secrets
from chorus.model.records import Status
from chorus.model.registry import get_registry
from chorus.model.tenancy import Scope

# The only route with query parameters; any other name, or a parameter on another route, is a 400.
LISTING_PARAMETERS = frozenset({"limit", "cursor", "service", "status", "createdAfter", "createdBefore", "parentId"})
app = create_resolver({"GET /predictions": LISTING_PARAMETERS})
DEFAULT_LIMIT = 20


@app.get(
    "/predictions",
    operation_id="listPredictions",
    summary="List the tenant's predictions",
    responses=declare(
        {200: answer(PredictionPage, "A page of predictions")},
        {400: "`invalid_request`: a parameter outside its range or format (or a body or `Idempotency-Key` refused)"},
    ),
)
def list_predictions(
    limit: Annotated[
        str | None, Query(pattern=r"^(?:[1-9][0-9]?|100)$", description="1 to 100 (default 20), a plain integer")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="`nextCursor` of the previous page, as it came")
    ] = None,
    service: Annotated[str | None, Query(max_length=128, description="only this service's predictions")] = None,
    status: Annotated[Status | None, Query(description="only predictions in this status")] = None,
    created_after: Annotated[
        str | None, Query(alias="createdAfter", max_length=64, description="ISO 8601 with an offset; inclusive")
    ] = None,
    created_before: Annotated[
        str | None, Query(alias="createdBefore", max_length=64, description="ISO 8601 with an offset; exclusive")
    ] = None,
    parent_id: Annotated[
        str | None,
        Query(alias="parentId", pattern=PREDICTION_ID_PATTERN, description="the steps of this ensemble prediction"),
    ] = None,
) -> Response[dict[str, Any]]:
    """The caller's tenant's predictions, newest first (top-level ones unless `parentId` asks for an
    ensemble's steps, which come in step-name order)."""
    caller = authorize(app.current_event.raw_event, Scope.READ)
    filters = Filters(
        service=service,
        status=status,
        created_after=_moment("createdAfter", created_after),
        created_before=_moment("createdBefore", created_before),
    )
    page = queries.list_predictions(
        caller, limit=int(limit) if limit else DEFAULT_LIMIT, cursor=cursor, filters=filters, parent_id=parent_id
    )
    return json_response(200, page)


def _moment(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 date and time, like 2026-11-22T03:10:07Z") from None
    if moment.tzinfo is None:
        raise InvalidRequest(f"{name} needs a UTC offset or Z, like 2026-11-22T03:10:07Z")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest(f"{name} is out of range") from None


@app.get(
    "/predictions/<prediction_id>",
    operation_id="getPrediction",
    summary="Read a prediction",
    responses=declare(
        {200: answer(Prediction, "The prediction (what its webhooks carry)")},
        {404: "`not_found`: no prediction of the caller's tenant has this id"},
    ),
)
def get_prediction(prediction_id: PredictionId) -> Response[dict[str, Any]]:
    caller = authorize(app.current_event.raw_event, Scope.READ)
    return json_response(200, queries.describe(caller, prediction_id))


@app.get(
    "/services",
    operation_id="listServices",
    summary="List the services",
    responses=declare({200: answer(ServiceList, "Every registered service")}),
)
def list_services() -> Response[dict[str, Any]]:
    authorize(app.current_event.raw_event, Scope.READ)
    services = [
        {
            "name": s.name,
            "kind": s.kind,
            "description": s.description,
            "enabled": s.enabled,
            "contentTypes": s.content_types,
            "maxInputBytes": s.max_input_bytes,
            "timeoutSeconds": s.timeout_seconds,
            **({"steps": [{"name": step.name, "service": step.service} for step in s.steps]} if s.steps else {}),
        }
        for s in get_registry().services
    ]
    return json_response(200, {"services": services})


@app.get(
    "/services/<name>",
    operation_id="getService",
    summary="Read a service, with a model service's live version and version history",
    responses=declare(
        {200: answer(ServiceDetail, "The service; for a model service its versions and their history")},
        {404: "`not_found`: no service has this name"},
    ),
)
def get_service(name: ServiceNameParameter) -> Response[dict[str, Any]]:
    authorize(app.current_event.raw_event, Scope.READ)
    return json_response(200, versions.describe_service(name))


@app.get(
    "/services/<name>/monitoring",
    operation_id="getMonitoring",
    summary="Read a service's latest drift report (admin)",
    responses=declare(
        {200: answer(Monitoring, "What the service captures and its latest drift report")},
        {
            403: "`forbidden`: the token lacks the `admin` scope (or see the common 403)",
            404: "`not_found`: no service has this name",
        },
    ),
)
def get_monitoring(name: ServiceNameParameter) -> Response[dict[str, Any]]:
    authorize(app.current_event.raw_event, Scope.ADMIN)
    return json_response(200, monitoring.describe(name))


@app.get(
    "/webhooks/secret",
    operation_id="getWebhookSecret",
    summary="Read the tenant's webhook signing secret",
    responses=declare(
        {200: answer(WebhookSecret, "The secret webhooks are signed with now")},
        {404: "`not_found`: the tenant has no webhook secret yet (rotate to issue one)"},
    ),
)
def get_webhook_secret() -> Response[dict[str, Any]]:
    """The caller's tenant's webhook signing secret, `{"key": "whsec_…"}`, to verify webhooks with."""
    caller = authorize(app.current_event.raw_event, Scope.READ)
    return json_response(200, webhook_secrets.current(caller))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
