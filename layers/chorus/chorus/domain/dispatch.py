"""An input arrived: check it, claim the prediction once, and hand it to its endpoint or execution.

A claim holds a lease: if the worker dies between claiming and invoking, the redelivered message
claims it again once the lease lapses. Once dispatched, the prediction carries a run deadline —
past it, a result that never came is declared `timed_out` (the deadline queue looks again then).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chorus.adapters import endpoints, executions, payloads, predictions, queues
from chorus.core.clock import utcnow
from chorus.core.errors import DispatchFailed, EndpointError
from chorus.core.observability import logger
from chorus.domain import callbacks, results
from chorus.model.content import JSON, SYNC_PAYLOAD_LIMIT, normalize
from chorus.model.plan import run_limit_seconds, step_timeouts
from chorus.model.records import CallbackEvent, ErrorDetail, PredictionRecord, S3Location, Status
from chorus.model.registry import ServiceDefinition, get_registry

# The endpoint or execution owns the work once dispatched; the run deadline, not the lease, ends it.
DISPATCHED_LEASE = timedelta(days=3650)
DISPATCH_LEASE_CAP_SECONDS = 300
DISPATCH_LEASE_MARGIN = timedelta(seconds=60)


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
    if record.status.terminal:
        logger.info("input for a finished prediction ignored", extra={"prediction_id": prediction_id})
        return
    service = get_registry().get(record.service)
    problem = _input_problem(service, record, location, size)
    if problem:
        results.fail(record.id, ErrorDetail(code="invalid_input", message=problem))
        return
    lease = utcnow() + timedelta(seconds=min(service.timeout_seconds, DISPATCH_LEASE_CAP_SECONDS))
    claimed = predictions.claim_dispatch(record.id, location, lease + DISPATCH_LEASE_MARGIN)
    if claimed is None:
        logger.info("duplicate input event ignored", extra={"prediction_id": prediction_id})
        return
    try:
        _dispatch(claimed, service)
    except (EndpointError, DispatchFailed) as exc:
        results.fail(claimed.id, ErrorDetail(code=exc.code, message=exc.message))


def _input_problem(service: ServiceDefinition, record: PredictionRecord, location: S3Location, size: int) -> str:
    # S3 enforces the presigned POST policy; checking again here covers other writers (and moto).
    if size <= 0:
        return "the uploaded input is empty"
    if size > service.max_input_bytes:
        return f"the input is {size} bytes; {service.name} accepts at most {service.max_input_bytes}"
    if normalize(location.content_type) != record.content_type:
        return f"the input was uploaded as {location.content_type!r}, not the declared {record.content_type!r}"
    if service.endpoint is not None and service.endpoint.mode == "sync" and size > SYNC_PAYLOAD_LIMIT:
        return f"the input is {size} bytes; real-time endpoints accept at most {SYNC_PAYLOAD_LIMIT}"
    return ""


def _dispatch(record: PredictionRecord, service: ServiceDefinition) -> None:
    assert record.input is not None
    now = utcnow()
    registry = get_registry()
    run_deadline = now + timedelta(seconds=run_limit_seconds(service, registry))
    if service.kind == "ensemble":
        document = {
            "prediction": {"id": record.id, "service": service.name, "input": record.input.as_dict()},
            "timeouts": step_timeouts(service, registry),
        }
        arn = executions.start(service.name, record.id, document)
        running = _mark_running(record, now + DISPATCHED_LEASE, run_deadline, execution_arn=arn)
        if running is not None:
            queues.schedule_deadline(record.id, run_deadline)
        return
    assert service.endpoint is not None
    if service.endpoint.mode == "async":
        endpoints.invoke_async(service.endpoint.name, record.id, record.input, _time_left(record, service))
        if _mark_running(record, now + DISPATCHED_LEASE, run_deadline) is not None:
            queues.schedule_deadline(record.id, run_deadline)
        return
    # Real-time: this worker runs the model, so the dispatch lease keeps covering it.
    if _mark_running(record, record.lease_until or now, None) is None:
        return
    endpoints.run_sync(service.endpoint.name, record.id, record.input)


def _time_left(record: PredictionRecord, service: ServiceDefinition) -> int:
    """The service's timeout, shortened to what the request's deadline leaves."""
    if record.deadline_at is None:
        return service.timeout_seconds
    return max(1, min(service.timeout_seconds, int((record.deadline_at - utcnow()).total_seconds())))


def _mark_running(
    record: PredictionRecord, lease: datetime, run_deadline: datetime | None, execution_arn: str | None = None
) -> PredictionRecord | None:
    running, first_start = predictions.mark_running(
        record.id, lease_until=lease, run_deadline_at=run_deadline, execution_arn=execution_arn
    )
    if running is None:
        current = predictions.get(record.id)
        if current.status is Status.CANCELED and execution_arn:
            executions.stop(execution_arn, "prediction canceled")
        return None
    if first_start:
        callbacks.announce(running, CallbackEvent.START)
    return running


def dead_lettered(prediction_id: str, what: str) -> None:
    """A message about this prediction failed every retry: end it truthfully, never leave it queued."""
    record = predictions.find(prediction_id)
    if record is None or record.status.terminal:
        return
    message = f"the {what} could not be processed after repeated attempts"
    results.fail(prediction_id, ErrorDetail(code="dispatch_failed", message=message))
