"""The audit trail: who did what to a tenant, and when (tenant created or updated, token created or
revoked, webhook secret rotated). Items are appended, never changed: partition `tenant`, sort key
`at` (the ISO time, `#` and a random suffix, so two actions in one instant both stay)."""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chorus.core import settings
from chorus.core.clients import client
from chorus.core.clock import iso, utcnow


class AuditEvent(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    tenant: str
    at: str  # ISO time + "#" + suffix
    action: str  # tenant.created, tenant.updated, token.created, token.revoked, webhook_secret.rotated
    actor: str  # who: an IAM ARN, `make local`, or `token:<id>` for an API call
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def moment(self) -> str:
        return self.at.partition("#")[0]


def record(tenant: str, action: str, actor: str, **details: Any) -> AuditEvent:
    """Append one event (never a secret in `details`)."""
    event = AuditEvent(
        tenant=tenant, at=f"{iso(utcnow())}#{secrets.token_hex(4)}", action=action, actor=actor, details=details
    )
    item: dict[str, Any] = {
        "tenant": {"S": event.tenant},
        "at": {"S": event.at},
        "action": {"S": event.action},
        "actor": {"S": event.actor},
    }
    if details:
        item["details"] = {"M": {k: _attribute(v) for k, v in details.items()}}
    client("dynamodb").put_item(
        TableName=settings.load(settings.AuditSettings).audit_table,
        Item=item,
        ConditionExpression="attribute_not_exists(#at)",
        ExpressionAttributeNames={"#at": "at"},
    )
    return event


def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, list | tuple):
        return {"L": [{"S": str(v)} for v in value]}
    return {"S": str(value)}


def _plain(attribute: dict[str, Any]) -> Any:
    if "L" in attribute:
        return [v.get("S", "") for v in attribute["L"]]
    return attribute.get("S", "")


def list_events(tenant: str) -> list[AuditEvent]:
    """A tenant's events, oldest first."""
    events: list[AuditEvent] = []
    kwargs: dict[str, Any] = {
        "TableName": settings.load(settings.AuditSettings).audit_table,
        "KeyConditionExpression": "tenant = :t",
        "ExpressionAttributeValues": {":t": {"S": tenant}},
    }
    while True:
        page = client("dynamodb").query(**kwargs)
        for item in page.get("Items", []):
            events.append(
                AuditEvent(
                    tenant=item["tenant"]["S"],
                    at=item["at"]["S"],
                    action=item["action"]["S"],
                    actor=item["actor"]["S"],
                    details={k: _plain(v) for k, v in item.get("details", {}).get("M", {}).items()},
                )
            )
        if "LastEvaluatedKey" not in page:
            return events
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
