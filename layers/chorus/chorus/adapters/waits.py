"""Wait slots: how many `Prefer: wait` requests of one tenant hold their answer right now, across
every Lambda instance.

One lease item per tenant in the tenants table, key `<tenant>#waits` (a tenant name holds no `#`):
`holders` maps each waiting request to the epoch second its lease lapses, and `version` counts the
changes. Claiming a slot is one conditional write while the map has room (`size(holders) < limit`);
only when it is full (or absent) is the item read, the holders whose lease lapsed (a function that
crashed or timed out while waiting) dropped, and the map written back on condition that nothing
changed meanwhile. A lost race there is a refusal, not a retry: waiting is only a preference.
Releasing removes the holder. Every write bumps `version`, so a rewrite never resurrects a holder
that released meanwhile.
"""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import ClientError

from chorus.adapters.dynamo import CONDITION_FAILED, deserialize
from chorus.core import settings
from chorus.core.clients import client

LEASE_SUFFIX = "#waits"
ONE = {":one": {"N": "1"}}


def _table() -> str:
    return settings.load(settings.TenantsSettings).tenants_table


def _key(tenant: str) -> dict[str, dict[str, str]]:
    return {"tenant": {"S": tenant + LEASE_SUFFIX}}


def is_lease(key: str) -> bool:
    """The tenants table's key names a lease item, not a tenant."""
    return key.endswith(LEASE_SUFFIX)


def _update(tenant: str, **kwargs: Any) -> bool:
    """One conditional write to the tenant's lease item; False when its condition failed."""
    try:
        client("dynamodb").update_item(TableName=_table(), Key=_key(tenant), **kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == CONDITION_FAILED:
            return False
        raise
    return True


def claim_slot(tenant: str, holder: str, *, lapses_at: float, now: float, limit: int) -> bool:
    """Take one of the tenant's `limit` wait slots for `holder` until `lapses_at` (epoch seconds);
    False when all are held."""
    if limit <= 0:
        return False
    lapses = math.ceil(lapses_at)
    if _update(
        tenant,
        UpdateExpression="SET holders.#holder = :lapses ADD version :one",
        ConditionExpression="attribute_exists(holders) AND size(holders) < :limit",
        ExpressionAttributeNames={"#holder": holder},
        ExpressionAttributeValues={":lapses": {"N": str(lapses)}, ":limit": {"N": str(limit)}, **ONE},
    ):
        return True
    # Full, or no map yet: drop the lapsed holders and add this one, if nothing changed meanwhile.
    item = client("dynamodb").get_item(TableName=_table(), Key=_key(tenant), ConsistentRead=True).get("Item") or {}
    holders: dict[str, int] = deserialize(item["holders"]) if "holders" in item else {}
    live = {name: at for name, at in holders.items() if at > now}
    if len(live) >= limit:
        return False
    seen = (
        ("version = :seen", {":seen": item["version"]}) if "version" in item else ("attribute_not_exists(version)", {})
    )
    return _update(
        tenant,
        UpdateExpression="SET holders = :holders ADD version :one",
        ConditionExpression=seen[0],
        ExpressionAttributeValues={
            ":holders": {"M": {name: {"N": str(at)} for name, at in {**live, holder: lapses}.items()}},
            **seen[1],
            **ONE,
        },
    )


def release_slot(tenant: str, holder: str) -> None:
    """Give the slot back (a holder already dropped as lapsed is no error)."""
    _update(
        tenant,
        UpdateExpression="REMOVE holders.#holder ADD version :one",
        ConditionExpression="attribute_exists(holders)",
        ExpressionAttributeNames={"#holder": holder},
        ExpressionAttributeValues=ONE,
    )
