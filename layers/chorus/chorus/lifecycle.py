"""The prediction lifecycle: submit, receive the input, dispatch it, record the result, cancel.

Every step is safe to repeat: state changes are conditional writes, so a duplicate S3 event, SNS
message or retry finds the prediction already moved on and does nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from chorus import (
    compiler,
    deadlines,
    endpoints,
    executions,
    payloads,
    predictions,
    sagemaker_events,
    views,
    webhooks,
)
from chorus.api_models import PredictionRequest
from chorus.callbacks import notify
from chorus.errors import (
    DeliveryFailed,
    EndpointError,
    InvalidCallback,
    InvalidRequest,
    NotCancelable,
    PayloadTooLarge,
    UnsupportedContentType,
    WebhookRefused,
)
from chorus.observability import logger, metrics
from chorus.records import (
    Callback,
    EmailCallback,
    ErrorDetail,
    PredictionRecord,
    S3Location,
    Status,
    WebhookCallback,
    iso,
    utcnow,
)
from chorus.registry import ServiceDefinition, get_registry
from chorus.settings import get_settings

JSON = "application/json"
UPLOAD_GRACE = timedelta(seconds=60)  # an upload that began just before expiry may still land
NO_LEASE = timedelta(days=3650)  # the endpoint or execution owns the work; its notification ends it


def new_prediction_id() -> str:
    return uuid.uuid4().hex


def render(record: PredictionRecord) -> dict[str, Any]:
    if record.kind != "ensemble":
        return views.render(record)
    service = get_registry().get(record.service)
    return views.render(record, predictions.children(record.id), [s.name for s in service.steps])


# --- submit -------------------------------------------------------------------------------------


def submit(request: PredictionRequest, prediction_id: str | None = None) -> dict[str, Any]:
    """Create a prediction and answer with its upload URL, or, for inline input, store the input
    where an upload lands: the S3 event then starts it through the same path, with the same retries
    (a model is never called from the API request path)."""
    service = get_registry().require_enabled(request.service)
    inline = request.input is not None
    content_type = _content_type(service, request, inline)
    callback = _callback(request)
    body = json.dumps(request.input, separators=(",", ":")).encode() if inline else b""
    if len(body) > service.max_input_bytes:
        raise PayloadTooLarge(f"input is {len(body)} bytes; {service.name} accepts at most {service.max_input_bytes}")
    settings = get_settings()
    now = utcnow()
    record = PredictionRecord(
        id=prediction_id or new_prediction_id(),
        service=service.name,
        kind=service.kind,
        status=Status.AWAITING_INPUT,
        created_at=now,
        updated_at=now,
        upload_expires_at=now + timedelta(seconds=settings.upload_url_ttl_seconds),
        deadline_at=now + timedelta(seconds=request.deadline_seconds) if request.deadline_seconds else None,
        content_type=content_type,
        metadata=request.metadata,
        callback=callback,
        ttl=predictions.record_ttl(now),
    )
    predictions.create(record)
    metrics.add_metric(name="PredictionsSubmitted", unit="Count", value=1)
    if record.deadline_at is not None:
        deadlines.schedule(record.id, record.deadline_at)
    if inline:
        payloads.put_bytes(payloads.upload_key(record.id), body, JSON)
        return render(record)
    # Nobody may ever read this prediction again: expire it on schedule, not only on read.
    deadlines.schedule(record.id, now + timedelta(seconds=settings.upload_url_ttl_seconds) + UPLOAD_GRACE)
    upload = payloads.presigned_upload(
        record.id, content_type, service.max_input_bytes, settings.upload_url_ttl_seconds
    )
    view = render(record)
    view["upload"] = {
        "url": upload["url"],
        "method": "POST",
        "fields": upload["fields"],
        "expiresAt": iso(record.upload_expires_at),
        "maxBytes": service.max_input_bytes,
        "contentType": content_type,
    }
    return view


def _content_type(service: ServiceDefinition, request: PredictionRequest, inline: bool) -> str:
    if inline:
        if request.content_type not in (None, JSON):
            raise InvalidRequest("inline `input` is JSON: omit `contentType` or set it to application/json")
        content_type = JSON
    else:
        content_type = (request.content_type or service.content_types[0]).split(";")[0].strip().lower()
    if not service.accepts(content_type):
        accepted = ", ".join(service.content_types)
        raise UnsupportedContentType(f"service {service.name!r} accepts {accepted}; not {content_type!r}")
    return content_type


def _callback(request: PredictionRequest) -> Callback | None:
    given = request.callback
    if given is None:
        return None
    if given.type == "email":
        return EmailCallback(address=given.address)
    try:
        webhooks.vet(given.url, get_settings().allowed_networks)
    except WebhookRefused as exc:
        raise InvalidCallback(exc.message) from exc
    return WebhookCallback(url=given.url, events=tuple(dict.fromkeys(given.events)))


# --- input arrives --------------------------------------------------------------------------------


def receive_upload(bucket: str, key: str) -> None:
    """An object landed under inputs/: start its prediction (process-input)."""
    prediction_id = payloads.prediction_id_from_upload_key(key)
    if prediction_id is None:
        logger.warning("ignoring object outside the upload layout", extra={"key": key})
        return
    info = payloads.describe(bucket, key)
    if info is None:
        logger.warning("uploaded object is gone", extra={"key": key})
        return
    start(prediction_id, S3Location(bucket=bucket, key=key, contentType=info.content_type or JSON), info.size)


def start(prediction_id: str, location: S3Location, size: int) -> None:
    record = predictions.find(prediction_id)
    if record is None:
        logger.warning("input for an unknown prediction", extra={"prediction_id": prediction_id})
        return
    if record.status not in {Status.AWAITING_INPUT, Status.QUEUED, Status.RUNNING}:
        logger.info("input for a finished prediction ignored", extra={"prediction_id": prediction_id})
        return
    service = get_registry().get(record.service)
    problem = _input_problem(service, record, location, size)
    if problem:
        fail(record.id, ErrorDetail(code="invalid_input", message=problem))
        return
    claimed = _claim(record, location, service)
    if claimed is None:
        logger.info("duplicate input event ignored", extra={"prediction_id": prediction_id})
        return
    try:
        _dispatch(claimed, service)
    except EndpointError as exc:
        fail(claimed.id, ErrorDetail(code=exc.code, message=exc.message))


def _input_problem(service: ServiceDefinition, record: PredictionRecord, location: S3Location, size: int) -> str:
    # S3 enforces the presigned POST policy; checking again here covers other writers (and moto).
    if size <= 0:
        return "the uploaded input is empty"
    if size > service.max_input_bytes:
        return f"the input is {size} bytes; {service.name} accepts at most {service.max_input_bytes}"
    if location.content_type.split(";")[0].strip().lower() != record.content_type:
        return f"the input was uploaded as {location.content_type!r}, not the declared {record.content_type!r}"
    if (
        service.kind == "model"
        and service.endpoint
        and service.endpoint.mode == "sync"
        and size > endpoints.SYNC_PAYLOAD_LIMIT
    ):
        return f"the input is {size} bytes; real-time endpoints accept at most {endpoints.SYNC_PAYLOAD_LIMIT}"
    return ""


def _claim(record: PredictionRecord, location: S3Location, service: ServiceDefinition) -> PredictionRecord | None:
    """Take the prediction for dispatch, once. A claim whose worker crashed can be taken again
    after its lease runs out, which is how a redelivered SQS message finishes the job."""
    now = utcnow()
    lease = now + timedelta(seconds=min(service.timeout_seconds, 300) + 60)
    claimed = predictions.transition(
        record.id,
        Status.QUEUED,
        {"input": location.as_dict(), "queuedAt": iso(now), "leaseUntil": iso(lease)},
    )
    if claimed is not None:
        return claimed
    return predictions.update_fields(
        record.id,
        {"leaseUntil": iso(lease)},
        condition="#status IN (:queued, :running) AND leaseUntil < :now",
        values={":queued": Status.QUEUED.value, ":running": Status.RUNNING.value, ":now": iso(now)},
    )


def _dispatch(record: PredictionRecord, service: ServiceDefinition) -> None:
    assert record.input is not None
    now = utcnow()
    if service.kind == "ensemble":
        document = {
            "prediction": {"id": record.id, "service": service.name, "input": record.input.as_dict()},
            "timeouts": step_timeouts(service),
        }
        arn = executions.start(service.name, record.id, document)
        _mark_running(record, {"executionArn": arn, "leaseUntil": iso(now + NO_LEASE)}, stop_arn=arn)
        return
    assert service.endpoint is not None
    if service.endpoint.mode == "async":
        endpoints.invoke_async(service.endpoint.name, record.id, record.input, _time_left(record, service))
        _mark_running(record, {"leaseUntil": iso(now + NO_LEASE)})
        return
    running = _mark_running(record, {})
    if running is None:
        return
    body = payloads.read_bytes(record.input)
    answer = endpoints.invoke_sync(service.endpoint.name, body, record.input.content_type)
    if isinstance(answer, endpoints.ModelFailure):
        message = sagemaker_events.message(
            record.id, service.endpoint.name, record.input, "Failed", failure_reason=answer.reason
        )
    else:
        output = payloads.put_bytes(payloads.output_key(record.id), answer.body, answer.content_type)
        message = sagemaker_events.message(record.id, service.endpoint.name, record.input, "Completed", output=output)
    # The same notification an async endpoint sends: notifications has a single path for results.
    sagemaker_events.publish(message)


def _time_left(record: PredictionRecord, service: ServiceDefinition) -> int:
    """The service's timeout, shortened to what the request's deadline leaves."""
    if record.deadline_at is None:
        return service.timeout_seconds
    return max(1, min(service.timeout_seconds, int((record.deadline_at - utcnow()).total_seconds())))


def _mark_running(
    record: PredictionRecord, changes: dict[str, Any], stop_arn: str | None = None
) -> PredictionRecord | None:
    first_start = record.status is Status.QUEUED
    fields = {**changes, "startedAt": iso(utcnow())} if first_start else changes
    running = predictions.transition(record.id, Status.RUNNING, fields)
    if running is None:
        running = (
            predictions.update_fields(
                record.id, changes, condition="#status = :running", values={":running": Status.RUNNING.value}
            )
            if changes
            else None
        )
    if running is None:
        current = predictions.get(record.id)
        if current.status is Status.CANCELED and stop_arn:
            executions.stop(stop_arn, "prediction canceled")
        return None if current.status.terminal else current
    if first_start:
        try:
            notify(running, "start", render)
        except DeliveryFailed as exc:
            # The work must not wait for a receiver: the "completed" event will still be tried.
            logger.warning("start callback failed", extra={"prediction_id": record.id, "reason": exc.message})
    return running


def step_timeouts(service: ServiceDefinition) -> dict[str, int]:
    return compiler.step_timeouts(service, get_registry())


# --- results --------------------------------------------------------------------------------------


def record_result(result: sagemaker_events.InferenceResult) -> None:
    """A SageMaker-format notification arrived (async endpoint, sync path or ensemble end)."""
    if result.succeeded:
        updated = predictions.transition(result.inference_id, Status.SUCCEEDED, {"output": result.output().as_dict()})
    else:
        record = predictions.find(result.inference_id)
        if record is None:
            logger.warning("result for an unknown prediction", extra={"inference_id": result.inference_id})
            return
        code = "step_failed" if record.kind == "ensemble" else "model_error"
        if result.error_code == "StepTimedOut":
            code = "step_timed_out"
        error = ErrorDetail(code=code, message=_failure_reason(record, result)).model_dump()
        updated = predictions.transition(record.id, Status.FAILED, {"error": error})
    if updated is None:
        current = predictions.find(result.inference_id)
        if current is None:
            logger.warning("result for an unknown prediction", extra={"inference_id": result.inference_id})
            return
        logger.info("duplicate or late result ignored", extra={"prediction_id": current.id, "status": current.status})
        updated = current
    else:
        metrics.add_metric(name=f"Predictions{updated.status.value.title()}", unit="Count", value=1)
    if updated.status.terminal:
        notify(updated, "completed", render)


def _failure_reason(record: PredictionRecord, result: sagemaker_events.InferenceResult) -> str:
    reason = (result.failure_reason or "").strip()
    if reason.startswith("{"):
        # A Lambda error relayed by Step Functions: keep its message, never its stack trace.
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            reason = str(json.loads(reason).get("errorMessage", "")) or reason
    if not reason and record.kind == "ensemble":
        # Step Functions does not always carry the cause along; the failed step's record has it.
        failed = [c for c in predictions.children(record.id) if c.status is Status.FAILED and c.error]
        if failed:
            step = failed[0]
            reason = f"step {step.step_name!r} ({step.service}) failed: {step.error.message}"  # type: ignore[union-attr]
    return reason or f"invocation {result.invocation_status.lower()} without a reason"


def fail(prediction_id: str, error: ErrorDetail) -> None:
    failed = predictions.transition(prediction_id, Status.FAILED, {"error": error.model_dump()})
    if failed is not None:
        logger.info("prediction failed", extra={"prediction_id": prediction_id, "code": error.code})
    current = failed or predictions.find(prediction_id)
    if current is not None and current.status.terminal:
        notify(current, "completed", render)


# --- client operations ----------------------------------------------------------------------------


def describe(prediction_id: str) -> dict[str, Any]:
    """The prediction as clients see it. A passed upload expiry or deadline is enforced on read,
    so a status is never stale even when the deadline queue lags."""
    record = predictions.get(prediction_id)
    if not record.status.terminal and _due(record) is not None:
        _enforce(record)
        record = predictions.get(prediction_id)
    return render(record)


def cancel(prediction_id: str) -> dict[str, Any]:
    record = predictions.get(prediction_id)
    if record.status is Status.CANCELED:
        notify(record, "completed", render)  # a retried cancel finishes a callback that failed
    else:
        if record.status.terminal:
            raise NotCancelable(f"prediction {prediction_id!r} already {record.status.value}")
        canceled = _cancel_tree(record)
        if canceled is None:
            record = predictions.get(prediction_id)
            if record.status is not Status.CANCELED:
                raise NotCancelable(f"prediction {prediction_id!r} already {record.status.value}")
        else:
            record = canceled
            notify(record, "completed", render)
    return render(record)


def enforce_deadline(prediction_id: str, at: datetime) -> None:
    """A deadline message is due: expire an upload that never came, or cancel what is unfinished."""
    if (at - utcnow()).total_seconds() > 1:
        deadlines.schedule(prediction_id, at)  # further out than one SQS delay: wait again
        return
    record = predictions.find(prediction_id)
    if record is None:
        return
    if record.status.terminal:
        notify(record, "completed", render)  # finishes a callback an earlier attempt could not send
        return
    _enforce(record)


def _due(record: PredictionRecord) -> str | None:
    now = utcnow() + timedelta(seconds=1)  # a message delivered a moment early is due
    if (
        record.status is Status.AWAITING_INPUT
        and record.upload_expires_at
        and now > record.upload_expires_at + UPLOAD_GRACE
    ):
        return "expired"
    if record.deadline_at and now >= record.deadline_at:
        return "deadline"
    return None


def _enforce(record: PredictionRecord) -> None:
    due = _due(record)
    if due == "expired":
        message = "no input arrived before the upload URL expired"
        finished = predictions.transition(record.id, Status.EXPIRED, {"error": {"code": "expired", "message": message}})
    elif due == "deadline":
        assert record.deadline_at is not None
        message = f"the prediction did not finish by its deadline ({iso(record.deadline_at)})"
        finished = _cancel_tree(record, {"code": "deadline_exceeded", "message": message})
    else:
        return
    if finished is not None:
        logger.info("prediction ended by its clock", extra={"prediction_id": record.id, "reason": due})
        notify(finished, "completed", render)


def _cancel_tree(record: PredictionRecord, error: dict[str, str] | None = None) -> PredictionRecord | None:
    canceled = predictions.transition(record.id, Status.CANCELED, {"error": error} if error else {})
    if canceled is None:
        return None
    if canceled.execution_arn:
        executions.stop(canceled.execution_arn, "prediction canceled by the client")
    for child in predictions.children(record.id):
        if not child.status.terminal:
            # The parent's execution is stopped: the children's tokens are spent, so no callback.
            _cancel_tree(child, error)
    return canceled


def wait_until_finished(prediction_id: str, seconds: float, fallback: dict[str, Any]) -> dict[str, Any]:
    """`Prefer: wait=N`: hold the answer until the prediction finishes or N seconds pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = predictions.find(prediction_id)
        if record is not None and record.status.terminal:
            return render(record)
        time.sleep(0.2)
    return fallback if (record := predictions.find(prediction_id)) is None else render(record)
