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

Lambda authorizers (the OpenAPI body's `x-amazon-apigateway-authorizer` security schemes, as SAM
writes them from `Auth`) run as in API Gateway: a missing identity source is a 401 without
invoking the authorizer; the authorizer gets the REQUEST (or TOKEN) event through the local Lambda
runtime; its `Unauthorized` error is a 401, any other error or a malformed result a 500
(AUTHORIZER_FAILURE); its policy is cached per identity-source value for the authorizer's TTL and
evaluated against each request's method ARN (explicit Deny wins, no Allow is a 403 ACCESS_DENIED);
`principalId` and the context reach the function as `requestContext.authorizer`.

A method that requires an API key (SAM's `Auth.ApiKeyRequired`) is then admitted by the API's usage
plans (chorus_local/usage_plans.py): the key is the request's `x-api-key` header, or the authorizer
result's `usageIdentifierKey` when the API's key source is AUTHORIZER; no (enabled) key in a plan
of the stage is a 403 (API_KEY), over its quota or rate a 429 (QUOTA_EXCEEDED, THROTTLED), in the
API's gateway responses. An admitted key reaches the function as `requestContext.identity.apiKey`
and `apiKeyId`.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import logging
import re
import threading
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
from chorus_local.usage_plans import UsagePlans

log = logging.getLogger("chorus_local.api")

INTEGRATION_TIMEOUT_SECONDS = 29.0
AUTHORIZER_TIMEOUT_SECONDS = 29.0  # the authorizer counts against the same request budget
PAYLOAD_LIMIT = 10 * 1024 * 1024  # API Gateway's request payload limit


@dataclass(frozen=True)
class GatewayResponse:
    """A customised API Gateway response (the Api's GatewayResponses), or a mock integration's."""

    templates: dict[str, str] = field(default_factory=dict)  # content type → mapping template
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None


@dataclass(frozen=True)
class Authorizer:
    """A Lambda authorizer of the API (`x-amazon-apigateway-authorizer`, type request or token)."""

    name: str
    function: str
    type: str  # "REQUEST" or "TOKEN"
    identity_sources: tuple[tuple[str, str], ...]  # ("header", "Authorization"), ("querystring", "key")
    ttl_seconds: int = 300  # API Gateway's default; SAM writes ReauthorizeEvery here
    validation_expression: str | None = None  # TOKEN authorizers: a token not matching is a 401


@dataclass(frozen=True)
class ApiRoute:
    path: str  # resource path template, e.g. /predictions/{id}
    method: str  # GET, POST, ... or ANY
    function: str  # the Lambda proxy integration's function ("" for a mock integration)
    mock: GatewayResponse | None = None  # a mock integration's static response
    authorizer: Authorizer | None = None
    api_key_required: bool = False

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(s for s in self.path.strip("/").split("/") if s)


@dataclass(frozen=True)
class CorsConfig:
    """The API's CORS origin (from SAM's preflight methods), also set on proxy responses."""

    allow_origin: str


# API Gateway's own errors: gateway response type → (status, message, x-amzn-ErrorType).
_ERRORS: dict[str, tuple[int, str | None, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token", "MissingAuthenticationTokenException"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "RequestEntityTooLargeException"),
    "DEFAULT_5XX": (502, "Internal server error", "InternalServerErrorException"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", "InternalServerErrorException"),
    "UNAUTHORIZED": (401, "Unauthorized", "UnauthorizedException"),
    "ACCESS_DENIED": (403, "User is not authorized to access this resource", "AccessDeniedException"),
    "AUTHORIZER_FAILURE": (500, None, "AuthorizerConfigurationException"),
    "API_KEY": (403, "Forbidden", "ForbiddenException"),
    "THROTTLED": (429, "Too Many Requests", "TooManyRequestsException"),
    "QUOTA_EXCEEDED": (429, "Limit Exceeded", "LimitExceededException"),
}
# The status codes callers name (the first error of that status).
_BY_STATUS = {
    403: "MISSING_AUTHENTICATION_TOKEN",
    413: "REQUEST_TOO_LARGE",
    502: "DEFAULT_5XX",
    504: "INTEGRATION_TIMEOUT",
}
EXPLICIT_DENY = "User is not authorized to access this resource with an explicit deny"


@dataclass(frozen=True)
class ApiConfig:
    stage: str = "v1"
    routes: tuple[ApiRoute, ...] = ()
    binary_media_types: tuple[str, ...] = ()
    cors: CorsConfig | None = None
    api_id: str = "localapi01"
    stage_variables: dict[str, str] = field(default_factory=dict)
    gateway_responses: dict[str, GatewayResponse] = field(default_factory=dict)
    region: str = "us-east-1"
    api_key_source: str = "HEADER"  # or AUTHORIZER: the authorizer's usageIdentifierKey

    @property
    def requires_api_keys(self) -> bool:
        return any(route.api_key_required for route in self.routes)


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

    def __init__(self, config: ApiConfig, runtime: LambdaRuntime, usage_plans: UsagePlans | None = None) -> None:
        if config.requires_api_keys and usage_plans is None:
            raise ValueError("methods of this API require an API key: the REST API needs the usage plans")
        self.config = config
        self._runtime = runtime
        self._usage_plans = usage_plans
        # Deterministic order: most specific route first; on one resource, its own method before ANY.
        self._routes = sorted(config.routes, key=lambda r: (_specificity(r), r.method != "ANY"), reverse=True)
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="api-integration")
        # (authorizer, identity-source values) → (expires at, monotonic clock; the authorizer's result)
        self._auth_cache: dict[tuple[str, tuple[str, ...]], tuple[float, AuthorizerResult]] = {}
        self._auth_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def error(self, kind: int | str, request_id: str, message: str | None = None) -> Response:
        """An answer API Gateway gives itself (by status or gateway response type), through the
        Api's GatewayResponses if any."""
        response_type = _BY_STATUS[kind] if isinstance(kind, int) else kind
        status, default_message, error_type = _ERRORS[response_type]
        message = message or default_message
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
                    .replace("$context.error.message", message or "")
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
        usage_key: str | None = None
        if route.authorizer is not None:
            outcome = self._authorize(request, route.authorizer, event, request_id)
            if isinstance(outcome, Response):
                return outcome
            event["requestContext"]["authorizer"], usage_key = outcome
        if route.api_key_required:
            assert self._usage_plans is not None  # required by __init__
            if self.config.api_key_source == "HEADER":
                usage_key = request.headers.get("x-api-key")
            refusal, limits = self._usage_plans.admit(usage_key)
            if refusal is not None:
                return self.error(refusal, request_id)
            assert limits is not None
            event["requestContext"]["identity"].update(apiKey=usage_key, apiKeyId=limits.key_id)
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

    # -- Lambda authorizers ---------------------------------------------------------------------

    def method_arn(self, method: str, path: str) -> str:
        """`arn:aws:execute-api:<region>:<account>:<apiId>/<stage>/<METHOD>/<path>` of a request."""
        return (
            f"arn:aws:execute-api:{self.config.region}:{LOCAL_ACCOUNT_ID}:"
            f"{self.config.api_id}/{self.config.stage}/{method}{path}"
        )

    @staticmethod
    def identity(request: Request, authorizer: Authorizer) -> tuple[str, ...] | None:
        """The identity-source values, or None when one is missing or empty (API Gateway's 401)."""
        values = []
        for kind, name in authorizer.identity_sources:
            value = request.headers.get(name) if kind == "header" else request.args.get(name)
            if not value:
                return None
            values.append(value)
        if authorizer.validation_expression is not None and not re.fullmatch(
            authorizer.validation_expression, values[0]
        ):
            return None
        return tuple(values)

    def authorizer_event(
        self, authorizer: Authorizer, proxy: dict[str, Any], identity: tuple[str, ...]
    ) -> dict[str, Any]:
        """API Gateway's authorizer event: TOKEN, or REQUEST (the request without its body)."""
        method_arn = self.method_arn(proxy["httpMethod"], proxy["path"])
        if authorizer.type == "TOKEN":
            return {"type": "TOKEN", "authorizationToken": identity[0], "methodArn": method_arn}
        keys = (
            "resource",
            "path",
            "httpMethod",
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
            "requestContext",
        )
        return {"type": "REQUEST", "methodArn": method_arn, **{k: proxy[k] for k in keys}}

    def _authorize(
        self, request: Request, authorizer: Authorizer, proxy: dict[str, Any], request_id: str
    ) -> Response | tuple[dict[str, Any], str | None]:
        """The proxy event's `requestContext.authorizer` and the result's usage identifier key, or
        API Gateway's refusal."""
        identity = self.identity(request, authorizer)
        if identity is None:
            return self.error("UNAUTHORIZED", request_id)
        key = (authorizer.name, identity)
        now = time.monotonic()
        with self._auth_lock:
            cached = self._auth_cache.get(key)
        if cached is not None and cached[0] > now:
            result, latency = cached[1], 0
        else:
            event = self.authorizer_event(authorizer, proxy, identity)
            future = self._pool.submit(self._runtime.invoke, authorizer.function, json.dumps(event).encode())
            try:
                invocation = future.result(timeout=AUTHORIZER_TIMEOUT_SECONDS)
            except FutureTimeout:
                log.warning("authorizer %s timed out", authorizer.name)
                return self.error("AUTHORIZER_FAILURE", request_id)
            latency = int((time.monotonic() - now) * 1000)
            if invocation.function_error:
                if _error_message(invocation) == "Unauthorized":
                    return self.error("UNAUTHORIZED", request_id)
                log.warning("authorizer %s failed: %.300s", authorizer.name, invocation.payload)
                return self.error("AUTHORIZER_FAILURE", request_id)
            try:
                result = AuthorizerResult.parse(invocation.json())
            except ValueError as problem:
                log.warning("authorizer %s returned an invalid result: %s", authorizer.name, problem)
                return self.error("AUTHORIZER_FAILURE", request_id)
            if authorizer.ttl_seconds > 0:
                with self._auth_lock:
                    self._auth_cache = {k: v for k, v in self._auth_cache.items() if v[0] > now}
                    self._auth_cache[key] = (now + authorizer.ttl_seconds, result)
        decision = evaluate_policy(result.policy, self.method_arn(proxy["httpMethod"], proxy["path"]))
        if decision == "Deny":
            return self.error("ACCESS_DENIED", request_id, EXPLICIT_DENY)
        if decision != "Allow":
            return self.error("ACCESS_DENIED", request_id)
        context = {"principalId": result.principal_id, **result.context, "integrationLatency": latency}
        return context, result.usage_identifier_key

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


def _error_message(invocation: InvocationResult) -> str | None:
    try:
        payload = invocation.json()
    except ValueError:
        return None
    return payload.get("errorMessage") if isinstance(payload, dict) else None


@dataclass(frozen=True)
class AuthorizerResult:
    """What a Lambda authorizer returns, checked as API Gateway checks it."""

    principal_id: str
    policy: dict[str, Any]
    context: dict[str, str]
    usage_identifier_key: str | None = None  # the API key of the caller's usage plan (key source AUTHORIZER)

    @classmethod
    def parse(cls, value: Any) -> AuthorizerResult:
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        principal, policy = value.get("principalId"), value.get("policyDocument")
        if not isinstance(principal, str) or not principal:
            raise ValueError("no principalId")
        if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), list | dict):
            raise ValueError("no policyDocument with a Statement")
        for statement in _as_list(policy["Statement"]):
            if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
                raise ValueError(f"invalid statement {statement!r}")
        context = value.get("context") or {}
        if not isinstance(context, dict):
            raise ValueError("context is not an object")
        flat: dict[str, str] = {}
        for name, item in context.items():
            # Only strings, numbers and booleans; the proxy event carries them as strings.
            if isinstance(item, bool):
                flat[str(name)] = "true" if item else "false"
            elif isinstance(item, str | int | float):
                flat[str(name)] = str(item)
            elif item is not None:
                raise ValueError(f"context value {name!r} is not a string, number or boolean")
        usage_key = value.get("usageIdentifierKey")
        if usage_key is not None and not isinstance(usage_key, str):
            raise ValueError("usageIdentifierKey is not a string")
        return cls(principal, policy, flat, usage_key or None)


def _wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's matching: `*` any run of characters (`/` included), `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    # DOTALL: IAM's `*` matches any character, a newline in a decoded path id included.
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def evaluate_policy(policy: dict[str, Any], method_arn: str) -> str:
    """ "Deny" when a statement denies the method ARN, else "Allow" when one allows it, else ""."""
    allowed = False
    for statement in _as_list(policy.get("Statement") or []):
        actions = [str(a) for a in _as_list(statement.get("Action") or [])]
        resources = [str(r) for r in _as_list(statement.get("Resource") or [])]
        if not any(_wildcard(a, "execute-api:Invoke", ignore_case=True) for a in actions):
            continue
        if not any(_wildcard(r, method_arn) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        allowed = allowed or statement.get("Effect") == "Allow"
    return "Allow" if allowed else ""
