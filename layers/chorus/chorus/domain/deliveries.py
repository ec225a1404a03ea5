"""The delivery consumer: one attempt of one callback per message, then the next attempt is
scheduled (a delayed message) or the outcome is final.

- Schedule: `WEBHOOK_RETRY_SCHEDULE`, seconds before each attempt (Standard Webhooks' example by
  default: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). A receiver's `Retry-After` on 429/503
  pushes the next attempt further out, never beyond the schedule's longest wait.
- 410 Gone disables delivery for the prediction; other 4xx and redirects are final (`failed`);
  5xx, 408, 429, timeouts, connection and DNS errors are retried.
- Each attempt is claimed before it is made, so two copies of a message never both send; a worker
  that dies after its claim leaves a lapsed lease, and SQS's redelivery makes the attempt again.
- A webhook is signed with its prediction's tenant's secrets (both, during a rotation's overlap);
  the tenant's allow-lists are checked again at send time (an administrator may have narrowed them).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from chorus.adapters import notifier, predictions, queues, tenants
from chorus.adapters.webhooks import Attempt, Outcome
from chorus.api.views import represent
from chorus.core import settings
from chorus.core.clock import utcnow
from chorus.core.errors import NotRedeliverable, WebhookRefused
from chorus.core.observability import about, logger, metrics
from chorus.events.models import DeliveryRequest
from chorus.model.records import (
    CallbackEvent,
    Delivery,
    DeliveryStatus,
    EmailCallback,
    PredictionRecord,
    WebhookCallback,
)
from chorus.model.tenancy import Caller, Tenant

LEASE_SLACK = timedelta(seconds=30)
# SES answers these when the message itself is unacceptable: retrying cannot help.
FINAL_EMAIL_ERRORS = frozenset({"MessageRejected", "MailFromDomainNotVerifiedException", "InvalidParameterValue"})
# The count each attempt's outcome adds to (docs/metrics.md).
ATTEMPT_METRICS = {
    Outcome.DELIVERED: "CallbackDelivered",
    Outcome.RETRY: "CallbackRetry",
    Outcome.GONE: "CallbackGone",
    Outcome.REJECTED: "CallbackRejected",
}


def attempt(request: DeliveryRequest) -> None:
    now = utcnow()
    if request.not_before is not None and request.not_before > now + timedelta(seconds=1):
        queues.schedule_delivery(
            request.prediction_id, request.event, request.series, request.attempt, request.not_before, request.step_id
        )
        return
    config = settings.load(settings.WebhookSettings)
    lease = now + timedelta(seconds=config.webhook_attempt_seconds) + LEASE_SLACK
    record = predictions.claim_delivery(request.prediction_id, request.key, request.series, request.attempt, lease)
    if record is None:
        logger.info("delivery attempt already made or superseded", extra=_context(request))
        return
    about(record.tenant, record.token_id, record.id)
    callback = record.callback
    view = represent(record)
    if request.step_id is not None:
        view["event"] = _step_event(view, request.step_id)
    tenant = tenants.find_tenant(record.tenant) if isinstance(callback, WebhookCallback | EmailCallback) else None
    if isinstance(callback, WebhookCallback):
        result = _webhook(record, callback, request, view, tenant)
    elif isinstance(callback, EmailCallback):
        if tenant is None or not tenant.allows_recipient(callback.address):
            result = Attempt(Outcome.REJECTED, "the tenant no longer allows e-mail to this recipient")
        else:
            result = _email(record, callback, view)
    else:
        result = Attempt(Outcome.REJECTED, "the prediction has no client callback")
    _record(request, result, config.retry_delays)


def _step_event(view: dict[str, Any], step_id: str) -> dict[str, Any]:
    """What a `step` webhook adds to the representation: which step (or item) finished, and how."""
    for step in view.get("steps", []):
        if step.get("id") == step_id or step_id in step.get("ids", []):
            item = step["ids"].index(step_id) if step_id in step.get("ids", []) else None
            return {"type": "step", "step": step["name"], "id": step_id, "status": step["status"], "item": item}
    return {"type": "step", "id": step_id}


def _webhook(
    record: PredictionRecord,
    callback: WebhookCallback,
    request: DeliveryRequest,
    view: dict[str, Any],
    tenant: Tenant | None,
) -> Attempt:
    secrets = tenant.signing_secrets(utcnow()) if tenant is not None else ()
    if tenant is None or not secrets:
        return Attempt(Outcome.REJECTED, "the tenant has no webhook signing secret")
    if not tenant.allows_webhook_host(urlsplit(callback.url).hostname or ""):
        return Attempt(Outcome.REJECTED, "the tenant no longer allows webhooks to this host")
    try:
        return notifier.send_webhook(callback.url, record.id, request.event, view, secrets, request.step_id)
    except WebhookRefused as exc:
        return Attempt(Outcome.REJECTED, exc.message)


def _email(record: PredictionRecord, callback: EmailCallback, view: dict[str, Any]) -> Attempt:
    try:
        notifier.send_email(record, callback, view)
    except ClientError as exc:
        code = exc.response["Error"].get("Code", "")
        outcome = Outcome.REJECTED if code in FINAL_EMAIL_ERRORS else Outcome.RETRY
        return Attempt(outcome, f"SES {code}: {exc.response['Error'].get('Message', '')}"[:500])
    return Attempt(Outcome.DELIVERED, "accepted by SES")


def _record(request: DeliveryRequest, result: Attempt, delays: tuple[int, ...]) -> None:
    now = utcnow()
    next_at = None
    if result.outcome is Outcome.DELIVERED:
        status = DeliveryStatus.DELIVERED
    elif result.outcome is Outcome.GONE:
        status = DeliveryStatus.DISABLED
    elif result.outcome is Outcome.RETRY and request.attempt < len(delays):
        status = DeliveryStatus.PENDING
        wait = max(delays[request.attempt], min(result.retry_after or 0, max(delays)))
        next_at = now + timedelta(seconds=wait)
    else:
        status = DeliveryStatus.FAILED
    delivery = Delivery(
        series=request.series,
        attempts=request.attempt,
        status=status,
        last_attempt_at=now,
        last_error=None if status is DeliveryStatus.DELIVERED else result.detail,
        next_attempt_at=next_at,
    )
    if predictions.record_delivery(request.prediction_id, request.key, delivery) is None:
        return  # a redelivery started a new series meanwhile: it carries on from here
    logger.info(
        "callback attempt",
        extra={**_context(request), "outcome": result.outcome.value, "detail": result.detail, "status": status},
    )
    metrics.add_metric(name=ATTEMPT_METRICS[result.outcome], unit="Count", value=1)
    if next_at is not None:
        queues.schedule_delivery(
            request.prediction_id, request.event, request.series, request.attempt + 1, next_at, request.step_id
        )


def _context(request: DeliveryRequest) -> dict[str, object]:
    return {
        "prediction_id": request.prediction_id,
        "event": request.key,
        "series": request.series,
        "attempt": request.attempt,
    }


def redeliver(caller: Caller, prediction_id: str) -> None:
    """Send the current representation again: a new attempt series of every event the prediction
    has reached, with the same `webhook-id` per event (the replay Standard Webhooks asks for).
    Another tenant's prediction is not found."""
    record = predictions.get_owned(prediction_id, caller.tenant)
    if not isinstance(record.callback, WebhookCallback):
        raise NotRedeliverable(f"prediction {prediction_id!r} has no webhook to redeliver")
    # Step events are not replayed: each step's delivery already has its own series and status.
    events = [CallbackEvent(e) for e in record.callback.events if e != CallbackEvent.STEP.value]
    reached = [
        e
        for e in events
        if e in record.deliveries or (record.status.terminal if e is CallbackEvent.COMPLETED else record.started_at)
    ]
    if not reached:
        raise NotRedeliverable(f"prediction {prediction_id!r} has not reached an event its webhook asked for")
    for event in reached:
        current = record.deliveries.get(event)
        series = current.series if current else 0
        if predictions.start_delivery_series(prediction_id, event.value, series) is not None:
            queues.schedule_delivery(prediction_id, event, series + 1, 1)
