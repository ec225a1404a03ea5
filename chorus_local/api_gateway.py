"""The REST API (API Gateway, Lambda proxy integration) on 127.0.0.1:<api_port>.

Routes come from the REST API's OpenAPI body as SAM generates it from the functions' `Type: Api`
events: Lambda proxy integrations, and mock integrations (SAM's CORS preflight `OPTIONS`
methods, answered with their static headers). Requests become API Gateway REST proxy events
(payload format 1.0) and proxy responses are mapped back, with API Gateway's own answers where it
answers itself:
- no matching resource/method → 403 {"message": "Missing Authentication Token"} (what a REST API
  returns for an unknown path, so clients see the same thing locally);
- Lambda error or malformed proxy response → 502 {"message": "Internal server error"};
- integration longer than 29 s → 504 {"message": "Endpoint request timed out"}.
Paths are served both with and without the stage prefix (`/v1/predictions` and `/predictions`).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from chorus_local.gateway import LOCAL_ACCOUNT_ID
from chorus_local.lambda_runtime import InvocationResult, LambdaRuntime

log = logging.getLogger("chorus_local.api")

INTEGRATION_TIMEOUT_SECONDS = 29.0
PAYLOAD_LIMIT = 10 * 1024 * 1024  # API Gateway's request payload limit


@dataclass(frozen=True)
class GatewayResponse:
    """A customised API Gateway response (the Api's GatewayResponses), or a mock integration's."""

    templates: dict[str, str] = field(default_factory=dict)  # content type → mapping template
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None


@dataclass(frozen=True)
class ApiRoute:
    path: str  # resource path template, e.g. /predictions/{id}
    method: str  # GET, POST, ... or ANY
    function: str  # the Lambda proxy integration's function ("" for a mock integration)
    mock: GatewayResponse | None = None  # a mock integration's static response

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(s for s in self.path.strip("/").split("/") if s)


@dataclass(frozen=True)
class CorsConfig:
    """The API's CORS origin (from SAM's preflight methods), also set on proxy responses."""

    allow_origin: str


# API Gateway's own errors: status → (gateway response type, message, x-amzn-ErrorType).
_ERRORS = {
    403: ("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token", "MissingAuthenticationTokenException"),
    413: ("REQUEST_TOO_LARGE", "Request Too Long", "RequestEntityTooLargeException"),
    502: ("DEFAULT_5XX", "Internal server error", "InternalServerErrorException"),
    504: ("INTEGRATION_TIMEOUT", "Endpoint request timed out", "InternalServerErrorException"),
}


@dataclass(frozen=True)
class ApiConfig:
    stage: str = "v1"
    routes: tuple[ApiRoute, ...] = ()
    binary_media_types: tuple[str, ...] = ()
    cors: CorsConfig | None = None
    api_id: str = "localapi01"
    stage_variables: dict[str, str] = field(default_factory=dict)
    gateway_responses: dict[str, GatewayResponse] = field(default_factory=dict)


def _match(route: ApiRoute, segments: Sequence[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    template = route.segments
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):  # greedy {proxy+}
            rest = segments[index:]
            if not rest:
                return None
            params[part[1:-2]] = "/".join(rest)
            return params
        if index >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = segments[index]
        elif part != segments[index]:
            return None
    return params if len(template) == len(segments) else None


def _specificity(route: ApiRoute) -> tuple[int, ...]:
    # API Gateway prefers literal segments over {param} over {proxy+}, position by position.
    def rank(part: str) -> int:
        if part.endswith("+}"):
            return 0
        return 1 if part.startswith("{") else 2

    return tuple(rank(p) for p in route.segments)


class RestApi:
    """WSGI app: match a route, build the proxy event, invoke, map the response."""

    def __init__(self, config: ApiConfig, runtime: LambdaRuntime) -> None:
        self.config = config
        self._runtime = runtime
        # Deterministic order: most specific route first; on one resource, its own method before ANY.
        self._routes = sorted(config.routes, key=lambda r: (_specificity(r), r.method != "ANY"), reverse=True)
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="api-integration")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def error(self, status: int, request_id: str) -> Response:
        """An answer API Gateway gives itself, through the Api's GatewayResponses if any."""
        response_type, message, error_type = _ERRORS[status]
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        custom = self.config.gateway_responses.get(response_type) or self.config.gateway_responses.get(family)
        body = json.dumps({"message": message})
        headers: dict[str, str] = {}
        if custom is not None:
            status = custom.status or status
            headers = dict(custom.headers)
            template = custom.templates.get("application/json")
            if template is not None:
                # The only $context variables these templates need; rendered like API Gateway's
                # VTL ($context.error.messageString is the message as a JSON string literal).
                body = (
                    template.replace("$context.error.messageString", json.dumps(message))
                    .replace("$context.error.message", message)
                    .replace("$context.error.responseType", response_type)
                    .replace("$context.requestId", request_id)
                )
        response = Response(body, status=status, content_type="application/json")
        for name, value in headers.items():
            response.headers[name] = value
        response.headers["x-amzn-RequestId"] = request_id
        response.headers["x-amzn-ErrorType"] = error_type
        return response

    def find(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        segments = [s for s in path.strip("/").split("/") if s]
        for route in self._routes:
            if route.method not in (method, "ANY"):
                continue
            params = _match(route, segments)
            if params is not None:
                return route, params
        return None

    def _strip_stage(self, path: str) -> str:
        prefix = f"/{self.config.stage}"
        if path == prefix:
            return "/"
        if path.startswith(prefix + "/"):
            return path[len(prefix) :]
        return path

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        response = self._handle(request, request_id)
        log.info(
            "%s %s -> %d (%.0f ms)",
            request.method,
            request.full_path.rstrip("?"),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response(environ, start_response)

    def _handle(self, request: Request, request_id: str) -> Response:
        path = self._strip_stage(request.path)
        found = self.find(request.method, path)
        if found is None:
            return self.error(403, request_id)
        if found[0].mock is not None:
            return self._mock(found[0].mock, request_id)
        body = request.get_data()
        if len(body) > PAYLOAD_LIMIT:
            return self.error(413, request_id)
        route, params = found
        event = self.proxy_event(request, route, path, params, body, request_id)
        future = self._pool.submit(self._runtime.invoke, route.function, json.dumps(event).encode())
        try:
            result = future.result(timeout=INTEGRATION_TIMEOUT_SECONDS)
        except FutureTimeout:
            # As in AWS, the function keeps running; only the client stops waiting.
            return self.error(504, request_id)
        response = self._proxy_response(result, request_id)
        if self.config.cors is not None:
            response.headers.setdefault("Access-Control-Allow-Origin", self.config.cors.allow_origin)
        return response

    def _is_binary(self, content_type: str | None) -> bool:
        if not content_type:
            return False
        base = content_type.split(";")[0].strip().lower()
        return any(fnmatch.fnmatch(base, pattern.lower()) for pattern in self.config.binary_media_types)

    def proxy_event(
        self,
        request: Request,
        route: ApiRoute,
        path: str,
        params: dict[str, str],
        body: bytes,
        request_id: str,
    ) -> dict[str, Any]:
        """API Gateway's REST proxy event, payload format 1.0."""
        headers = Headers(request.headers)
        source_ip = request.remote_addr or "127.0.0.1"
        # API Gateway adds the forwarding headers its clients never send.
        headers.setdefault("X-Forwarded-For", source_ip)
        headers.setdefault("X-Forwarded-Proto", request.scheme)
        headers.setdefault("X-Forwarded-Port", str(request.environ.get("SERVER_PORT", "80")))
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers.items():
            multi_headers.setdefault(name, []).append(value)
        single_headers = {name: values[-1] for name, values in multi_headers.items()}
        query = {key: request.args.getlist(key) for key in request.args}
        if body and (self._is_binary(request.content_type) or not _is_utf8(body)):
            event_body: str | None = base64.b64encode(body).decode()
            is_base64 = True
        else:
            event_body = body.decode("utf-8") if body else None
            is_base64 = False
        now = datetime.now(UTC)
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": request.method,
            "headers": single_headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": params or None,
            "stageVariables": dict(self.config.stage_variables) or None,
            "requestContext": {
                "resourceId": hashlib.sha1(route.path.encode()).hexdigest()[:6],
                "resourcePath": route.path,
                "httpMethod": request.method,
                "extendedRequestId": base64.b64encode(uuid.uuid4().bytes).decode()[:16],
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": f"/{self.config.stage}{path}",
                "accountId": LOCAL_ACCOUNT_ID,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "stage": self.config.stage,
                "domainPrefix": request.host.split(":")[0].split(".")[0],
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "requestId": request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "sourceIp": source_ip,
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": request.headers.get("User-Agent"),
                    "user": None,
                },
                "domainName": request.host,
                "apiId": self.config.api_id,
            },
            "body": event_body,
            "isBase64Encoded": is_base64,
        }

    def _proxy_response(self, result: InvocationResult, request_id: str) -> Response:
        internal_error = self.error(502, request_id)
        if result.function_error:
            return internal_error
        try:
            proxy = result.json()
        except ValueError:
            proxy = None
        if not isinstance(proxy, dict) or "statusCode" not in proxy:
            log.warning("malformed Lambda proxy response: %.200s", result.payload)
            return internal_error
        try:
            status = int(proxy["statusCode"])
            body = proxy.get("body") or ""
            if not isinstance(body, str):
                raise TypeError("body must be a string")
            data = base64.b64decode(body) if proxy.get("isBase64Encoded") else body.encode()
        except (TypeError, ValueError, binascii.Error) as error:
            log.warning("malformed Lambda proxy response: %s", error)
            return internal_error
        response = Response(data, status=status)
        response.headers.remove("Content-Type")
        for name, value in (proxy.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (proxy.get("multiValueHeaders") or {}).items():
            response.headers.remove(name)
            for value in _as_list(values):
                response.headers.add(name, str(value))
        if "Content-Type" not in response.headers:
            response.headers["Content-Type"] = "application/json"
        response.headers["x-amzn-RequestId"] = request_id
        return response

    def _mock(self, mock: GatewayResponse, request_id: str) -> Response:
        body = mock.templates.get("application/json", "")
        response = Response(body, status=mock.status or 200, content_type="application/json")
        for name, value in mock.headers.items():
            response.headers[name] = value
        response.headers["x-amzn-RequestId"] = request_id
        return response


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _as_list(values: Any) -> Iterable[Any]:
    return values if isinstance(values, list) else [values]
