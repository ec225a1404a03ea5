"""The tenants and tokens tables: who may call Chorus, with which scopes.

Tokens are stored by id with a SHA-256 hash of their secret; the secret is shown once, when the
token is created, and never stored. `lastUsedAt` is written at most once an hour per token (and
the authorizer's cache spares most lookups), so using a token does not cost a write per request.

A tenant's record holds its webhook signing secrets (the table is encrypted at rest) and its
allow-lists. Every administrative change is appended to the audit table by the function making it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chorus.adapters import audit
from chorus.core import settings
from chorus.core.clients import client
from chorus.core.clock import iso, utcnow
from chorus.core.errors import ChorusError
from chorus.model.tenancy import (
    SECRET_OVERLAP,
    Scope,
    Tenant,
    Token,
    hash_secret,
    host_entry,
    new_token,
    new_webhook_secret,
    recipient_entry,
)

_CONDITION_FAILED = "ConditionalCheckFailedException"
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
LAST_USED_RESOLUTION = timedelta(hours=1)


class TenantExists(ChorusError):
    code = "tenant_exists"
    status = 409


class TenantNotFound(ChorusError):
    code = "not_found"
    status = 404


class SecretRotationConflict(ChorusError):
    code = "conflict"
    status = 409


class TokenNotFound(ChorusError):
    code = "not_found"
    status = 404


class InvalidTenantSettings(ChorusError):
    code = "invalid_request"
    status = 400


def _tenants_table() -> str:
    return settings.load(settings.TenantsSettings).tenants_table


def _tokens_table() -> str:
    return settings.load(settings.TokensSettings).tokens_table


def _entries(values: Iterable[str], parse: Any) -> tuple[str, ...]:
    try:
        return tuple(dict.fromkeys(parse(v) for v in values))
    except ValueError as exc:
        raise InvalidTenantSettings(str(exc)) from exc


def _item(document: dict[str, Any]) -> dict[str, Any]:
    return {k: _SERIALIZER.serialize(v) for k, v in document.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _DESERIALIZER.deserialize(v) for k, v in item.items()}


# --- tenants ----------------------------------------------------------------------------------------


def create_tenant(
    name: str,
    created_by: str,
    *,
    email_recipients: Iterable[str] = (),
    webhook_hosts: Iterable[str] = (),
    webhook_secret: str = "",
) -> Tenant:
    """A new tenant with a new webhook signing secret (or `webhook_secret`: make local's own)."""
    tenant = Tenant(
        tenant=name,
        created_at=utcnow(),
        created_by=created_by,
        webhook_secret=webhook_secret or new_webhook_secret(),
        email_recipients=_entries(email_recipients, recipient_entry),
        webhook_hosts=_entries(webhook_hosts, host_entry),
    )
    try:
        client("dynamodb").put_item(
            TableName=_tenants_table(),
            Item=_item(tenant.model_dump(mode="json", by_alias=True)),
            ConditionExpression="attribute_not_exists(tenant)",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == _CONDITION_FAILED:
            raise TenantExists(f"tenant {name!r} already exists") from exc
        raise
    audit.record(
        name,
        "tenant.created",
        created_by,
        emailRecipients=list(tenant.email_recipients),
        webhookHosts=list(tenant.webhook_hosts),
    )
    return tenant


def find_tenant(name: str) -> Tenant | None:
    item = (
        client("dynamodb")
        .get_item(TableName=_tenants_table(), Key={"tenant": {"S": name}}, ConsistentRead=True)
        .get("Item")
    )
    return Tenant.model_validate(_plain(item)) if item else None


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
) -> Tenant:
    """Replace the allow-lists given (None leaves one as it is; an empty one clears it)."""
    values: dict[str, Any] = {":now": iso(utcnow()), ":by": updated_by}
    sets = ["updatedAt = :now", "updatedBy = :by"]
    details: dict[str, Any] = {}
    if email_recipients is not None:
        values[":recipients"] = details["emailRecipients"] = list(_entries(email_recipients, recipient_entry))
        sets.append("emailRecipients = :recipients")
    if webhook_hosts is not None:
        values[":hosts"] = details["webhookHosts"] = list(_entries(webhook_hosts, host_entry))
        sets.append("webhookHosts = :hosts")
    try:
        response = client("dynamodb").update_item(
            TableName=_tenants_table(),
            Key={"tenant": {"S": name}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_exists(tenant)",
            ExpressionAttributeValues=_item(values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == _CONDITION_FAILED:
            raise TenantNotFound(f"tenant {name!r} does not exist") from exc
        raise
    audit.record(name, "tenant.updated", updated_by, **details)
    return Tenant.model_validate(_plain(response["Attributes"]))


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
            ExpressionAttributeValues=_item(values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == _CONDITION_FAILED:
            raise SecretRotationConflict(f"the webhook secret of tenant {name!r} changed meanwhile; retry") from exc
        raise
    rotated = Tenant.model_validate(_plain(response["Attributes"]))
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
    return sorted((Tenant.model_validate(_plain(i)) for i in items), key=lambda t: t.tenant)


# --- tokens -----------------------------------------------------------------------------------------


def create_token(
    tenant: str, scopes: Iterable[Scope], created_by: str, expires_at: datetime | None = None, *, secret_token: str = ""
) -> tuple[Token, str]:
    """Store a new token for an existing tenant; returns it and the only copy of its plaintext.

    `secret_token` lets an operator bring a token of their own (make local's CHORUS_API_TOKEN)."""
    if find_tenant(tenant) is None:
        raise TenantNotFound(f"tenant {tenant!r} does not exist")
    if secret_token:
        from chorus.model.tenancy import parse_token

        parsed = parse_token(secret_token)
        if parsed is None:
            raise ChorusError("the token must look like chr_<12 hex>_<43 URL-safe characters>")
        token_id, secret = parsed
        plaintext = secret_token
    else:
        token_id, secret, plaintext = new_token()
    token = Token(
        token_id=token_id,
        tenant=tenant,
        secret_hash=hash_secret(secret),
        scopes=tuple(dict.fromkeys(scopes)),
        created_at=utcnow(),
        created_by=created_by,
        expires_at=expires_at,
    )
    client("dynamodb").put_item(
        TableName=_tokens_table(),
        Item=_item(token.model_dump(mode="json", by_alias=True)),
        ConditionExpression="attribute_not_exists(tokenId)",
    )
    audit.record(
        tenant,
        "token.created",
        created_by,
        tokenId=token.token_id,
        scopes=list(token.scopes),
        expiresAt=iso(expires_at) or "never",
    )
    return token, plaintext


def find_token(token_id: str) -> Token | None:
    item = (
        client("dynamodb")
        .get_item(TableName=_tokens_table(), Key={"tokenId": {"S": token_id}}, ConsistentRead=True)
        .get("Item")
    )
    return Token.model_validate(_plain(item)) if item else None


def list_tokens(tenant: str | None = None) -> list[Token]:
    """Tokens of one tenant, or all (administrators; the tokens table is small)."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": _tokens_table()}
    if tenant is not None:
        kwargs |= {"FilterExpression": "tenant = :t", "ExpressionAttributeValues": {":t": {"S": tenant}}}
    while True:
        page = client("dynamodb").scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted((Token.model_validate(_plain(i)) for i in items), key=lambda t: t.created_at)


def revoke_token(token_id: str, revoked_by: str) -> Token:
    try:
        response = client("dynamodb").update_item(
            TableName=_tokens_table(),
            Key={"tokenId": {"S": token_id}},
            UpdateExpression="SET revoked = :true, revokedAt = if_not_exists(revokedAt, :now)",
            ConditionExpression="attribute_exists(tokenId)",
            ExpressionAttributeValues={":true": {"BOOL": True}, ":now": {"S": iso(utcnow())}},
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == _CONDITION_FAILED:
            raise TokenNotFound(f"token {token_id!r} not found") from exc
        raise
    token = Token.model_validate(_plain(response["Attributes"]))
    audit.record(token.tenant, "token.revoked", revoked_by, tokenId=token.token_id)
    return token


def touch_token(token: Token) -> None:
    """Record use, at most once per LAST_USED_RESOLUTION (a conditional write that usually skips)."""
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    try:
        client("dynamodb").update_item(
            TableName=_tokens_table(),
            Key={"tokenId": {"S": token.token_id}},
            UpdateExpression="SET lastUsedAt = :now",
            ConditionExpression="attribute_not_exists(lastUsedAt) OR lastUsedAt < :stale",
            ExpressionAttributeValues={":now": {"S": iso(now)}, ":stale": {"S": iso(now - LAST_USED_RESOLUTION)}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != _CONDITION_FAILED:
            raise
