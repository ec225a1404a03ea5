"""Lambda authorizers on the local REST API, from the template's `Auth` as SAM generates it.

The API of authorizer_app/template.yaml is provisioned on the package's running stack and served
in-process (werkzeug's test client), with the stack's Lambda runtime counting invocations.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from chorus_local import api_gateway, tenancy
from chorus_local.api_gateway import RestApi
from chorus_local.cloudformation import Provisioner
from chorus_local.lambda_runtime import InvocationResult, LambdaRuntime
from chorus_local.usage_plans import UsagePlans

APP = Path(__file__).parent / "authorizer_app" / "template.yaml"
STACK = "authz"
AUTHORIZER, ECHO = f"{STACK}-authorizer", f"{STACK}-echo"


class CountingRuntime:
    """The stack's Lambda runtime, counting invocations per function."""

    def __init__(self, runtime: LambdaRuntime) -> None:
        self.runtime = runtime
        self.calls: Counter[str] = Counter()

    def invoke(self, function: str, payload: bytes) -> InvocationResult:
        self.calls[function] += 1
        return self.runtime.invoke(function, payload)


@pytest.fixture(scope="module")
def served(local_stack: Any) -> Iterator[tuple[RestApi, CountingRuntime]]:
    provisioned = Provisioner(APP, local_stack.endpoint, stack_name=STACK).provision()
    assert provisioned.api is not None
    for function in provisioned.functions:
        local_stack.runtime.register(function)
    runtime = CountingRuntime(local_stack.runtime)
    rest = RestApi(provisioned.api, runtime)  # type: ignore[arg-type]
    try:
        yield rest, runtime
    finally:
        rest.close()


@pytest.fixture
def api(served: tuple[RestApi, CountingRuntime]) -> Iterator[tuple[Client, CountingRuntime]]:
    rest, runtime = served
    rest._auth_cache.clear()
    runtime.calls.clear()
    yield Client(rest), runtime


def get(client: Client, path: str, token: str | None = None, method: str = "GET") -> TestResponse:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.open(path, method=method, headers=headers)


def test_the_template_authorizer_guards_every_route_but_the_one_without(served):
    rest, _ = served
    routes = {(r.method, r.path): r.authorizer for r in rest.config.routes}
    assert routes[("GET", "/open")] is None
    guarded = [a for key, a in routes.items() if key != ("GET", "/open")]
    assert len(guarded) == 3
    for authorizer in guarded:
        assert authorizer is not None
        assert (authorizer.type, authorizer.function) == ("REQUEST", AUTHORIZER)
        assert authorizer.identity_sources == (("header", "Authorization"),)
        assert authorizer.ttl_seconds == 60


def test_no_identity_header_is_a_401_without_invoking_the_authorizer(api):
    client, runtime = api
    response = get(client, "/v1/items")
    assert response.status_code == 401
    assert response.json == {"error": {"code": "unauthorized", "message": "Unauthorized"}}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["x-amzn-ErrorType"] == "UnauthorizedException"
    assert runtime.calls[AUTHORIZER] == runtime.calls[ECHO] == 0


def test_an_unauthorized_error_is_a_401_and_is_not_cached(api):
    client, runtime = api
    for _ in range(2):
        response = get(client, "/v1/items", "wrong")
        assert response.status_code == 401
        assert response.json == {"error": {"code": "unauthorized", "message": "Unauthorized"}}
    assert runtime.calls[AUTHORIZER] == 2 and runtime.calls[ECHO] == 0


@pytest.mark.parametrize("token", ["boom", "malformed"])
def test_any_other_authorizer_error_or_a_malformed_result_is_a_500(api, token):
    client, runtime = api
    response = get(client, "/v1/items", token)
    assert response.status_code == 500
    assert response.json["error"]["code"] == "AUTHORIZER_FAILURE"
    assert response.headers["x-amzn-ErrorType"] == "AuthorizerConfigurationException"
    assert runtime.calls[ECHO] == 0


def test_an_allowed_request_reaches_the_function_with_the_authorizer_context(api):
    client, runtime = api
    response = get(client, "/v1/items/42?x=1", "read")
    assert response.status_code == 200
    authorizer = json.loads(response.get_data())["requestContext"]["authorizer"]
    # principalId and the context (strings, as API Gateway passes them), and what the authorizer got
    assert authorizer["principalId"] == "user-read"
    assert (authorizer["tenant"], authorizer["n"], authorizer["flag"]) == ("t1", "7", "true")
    assert authorizer["type"] == "REQUEST" and authorizer["resource"] == "/items/{id}"
    assert (
        authorizer["methodArn"] == f"arn:aws:execute-api:us-east-1:123456789012:{served_api_id(client)}/v1/GET/items/42"
    )
    assert isinstance(authorizer["integrationLatency"], int)
    assert runtime.calls[AUTHORIZER] == runtime.calls[ECHO] == 1


def served_api_id(client: Client) -> str:
    return str(client.application.config.api_id)  # type: ignore[attr-defined]


def test_a_route_the_policy_does_not_allow_is_a_403(api):
    client, runtime = api
    response = get(client, "/v1/items", "read", method="POST")
    assert response.status_code == 403
    assert response.json == {
        "error": {"code": "forbidden", "message": "User is not authorized to access this resource"}
    }
    assert response.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert runtime.calls[ECHO] == 0


def test_an_explicit_deny_wins_over_an_allow(api):
    client, _ = api
    assert get(client, "/v1/items/public", "all-but-secret").status_code == 200
    denied = get(client, "/v1/items/secret", "all-but-secret")
    assert denied.status_code == 403
    assert denied.json["error"]["message"] == "User is not authorized to access this resource with an explicit deny"


def test_the_result_is_cached_per_token_for_the_ttl_and_evaluated_per_route(api, monkeypatch):
    client, runtime = api
    # Given a first request that invoked the authorizer
    first = json.loads(get(client, "/v1/items/1", "read").get_data())["requestContext"]["authorizer"]
    # When the same token calls other routes within the TTL
    second = json.loads(get(client, "/v1/items", "read").get_data())["requestContext"]["authorizer"]
    refused = get(client, "/v1/items", "read", method="POST")
    # Then the cached result answers (same invocation), evaluated against each route
    assert second["invocation"] == first["invocation"]
    assert second["integrationLatency"] == 0
    assert refused.status_code == 403
    assert runtime.calls[AUTHORIZER] == 1
    # And another token is authorized on its own
    assert get(client, "/v1/items/1", "all-but-secret").status_code == 200
    assert runtime.calls[AUTHORIZER] == 2
    # And once the TTL has passed, the authorizer runs again
    now = api_gateway.time.monotonic()
    monkeypatch.setattr(api_gateway.time, "monotonic", lambda: now + 61)
    third = json.loads(get(client, "/v1/items/1", "read").get_data())["requestContext"]["authorizer"]
    assert third["invocation"] != first["invocation"]
    assert runtime.calls[AUTHORIZER] == 3


def test_a_route_without_authorizer_needs_no_token(api):
    client, runtime = api
    response = get(client, "/v1/open")
    assert response.status_code == 200
    assert "authorizer" not in json.loads(response.get_data())["requestContext"]
    assert runtime.calls[AUTHORIZER] == 0


# --- Chorus's own authorizer, from template.yaml, with the local tenant's token ------------------

LOCAL_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
def chorus_api(local_stack: Any) -> Iterator[tuple[Client, str, Any]]:
    from tests.integration.local.support import REPO_ROOT

    provisioned = Provisioner(
        REPO_ROOT / "template.yaml",
        local_stack.endpoint,
        parameter_overrides={"Stage": "authz"},
        stack_name="chorus-authz",
    ).provision()
    assert provisioned.api is not None
    for function in provisioned.functions:
        local_stack.runtime.register(function)
    token = tenancy.create_local_token(
        REPO_ROOT,
        local_stack.endpoint.url,
        local_stack.endpoint.region,
        str(provisioned.ref("TenantsTable")),
        str(provisioned.ref("TokensTable")),
        str(provisioned.ref("AuditTable")),
        LOCAL_SECRET,
        api_stage=(provisioned.api.api_id, provisioned.api.stage),
    )
    usage_plans = UsagePlans(local_stack.endpoint.client("apigateway"), provisioned.api.api_id, provisioned.api.stage)
    rest = RestApi(provisioned.api, local_stack.runtime, usage_plans)
    try:
        yield Client(rest), token, provisioned
    finally:
        rest.close()


def test_the_chorus_authorizer_admits_the_local_token_and_refuses_anything_else(chorus_api, aws):
    client, token, provisioned = chorus_api
    assert re.fullmatch(r"chr_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", token)
    assert get(client, "/v1/services").status_code == 401
    refused = get(client, "/v1/services", token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert refused.status_code == 401
    assert refused.json["error"]["code"] == "unauthorized"
    assert "Authorization: Bearer" in refused.json["error"]["message"]
    response = get(client, "/v1/services", token)
    assert response.status_code == 200 and response.json["services"]
    # The token is stored as a hash for tenant local with every scope, and its use recorded
    item = aws("dynamodb").get_item(
        TableName=provisioned.ref("TokensTable"), Key={"tokenId": {"S": token.split("_")[1]}}
    )["Item"]
    assert item["tenant"] == {"S": "local"}
    assert {s["S"] for s in item["scopes"]["L"]} == {"admin", "predictions:create", "predictions:read"}
    assert token.rsplit("_", 1)[1] not in json.dumps(item)
    assert "lastUsedAt" in item
    # And tenant local signs webhooks with the stack's secret and may e-mail example.com
    tenant = aws("dynamodb").get_item(TableName=provisioned.ref("TenantsTable"), Key={"tenant": {"S": "local"}})["Item"]
    assert tenant["webhookSecret"] == {"S": LOCAL_SECRET}
    assert tenant["emailRecipients"] == {"L": [{"S": "@example.com"}]}
    # And tenant local has a generous usage plan on this API's stage, named by its token
    limits = {name: value.get("N") for name, value in tenant["limits"]["M"].items()}
    assert float(limits["rateLimit"]) == 1000 and int(limits["burstLimit"]) == 2000 and not limits.get("dailyQuota")
    assert item["usageKey"] == tenant["apiKey"]
    plan = aws("apigateway").get_usage_plan(usagePlanId=tenant["usagePlanId"]["S"])
    assert plan["apiStages"] == [{"apiId": provisioned.api.api_id, "stage": "v1"}]
    # And GET /webhooks/secret gives it to the tenant's token
    response = get(client, "/v1/webhooks/secret", token)
    assert response.status_code == 200 and response.json == {"key": LOCAL_SECRET}


def test_a_given_token_is_used_and_a_malformed_one_fails_naming_the_format(chorus_api, local_stack):
    from tests.integration.local.support import REPO_ROOT

    _, _, provisioned = chorus_api
    tables = (
        str(provisioned.ref("TenantsTable")),
        str(provisioned.ref("TokensTable")),
        str(provisioned.ref("AuditTable")),
        LOCAL_SECRET,
    )
    url, region = local_stack.endpoint.url, local_stack.endpoint.region
    stage = (provisioned.api.api_id, provisioned.api.stage)
    mine = "chr_0123456789ab_" + "x" * 43
    assert tenancy.create_local_token(REPO_ROOT, url, region, *tables, token=mine, api_stage=stage) == mine
    with pytest.raises(tenancy.ApiTokenError, match=r"CHORUS_API_TOKEN .*chr_<12 hex characters>_<43"):
        tenancy.create_local_token(REPO_ROOT, url, region, *tables, token="secret", api_stage=stage)
