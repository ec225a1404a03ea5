"""API Gateway usage plans: each tenant's rate, burst and daily quota, enforced by API Gateway.

A tenant has one usage plan of its own on the stack's REST API stage (UsagePlanSettings) and one
API key in it. The REST API takes its keys from the authorizer (`ApiKeySourceType: AUTHORIZER`):
the authorizer returns the key's value as `usageIdentifierKey`, so no client ever sends or sees an
API key, and the value is no credential (a client's `x-api-key` header is ignored). Throttling
(`rateLimit` requests per second, `burstLimit` above it) and the quota (`limit` requests per UTC day,
period `DAY`) apply per key, that is per tenant; over them API Gateway answers 429 itself
(THROTTLED, QUOTA_EXCEEDED) before any function runs.

Names: `chorus-<api id>-<tenant>` for both the plan and the key, tagged `chorus:tenant`.
"""

from __future__ import annotations

import secrets
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from chorus.core import settings
from chorus.core.clients import client
from chorus.core.observability import logger
from chorus.model.tenancy import Limits

QUOTA_PERIOD = "DAY"
TENANT_TAG = "chorus:tenant"
KEY_BYTES = 20  # 40 hex characters: API key values are 20-128 alphanumeric characters


class UsagePlan(BaseModel):
    """A tenant's plan, its API key, and the key's value (the authorizer's usage identifier)."""

    model_config = ConfigDict(frozen=True)

    plan_id: str
    key_id: str
    key_value: str


def _number(value: float) -> str:
    """A limit as a patch value: `2`, not `2.0` (the service parses it as a number)."""
    return f"{value:g}"


def _quota(limits: Limits) -> dict[str, Any]:
    return {"quota": {"limit": limits.daily_quota, "period": QUOTA_PERIOD}} if limits.daily_quota else {}


def create_plan(tenant: str, limits: Limits) -> UsagePlan:
    """A new usage plan with these limits on the stack's stage, and a new API key in it. Nothing
    is left behind when a step fails."""
    stage = settings.load(settings.UsagePlanSettings)
    apigateway = client("apigateway")
    name = f"chorus-{stage.rest_api_id}-{tenant}"
    tags = {TENANT_TAG: tenant}
    key = apigateway.create_api_key(
        name=name,
        description=f"Usage identifier of Chorus tenant {tenant} (returned by the authorizer; never sent by a client)",
        enabled=True,
        value=secrets.token_hex(KEY_BYTES),
        tags=tags,
    )
    plan_id = ""
    try:
        plan_id = apigateway.create_usage_plan(
            name=name,
            description=f"Limits of Chorus tenant {tenant}",
            apiStages=[{"apiId": stage.rest_api_id, "stage": stage.api_stage}],
            throttle={"rateLimit": limits.rate_limit, "burstLimit": limits.burst_limit},
            tags=tags,
            **_quota(limits),
        )["id"]
        apigateway.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY")
    except BaseException:
        try:
            delete_plan(plan_id, key["id"])
        except ClientError:
            logger.warning("a half-made usage plan was left behind", extra={"plan": plan_id, "key": key["id"]})
        raise
    return UsagePlan(plan_id=plan_id, key_id=key["id"], key_value=key["value"])


def update_limits(plan_id: str, limits: Limits, previous: Limits | None) -> None:
    """Set a plan's throttle and quota (API Gateway applies a change within seconds, not at once)."""
    operations = [
        {"op": "replace", "path": "/throttle/rateLimit", "value": _number(limits.rate_limit)},
        {"op": "replace", "path": "/throttle/burstLimit", "value": str(limits.burst_limit)},
    ]
    if limits.daily_quota:
        operations += [
            {"op": "replace", "path": "/quota/limit", "value": str(limits.daily_quota)},
            {"op": "replace", "path": "/quota/period", "value": QUOTA_PERIOD},
        ]
    elif previous is None or previous.daily_quota:
        operations.append({"op": "remove", "path": "/quota"})
    client("apigateway").update_usage_plan(usagePlanId=plan_id, patchOperations=operations)


def delete_plan(plan_id: str, key_id: str) -> None:
    """Remove a plan and its key (either may be empty, or gone already)."""
    if plan_id:
        _unless_gone("delete_usage_plan_key", usagePlanId=plan_id, keyId=key_id)
        _unless_gone("delete_usage_plan", usagePlanId=plan_id)
    if key_id:
        _unless_gone("delete_api_key", apiKey=key_id)


def _unless_gone(operation: str, **kwargs: Any) -> None:
    try:
        getattr(client("apigateway"), operation)(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
