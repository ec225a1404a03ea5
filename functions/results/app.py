"""results: GET /predictions/{id} and GET /services."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.api.models import PredictionId
from chorus.api.resolver import create_resolver, json_response
from chorus.core.observability import logger, metrics, tracer
from chorus.domain import queries
from chorus.model.registry import get_registry

app = create_resolver()


@app.get("/predictions/<prediction_id>")
def get_prediction(prediction_id: PredictionId) -> Response[dict[str, Any]]:
    return json_response(200, queries.describe(prediction_id))


@app.get("/services")
def list_services() -> Response[dict[str, Any]]:
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


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
