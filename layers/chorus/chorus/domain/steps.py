"""Ensemble steps (get-transform-call): each step is a child prediction created through the same
code as a client's, whose callback is the waiting Step Functions task."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from typing import Any

from chorus.adapters import payloads, predictions
from chorus.core.clock import utcnow
from chorus.core.errors import InvalidInput, StepCanceled
from chorus.core.observability import logger
from chorus.domain import callbacks, dispatch
from chorus.domain.submit import new_child_salt
from chorus.events.models import StepInvocation, StepLocation
from chorus.model.content import JSON
from chorus.model.mapping import MappingError, render_mapping
from chorus.model.records import CallbackEvent, PredictionRecord, S3Location, Status, StepFunctionsCallback
from chorus.model.registry import get_registry


def child_id(parent: PredictionRecord, step_name: str) -> str:
    """HMAC-SHA256 of the step name, keyed by the parent's random `childSalt`, as 32 hex characters.
    Deterministic, so a retried task finds the child it already created instead of running it
    twice; unguessable, so nobody who knows the parent's id can derive its steps' ids."""
    if parent.child_salt is None:
        raise StepCanceled(f"prediction {parent.id!r} has no step-id salt: it cannot run steps")
    digest = hmac.new(bytes.fromhex(parent.child_salt), step_name.encode(), hashlib.sha256).hexdigest()
    return digest[:32]


def _location(found: StepLocation) -> S3Location:
    return S3Location(bucket=found.bucket, key=found.key, contentType=found.content_type)


def _build(invocation: StepInvocation, mapping: Any, where: str) -> tuple[S3Location | None, Any]:
    """(location handed on untouched, or None) and the rendered document."""
    sources = {name: _location(found) for name, found in invocation.locations().items()}

    def source(root: str) -> S3Location:
        if root not in sources:
            raise MappingError(f"{where}: {root!r} has no output to read (known: {', '.join(sources)})")
        return sources[root]

    def resolve(root: str) -> Any:
        try:
            return payloads.read_json(source(root))
        except json.JSONDecodeError as exc:
            raise MappingError(f"{where}: the payload of {root!r} is not JSON, so its fields cannot be read") from exc

    try:
        result = render_mapping(mapping, resolve, lambda root: source(root).uri)
    except MappingError as exc:
        raise MappingError(exc.message if exc.message.startswith(where) else f"{where}: {exc.message}") from exc
    if result.passthrough is not None:
        return source(result.passthrough), None
    return None, result.document


def run_step(invocation: StepInvocation) -> dict[str, Any]:
    assert invocation.step is not None and invocation.task_token is not None
    step = invocation.step
    where = f"step {step.name!r} ({step.service})"
    parent = predictions.get(invocation.parent.id)
    if parent.status.terminal:
        # The parent was canceled (or failed) while this task was being scheduled: start nothing.
        raise StepCanceled(f"{where}: not started, the prediction is already {parent.status.value}")
    identifier = child_id(parent, step.name)
    callback = StepFunctionsCallback(task_token=invocation.task_token)
    existing = predictions.find(identifier)
    if existing is not None:
        return _resume(existing, callback)
    service = get_registry().require_enabled(step.service)
    passthrough, document = _build(invocation, step.input, where)
    if passthrough is not None:
        if not service.accepts(passthrough.content_type):
            raise InvalidInput(
                f"{where}: the payload is {passthrough.content_type}; "
                f"{service.name} accepts {', '.join(service.content_types)}"
            )
        location = passthrough
        info = payloads.describe(location.bucket, location.key)
        size = info.size if info else 0
    else:
        body = json.dumps(document, separators=(",", ":")).encode()
        location = payloads.put_bytes(payloads.step_input_key(parent.tenant, identifier), body, JSON)
        size = len(body)
    now = utcnow()
    created = predictions.create(
        PredictionRecord(
            id=identifier,
            tenant=parent.tenant,  # a step is its ensemble's tenant's, like every payload it reads
            service=service.name,
            kind=service.kind,
            status=Status.AWAITING_INPUT,
            created_at=now,
            updated_at=now,
            content_type=location.content_type,
            input=location,  # kept from the start, so a retried task can dispatch it
            callback=callback,
            parent_id=parent.id,
            step_name=step.name,
            metadata={},
            child_salt=new_child_salt(service.kind),  # a nested ensemble derives its own steps' ids
            ttl=predictions.record_ttl(now),
        )
    )
    if not created:  # a concurrent attempt created it first: make sure our token is the one resumed
        return _resume(predictions.get(identifier), callback)
    logger.info("step started", extra={"prediction_id": parent.id, "step": step.name, "child_id": identifier})
    dispatch.start(identifier, location, size)
    return {"childId": identifier}


def _resume(child: PredictionRecord, callback: StepFunctionsCallback) -> dict[str, Any]:
    """The task was retried: point the child at the new token; if it already finished, answer now."""
    updated = predictions.redirect_callback(child.id, callback)
    if updated is not None and updated.status.terminal:
        callbacks.announce(updated, CallbackEvent.COMPLETED)
    elif updated is not None and updated.input is not None:
        # An earlier attempt may have died before dispatching: the claim lets exactly one start it.
        info = payloads.describe(updated.input.bucket, updated.input.key)
        with contextlib.suppress(dispatch.ClaimHeld):  # the earlier attempt is still dispatching it
            dispatch.start(updated.id, updated.input, info.size if info else 0)
    return {"childId": child.id, "resumed": True}


def render_output(invocation: StepInvocation) -> dict[str, Any]:
    """Render the ensemble's output mapping into outputs/{tenant}/{parent}/output."""
    where = f"ensemble output of {invocation.parent.id}"
    passthrough, document = _build(invocation, invocation.output, where)
    if passthrough is not None:
        location = passthrough
    else:
        tenant = predictions.get(invocation.parent.id).tenant
        location = payloads.put_json(payloads.output_key(tenant, invocation.parent.id), document)
    return {**location.as_dict(), "outputLocation": location.uri}
