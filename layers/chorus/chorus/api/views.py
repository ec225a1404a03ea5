"""The public representation of a prediction (GET /predictions/{id}, webhooks, e-mails)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chorus.adapters import payloads, predictions
from chorus.core import settings
from chorus.core.clock import iso, utcnow
from chorus.model.records import (
    CallbackEvent,
    DeliveryStatus,
    EmailCallback,
    PredictionRecord,
    Status,
    WebhookCallback,
)
from chorus.model.registry import get_registry


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def timings(record: PredictionRecord) -> dict[str, float]:
    measured = {
        "waitSeconds": _seconds(record.queued_at, record.started_at),
        "runSeconds": _seconds(record.started_at, record.completed_at),
        "totalSeconds": _seconds(record.created_at, record.completed_at),
    }
    return {name: value for name, value in measured.items() if value is not None}


def represent(record: PredictionRecord) -> dict[str, Any]:
    """The public representation: GET /predictions/{id}, and the body of every webhook and e-mail."""
    view = summary(record)
    error = view.pop("error", None)
    if record.status is Status.SUCCEEDED and record.output is not None:
        ttl = settings.load(settings.PayloadSettings).output_url_ttl_seconds
        view["output"] = {
            "url": payloads.presigned_download(record.output, ttl),
            "contentType": record.output.content_type,
            "expiresAt": iso(utcnow() + timedelta(seconds=ttl)),
        }
    if error is not None:
        view["error"] = error
    delivery = _delivery(record)
    if delivery is not None:
        view["webhook" if isinstance(record.callback, WebhookCallback) else "email"] = delivery
    if record.kind == "ensemble":
        order = [step.name for step in get_registry().get(record.service).steps]
        view["steps"] = _steps(predictions.children(record.id), order)
    return view


def summary(record: PredictionRecord) -> dict[str, Any]:
    """A prediction in a listing (GET /predictions): the representation without what costs a call
    per item (the presigned output URL, the steps, the callback's delivery)."""
    view: dict[str, Any] = {
        "id": record.id,
        "service": record.service,
        "kind": record.kind,
        "status": record.status.value,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "startedAt": iso(record.started_at),
        "completedAt": iso(record.completed_at),
        "metadata": record.metadata,
        "metrics": timings(record),
    }
    if record.deadline_at:
        view["deadlineAt"] = iso(record.deadline_at)
    if record.parent_id:
        view["parentId"] = record.parent_id
        view["stepName"] = record.step_name
    if record.error is not None:
        view["error"] = record.error.model_dump()
    return view


def _delivery(record: PredictionRecord) -> dict[str, Any] | None:
    """The latest callback event's delivery: pending until its series reports an outcome."""
    callback = record.callback
    if isinstance(callback, WebhookCallback):
        wanted = [CallbackEvent(e) for e in callback.events]
    elif isinstance(callback, EmailCallback):
        wanted = [CallbackEvent.COMPLETED]
    else:
        return None
    reached = [e for e in wanted if e in record.deliveries or _reached(record, e)]
    if not reached:
        return None
    event = reached[-1]
    found = record.deliveries.get(event)
    summary: dict[str, Any] = {
        "event": event.value,
        "status": (found.status if found else DeliveryStatus.PENDING).value,
        "attempts": found.attempts if found else 0,
    }
    if found is not None:
        summary["lastAttemptAt"] = iso(found.last_attempt_at)
        summary["lastError"] = found.last_error
        if found.next_attempt_at is not None and found.status is DeliveryStatus.PENDING:
            summary["nextAttemptAt"] = iso(found.next_attempt_at)
    return summary


def _reached(record: PredictionRecord, event: CallbackEvent) -> bool:
    if event is CallbackEvent.COMPLETED:
        return record.status.terminal
    return record.started_at is not None


def _steps(children: list[PredictionRecord], order: list[str]) -> list[dict[str, Any]]:
    rank = {name: i for i, name in enumerate(order)}
    ordered = sorted(children, key=lambda c: (rank.get(c.step_name or "", len(rank)), c.created_at))
    return [
        {
            "name": child.step_name,
            "service": child.service,
            "id": child.id,
            "status": child.status.value,
            "startedAt": iso(child.started_at or child.created_at),
            "completedAt": iso(child.completed_at),
            "durationSeconds": _seconds(child.started_at or child.created_at, child.completed_at),
            **({"error": child.error.model_dump()} if child.error else {}),
        }
        for child in ordered
    ]
