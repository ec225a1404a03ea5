"""Usage plans on the local REST API, as API Gateway applies them to methods that require an API key.

The API of usage_plan_app/template.yaml takes its keys from its authorizer (key source AUTHORIZER;
`Bearer key:<value>` makes the authorizer return usageIdentifierKey <value>), header.yaml's from
`x-api-key`. Keys and plans are made through the package stack's AWS endpoint with boto3, as
`chorus admin` makes them; the API is served in-process (werkzeug's test client) with a clock the
tests move, so a token bucket and a day's quota are observed without sleeping.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from chorus_local.api_gateway import RestApi
from chorus_local.cloudformation import Provisioner
from chorus_local.usage_plans import CACHE_SECONDS, UsagePlans
from tests.integration.local.test_local_authorizer import CountingRuntime

APP = Path(__file__).parent / "usage_plan_app"
STACK = "plans"
ECHO = f"{STACK}-echo"


class Clocks:
    """The monotonic clock of token buckets and caches, and the wall clock of daily quotas."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.today = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.today += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def provisioned(local_stack: Any) -> Any:
    provisioned = Provisioner(APP / "template.yaml", local_stack.endpoint, stack_name=STACK).provision()
    for function in provisioned.functions:
        local_stack.runtime.register(function)
    return provisioned


@pytest.fixture
def served(local_stack: Any, provisioned: Any) -> Iterator[tuple[Client, CountingRuntime, Clocks]]:
    clocks = Clocks()
    api = provisioned.api
    plans = UsagePlans(
        local_stack.endpoint.client("apigateway"),
        api.api_id,
        api.stage,
        clock=lambda: clocks.now,
        wall_clock=lambda: clocks.today,
    )
    runtime = CountingRuntime(local_stack.runtime)
    rest = RestApi(api, runtime, plans)  # type: ignore[arg-type]
    try:
        yield Client(rest), runtime, clocks
    finally:
        rest.close()


@pytest.fixture
def plan(local_stack: Any, provisioned: Any) -> Any:
    """make(rate, burst, quota=None, stage=this API's) → the value of a new key in a new plan."""
    apigateway = local_stack.endpoint.client("apigateway")

    def make(rate: float, burst: int, quota: int | None = None, api_stage: tuple[str, str] | None = None) -> str:
        api_id, stage = api_stage or (provisioned.api.api_id, provisioned.api.stage)
        key = apigateway.create_api_key(name=f"k-{secrets.token_hex(4)}", enabled=True, value=secrets.token_hex(20))
        quota_settings = {"quota": {"limit": quota, "period": "DAY"}} if quota else {}
        made = apigateway.create_usage_plan(
            name=f"p-{secrets.token_hex(4)}",
            apiStages=[{"apiId": api_id, "stage": stage}],
            throttle={"rateLimit": rate, "burstLimit": burst},
            **quota_settings,
        )
        apigateway.create_usage_plan_key(usagePlanId=made["id"], keyId=key["id"], keyType="API_KEY")
        make.plans[key["value"]] = (made["id"], key["id"])  # type: ignore[attr-defined]
        return str(key["value"])

    make.plans = {}  # type: ignore[attr-defined]
    make.apigateway = apigateway  # type: ignore[attr-defined]
    return make


def get(client: Client, key: str | None) -> TestResponse:
    return client.get("/v1/items", headers={"Authorization": f"Bearer key:{key}" if key else "Bearer none"})


def statuses(client: Client, key: str, count: int) -> list[int]:
    return [get(client, key).status_code for _ in range(count)]


# --- which key ---------------------------------------------------------------------------------------


def test_the_authorizers_key_in_a_plan_of_this_stage_reaches_the_function(served, plan):
    client, runtime, _ = served
    key = plan(rate=10, burst=10)
    response = get(client, key)
    assert response.status_code == 200
    identity = json.loads(response.get_data())["requestContext"]["identity"]
    assert identity["apiKey"] == key and identity["apiKeyId"] == plan.plans[key][1]
    assert runtime.calls[ECHO] == 1


@pytest.mark.parametrize("case", ["no key", "unknown key", "another stage's key"])
def test_no_key_an_unknown_one_or_one_of_another_stage_is_a_403_without_invoking(served, plan, case):
    client, runtime, _ = served
    key = {
        "no key": None,
        "unknown key": secrets.token_hex(20),
        "another stage's key": plan(rate=10, burst=10, api_stage=("someotherapi", "v1")),
    }[case]
    response = get(client, key)
    assert response.status_code == 403
    assert response.json == {"error": {"code": "forbidden", "message": "Forbidden"}}
    assert response.headers["x-amzn-ErrorType"] == "ForbiddenException"
    assert runtime.calls[ECHO] == 0


def test_a_disabled_key_is_refused_once_the_change_has_propagated(served, plan):
    client, _, clocks = served
    key = plan(rate=10, burst=10)
    assert get(client, key).status_code == 200
    plan.apigateway.update_api_key(
        apiKey=plan.plans[key][1], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
    )
    assert get(client, key).status_code == 200  # API Gateway too takes a while
    clocks.advance(CACHE_SECONDS + 1)
    assert get(client, key).status_code == 403


# --- rate and burst ------------------------------------------------------------------------------------


def test_a_burst_above_the_bucket_is_throttled_with_retry_after_and_refills_at_the_rate(served, plan):
    client, runtime, clocks = served
    # Given a key allowed 2 requests per second, bursts of 2
    key = plan(rate=2, burst=2)
    # When it sends 4 at once
    assert statuses(client, key, 2) == [200, 200]
    throttled = get(client, key)
    # Then the third is THROTTLED in the API's shape, with the template's Retry-After, never invoking
    assert throttled.status_code == 429
    assert throttled.json == {"error": {"code": "rate_limited", "message": "Too Many Requests"}}
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert runtime.calls[ECHO] == 2
    # And half a second refills one request, a second two, never more than the burst
    clocks.advance(0.5)
    assert statuses(client, key, 2) == [200, 429]
    clocks.advance(10)
    assert statuses(client, key, 3) == [200, 200, 429]


def test_one_key_over_its_rate_does_not_slow_another(served, plan):
    client, _, _ = served
    slow, other = plan(rate=1, burst=1), plan(rate=100, burst=100)
    assert statuses(client, slow, 3) == [200, 429, 429]
    assert statuses(client, other, 20) == [200] * 20
    assert get(client, slow).status_code == 429


def test_changed_limits_apply_after_the_cache(served, plan):
    client, _, clocks = served
    key = plan(rate=1, burst=1)
    assert statuses(client, key, 2) == [200, 429]
    plan.apigateway.update_usage_plan(
        usagePlanId=plan.plans[key][0],
        patchOperations=[
            {"op": "replace", "path": "/throttle/rateLimit", "value": "5"},
            {"op": "replace", "path": "/throttle/burstLimit", "value": "5"},
        ],
    )
    clocks.advance(CACHE_SECONDS + 1)  # a bucket idle that long holds the whole new burst
    assert statuses(client, key, 5) == [200] * 5


# --- daily quota ---------------------------------------------------------------------------------------


def test_over_the_daily_quota_is_429_until_the_next_utc_day(served, plan):
    client, runtime, clocks = served
    # Given a key with a quota of 3 a day
    key = plan(rate=100, burst=100, quota=3)
    assert statuses(client, key, 3) == [200, 200, 200]
    # When it sends a fourth
    over = get(client, key)
    # Then it is QUOTA_EXCEEDED, in the API's shape with the template's Retry-After
    assert over.status_code == 429
    assert over.json == {"error": {"code": "quota_exceeded", "message": "Limit Exceeded"}}
    assert over.headers["Retry-After"] == "3600"
    assert over.headers["x-amzn-ErrorType"] == "LimitExceededException"
    assert runtime.calls[ECHO] == 3
    # And the quota holds through the day, then resets at 00:00 UTC
    clocks.advance(11 * 3600)  # 23:00
    assert get(client, key).status_code == 429
    clocks.advance(3600)  # 00:00 the next day
    assert statuses(client, key, 4) == [200, 200, 200, 429]


def test_a_throttled_request_uses_no_quota(served, plan):
    client, _, clocks = served
    key = plan(rate=1, burst=1, quota=2)
    assert statuses(client, key, 3) == [200, 429, 429]
    clocks.advance(1)
    assert statuses(client, key, 1) == [200]
    clocks.advance(1)
    assert get(client, key).json["error"]["code"] == "quota_exceeded"


# --- key source HEADER ---------------------------------------------------------------------------------


def test_with_key_source_header_the_client_sends_the_key(local_stack, plan):
    provisioned = Provisioner(APP / "header.yaml", local_stack.endpoint, stack_name="hdr").provision()
    for function in provisioned.functions:
        local_stack.runtime.register(function)
    api = provisioned.api
    assert api.api_key_source == "HEADER" and api.routes[0].api_key_required
    rest = RestApi(api, local_stack.runtime, UsagePlans(local_stack.endpoint.client("apigateway"), api.api_id, "v1"))
    try:
        client = Client(rest)
        key = plan(rate=10, burst=10, api_stage=(api.api_id, "v1"))
        assert client.get("/v1/items", headers={"x-api-key": key}).status_code == 200
        assert client.get("/v1/items").status_code == 403
    finally:
        rest.close()


def test_an_api_that_requires_keys_cannot_be_served_without_usage_plans(provisioned, local_stack):
    with pytest.raises(ValueError, match="require an API key"):
        RestApi(provisioned.api, local_stack.runtime)
