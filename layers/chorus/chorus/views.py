"""The public representation of a prediction (GET /predictions/{id}, webhooks, e-mails)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chorus import payloads
from chorus.records import PredictionRecord, Status, iso, utcnow
from chorus.settings import get_settings


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def timings(record: PredictionRecord) -> dict[str, float]:
    measured = {
        "waitSeconds": _seconds(record.queued_at, record.started_at),
        "runSeconds": _seconds(record.started_at, record.completed_at),
        "totalSeconds": _seconds(record.created_at, record.completed_at),
    }
    return {name: value for name, value in measured.items() if value is not None}


def render(
    record: PredictionRecord, steps: list[PredictionRecord] | None = None, step_order: list[str] | None = None
) -> dict[str, Any]:
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
    if record.status is Status.SUCCEEDED and record.output is not None:
        ttl = get_settings().output_url_ttl_seconds
        view["output"] = {
            "url": payloads.presigned_download(record.output, ttl),
            "contentType": record.output.content_type,
            "expiresAt": iso(utcnow() + timedelta(seconds=ttl)),
        }
    if record.error is not None:
        view["error"] = record.error.model_dump()
    if record.kind == "ensemble":
        view["steps"] = _steps(steps or [], step_order or [])
    return view


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
