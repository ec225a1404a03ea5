"""What the two API functions share: the resolver set-up and the error contract
`{"error": {"code", "message"}}` — domain exceptions are mapped here, once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from chorus.api.models import error_body
from chorus.core.errors import ChorusError
from chorus.core.observability import logger


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers or {})


def describe_validation_error(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = error.get("msg", "is invalid")
        if error.get("type") == "json_invalid":
            return "the request body is not valid JSON"
        if error.get("type") == "extra_forbidden":
            message = "is not a known field"
        problems.append(f"{location or 'body'}: {message}")
    return "; ".join(problems) or "the request is invalid"


def create_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)

    @app.exception_handler(ChorusError)
    def _domain_error(exc: ChorusError) -> Response:
        if exc.status >= 500:
            logger.exception("request failed")
        return json_response(exc.status, error_body(exc.code, exc.message))

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response:
        return json_response(400, error_body("invalid_request", describe_validation_error(exc)))

    @app.not_found
    def _no_route(exc: NotFoundError) -> Response:
        return json_response(404, error_body("not_found", "no such route"))

    return app
