"""The tenants table: who may call Chorus (their tokens are `tokens.py`'s).

A tenant's record holds its webhook signing secrets (the table is encrypted at rest), its
allow-lists, and its limits with the usage plan and API key that enforce them (`usage_plans.py`:
created with the tenant, changed with it). Every administrative change is appended to the audit
table by the function making it. The table also holds one wait-slot lease item per tenant
(`waits.py`), which the listing leaves out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from chorus.adapters import audit, usage_plans, waits
from chorus.adapters.dynamo import CONDITION_FAILED, from_item, to_item
from chorus.core import settings
from chorus.core.clients import client
from chorus.core.clock import iso, utcnow
from chorus.core.errors import ChorusError
from chorus.model.tenancy import (
    SECRET_OVERLAP,
    Limits,
    Tenant,
    host_entry,
    new_webhook_secret,
    recipient_entry,
)


class TenantExists(ChorusError):
    code = "tenant_exists"
    status = 409


class TenantNotFound(ChorusError):
    code = "not_found"
    status = 404


class SecretRotationConflict(ChorusError):
    code = "conflict"
    status = 409


class InvalidTenantSettings(ChorusError):
    code = "invalid_request"
    status = 400


def _tenants_table() -> str:
    return settings.load(settings.TenantsSettings).tenants_table


def _entries(values: Iterable[str], parse: Any) -> tuple[str, ...]:
    try:
        return tuple(dict.fromkeys(parse(v) for v in values))
    except ValueError as exc:
        raise InvalidTenantSettings(str(exc)) from exc


# --- tenants ----------------------------------------------------------------------------------------


def create_tenant(
    name: str,
    created_by: str,
    *,
    limits: Limits | None = None,
    email_recipients: Iterable[str] = (),
    webhook_hosts: Iterable[str] = (),
    webhook_secret: str = "",
) -> Tenant:
    """A new tenant with a new webhook signing secret (or `webhook_secret`: make local's own), and
    a usage plan of its own with `limits` (default: `Limits()`)."""
    if find_tenant(name) is not None:  # before making a usage plan for nothing
        raise TenantExists(f"tenant {name!r} already exists")
    limits = limits or Limits()
    recipients, hosts = _entries(email_recipients, recipient_entry), _entries(webhook_hosts, host_entry)
    plan = usage_plans.create_plan(name, limits)
    tenant = Tenant(
        tenant=name,
        created_at=utcnow(),
        created_by=created_by,
        webhook_secret=webhook_secret or new_webhook_secret(),
        email_recipients=recipients,
        webhook_hosts=hosts,
        limits=limits,
        usage_plan_id=plan.plan_id,
        api_key_id=plan.key_id,
        api_key=plan.key_value,
    )
    try:
        client("dynamodb").put_item(
            TableName=_tenants_table(),
            Item=to_item(tenant.model_dump(mode="json", by_alias=True)),
            ConditionExpression="attribute_not_exists(tenant)",
        )
    except ClientError as exc:
        usage_plans.delete_plan(plan.plan_id, plan.key_id)
        if exc.response["Error"]["Code"] == CONDITION_FAILED:
            raise TenantExists(f"tenant {name!r} already exists") from exc
        raise
    audit.record(
        name,
        "tenant.created",
        created_by,
        emailRecipients=list(tenant.email_recipients),
        webhookHosts=list(tenant.webhook_hosts),
        **limits.audited(),
    )
    return tenant


def find_tenant(name: str) -> Tenant | None:
    item = (
        client("dynamodb")
        .get_item(TableName=_tenants_table(), Key={"tenant": {"S": name}}, ConsistentRead=True)
        .get("Item")
    )
    return Tenant.model_validate(from_item(item)) if item else None


def require_tenant(name: str) -> Tenant:
    tenant = find_tenant(name)
    if tenant is None:
        raise TenantNotFound(f"tenant {name!r} does not exist")
    return tenant


def update_tenant(
    name: str,
    updated_by: str,
    *,
    email_recipients: Iterable[str] | None = None,
    webhook_hosts: Iterable[str] | None = None,
    rate_limit: float | None = None,
    burst_limit: int | None = None,
    daily_quota: int | None = None,
) -> Tenant:
    """Replace the allow-lists given (None leaves one as it is; an empty one clears it) and the
    limits given (a `daily_quota` of 0 removes the quota). The usage plan changes first; a tenant
    without one (made before limits existed) gets one."""
    values: dict[str, Any] = {":now": iso(utcnow()), ":by": updated_by}
    sets = ["updatedAt = :now", "updatedBy = :by"]
    details: dict[str, Any] = {}
    if email_recipients is not None:
        values[":recipients"] = details["emailRecipients"] = list(_entries(email_recipients, recipient_entry))
        sets.append("emailRecipients = :recipients")
    if webhook_hosts is not None:
        values[":hosts"] = details["webhookHosts"] = list(_entries(webhook_hosts, host_entry))
        sets.append("webhookHosts = :hosts")
    if (rate_limit, burst_limit, daily_quota) != (None, None, None):
        current = require_tenant(name)
        try:
            limits = (current.limits or Limits()).changed(
                rate_limit=rate_limit, burst_limit=burst_limit, daily_quota=daily_quota
            )
        except ValidationError as exc:
            raise InvalidTenantSettings(f"invalid limits: {exc.errors()[0]['msg']}") from exc
        if current.usage_plan_id:
            usage_plans.update_limits(current.usage_plan_id, limits, current.limits)
        else:
            plan = usage_plans.create_plan(name, limits)
            values |= {":plan": plan.plan_id, ":key_id": plan.key_id, ":key": plan.key_value}
            sets += ["usagePlanId = :plan", "apiKeyId = :key_id", "apiKey = :key"]
        values[":limits"] = limits.model_dump(mode="json", by_alias=True, exclude_none=True)
        sets.append("limits = :limits")
        details |= limits.audited()
    try:
        response = client("dynamodb").update_item(
            TableName=_tenants_table(),
            Key={"tenant": {"S": name}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_exists(tenant)",
            ExpressionAttributeValues=to_item(values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == CONDITION_FAILED:
            raise TenantNotFound(f"tenant {name!r} does not exist") from exc
        raise
    audit.record(name, "tenant.updated", updated_by, **details)
    return Tenant.model_validate(from_item(response["Attributes"]))


def rotate_webhook_secret(name: str, rotated_by: str) -> Tenant:
    """A new webhook secret; the current one keeps signing beside it for SECRET_OVERLAP. Two
    rotations racing: the second finds the secret changed and fails rather than lose one."""
    current = require_tenant(name)
    now = utcnow()
    values: dict[str, Any] = {":new": new_webhook_secret(), ":now": iso(now), ":by": rotated_by}
    sets = ["webhookSecret = :new", "updatedAt = :now", "updatedBy = :by"]
    if current.webhook_secret:
        values |= {":old": current.webhook_secret, ":expires": iso(now + SECRET_OVERLAP)}
        sets += ["previousWebhookSecret = :old", "previousWebhookSecretExpiresAt = :expires"]
        condition = "webhookSecret = :old"
    else:
        condition = "attribute_exists(tenant) AND attribute_not_exists(webhookSecret)"
    try:
        response = client("dynamodb").update_item(
            TableName=_tenants_table(),
            Key={"tenant": {"S": name}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == CONDITION_FAILED:
            raise SecretRotationConflict(f"the webhook secret of tenant {name!r} changed meanwhile; retry") from exc
        raise
    rotated = Tenant.model_validate(from_item(response["Attributes"]))
    audit.record(
        name, "webhook_secret.rotated", rotated_by, previousExpiresAt=iso(rotated.previous_webhook_secret_expires_at)
    )
    return rotated


def list_tenants() -> list[Tenant]:
    """Every tenant (an administrator's listing: the tenants table is small)."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": _tenants_table()}
    while True:
        page = client("dynamodb").scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    tenants = (Tenant.model_validate(from_item(i)) for i in items if not waits.is_lease(i["tenant"]["S"]))
    return sorted(tenants, key=lambda t: t.tenant)
