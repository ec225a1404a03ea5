"""The versions table's append-only side: the evidence of trial predictions
(`evidence#<candidate>#<prediction id>`, with a TTL) and the history of every transition
(`history#<time>#<suffix>`, the audit trail). The table and its keys: adapters/versions.py."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from chorus.adapters.dynamo import from_item, serialize, to_item
from chorus.adapters.versions import query, settings_of, table, table_key
from chorus.core.clients import client
from chorus.core.clock import iso, utcnow
from chorus.model.versions import EvidenceRow, Outcome, Side, TrialMode


def record_outcome(
    service: str, candidate: str, prediction_id: str, mode: TrialMode, side: Side, outcome: Outcome
) -> None:
    """One side of one trial prediction; the other side writes its own attribute, in any order."""
    ttl = int((utcnow() + timedelta(days=settings_of().evidence_ttl_days)).timestamp())
    client("dynamodb").update_item(
        TableName=table(),
        Key=table_key(service, f"evidence#{candidate}#{prediction_id}"),
        UpdateExpression="SET #side = :o, #mode = :m, #ttl = :ttl",
        ExpressionAttributeNames={"#side": side, "#mode": "mode", "#ttl": "ttl"},
        ExpressionAttributeValues={
            ":o": serialize(outcome.model_dump(exclude_none=True)),
            ":m": {"S": mode},
            ":ttl": {"N": str(ttl)},
        },
    )


def evidence(service: str, candidate: str) -> list[EvidenceRow]:
    rows = []
    for item in query(service, f"evidence#{candidate}#"):
        document = from_item(item)
        rows.append(
            EvidenceRow(
                prediction_id=document["key"].rsplit("#", 1)[-1],
                mode=document["mode"],
                live=Outcome.model_validate(document["live"]) if "live" in document else None,
                candidate=Outcome.model_validate(document["candidate"]) if "candidate" in document else None,
            )
        )
    return rows


def append_history(service: str, version_id: str, event: str, actor: str, **details: Any) -> dict[str, Any]:
    entry = {"at": iso(utcnow()), "version": version_id, "event": event, "actor": actor, **details}
    client("dynamodb").put_item(
        TableName=table(),
        Item=to_item({"service": service, "key": f"history#{entry['at']}#{secrets.token_hex(4)}", **entry}),
    )
    return entry


def history(service: str) -> list[dict[str, Any]]:
    """Every transition of the service's versions, oldest first."""
    return [
        {k: v for k, v in from_item(item).items() if k not in {"service", "key"}} for item in query(service, "history#")
    ]
