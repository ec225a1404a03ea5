"""The versions table: a model service's versions, its routing, the evidence of trials and the
history of every transition. Partition `service`, sort key `key`:

- `routing`: the live version, the candidate in trial and its shares (what dispatch reads);
- `version#<id>`: one version (a `ModelVersion`, plus the approval's task token and link nonce);
- `evidence#<candidate>#<prediction id>`: one trial prediction's live and candidate outcomes;
- `history#<time>#<suffix>`: one transition (the audit trail), appended, never changed.

Every version transition is one conditional transaction (the version's status from its allowed
predecessors, and the routing with it), so a duplicate decision or a race changes nothing.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chorus.adapters.dynamo import CONDITION_FAILED, from_item, serialize, to_item
from chorus.core import settings
from chorus.core.clients import client
from chorus.core.clock import iso, utcnow
from chorus.model.versions import (
    VERSION_ALLOWED_FROM,
    ModelVersion,
    Routing,
    VersionStatus,
)

ROUTING = "routing"
_routing_cache: dict[str, tuple[float, Routing | None]] = {}


class Conflict(Exception):
    """The write's condition failed: someone else changed the service or version first."""


def settings_of() -> settings.VersionSettings:
    return settings.load(settings.VersionSettings)


def table() -> str:
    return settings_of().versions_table


def table_key(service: str, key: str) -> dict[str, Any]:
    return {"service": {"S": service}, "key": {"S": key}}


def _version_key(version_id: str) -> str:
    return f"version#{version_id}"


# --- routing ------------------------------------------------------------------------------------


def routing(service: str) -> Routing | None:
    """The service's routing, read at most once per `version_cache_seconds` in this environment.
    None: no version was ever registered, so the registry's endpoint serves (v1)."""
    now = time.monotonic()
    cached = _routing_cache.get(service)
    if cached is not None and cached[0] > now:
        return cached[1]
    item = client("dynamodb").get_item(TableName=table(), Key=table_key(service, ROUTING)).get("Item")
    found = _routing(from_item(item)) if item else None
    _routing_cache[service] = (now + settings_of().version_cache_seconds, found)
    return found


def fresh_routing(service: str) -> Routing | None:
    """The routing as stored now (the workflow's decisions read it, never a cached copy)."""
    item = (
        client("dynamodb").get_item(TableName=table(), Key=table_key(service, ROUTING), ConsistentRead=True).get("Item")
    )
    return _routing(from_item(item)) if item else None


def _routing(document: dict[str, Any]) -> Routing:
    return Routing.model_validate(
        {k: document[k] for k in ("live", "candidate", "shadowPercent", "canaryPercent") if k in document}
    )


def forget_cached_routing() -> None:
    _routing_cache.clear()


def initialize(first: ModelVersion, live: dict[str, Any]) -> None:
    """Store v1 and the routing that serves it, unless the service already has them."""
    items = [
        {"service": first.service, "key": ROUTING, "live": live, "nextVersion": 1, "updatedAt": iso(utcnow())},
        {"service": first.service, "key": _version_key(first.id), **_document(first)},
    ]
    for item in items:
        try:
            client("dynamodb").put_item(
                TableName=table(),
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "key"},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise


def next_version_id(service: str) -> str:
    """A new version id (`v2`, `v3`...): one atomic counter on the routing item."""
    response = client("dynamodb").update_item(
        TableName=table(),
        Key=table_key(service, ROUTING),
        UpdateExpression="ADD nextVersion :one",
        ConditionExpression="attribute_exists(live)",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    return f"v{int(response['Attributes']['nextVersion']['N'])}"


def add_candidate(version: ModelVersion, candidate: dict[str, Any]) -> None:
    """Store a new pending version and make it the service's candidate (shadowed at its share).
    Conflict when another candidate is still in flight."""
    routing_update = {
        "Update": {
            "TableName": table(),
            "Key": table_key(version.service, ROUTING),
            "UpdateExpression": "SET candidate = :c, shadowPercent = :s, canaryPercent = :zero, updatedAt = :now",
            "ConditionExpression": "attribute_exists(live) AND attribute_not_exists(candidate)",
            "ExpressionAttributeValues": {
                ":c": serialize(candidate),
                ":s": serialize(version.shadow_percent),
                ":zero": {"N": "0"},
                ":now": {"S": iso(utcnow()) or ""},
            },
        }
    }
    put = {
        "Put": {
            "TableName": table(),
            "Item": to_item({"service": version.service, "key": _version_key(version.id), **_document(version)}),
            "ConditionExpression": "attribute_not_exists(#k)",
            "ExpressionAttributeNames": {"#k": "key"},
        }
    }
    _transact([routing_update, put])


# --- versions -----------------------------------------------------------------------------------


def _document(version: ModelVersion) -> dict[str, Any]:
    return version.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"service"})


def _version(item: dict[str, Any]) -> ModelVersion:
    document = from_item(item)
    return ModelVersion.model_validate(document)


def find(service: str, version_id: str) -> ModelVersion | None:
    item = (
        client("dynamodb")
        .get_item(TableName=table(), Key=table_key(service, _version_key(version_id)), ConsistentRead=True)
        .get("Item")
    )
    return _version(item) if item else None


def approval(service: str, version_id: str) -> tuple[str | None, str | None]:
    """The waiting workflow's task token and the nonce its links carry."""
    item = (
        client("dynamodb")
        .get_item(
            TableName=table(),
            Key=table_key(service, _version_key(version_id)),
            ConsistentRead=True,
            ProjectionExpression="taskToken, linkNonce",
        )
        .get("Item")
        or {}
    )
    return (item.get("taskToken", {}).get("S"), item.get("linkNonce", {}).get("S"))


def list_versions(service: str) -> list[ModelVersion]:
    """Every version of the service, oldest first."""
    found = [_version(item) for item in query(service, "version#")]
    return sorted(found, key=lambda v: v.number)


def await_decision(service: str, version_id: str, task_token: str, nonce: str, expires_at: datetime) -> bool:
    """Keep the workflow's task token and the links' nonce on a pending version."""
    try:
        client("dynamodb").update_item(
            TableName=table(),
            Key=table_key(service, _version_key(version_id)),
            UpdateExpression="SET taskToken = :t, linkNonce = :n, approvalExpiresAt = :e",
            ConditionExpression="#status = :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":t": {"S": task_token},
                ":n": {"S": nonce},
                ":e": {"S": iso(expires_at) or ""},
                ":pending": {"S": VersionStatus.PENDING.value},
            },
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == CONDITION_FAILED:
            return False
        raise
    return True


def transition(
    service: str,
    version_id: str,
    to: VersionStatus,
    changes: dict[str, Any] | None = None,
    *,
    routing_set: dict[str, Any] | None = None,
    routing_remove: tuple[str, ...] = (),
    retire: str | None = None,
    nonce: str | None = None,
) -> bool:
    """Move a version to `to` from its allowed predecessors and change the routing with it, in one
    transaction; `retire` moves the formerly live version to retired in the same write, and `nonce`
    requires the links' nonce (a link is good for one decision). False when a condition failed."""
    allowed = sorted(s.value for s in VERSION_ALLOWED_FROM[to])
    fields = {"status": to.value, **(changes or {})}
    names = {f"#f{i}": name for i, name in enumerate(fields)} | {"#status": "status"}
    values = {f":v{i}": serialize(value) for i, value in enumerate(fields.values())}
    values |= {f":from{i}": {"S": s} for i, s in enumerate(allowed)}
    condition = f"#status IN ({', '.join(f':from{i}' for i in range(len(allowed)))})"
    if nonce is not None:
        condition += " AND linkNonce = :nonce"
        values[":nonce"] = {"S": nonce}
    actions: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": table(),
                "Key": table_key(service, _version_key(version_id)),
                "UpdateExpression": "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
    ]
    if routing_set or routing_remove:
        actions.append(_routing_update(service, version_id, routing_set or {}, routing_remove))
    if retire is not None:
        actions.append(
            {
                "Update": {
                    "TableName": table(),
                    "Key": table_key(service, _version_key(retire)),
                    "UpdateExpression": "SET #status = :retired, retiredAt = :now",
                    "ConditionExpression": "#status = :live",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {
                        ":retired": {"S": VersionStatus.RETIRED.value},
                        ":live": {"S": VersionStatus.LIVE.value},
                        ":now": {"S": iso(utcnow()) or ""},
                    },
                }
            }
        )
    try:
        _transact(actions)
    except Conflict:
        return False
    return True


def _routing_update(service: str, candidate: str, to_set: dict[str, Any], to_remove: tuple[str, ...]) -> dict[str, Any]:
    """The routing changes only while this version is its candidate."""
    fields = {**to_set, "updatedAt": iso(utcnow())}
    names = {f"#r{i}": name for i, name in enumerate(fields)} | {f"#x{i}": name for i, name in enumerate(to_remove)}
    values = {f":r{i}": serialize(value) for i, value in enumerate(fields.values())} | {":cand": {"S": candidate}}
    expression = "SET " + ", ".join(f"#r{i} = :r{i}" for i in range(len(fields)))
    if to_remove:
        expression += " REMOVE " + ", ".join(f"#x{i}" for i in range(len(to_remove)))
    return {
        "Update": {
            "TableName": table(),
            "Key": table_key(service, ROUTING),
            "UpdateExpression": expression,
            "ConditionExpression": "candidate.version = :cand",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def _transact(actions: list[dict[str, Any]]) -> None:
    try:
        client("dynamodb").transact_write_items(TransactItems=actions)
    except ClientError as exc:
        # A failed condition cancels the transaction; its reasons say "ConditionalCheckFailed".
        reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
        message = exc.response["Error"].get("Message", "")
        if exc.response["Error"]["Code"] == "TransactionCanceledException" and (
            "ConditionalCheckFailed" in reasons or "ConditionalCheckFailed" in message
        ):
            raise Conflict(message) from exc
        raise


def query(service: str, prefix: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": table(),
        "KeyConditionExpression": "service = :s AND begins_with(#k, :p)",
        "ExpressionAttributeNames": {"#k": "key"},
        "ExpressionAttributeValues": {":s": {"S": service}, ":p": {"S": prefix}},
        "ConsistentRead": True,
    }
    while True:
        page = client("dynamodb").query(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
