"""An input arrived: check it, claim the prediction once, and hand it to its endpoint or execution.

A claim holds a lease: if the worker dies between claiming and invoking (or during a real-time
call), the redelivered message is retried until the lease lapses and then claims it again. Once an
async endpoint or an execution owns the work, the lease is removed and nobody reclaims it; the
prediction carries a run deadline instead — past it, a result that never came is declared
`timed_out` (the deadline queue looks again then).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chorus.adapters import endpoints, executions, payloads, predictions, queues
from chorus.core.clock import utcnow
from chorus.core.errors import ChorusError, DispatchFailed, EndpointError
from chorus.core.observability import about, logger
from chorus.domain import callbacks, results, trials
from chorus.model.content import JSON, SYNC_PAYLOAD_LIMIT, normalize
from chorus.model.plan import run_limit_seconds, step_timeouts
from chorus.model.records import CallbackEvent, ErrorDetail, PredictionRecord, S3Location, Status
from chorus.model.registry import ServiceDefinition, get_registry
from chorus.model.versions import Route, Trial

DISPATCH_LEASE_CAP_SECONDS = 300
DISPATCH_LEASE_MARGIN_SECONDS = 60


class ClaimHeld(ChorusError):
    """Another worker claimed this prediction and has not dispatched it yet. If that worker died,
    its lease lapses: the message is retried (not dropped) so the claim can be taken over."""

    code = "claim_held"


def receive_upload(bucket: str, key: str) -> None:
    """An object landed under inputs/<tenant>/<id>/input: start its prediction (process-input), if
    that tenant owns it (an object under another tenant's prefix is ignored, logged)."""
    parts = payloads.upload_key_parts(key)
    if parts is None:
        logger.warning("ignoring object outside the upload layout", extra={"key": key})
        return
    tenant, prediction_id = parts
    info = payloads.describe(bucket, key)
    if info is None:
        logger.warning("uploaded object is gone", extra={"key": key})
        return
    location = S3Location(bucket=bucket, key=key, contentType=info.content_type or JSON)
    start(prediction_id, location, info.size, tenant=tenant)


def start(prediction_id: str, location: S3Location, size: int, *, tenant: str | None = None) -> None:
    """Dispatch the prediction with this input; `tenant`, when the input's key names one, must be
    the prediction's own."""
    record = predictions.find(prediction_id)
    if record is None:
        logger.warning("input for an unknown prediction", extra={"prediction_id": prediction_id})
        return
    about(record.tenant, record.token_id, record.id)
    if tenant is not None and record.tenant != tenant:
        logger.warning(
            "input under another tenant's prefix ignored",
            extra={"prediction_id": prediction_id, "key": location.key, "key_tenant": tenant},
        )
        return
    if record.status.terminal:
        logger.info("input for a finished prediction ignored", extra={"prediction_id": prediction_id})
        return
    service = get_registry().get(record.service)
    problem = _input_problem(service, record, location, size)
    if problem:
        results.fail(record.id, ErrorDetail(code="invalid_input", message=problem))
        return
    claimed = predictions.claim_dispatch(record.id, location, utcnow() + _dispatch_lease(service))
    if claimed is None:
        current = predictions.find(prediction_id)
        if current is not None and not current.status.terminal and current.lease_until is not None:
            raise ClaimHeld(f"prediction {prediction_id} is being dispatched by another worker; retry later")
        logger.info("duplicate input event ignored", extra={"prediction_id": prediction_id})
        return
    try:
        _dispatch(claimed, service)
    except (EndpointError, DispatchFailed) as exc:
        results.fail(claimed.id, ErrorDetail(code=exc.code, message=exc.message))


def _dispatch_lease(service: ServiceDefinition) -> timedelta:
    """Long enough to invoke the endpoint (a real-time call runs inside it), then some margin."""
    work = min(service.timeout_seconds, DISPATCH_LEASE_CAP_SECONDS)
    return timedelta(seconds=work + min(DISPATCH_LEASE_MARGIN_SECONDS, work))


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
        # The execution owns the work now: no lease; its result or the run deadline ends it.
        running = _mark_running(record, None, run_deadline, execution_arn=arn)
        if running is not None:
            queues.schedule_deadline(record.id, run_deadline)
        return
    served = trials.route_for(service, record.id)
    _serve(record, service, served, run_deadline)
    if served.shadow is not None:
        _shadow(record, service, served, run_deadline)


def _serve(record: PredictionRecord, service: ServiceDefinition, served: Route, run_deadline: datetime) -> None:
    """Run a model prediction on the endpoint of the version its route names."""
    assert record.input is not None
    endpoint = served.serving.endpoint
    version, trial = served.serving.version, served.trial
    if endpoint.mode == "async":
        endpoints.invoke_async(endpoint.name, record.id, record.input, _time_left(record, service))
        if _mark_running(record, None, run_deadline, version=version, trial=trial) is not None:
            queues.schedule_deadline(record.id, run_deadline)
        return
    # Real-time: this worker runs the model, so the dispatch lease keeps covering it; a shadow has
    # no caller waiting on a lease, so its run deadline ends it if this worker dies.
    deadline = run_deadline if record.shadow_of else None
    if _mark_running(record, record.lease_until or utcnow(), deadline, version=version, trial=trial) is None:
        return
    if deadline is not None:
        queues.schedule_deadline(record.id, deadline)
    endpoints.run_sync(endpoint.name, record.id, record.input, record.tenant)


def _shadow(record: PredictionRecord, service: ServiceDefinition, served: Route, run_deadline: datetime) -> None:
    """Send a copy of the prediction to the candidate version, after the live one was served: its
    output is kept as evidence, never returned, and its failure is only evidence too."""
    assert served.shadow is not None and served.trial is not None
    shadow = trials.shadow_record(record, served.shadow.version)
    if not predictions.create(shadow):
        return  # a retried dispatch: the shadow already ran or is running
    route = Route(serving=served.shadow, trial=served.trial.model_copy(update={"side": "candidate"}))
    try:
        _serve(shadow, service, route, run_deadline)
    except (EndpointError, DispatchFailed) as exc:
        results.fail(shadow.id, ErrorDetail(code=exc.code, message=exc.message))


def _time_left(record: PredictionRecord, service: ServiceDefinition) -> int:
    """The service's timeout, shortened to what the request's deadline leaves."""
    if record.deadline_at is None:
        return service.timeout_seconds
    return max(1, min(service.timeout_seconds, int((record.deadline_at - utcnow()).total_seconds())))


def _mark_running(
    record: PredictionRecord,
    lease: datetime | None,
    run_deadline: datetime | None,
    execution_arn: str | None = None,
    version: str | None = None,
    trial: Trial | None = None,
) -> PredictionRecord | None:
    running, first_start = predictions.mark_running(
        record.id,
        lease_until=lease,
        run_deadline_at=run_deadline,
        execution_arn=execution_arn,
        version=version,
        trial=trial,
    )
    if running is None:
        current = predictions.get(record.id)
        if current.status is Status.CANCELED and execution_arn:
            executions.stop(execution_arn, "prediction canceled")
        return None
    if first_start:
        callbacks.announce(running, CallbackEvent.START)
    return running


def dead_lettered(prediction_id: str, what: str, *, tenant: str | None = None) -> None:
    """A message about this prediction failed every retry: end it truthfully, never leave it queued.
    `tenant`, when the message's key names one, must be the prediction's own."""
    record = predictions.find(prediction_id)
    if record is None or record.status.terminal or (tenant is not None and record.tenant != tenant):
        return
    message = f"the {what} could not be processed after repeated attempts"
    results.fail(prediction_id, ErrorDetail(code="dispatch_failed", message=message))
