"""Telling the caller: a signed webhook, an e-mail, or the parent ensemble's waiting task."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

from aws_lambda_powertools.utilities.parameters import SSMProvider

from chorus import executions, webhooks
from chorus.aws import client
from chorus.errors import DeliveryFailed, WebhookRefused
from chorus.observability import logger
from chorus.predictions import claim_callback, find, mark_callback_delivered
from chorus.records import (
    EmailCallback,
    PredictionRecord,
    Status,
    StepFunctionsCallback,
    WebhookCallback,
)
from chorus.settings import get_settings

Event = Literal["start", "completed"]
# Longer than one webhook delivery with its in-invocation retries (3 x 10 s + backoff).
CALLBACK_CLAIM_SECONDS = 45


@lru_cache(maxsize=1)
def _ssm() -> SSMProvider:
    return SSMProvider(boto3_client=client("ssm"))


def webhook_secret() -> str:
    settings = get_settings()
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    if not settings.webhook_secret_parameter:
        raise DeliveryFailed("no webhook signing secret is configured (WEBHOOK_SECRET_PARAMETER)")
    return str(_ssm().get(settings.webhook_secret_parameter, decrypt=True, max_age=300))


def notify(record: PredictionRecord, event: Event, render: Callable[[PredictionRecord], dict[str, Any]]) -> None:
    """Perform the record's callback for `event` once; raises DeliveryFailed to be retried.

    `render` builds the public representation, only when a webhook or e-mail needs it."""
    callback = record.callback
    if callback is None or event in record.callback_delivered:
        return
    if isinstance(callback, StepFunctionsCallback) and event == "completed":
        send = lambda: _resume_parent(record, callback)  # noqa: E731
    elif isinstance(callback, WebhookCallback) and event in callback.events:
        send = lambda: _send_webhook(record, callback, event, render(record))  # noqa: E731
    elif isinstance(callback, EmailCallback) and event == "completed":
        send = lambda: _send_email(record, callback, render(record))  # noqa: E731
    else:
        return
    if not claim_callback(record.id, event, CALLBACK_CLAIM_SECONDS):
        fresh = find(record.id)
        if fresh is None or event in fresh.callback_delivered:
            return
        # Another invocation is sending it; if that one fails, this retry must not be lost.
        raise DeliveryFailed(f"the {event} callback of {record.id} is being sent by another invocation")
    send()
    mark_callback_delivered(record.id, event)


def _send_webhook(record: PredictionRecord, callback: WebhookCallback, event: Event, view: dict[str, Any]) -> None:
    settings = get_settings()
    body = json.dumps(view, separators=(",", ":")).encode()
    try:
        delivery = webhooks.deliver(
            callback.url,
            f"msg_{record.id}_{event}",  # stable across retries: receivers dedupe on it
            body,
            webhook_secret(),
            allowed_networks=settings.allowed_networks,
            timeout=settings.webhook_timeout_seconds,
            attempts=settings.webhook_attempts,
            backoff=settings.webhook_backoff_seconds,
        )
    except WebhookRefused as exc:
        # Retrying cannot help (private target, 4xx, redirect): record it and move on.
        logger.warning("webhook refused", extra={"prediction_id": record.id, "reason": exc.message})
        return
    logger.info(
        "webhook delivered",
        extra={"prediction_id": record.id, "event": event, "status": delivery.status, "attempts": delivery.attempts},
    )


def _send_email(record: PredictionRecord, callback: EmailCallback, view: dict[str, Any]) -> None:
    lines = [f"Prediction {record.id} for service {record.service} is {record.status.value}."]
    if view.get("output"):
        lines.append(f"Download the output (link valid until {view['output']['expiresAt']}): {view['output']['url']}")
    if view.get("error"):
        lines.append(f"Error: {view['error']['code']}: {view['error']['message']}")
    lines += ["", json.dumps(view, indent=2)]
    client("ses").send_email(
        Source=get_settings().sender_email,
        Destination={"ToAddresses": [callback.address]},
        Message={
            "Subject": {"Data": f"Chorus prediction {record.id}: {record.status.value}"},
            "Body": {"Text": {"Data": "\n".join(lines)}},
        },
    )
    logger.info("e-mail sent", extra={"prediction_id": record.id})


def _resume_parent(record: PredictionRecord, callback: StepFunctionsCallback) -> None:
    step = f"step {record.step_name!r} ({record.service})"
    if record.status is Status.SUCCEEDED and record.output is not None:
        sent = executions.send_success(
            callback.task_token,
            {
                "id": record.id,
                "parentId": record.parent_id,
                **record.output.as_dict(),
                "outputLocation": record.output.uri,
            },
        )
    else:
        reason = record.error.message if record.error else record.status.value
        error = "StepFailed" if record.status is Status.FAILED else "StepCanceled"
        sent = executions.send_failure(callback.task_token, error, f"{step} {record.status.value}: {reason}")
    if not sent:
        logger.info("task token already spent (duplicate or timed out)", extra={"prediction_id": record.id})
