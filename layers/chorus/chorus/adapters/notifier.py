"""The channels a caller is told through: a signed webhook, an SES e-mail, or the parent
ensemble's waiting task. Which event goes where, and when to retry, is the domain's decision
(`domain/callbacks.py`, `domain/deliveries.py`); this module only sends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chorus.adapters import executions, webhooks
from chorus.core import settings
from chorus.core.clients import client
from chorus.core.observability import logger
from chorus.model.records import (
    CallbackEvent,
    EmailCallback,
    PredictionRecord,
    Status,
    StepFunctionsCallback,
    delivery_key,
)


def webhook_message_id(prediction_id: str, event: CallbackEvent, step_id: str | None = None) -> str:
    # The same for every attempt and every redelivery of one event: receivers dedupe on it.
    return f"msg_{prediction_id}_{delivery_key(event, step_id).replace(':', '_')}"


def send_webhook(
    url: str,
    prediction_id: str,
    event: CallbackEvent,
    view: dict[str, Any],
    secrets: Sequence[str],
    step_id: str | None = None,
) -> webhooks.Attempt:
    """One attempt, signed with each of the tenant's current signing secrets."""
    config = settings.load(settings.WebhookSettings)
    return webhooks.post(
        url,
        webhook_message_id(prediction_id, event, step_id),
        json.dumps(view, separators=(",", ":")).encode(),
        secrets,
        allowed_networks=config.allowed_networks,
        deadline_seconds=config.webhook_attempt_seconds,
    )


def send_email(record: PredictionRecord, callback: EmailCallback, view: dict[str, Any]) -> None:
    lines = [f"Prediction {record.id} for service {record.service} is {record.status.value}."]
    if view.get("output"):
        lines.append(f"Download the output (link valid until {view['output']['expiresAt']}): {view['output']['url']}")
    if view.get("error"):
        lines.append(f"Error: {view['error']['code']}: {view['error']['message']}")
    lines += ["", json.dumps(view, indent=2)]
    client("ses").send_email(
        Source=settings.load(settings.EmailSettings).sender_email,
        Destination={"ToAddresses": [callback.address]},
        Message={
            "Subject": {"Data": f"Chorus prediction {record.id}: {record.status.value}"},
            "Body": {"Text": {"Data": "\n".join(lines)}},
        },
    )


def send_mail(to: Sequence[str], subject: str, text: str, html: str | None = None) -> None:
    """An e-mail that is not about one prediction (a model version's approval or rollback)."""
    body: dict[str, Any] = {"Text": {"Data": text, "Charset": "UTF-8"}}
    if html is not None:
        body["Html"] = {"Data": html, "Charset": "UTF-8"}
    client("ses").send_email(
        Source=settings.load(settings.EmailSettings).sender_email,
        Destination={"ToAddresses": list(to)},
        Message={"Subject": {"Data": subject, "Charset": "UTF-8"}, "Body": body},
    )


def resume_parent(record: PredictionRecord, callback: StepFunctionsCallback, error: str = "StepFailed") -> None:
    """Finish the parent ensemble's waiting task with this step's outcome (`error` names a failure
    for the state machine's Retry and Catch). A spent token (the task already finished or timed
    out) means a duplicate: nothing to do."""
    step = f"step {record.step_name!r} ({record.service})"
    outcome: dict[str, Any] = {"id": record.id, "parentId": record.parent_id, "status": record.status.value}
    if record.status is Status.SUCCEEDED and record.output is not None:
        sent = executions.send_success(
            callback.task_token, {**outcome, **record.output.as_dict(), "outputLocation": record.output.uri}
        )
    elif record.status is Status.SKIPPED:
        sent = executions.send_success(callback.task_token, outcome)
    else:
        reason = record.error.message if record.error else record.status.value
        sent = executions.send_failure(callback.task_token, error, f"{step} {record.status.value}: {reason}")
    if not sent:
        logger.info("task token already spent (duplicate or timed out)", extra={"prediction_id": record.id})
