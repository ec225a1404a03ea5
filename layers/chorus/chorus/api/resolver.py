"""What the two API functions share: the resolver set-up and the error contract
`{"error": {"code", "message"}}` — domain exceptions are mapped here, once.

Bad input never reaches a handler and never becomes a 5xx: every request is screened before
Powertools reads it (edge.py: UTF-8, JSON media type, strict JSON), the request models hold the
field rules (models.py), and whatever the framework itself refuses is answered in our shape. A
request without the authorizer's identity is refused (401) before any of that (identity.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.api.edge import UnsupportedMediaType, screen
from chorus.api.identity import caller_from_event
from chorus.api.responses import error_body
from chorus.core.errors import ChorusError, InvalidRequest
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
        if error.get("type") == "value_error":  # our validators' messages name their field
            problems.append(message.removeprefix("Value error, "))
            continue
        problems.append(f"{location or 'body'}: {message}")
    return "; ".join(problems) or "the request is invalid"


def _bad_path_parameter(exc: RequestValidationError) -> str | None:
    """The value of a path parameter that failed its pattern: a path naming nothing."""
    for error in exc.errors():
        location = error.get("loc", ())
        if location and location[0] == "path":
            return str(error.get("input", ""))
    return None


class ChorusResolver(APIGatewayRestResolver):
    """Powertools' REST resolver, with each request's body screened first (edge.screen): what
    Powertools would fail to decode or parse (a 5xx), or reads leniently, is refused here. A query
    parameter the route does not take is refused too (`query_parameters`: per "METHOD /resource",
    the names it takes; a route not named takes none), rather than silently ignored."""

    def __init__(self, query_parameters: Mapping[str, frozenset[str]] | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._query_parameters = dict(query_parameters or {})

    def _unknown_query_parameter(self, event: Mapping[str, Any]) -> str | None:
        given = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters") or {}
        taken = self._query_parameters.get(f"{event.get('httpMethod', '')} {event.get('resource', '')}", frozenset())
        unknown = sorted(str(name) for name in given if name not in taken)
        if not unknown:
            return None
        accepted = ", ".join(sorted(taken)) or "none"
        return f"unknown query parameter {unknown[0][:64]!r}; this route takes: {accepted}"

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Authenticated first (401 before anything else, as the authorizer would answer in AWS),
        then screened; every log line of the request carries the caller's tenant and token id."""
        logger.remove_keys(["tenant", "token_id"])
        try:
            caller = caller_from_event(event)
            logger.append_keys(tenant=caller.tenant, token_id=caller.token_id)
            screened = screen(event)
            unknown = self._unknown_query_parameter(event)
            if unknown is not None:
                raise InvalidRequest(unknown)
        except ChorusError as exc:
            logger.info("request refused at the edge", extra={"code": exc.code, "reason": exc.message})
            return {
                "statusCode": exc.status,
                "multiValueHeaders": {"Content-Type": [content_types.APPLICATION_JSON]},
                "body": json.dumps(error_body(exc.code, exc.message), separators=(",", ":")),
                "isBase64Encoded": False,
            }
        return super().resolve(screened, context)


def create_resolver(query_parameters: Mapping[str, frozenset[str]] | None = None) -> ChorusResolver:
    app = ChorusResolver(query_parameters=query_parameters, enable_validation=True)

    @app.exception_handler(ChorusError)
    def _domain_error(exc: ChorusError) -> Response:
        if exc.status >= 500:
            logger.exception("request failed")
        return json_response(exc.status, error_body(exc.code, exc.message))

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response:
        bad_id = _bad_path_parameter(exc)
        if bad_id is not None:  # indistinguishable from an id that names no prediction
            shown = bad_id if len(bad_id) <= 64 else f"{bad_id[:64]}…"
            return json_response(404, error_body("not_found", f"prediction {shown!r} not found"))
        return json_response(400, error_body("invalid_request", describe_validation_error(exc)))

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_media_type(exc: RequestUnsupportedContentType) -> Response:
        error = UnsupportedMediaType("the request body must be JSON: send Content-Type: application/json")
        return json_response(error.status, error_body(error.code, error.message))

    @app.not_found
    def _no_route(exc: NotFoundError) -> Response:
        return json_response(404, error_body("not_found", "no such route"))

    return app
