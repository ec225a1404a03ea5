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
        view["steps"] = steps_view(record, predictions.children(record.id))
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
    if record.version:
        view["version"] = record.version
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
        wanted = [CallbackEvent(e) for e in callback.events if e != CallbackEvent.STEP.value]
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


def steps_view(record: PredictionRecord, children: list[PredictionRecord]) -> list[dict[str, Any]]:
    """Every declared step of an ensemble prediction, in declaration order: its kind, status,
    timings, child id (ids for a fanned-out step), attempts, and the decision it was taken on
    (the audit trail: which condition was false, which rule case matched, with the values read)."""
    registry = get_registry()
    by_step: dict[str, list[PredictionRecord]] = {}
    for child in children:
        by_step.setdefault(child.step_name or "", []).append(child)
    views = []
    for step in registry.get(record.service).steps:
        kind = "rule" if step.service is None else registry.get(step.service).kind
        found = by_step.get(step.name, [])
        view: dict[str, Any] = {"name": step.name, "kind": kind, "service": step.service}
        if step.fans_out and not any(c.status is Status.SKIPPED for c in found):
            view.update(_fan_out_view(record, found, step.optional))
        elif found:
            view.update(_child_view(_latest_attempts(found)[None], len({c.attempt or 0 for c in found})))
        else:
            view["status"] = "not_run" if record.status.terminal else "pending"
        views.append(view)
    return views


def _latest_attempts(children: list[PredictionRecord]) -> dict[int | None, PredictionRecord]:
    """Per item (None: the step itself), the child of its latest attempt."""
    latest: dict[int | None, PredictionRecord] = {}
    for child in sorted(children, key=lambda c: c.attempt or 0):
        latest[child.item_index] = child
    return latest


def _child_view(child: PredictionRecord, attempts: int = 1) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": child.id,
        "status": child.status.value,
        "startedAt": iso(child.started_at or child.created_at),
        "completedAt": iso(child.completed_at),
        "durationSeconds": _seconds(child.started_at or child.created_at, child.completed_at),
    }
    if attempts > 1:
        view["attempts"] = attempts
    if child.version:
        view["version"] = child.version
    if child.error:
        view["error"] = child.error.model_dump()
    if child.decision:
        view["decision"] = child.decision
    return view


def _fan_out_view(record: PredictionRecord, children: list[PredictionRecord], optional: bool) -> dict[str, Any]:
    items = _latest_attempts(children)
    ordered = [items[index] for index in sorted(i for i in items if i is not None)]
    failed = [c for c in ordered if c.status is not Status.SUCCEEDED and c.status.terminal]
    if any(not c.status.terminal for c in ordered):
        status = "running"
    elif failed and not optional:
        status = "failed"
    elif ordered or record.status.terminal:
        status = "succeeded" if record.status is not Status.CANCELED or ordered else "not_run"
    else:
        status = "pending"
    starts = [c.started_at or c.created_at for c in ordered]
    ends = [c.completed_at for c in ordered]
    completed = max(ends) if ends and all(ends) else None  # type: ignore[type-var]
    view: dict[str, Any] = {
        "status": status,
        "ids": [c.id for c in ordered],
        "items": len(ordered),
        "failedItems": len(failed),
        "startedAt": iso(min(starts)) if starts else None,
        "completedAt": iso(completed),
        "durationSeconds": _seconds(min(starts), completed) if starts else None,
    }
    errors = [{"item": c.item_index, **c.error.model_dump()} for c in failed if c.error]
    if errors:
        view["itemErrors"] = errors[:10]  # enough to see the pattern; each item's own record has all
    return view
