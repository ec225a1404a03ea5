"""Per-tenant limits against moto: each tenant's API Gateway usage plan and API key (made, changed
and cleaned up by the tenants adapter), the key on every token and in the authorizer's answer, and
the `Prefer: wait` slots of the tenants table."""

from __future__ import annotations

import time

import boto3
import pytest

from chorus.adapters import audit, tenants, tokens, waits
from chorus.core import clients, settings
from chorus.domain import authorize, cancel, queries
from chorus.model.tenancy import DEFAULT_BURST_LIMIT, DEFAULT_RATE_LIMIT, Limits, Scope
from tests.support.aws_resources import REST_API_ID, TENANT, caller

METHOD_ARN = f"arn:aws:execute-api:us-east-1:123456789012:{REST_API_ID}/v1/GET/services"


def apigateway():
    return boto3.client("apigateway")


def plan_of(tenant: tenants.Tenant) -> dict:
    assert tenant.usage_plan_id
    return apigateway().get_usage_plan(usagePlanId=tenant.usage_plan_id)


# --- usage plans ---------------------------------------------------------------------------------------


def test_a_new_tenant_gets_a_usage_plan_of_its_own_with_one_key_on_the_api_stage(aws):
    # When a tenant is created with limits
    tenant = tenants.create_tenant("initech", "alice", limits=Limits(rate_limit=2, burst_limit=3, daily_quota=500))
    # Then its plan throttles and caps it on the stack's REST API stage
    plan = plan_of(tenant)
    assert plan["apiStages"] == [{"apiId": REST_API_ID, "stage": "v1"}]
    assert plan["throttle"] == {"rateLimit": 2.0, "burstLimit": 3}
    assert plan["quota"] == {"limit": 500, "period": "DAY"}
    # And its one key, enabled, is in that plan; the record keeps the ids and the key's value
    (plan_key,) = apigateway().get_usage_plan_keys(usagePlanId=tenant.usage_plan_id)["items"]
    key = apigateway().get_api_key(apiKey=tenant.api_key_id, includeValue=True)
    assert plan_key["id"] == key["id"] == tenant.api_key_id and key["enabled"]
    assert key["value"] == tenant.api_key and len(key["value"]) == 40 and key["value"].isalnum()
    stored = tenants.require_tenant("initech")
    assert (stored.limits, stored.usage_plan_id, stored.api_key) == (tenant.limits, tenant.usage_plan_id, key["value"])
    # And the audit trail records the limits, never the key
    (created,) = audit.list_events("initech")
    assert created.details.items() >= {"rateLimit": "2", "burstLimit": "3", "dailyQuota": "500"}.items()
    assert key["value"] not in str(created.details)


def test_without_limits_a_tenant_gets_the_defaults_and_no_quota(aws):
    tenant = tenants.create_tenant("initech", "alice")
    assert tenant.limits == Limits(rate_limit=DEFAULT_RATE_LIMIT, burst_limit=DEFAULT_BURST_LIMIT)
    plan = plan_of(tenant)
    assert plan["throttle"] == {"rateLimit": 10.0, "burstLimit": 20} and "quota" not in plan
    # And the key stays out of what an administrator lists
    assert "apiKey" not in tenant.public() and tenant.api_key not in repr(tenant)


def test_an_existing_tenant_makes_no_second_plan(aws):
    plans, keys = len(apigateway().get_usage_plans()["items"]), len(apigateway().get_api_keys()["items"])
    with pytest.raises(tenants.TenantExists):
        tenants.create_tenant(TENANT, "alice")
    assert len(apigateway().get_usage_plans()["items"]) == plans == 2  # the two seeded tenants'
    assert len(apigateway().get_api_keys()["items"]) == keys == 2


def test_updating_limits_changes_the_plan_and_keeps_what_was_not_given(aws):
    tenants.create_tenant("initech", "alice", limits=Limits(rate_limit=5, burst_limit=10))
    # When the rate changes, and then a quota is added
    # (a whole rate: moto's UpdateUsagePlan parses rateLimit as an integer, API Gateway takes 2.5 too)
    tenants.update_tenant("initech", "bob", rate_limit=2)
    updated = tenants.update_tenant("initech", "bob", daily_quota=100)
    # Then the plan has both, the burst untouched, and so has the record
    assert updated.limits == Limits(rate_limit=2, burst_limit=10, daily_quota=100)
    plan = plan_of(updated)
    assert plan["throttle"] == {"rateLimit": 2.0, "burstLimit": 10}
    assert plan["quota"] == {"limit": 100, "period": "DAY"}
    assert audit.list_events("initech")[-1].details == {"rateLimit": "2", "burstLimit": "10", "dailyQuota": "100"}
    # And a quota of 0 removes the quota
    cleared = tenants.update_tenant("initech", "bob", daily_quota=0)
    assert cleared.limits is not None and cleared.limits.daily_quota is None
    assert "quota" not in plan_of(cleared)


def test_limits_out_of_bounds_are_refused_before_any_change(aws):
    tenant = tenants.create_tenant("initech", "alice")
    with pytest.raises(tenants.InvalidTenantSettings, match="limits"):
        tenants.update_tenant("initech", "bob", burst_limit=0)
    assert plan_of(tenant)["throttle"] == {"rateLimit": 10.0, "burstLimit": 20}


def test_a_tenant_made_before_limits_gets_a_plan_when_they_are_set_and_its_tokens_its_key(aws):
    # Given a tenant record without a plan (as made before usage plans), with a token
    boto3.client("dynamodb").put_item(
        TableName=settings.load(settings.TenantsSettings).tenants_table,
        Item={"tenant": {"S": "legacy"}, "createdAt": {"S": "2026-01-01T00:00:00.000Z"}, "createdBy": {"S": "x"}},
    )
    token, _ = tokens.create_token("legacy", [Scope.READ], "alice")
    assert token.usage_key is None
    assert "usageIdentifierKey" not in authorize.policy(token, METHOD_ARN)  # API Gateway's 403 (API_KEY)
    # When an administrator sets its limits
    tenant = tenants.update_tenant("legacy", "bob", rate_limit=3)
    # Then it has a plan with them (and the default burst), and its tokens get the key
    assert plan_of(tenant)["throttle"] == {"rateLimit": 3.0, "burstLimit": 20}
    assert tokens.stamp_usage_key(tenant) == 1
    assert tokens.stamp_usage_key(tenant) == 0
    stamped = tokens.find_token(token.token_id)
    assert stamped is not None and stamped.usage_key == tenant.api_key


def test_a_token_carries_its_tenants_key_and_the_authorizer_returns_it(aws):
    tenant = tenants.require_tenant(TENANT)
    token, _ = tokens.create_token(TENANT, [Scope.READ], "alice")
    assert token.usage_key == tenant.api_key and token.usage_key
    result = authorize.policy(token, METHOD_ARN)
    assert result["usageIdentifierKey"] == tenant.api_key
    assert tenant.api_key not in str(result["context"])  # the function's event never carries it


def test_the_listing_leaves_out_the_wait_lease_items(aws):
    assert waits.claim_slot(TENANT, "h1", lapses_at=time.time() + 30, now=time.time(), limit=1)
    assert [t.tenant for t in tenants.list_tenants()] == ["acme", "globex"]


# --- wait slots ----------------------------------------------------------------------------------------

NOW = 1_800_000_000.0


def test_wait_slots_are_bounded_per_tenant_and_given_back(aws):
    claim = lambda holder, tenant=TENANT: waits.claim_slot(tenant, holder, lapses_at=NOW + 30, now=NOW, limit=2)  # noqa: E731
    # Given two holders of a tenant's two slots
    assert claim("a") and claim("b")
    # Then a third is refused, while another tenant still has its own
    assert not claim("c")
    assert claim("x", "globex")
    # And a slot given back is free again
    waits.release_slot(TENANT, "a")
    assert claim("c")
    assert not claim("d")


def test_a_holder_that_never_gave_its_slot_back_lapses(aws):
    # Given both slots held by waiters that crashed (their leases lapse at NOW + 30)
    assert waits.claim_slot(TENANT, "a", lapses_at=NOW + 30, now=NOW, limit=2)
    assert waits.claim_slot(TENANT, "b", lapses_at=NOW + 30, now=NOW, limit=2)
    assert not waits.claim_slot(TENANT, "c", lapses_at=NOW + 59, now=NOW + 29, limit=2)
    # When a request comes after they lapsed
    later = NOW + 31
    assert waits.claim_slot(TENANT, "c", lapses_at=later + 30, now=later, limit=2)
    # Then they are gone, and a late release of theirs frees nothing it does not hold
    waits.release_slot(TENANT, "a")
    assert waits.claim_slot(TENANT, "d", lapses_at=later + 30, now=later, limit=2)
    assert not waits.claim_slot(TENANT, "e", lapses_at=later + 30, now=later, limit=2)


def test_no_slots_means_no_waiting(aws):
    assert not waits.claim_slot(TENANT, "a", lapses_at=NOW + 30, now=NOW, limit=0)


def test_a_change_between_reading_and_rewriting_the_slots_is_a_refusal_not_a_resurrection(aws):
    # Given two lapsed holders, and a third request that will drop them and rewrite the map
    assert waits.claim_slot(TENANT, "a", lapses_at=NOW + 30, now=NOW, limit=2)
    assert waits.claim_slot(TENANT, "b", lapses_at=NOW + 30, now=NOW, limit=2)
    table = settings.load(settings.TenantsSettings).tenants_table
    other = boto3.client("dynamodb")  # another Lambda instance
    updates: list[str] = []

    def meanwhile(params, **_):
        updates.append(params["UpdateExpression"])
        if params["UpdateExpression"].startswith("SET holders ="):  # the rewrite, after its read
            waits_item = {"tenant": {"S": TENANT + waits.LEASE_SUFFIX}}
            other.update_item(
                TableName=table,
                Key=waits_item,
                UpdateExpression="REMOVE holders.#h ADD version :one",
                ExpressionAttributeNames={"#h": "a"},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    clients.client("dynamodb").meta.events.register("provide-client-params.dynamodb.UpdateItem", meanwhile)
    # When holder `a` gives its slot back while the third request rewrites
    got = waits.claim_slot(TENANT, "c", lapses_at=NOW + 61, now=NOW + 31, limit=2)
    # Then the rewrite's condition fails: the request is refused (it answers at once) and `a` stays gone
    assert not got and len(updates) == 2
    item = other.get_item(TableName=table, Key={"tenant": {"S": TENANT + waits.LEASE_SUFFIX}})["Item"]
    assert set(item["holders"]["M"]) == {"b"}


def test_a_wait_without_a_free_slot_answers_at_once(aws, monkeypatch):
    # Given a tenant allowed one wait, holding it
    monkeypatch.setenv("MAX_WAITS_PER_TENANT", "1")
    settings.load.cache_clear()
    from chorus.api.models import PredictionRequest
    from chorus.domain import submit

    view = submit.submit(PredictionRequest.model_validate({"service": "digits-forest"}), caller())
    assert waits.claim_slot(TENANT, "busy", lapses_at=time.time() + 60, now=time.time(), limit=1)
    # When another request would wait up to 5 s
    started = time.monotonic()
    answer, waited = queries.wait_for_result(caller(), view["id"], 5, fallback=view)
    # Then it answers at once, unwaited
    assert not waited and answer is view and time.monotonic() - started < 1
    # And once the slot is free, it waits (here for a prediction that is already finished) and gives it back
    waits.release_slot(TENANT, "busy")
    cancel.cancel(caller(), view["id"])
    answer, waited = queries.wait_for_result(caller(), view["id"], 5, fallback=view)
    assert waited and answer["status"] == "canceled"
    assert waits.claim_slot(TENANT, "next", lapses_at=time.time() + 60, now=time.time(), limit=1)
