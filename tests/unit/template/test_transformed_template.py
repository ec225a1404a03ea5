"""template.yaml as CloudFormation deploys it: checks on the resources the SAM transform generates.

`test_template.py` reads the template as written; SAM then generates roles, policies, queues,
subscriptions and event-invoke configs that are not in it. Here the template goes through
samtranslator, offline, exactly as the local stack provisions it
(`chorus_local.cloudformation.transform_template`, template defaults for the parameters), and
the generated resources are held to the same rules as hand-written ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from chorus_local.cloudformation import (
    Resolver,
    TemplateError,
    load_template,
    resolve_parameters,
    transform_template,
)
from tests.unit.template.test_template import (
    NO_ON_FAILURE_DESTINATION,
    PUBLIC_ROUTES,
    TEMPLATE,
    WILDCARD_EXCEPTIONS,
    as_list,
)

# SAM-created queues the template still produces, each with why and who removes it.
# Queues SAM is known to create on its own that the template has not fixed yet (none today: the
# EnsembleEnded rule is a plain AWS::Events::Rule, because SAM's EventBridgeRule event ignored
# DeadLetterConfig.Destination and created NotificationsFunctionEnsembleEndedQueue).
KNOWN_SAM_QUEUES: dict[str, str] = {}


@cache
def _transformed() -> dict[str, Any]:
    return transform_template(TEMPLATE)


def transformed() -> dict[str, Any]:
    """The transformed template, or an empty one while it does not transform (reported by a test)."""
    try:
        return _transformed()
    except TemplateError:
        return {"Resources": {}}


def resources_of(resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in transformed()["Resources"].items() if r["Type"] == resource_type}


def sam_created_queues() -> set[str]:
    """AWS::SQS::Queue resources SAM generated: in the transformed template, not in the source."""
    written = load_template(TEMPLATE)["Resources"]
    return {k for k in resources_of("AWS::SQS::Queue") if k not in written}


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    """Resolves names (Fn::Sub of parameters, Refs of log groups) with the template's defaults."""
    template = _transformed()
    parameters = resolve_parameters(load_template(TEMPLATE), {})
    resolver = Resolver(template, parameters, stack_name="chorus")
    for logical_id, group in resources_of("AWS::Logs::LogGroup").items():
        if "LogGroupName" in group["Properties"]:
            resolver.refs[logical_id] = resolver.resolve(group["Properties"]["LogGroupName"])
    return resolver


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every IAM policy in the template, generated roles' included."""
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies") or []:
                yield from (
                    (f"{logical_id}/{policy.get('PolicyName')}", s) for s in policy["PolicyDocument"]["Statement"]
                )
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield from ((logical_id, s) for s in properties["PolicyDocument"]["Statement"])


# --- the transform ------------------------------------------------------------------------------


def test_the_template_transforms_and_every_sam_resource_is_expanded() -> None:
    # Given the template as written, when SAM transforms it (raises TemplateError naming the causes)
    template = _transformed()
    # Then nothing serverless is left and every SAM function became a Lambda function
    left = sorted(k for k, r in template["Resources"].items() if r["Type"].startswith("AWS::Serverless::"))
    assert not left, f"not expanded by SAM: {left}"
    written = load_template(TEMPLATE)["Resources"]
    sam_functions = {k for k, r in written.items() if r["Type"] == "AWS::Serverless::Function"}
    assert sam_functions and sam_functions <= set(resources_of("AWS::Lambda::Function"))


# --- functions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("function_id", sorted(resources_of("AWS::Lambda::Function")))
def test_every_generated_function_logs_to_a_declared_group_with_retention(resolver: Resolver, function_id: str) -> None:
    # Given a function as SAM generates it
    properties = _transformed()["Resources"][function_id]["Properties"]
    assert "FunctionName" in properties, f"{function_id} has no FunctionName, so its log group cannot be declared"
    expected = f"/aws/lambda/{resolver.resolve(properties['FunctionName'])}"
    # When the template's log groups are looked up by name
    groups = {
        logical_id: group["Properties"]
        for logical_id, group in resources_of("AWS::Logs::LogGroup").items()
        if resolver.resolve(group["Properties"].get("LogGroupName")) == expected
    }
    # Then exactly one is the function's, it keeps logs for a bounded time, and the function logs to it
    assert len(groups) == 1, f"{function_id}: {len(groups)} log groups named {expected}"
    ((group_id, group),) = groups.items()
    assert "RetentionInDays" in group, f"{group_id} keeps {expected} forever"
    configured = (properties.get("LoggingConfig") or {}).get("LogGroup")
    if configured is not None:
        assert resolver.resolve(configured) == expected, f"{function_id} logs to {configured}, not {expected}"


def test_every_generated_event_invoke_config_has_an_on_failure_destination() -> None:
    configs = resources_of("AWS::Lambda::EventInvokeConfig")
    assert configs, "no function has an EventInvokeConfig (asynchronous failures would be dropped)"
    for logical_id, config in configs.items():
        destination = ((config["Properties"].get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        function = config["Properties"]["FunctionName"]
        if isinstance(function, dict) and function.get("Ref") in NO_ON_FAILURE_DESTINATION:
            # dropped on purpose, with its reason (test_template.NO_ON_FAILURE_DESTINATION); never retried
            assert destination is None and int(config["Properties"]["MaximumRetryAttempts"]) == 0, logical_id
            continue
        assert destination, f"{logical_id}: an asynchronous invocation that fails for good is dropped"


def getatt_target(value: Any) -> str | None:
    """The logical id in `{"Fn::GetAtt": [X, ...]}` or `{"Fn::GetAtt": "X.Attr"}`, else None."""
    if not isinstance(value, dict) or "Fn::GetAtt" not in value:
        return None
    target = value["Fn::GetAtt"]
    return str(target[0] if isinstance(target, list) else str(target).split(".", 1)[0])


def test_every_asynchronously_invoked_function_has_an_event_invoke_config() -> None:
    # Given the functions AWS invokes asynchronously: SNS subscriptions and EventBridge targets
    invoked: dict[str, str | None] = {}
    for logical_id, subscription in resources_of("AWS::SNS::Subscription").items():
        if subscription["Properties"].get("Protocol") == "lambda":
            invoked[logical_id] = getatt_target(subscription["Properties"]["Endpoint"])
    for logical_id, rule in resources_of("AWS::Events::Rule").items():
        for target in rule["Properties"].get("Targets") or []:
            invoked[f"{logical_id}/{target.get('Id')}"] = getatt_target(target["Arn"])
    functions = resources_of("AWS::Lambda::Function")
    configured = {
        config["Properties"]["FunctionName"].get("Ref")
        for config in resources_of("AWS::Lambda::EventInvokeConfig").values()
        if isinstance(config["Properties"]["FunctionName"], dict)
    }
    assert any(function in functions for function in invoked.values()), "no function is invoked asynchronously"
    # Then each such function's retries and failure destination are configured
    for source, function in invoked.items():
        if function in functions:
            assert function in configured, f"{source} invokes {function} asynchronously without EventInvokeConfig"


# --- IAM ----------------------------------------------------------------------------------------


def test_no_generated_policy_grants_a_wildcard_resource_beyond_the_allowed_actions() -> None:
    offenders = []
    for where, statement in policy_statements(_transformed()):
        if statement.get("Effect") == "Allow" and "*" in as_list(statement.get("Resource")):
            extra = sorted(set(map(str, as_list(statement.get("Action")))) - WILDCARD_EXCEPTIONS)
            if extra:
                offenders.append(f"{where}: {', '.join(extra)} on Resource '*'")
    assert not offenders, "\n".join(offenders)


# --- queues -------------------------------------------------------------------------------------


def _queue_cases() -> list[Any]:
    cases = sorted(sam_created_queues() | set(KNOWN_SAM_QUEUES)) or ["(none)"]
    return [
        pytest.param(q, marks=pytest.mark.xfail(strict=True, reason=KNOWN_SAM_QUEUES[q]))
        if q in KNOWN_SAM_QUEUES
        else q
        for q in cases
    ]


@pytest.mark.parametrize("queue_id", _queue_cases())
def test_sam_creates_no_queue(queue_id: str) -> None:
    # SAM creates a queue for some dead-letter and destination settings without a Destination/Arn
    # it understands: unencrypted, without alarm, without the template's retention. Every queue
    # must be declared in the template, with its alarm.
    assert queue_id not in sam_created_queues(), (
        f"SAM created the queue {queue_id}: declare the queue in the template and point the setting at it"
    )


# --- the REST API's authorizer ------------------------------------------------------------------

ERROR_SHAPE = '{"error": {"code": "%s", "message": $context.error.messageString}}'
FIXED_SHAPE = '{"error": {"code": "%s", "message": "%s"}}'
UNAUTHORIZED_MESSAGE = (
    "Send Authorization: Bearer <token>; the token is missing, malformed, unknown, expired or revoked."
)
FORBIDDEN_MESSAGE = "The scopes of this token do not allow this route."


def api_body() -> dict[str, Any]:
    return dict(transformed()["Resources"]["ChorusApi"]["Properties"]["Body"])


# (verb, path) of the routes without token or API key, each with its reason (test_template.PUBLIC_ROUTES).
PUBLIC_OPERATIONS = {(verb, path): reason for (_, verb, path), reason in PUBLIC_ROUTES.items()}


def test_every_route_is_authorized_by_the_token_authorizer_and_needs_an_api_key() -> None:
    body = api_body()
    operations = [
        (verb, path, operation)
        for path, methods in body["paths"].items()
        for verb, operation in methods.items()
        if verb != "options"  # no CORS preflight today; one would need no token
    ]
    assert operations
    for verb, path, operation in operations:
        if (verb, path) in PUBLIC_OPERATIONS:
            # no authorizer and no API key: the link in the path is the credential
            assert operation.get("security") == [], f"{verb.upper()} {path}"
            continue
        # SAM's Auth.ApiKeyRequired: the key is the tenant's, from the authorizer (the usage plan applies)
        assert operation.get("security") == [{"TokenAuthorizer": []}, {"api_key": []}], f"{verb.upper()} {path}"
    assert set(PUBLIC_OPERATIONS) <= {(verb, path) for verb, path, _ in operations}
    assert ("get", "/services") in {(verb, path) for verb, path, _ in operations}
    assert "security" not in body  # no API-wide default that a method could silently fall back from


def test_the_token_authorizer_is_the_authorizer_function_with_a_request_payload_cached_for_a_minute() -> None:
    schemes = dict(api_body()["components"]["securitySchemes"])
    assert schemes.pop("api_key") == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    ((name, scheme),) = schemes.items()
    assert name == "TokenAuthorizer"
    assert scheme["x-amazon-apigateway-authtype"] == "custom"
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == "method.request.header.Authorization"
    assert authorizer["authorizerResultTtlInSeconds"] == 60  # a revoked token works at most this long
    assert authorizer["authorizerUri"]["Fn::Sub"][1] == {
        "__FunctionArn__": {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    }
    # API Gateway may invoke it for this API only
    (permission,) = [
        r["Properties"]
        for r in resources_of("AWS::Lambda::Permission").values()
        if r["Properties"]["FunctionName"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    ]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceArn"]["Fn::Sub"][1] == {"__ApiId__": {"Ref": "ChorusApi"}}


def test_refusals_are_401_and_403_in_the_api_error_shape() -> None:
    responses = api_body()["x-amazon-apigateway-gateway-responses"]
    unauthorized, denied = responses["UNAUTHORIZED"], responses["ACCESS_DENIED"]
    assert unauthorized["statusCode"] == "401"
    assert unauthorized["responseTemplates"] == {
        "application/json": FIXED_SHAPE % ("unauthorized", UNAUTHORIZED_MESSAGE)
    }
    assert unauthorized["responseParameters"] == {"gatewayresponse.header.WWW-Authenticate": "'Bearer'"}
    assert denied["statusCode"] == "403"
    assert denied["responseTemplates"] == {"application/json": FIXED_SHAPE % ("forbidden", FORBIDDEN_MESSAGE)}
    # An authorizer that fails (not a refusal) is a 500 in the same shape, with a message of ours
    failure = json.loads(responses["AUTHORIZER_FAILURE"]["responseTemplates"]["application/json"])
    assert responses["AUTHORIZER_FAILURE"]["statusCode"] == "500"
    assert failure["error"]["code"] == "authorizer_failure" and failure["error"]["message"]
    for family in ("DEFAULT_4XX", "DEFAULT_5XX"):
        assert responses[family]["responseTemplates"] == {
            "application/json": ERROR_SHAPE % "$context.error.responseType"
        }


def test_the_scopes_cover_every_route_and_admin_every_method() -> None:
    from chorus.domain.authorize import ADMIN_ONLY_ROUTES, SCOPE_ROUTES
    from chorus.model.tenancy import Scope

    # Given the API's routes as policy resources (an {id} is any one segment, written *), but the
    # public ones, which the authorizer never sees (PUBLIC_OPERATIONS)
    routes = {
        f"{verb.upper()}/" + re.sub(r"\{[^}]+\}", "*", path.lstrip("/"))
        for path, methods in api_body()["paths"].items()
        for verb in methods
        if verb != "options" and (verb, path) not in PUBLIC_OPERATIONS
    }
    # Then create and read together allow exactly those routes but the admin-only ones, each route once
    scoped = [route for scope in (Scope.CREATE, Scope.READ) for route in SCOPE_ROUTES[scope]]
    assert sorted([*scoped, *ADMIN_ONLY_ROUTES]) == sorted(routes)
    # And a token without admin reaches no admin-only route, though IAM's `*` matches `/` (an explicit Deny)
    from chorus.domain.authorize import policy
    from chorus.model.tenancy import Token
    from chorus_local.api_gateway import evaluate_policy

    base = "arn:aws:execute-api:us-east-1:123456789012:api1/v1/"
    reader = Token.model_validate(
        {"tokenId": "a1b2c3d4e5f6", "tenant": "acme", "scopes": ["predictions:create", "predictions:read"],
         "secretHash": "0" * 64, "createdAt": "2026-12-08T00:00:00Z", "createdBy": "test"}
    )  # fmt: skip
    document = policy(reader, base + "GET/services")["policyDocument"]
    for route in ADMIN_ONLY_ROUTES:
        assert evaluate_policy(document, base + route.replace("*", "digits-svm")) == "Deny", route
    for route in scoped:
        assert evaluate_policy(document, base + route.replace("*", "digits-svm")) == "Allow", route
    assert SCOPE_ROUTES[Scope.ADMIN] == ("*/*",)
    assert set(SCOPE_ROUTES) == set(Scope)


def test_api_access_logs_carry_the_tenant_and_token_id() -> None:
    # The audit trail of who called: every access log line names the tenant and the token (never the token itself)
    stage = next(r for r in transformed()["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage")
    log_format = json.loads(stage["Properties"]["AccessLogSetting"]["Format"])
    assert log_format["tenant"] == "$context.authorizer.tenant"
    assert log_format["tokenId"] == "$context.authorizer.tokenId"


# --- limits ---------------------------------------------------------------------------------------

THROTTLED_MESSAGE = (
    "Too many requests: the tenant's rate limit (or the API's) is exceeded; retry after Retry-After seconds."
)


def test_api_keys_come_from_the_authorizer_so_no_client_sends_one() -> None:
    api = transformed()["Resources"]["ChorusApi"]["Properties"]
    assert api["ApiKeySourceType"] == "AUTHORIZER"  # SAM writes it on the RestApi, not in the body
    assert "x-amazon-apigateway-api-key-source" not in api["Body"]


def test_over_a_limit_is_429_in_the_api_error_shape_with_retry_after() -> None:
    responses = api_body()["x-amazon-apigateway-gateway-responses"]
    throttled, quota = responses["THROTTLED"], responses["QUOTA_EXCEEDED"]
    assert throttled["statusCode"] == quota["statusCode"] == "429"
    assert throttled["responseTemplates"] == {"application/json": FIXED_SHAPE % ("rate_limited", THROTTLED_MESSAGE)}
    assert json.loads(quota["responseTemplates"]["application/json"])["error"]["code"] == "quota_exceeded"
    # Static seconds (API Gateway computes none): a bucket refills within a second; a day's quota is retried hourly
    assert throttled["responseParameters"] == {"gatewayresponse.header.Retry-After": "'1'"}
    assert quota["responseParameters"] == {"gatewayresponse.header.Retry-After": "'3600'"}
    # A tenant without a usage plan (no key from the authorizer) is a 403 that says what to do
    missing = json.loads(responses["API_KEY"]["responseTemplates"]["application/json"])["error"]
    assert responses["API_KEY"]["statusCode"] == "403" and missing["code"] == "forbidden"
    assert "chorus admin tenants update" in missing["message"]


def test_the_stage_throttle_stays_the_ceiling_over_every_tenant() -> None:
    stage = next(r for r in transformed()["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage")
    assert stage["Properties"]["MethodSettings"] == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        }
    ]
