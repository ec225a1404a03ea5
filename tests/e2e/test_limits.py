"""Per-tenant limits end to end, over HTTP against a running local stack: each tenant's usage plan
(made by the `chorus` CLI) applied by the local REST API as API Gateway applies it, and the bound on
concurrent `Prefer: wait` requests per tenant.

The stack of this module allows one wait per tenant (MaxWaitsPerTenant=1) and serves digits-forest
from the scripted endpoint, whose model sleeps when the input asks, so a wait can be held open.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.client import ChorusClient, digit_pixels
from tests.e2e.conftest import RunningStack
from tests.e2e.test_tenancy import assert_error, chorus, new_token
from tests.support.aws_resources import REPO

SCRIPTED_ENDPOINTS = REPO / "tests" / "fixtures" / "endpoints_scripted.json"


@pytest.fixture(scope="module")
def limits_stack(start_stack, tmp_path_factory) -> RunningStack:
    registry = json.loads((REPO / "layers/chorus/chorus/model/services.json").read_text())
    for service in registry["services"]:
        if service["name"] == "digits-forest":
            service["endpoint"]["name"] = "scripted-forest"
    path = Path(tmp_path_factory.mktemp("registry")) / "services.json"
    path.write_text(json.dumps(registry))
    return start_stack(
        parameter_overrides={"RegistryFile": str(path), "MaxWaitsPerTenant": "1"}, extra_endpoints=SCRIPTED_ENDPOINTS
    )


def tenant(stack: RunningStack, prefix: str, *limits: str) -> tuple[str, ChorusClient]:
    """A new tenant with these `chorus admin tenants create` limit options, and a client with its token."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    assert f"created tenant {name}" in chorus(stack, "tenants", "create", name, *limits)
    return name, stack.api(new_token(stack, name))


def assert_429(response: requests.Response, code: str, retry_after: str) -> None:
    assert_error(response, 429, code)
    assert response.headers["Retry-After"] == retry_after


# --- rate, burst and quota -----------------------------------------------------------------------------


def test_a_tenant_over_2_rps_gets_429_with_retry_after_while_another_is_served(limits_stack):
    # Given a tenant limited to 2 requests per second (bursts of 2), and another with room
    _, limited = tenant(limits_stack, "slow", "--rate-limit", "2", "--burst", "2")
    _, roomy = tenant(limits_stack, "roomy", "--rate-limit", "50", "--burst", "50")
    # When both send ten requests as fast as they can, interleaved
    started = time.monotonic()
    answers = [(c.request("GET", "/services"), c) for _ in range(10) for c in (limited, roomy)]
    elapsed = time.monotonic() - started
    limited_answers = [r for r, c in answers if c is limited]
    # Then the limited tenant's burst is served and the rest is 429 rate_limited, Retry-After 1
    statuses = [r.status_code for r in limited_answers]
    assert statuses[:2] == [200, 200] and set(statuses) == {200, 429}, statuses
    assert statuses.count(200) <= 2 + 2 * elapsed + 1  # what a bucket of 2 refilled at 2/s can serve
    for response in limited_answers:
        if response.status_code == 429:
            assert_429(response, "rate_limited", "1")
    # And every request of the other tenant succeeded
    assert [r.status_code for r, c in answers if c is roomy] == [200] * 10


def test_a_tenant_over_its_daily_quota_gets_429_on_every_route(limits_stack):
    # Given a tenant allowed 3 requests a day
    _, client = tenant(limits_stack, "quota", "--daily-quota", "3", "--rate-limit", "50", "--burst", "50")
    assert [client.request("GET", path).status_code for path in ("/services", "/predictions", "/services")] == [200] * 3
    # When it sends a fourth, to any route
    over = [client.request("GET", "/services"), client.request("POST", "/predictions", json={"service": "x"})]
    # Then it is 429 quota_exceeded, Retry-After an hour (the quota resets at 00:00 UTC)
    for response in over:
        assert_429(response, "quota_exceeded", "3600")
        assert "00:00 UTC" in response.json()["error"]["message"]


def test_make_local_has_room_and_a_tenant_made_without_limits_gets_the_defaults(limits_stack):
    name, client = tenant(limits_stack, "plain")
    listed = {t["tenant"]: t["limits"] for t in json.loads(chorus(limits_stack, "tenants", "list", "--json"))}
    assert listed["local"] == {"rateLimit": 1000, "burstLimit": 2000, "dailyQuota": None}
    assert listed[name] == {"rateLimit": 10, "burstLimit": 20, "dailyQuota": None}
    assert client.request("GET", "/services").status_code == 200


# --- Prefer: wait, bounded per tenant -------------------------------------------------------------------


def lease_holders(stack: RunningStack, name: str) -> dict[str, Any]:
    item = stack.client("dynamodb").get_item(
        TableName=stack.resources["TenantsTable"], Key={"tenant": {"S": f"{name}#waits"}}, ConsistentRead=True
    )
    return dict(item.get("Item", {}).get("holders", {}).get("M", {}))


def test_a_wait_beyond_the_tenants_bound_answers_202_at_once(limits_stack):
    # Given a tenant whose one wait slot is held by a request waiting for a model that sleeps 4 s
    name, client = tenant(limits_stack, "waits", "--rate-limit", "50", "--burst", "50")
    pixels, label = digit_pixels()
    slow = {"service": "digits-forest", "input": {"pixels": pixels, "sleep": {"forest": 4}}}
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(client.submit, slow, {"Prefer": "wait=20"})
        deadline = time.monotonic() + 15
        while not lease_holders(limits_stack, name):
            assert time.monotonic() < deadline and not held.done(), "the first wait never took its slot"
            time.sleep(0.1)
        # When a second request of the tenant asks to wait too
        started = time.monotonic()
        second = client.submit({"service": "digits-forest", "input": {"pixels": pixels}}, {"Prefer": "wait=20"})
        took = time.monotonic() - started
        # Then it is answered at once, 202 and unfinished, with no Preference-Applied
        assert second.status_code == 202 and took < 3, (second.status_code, took)
        assert "Preference-Applied" not in second.headers
        assert second.json()["status"] not in {"succeeded", "failed"}
        # And the first one waited for its result, and says so
        first = held.result(timeout=30)
    assert first.status_code == 200 and first.headers["Preference-Applied"] == "wait=20"
    assert first.json()["status"] == "succeeded"
    # And its slot is given back: the next wait is applied
    assert not lease_holders(limits_stack, name)
    again = client.submit({"service": "digits-forest", "input": {"pixels": pixels}}, {"Prefer": "wait=20"})
    assert again.status_code == 200 and again.headers["Preference-Applied"] == "wait=20"
    assert client.download(again.json())["label"] == label
