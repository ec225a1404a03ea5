"""The tokens table: a tenant's API tokens, with which scopes.

Tokens are stored by id with a SHA-256 hash of their secret; the secret is shown once, when the
token is created, and never stored. Each token also carries its tenant's API key value
(`usageKey`, the usage plan's identifier), copied from the tenant when the token is made, so the
authorizer finds everything it returns in one read. `lastUsedAt` is written at most once an hour per token (and
the authorizer's cache spares most lookups), so using a token does not cost a write per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chorus.adapters import audit, tenants
from chorus.adapters.dynamo import CONDITION_FAILED, from_item, to_item
from chorus.core import settings
from chorus.core.clients import client
from chorus.core.clock import iso, utcnow
from chorus.core.errors import ChorusError
from chorus.model.tenancy import Scope, Tenant, Token, hash_secret, new_token, parse_token

LAST_USED_RESOLUTION = timedelta(hours=1)


class TokenNotFound(ChorusError):
    code = "not_found"
    status = 404


def _tokens_table() -> str:
    return settings.load(settings.TokensSettings).tokens_table


def create_token(
    tenant: str, scopes: Iterable[Scope], created_by: str, expires_at: datetime | None = None, *, secret_token: str = ""
) -> tuple[Token, str]:
    """Store a new token for an existing tenant; returns it and the only copy of its plaintext.

    `secret_token` lets an operator bring a token of their own (make local's CHORUS_API_TOKEN)."""
    owner = tenants.find_tenant(tenant)
    if owner is None:
        raise tenants.TenantNotFound(f"tenant {tenant!r} does not exist")
    if secret_token:
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
        usage_key=owner.api_key,
    )
    client("dynamodb").put_item(
        TableName=_tokens_table(),
        Item=to_item(token.model_dump(mode="json", by_alias=True)),
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
    return Token.model_validate(from_item(item)) if item else None


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
    return sorted((Token.model_validate(from_item(i)) for i in items), key=lambda t: t.created_at)


def stamp_usage_key(tenant: Tenant) -> int:
    """Give every token of the tenant its current API key value (tokens made before the tenant had
    a usage plan carry none, and API Gateway refuses their requests); returns how many changed."""
    if not tenant.api_key:
        return 0
    stale = [t for t in list_tokens(tenant.tenant) if t.usage_key != tenant.api_key]
    for token in stale:
        client("dynamodb").update_item(
            TableName=_tokens_table(),
            Key={"tokenId": {"S": token.token_id}},
            UpdateExpression="SET usageKey = :key",
            ConditionExpression="attribute_exists(tokenId) AND tenant = :tenant",
            ExpressionAttributeValues={":key": {"S": tenant.api_key}, ":tenant": {"S": tenant.tenant}},
        )
    return len(stale)


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
        if exc.response["Error"]["Code"] == CONDITION_FAILED:
            raise TokenNotFound(f"token {token_id!r} not found") from exc
        raise
    token = Token.model_validate(from_item(response["Attributes"]))
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
        if exc.response["Error"]["Code"] != CONDITION_FAILED:
            raise
