"""Ensemble steps (get-transform-call): each step is a child prediction created through the same
code as a client's, whose callback is the waiting Step Functions task.

What a step does is the registry's declaration, decided here:
- a `when` condition that is false records the step `skipped` (with the values it read) and
  resumes the task at once;
- a rule step computes its output from the input and earlier outputs (first matching case, else
  the default), stores it like any output and records which case matched;
- a model or nested-ensemble step renders its input and is dispatched like a client's prediction;
- a fanned-out step is first expanded (`items`): its list evaluated, each item's input stored,
  the item indices handed to the state machine's Map, which runs one child per item;
- a retried attempt (`$$.State.RetryCount` > 0, after a failure the service declares retryable)
  is a new child, `<step>#<attempt>`; a repeated invocation of the same attempt resumes its child.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from typing import Any

from chorus.adapters import payloads, predictions
from chorus.core.clock import utcnow
from chorus.core.errors import InvalidInput, StepCanceled
from chorus.core.observability import about, logger
from chorus.domain import callbacks, dispatch, measures
from chorus.domain.submit import new_child_salt
from chorus.events.models import FanOutOutcome, StepInvocation, StepLocation
from chorus.model import expressions
from chorus.model.content import JSON
from chorus.model.expressions import ITEM
from chorus.model.mapping import MappingError, Scope, render_mapping
from chorus.model.records import (
    CallbackEvent,
    PredictionRecord,
    S3Location,
    Status,
    StepFunctionsCallback,
    WebhookCallback,
)
from chorus.model.registry import StepDeclaration, get_registry


def step_key(step_name: str, item: int | None = None, attempt: int = 0) -> str:
    """What a child's id is derived from: `svm`, `batch[3]`, `svm#1` (the second attempt)."""
    key = step_name if item is None else f"{step_name}[{item}]"
    return key if attempt == 0 else f"{key}#{attempt}"


def child_id(parent: PredictionRecord, step_name: str, item: int | None = None, attempt: int = 0) -> str:
    """HMAC-SHA256 of the step key, keyed by the parent's random `childSalt`, as 32 hex characters.
    Deterministic, so a retried task finds the child it already created instead of running it
    twice; unguessable, so nobody who knows the parent's id can derive its steps' ids."""
    if parent.child_salt is None:
        raise StepCanceled(f"prediction {parent.id!r} has no step-id salt: it cannot run steps")
    message = step_key(step_name, item, attempt).encode()
    return hmac.new(bytes.fromhex(parent.child_salt), message, hashlib.sha256).hexdigest()[:32]


# --- reading earlier outcomes ------------------------------------------------------------------------


class _Sources:
    """The documents a step's expressions read: the request input, earlier outputs (a fanned-out
    step's as the list of its items' outputs), the item of a fanned-out step. Steps that produced
    no output are `absent` and read null."""

    def __init__(self, invocation: StepInvocation, where: str, item: Any = None) -> None:
        self.where = where
        self.item = item
        self.locations: dict[str, S3Location] = {}
        self.fanned_out: dict[str, FanOutOutcome] = {}
        absent: dict[str, str] = {}
        for name, outcome in {"input": invocation.parent.input, **invocation.outputs}.items():
            if isinstance(outcome, FanOutOutcome):
                if outcome.skipped or outcome.error is not None:
                    absent[name] = "skipped" if outcome.skipped else "failed"
                else:
                    self.fanned_out[name] = outcome
            elif outcome.outcome == "succeeded":
                self.locations[name] = _location(outcome)
            else:
                absent[name] = outcome.outcome
        self.scope = Scope(self._resolve, absent)

    def source(self, root: str) -> S3Location:
        if root not in self.locations:
            known = ", ".join([*self.locations, *self.fanned_out])
            raise MappingError(f"{self.where}: {root!r} has no output to read (known: {known})")
        return self.locations[root]

    def _resolve(self, root: str) -> Any:
        if root == ITEM:
            return self.item
        if root in self.fanned_out:
            return [self._read(o) if o.outcome == "succeeded" else None for o in self.fanned_out[root].outcomes]
        return self._read_location(root, self.source(root))

    def _read(self, outcome: StepLocation) -> Any:
        return self._read_location(outcome.id or "item", _location(outcome))

    def _read_location(self, root: str, location: S3Location) -> Any:
        try:
            return payloads.read_json(location)
        except json.JSONDecodeError as exc:
            raise MappingError(
                f"{self.where}: the payload of {root!r} is not JSON, so its fields cannot be read"
            ) from exc

    def render(self, mapping: Any) -> tuple[S3Location | None, Any]:
        """(location handed on untouched, or None) and the rendered document."""
        try:
            result = render_mapping(
                mapping, self._resolve, lambda root: self.source(root).uri, self.scope.absent, self.scope
            )
        except MappingError as exc:
            raise _named(exc, self.where) from exc
        if result.passthrough == ITEM:
            return None, self.item
        if result.passthrough is not None:
            return self.source(result.passthrough), None
        return None, result.document

    def condition(self, text: str) -> tuple[bool, dict[str, Any]]:
        """A condition's truth and what the audit trail keeps of it: the expression, the values
        of the paths it read, and the result."""
        try:
            value = self.scope.value(text, required=False)
            scope, _ = self.scope.for_expression(text)
            seen = {path: expressions.audit_value(_path_value(path, scope)) for path in expressions.path_texts(text)}
        except (MappingError, expressions.ExpressionError) as exc:
            raise _named(exc if isinstance(exc, MappingError) else MappingError(str(exc)), self.where) from exc
        result = expressions.truthy(value)
        return result, {"condition": text, "values": seen, "result": result}


def _path_value(path: str, scope: dict[str, Any]) -> Any:
    try:
        return expressions.evaluate(path, scope)
    except expressions.ExpressionError:
        return None


def _named(exc: MappingError, where: str) -> MappingError:
    return exc if exc.message.startswith(where) else MappingError(f"{where}: {exc.message}")


def _location(found: StepLocation) -> S3Location:
    return S3Location(bucket=found.bucket or "", key=found.key or "", contentType=found.content_type or JSON)


# --- running a step --------------------------------------------------------------------------------


def _declaration(parent: PredictionRecord, name: str) -> StepDeclaration:
    return get_registry().get(parent.service).step(name)


def _where(step: StepDeclaration, item: int | None = None) -> str:
    what = step.service or "rule"
    return f"step {step_key(step.name, item)!r} ({what})"


def _require_running(parent: PredictionRecord, where: str) -> None:
    if parent.status.terminal:
        # The parent was canceled (or failed) while this task was being scheduled: start nothing.
        raise StepCanceled(f"{where}: not started, the prediction is already {parent.status.value}")


def run_step(invocation: StepInvocation) -> dict[str, Any]:
    """A task with a token: run the step (or one item of it), or resume the child already running."""
    assert invocation.step is not None and invocation.task_token is not None
    parent = predictions.get(invocation.parent.id)
    about(parent.tenant, parent.token_id, parent.id)
    step = _declaration(parent, invocation.step.name)
    where = _where(step, invocation.item)
    _require_running(parent, where)
    callback = StepFunctionsCallback(task_token=invocation.task_token)
    existing = _current_attempt(parent, step, invocation.item, invocation.attempt)
    if existing is not None:
        return _resume(existing, callback)
    identifier = child_id(parent, step.name, invocation.item, invocation.attempt)
    child = _child(parent, step, identifier, callback, invocation)

    if invocation.item is not None:  # the items step stored this item's input
        location = S3Location(
            bucket=invocation.parent.input.bucket or "",
            key=payloads.step_input_key(parent.tenant, child_id(parent, step.name, invocation.item)),
            contentType=JSON,
        )
        return _start_model(child, step, location, None, where)
    sources = _Sources(invocation, where)
    if step.when is not None:
        run, decision = sources.condition(step.when)
        child = child.model_copy(update={"decision": decision})
        if not run:
            return _finish_at_once(child.model_copy(update={"status": Status.SKIPPED, "completed_at": utcnow()}))
    if step.rule is not None:
        return _run_rule(child, step, sources)
    passthrough, document = sources.render(step.input)
    return _start_model(child, step, passthrough, document, where)


def _current_attempt(
    parent: PredictionRecord, step: StepDeclaration, item: int | None, attempt: int
) -> PredictionRecord | None:
    """The child this invocation should resume, if any: its own attempt's (a repeated invocation),
    or an earlier attempt's that did not fail (the retry count also counts transient Lambda
    errors, which must not start the model twice). None: start this attempt."""
    for earlier in range(attempt, -1, -1):
        found = predictions.find(child_id(parent, step.name, item, earlier))
        if found is None:
            continue
        if earlier < attempt and found.status is Status.FAILED:
            return None  # that attempt failed (retryably): this one starts afresh
        return found
    return None


def _child(
    parent: PredictionRecord,
    step: StepDeclaration,
    identifier: str,
    callback: StepFunctionsCallback,
    invocation: StepInvocation,
) -> PredictionRecord:
    service = get_registry().require_enabled(step.service) if step.service else None
    now = utcnow()
    kind = service.kind if service is not None else "rule"
    return PredictionRecord(
        id=identifier,
        tenant=parent.tenant,  # a step is its ensemble's tenant's, like every payload it reads
        token_id=parent.token_id,
        service=service.name if service is not None else parent.service,  # a rule is its ensemble's
        kind=kind,
        status=Status.AWAITING_INPUT,
        created_at=now,
        updated_at=now,
        content_type=JSON,
        callback=callback,
        parent_id=parent.id,
        parent_service=parent.service,
        step_name=step.name,
        item_index=invocation.item,
        attempt=invocation.attempt or None,
        metadata={},
        child_salt=new_child_salt(kind),  # a nested ensemble derives its own steps' ids
        announce_to_parent=isinstance(parent.callback, WebhookCallback) and "step" in parent.callback.events,
        ttl=predictions.record_ttl(now),
    )


def _finish_at_once(child: PredictionRecord) -> dict[str, Any]:
    """A step that needs no model (skipped, or a rule): stored finished, its task resumed now."""
    if not predictions.create(child):  # a concurrent attempt created it first: resume that one
        return _resume(predictions.get(child.id), child.callback)  # type: ignore[arg-type]
    measures.submitted(child)
    measures.finished(child)
    logger.info(
        "step finished at once",
        extra={"prediction_id": child.parent_id, "step": child.step_name, "status": child.status.value},
    )
    callbacks.announce(child, CallbackEvent.COMPLETED)
    return {"childId": child.id, "status": child.status.value}


def _run_rule(child: PredictionRecord, step: StepDeclaration, sources: _Sources) -> dict[str, Any]:
    """First case whose condition holds, else the default; the output stored like a model's."""
    assert step.rule is not None
    chosen: Any = step.rule.default
    decision: dict[str, Any] = {"case": "default"}
    tried = []
    for number, case in enumerate(step.rule.cases, start=1):
        holds, seen = sources.condition(case.when)
        tried.append(seen)
        if holds:
            chosen, decision = case.output, {"case": number}
            break
    _, document = sources.render(chosen)
    location = payloads.put_json(payloads.output_key(child.tenant, child.id), document)
    now = utcnow()
    decision = {**decision, "conditions": tried, **({"when": child.decision} if child.decision else {})}
    return _finish_at_once(
        child.model_copy(
            update={
                "status": Status.SUCCEEDED,
                "output": location,
                "decision": decision,
                "started_at": now,
                "completed_at": now,
            }
        )
    )


def _start_model(
    child: PredictionRecord,
    step: StepDeclaration,
    passthrough: S3Location | None,
    document: Any,
    where: str,
) -> dict[str, Any]:
    service = get_registry().require_enabled(step.service or "")
    if passthrough is not None:
        if not service.accepts(passthrough.content_type):
            raise InvalidInput(
                f"{where}: the payload is {passthrough.content_type}; "
                f"{service.name} accepts {', '.join(service.content_types)}"
            )
        location = passthrough
        info = payloads.describe(location.bucket, location.key)
        size = info.size if info else 0
        if info is None and child.item_index is not None:
            raise InvalidInput(f"{where}: the item's input is missing (its step was not expanded)")
    else:
        body = json.dumps(document, separators=(",", ":")).encode()
        location = payloads.put_bytes(payloads.step_input_key(child.tenant, child.id), body, JSON)
        size = len(body)
    created = predictions.create(child.model_copy(update={"input": location, "content_type": location.content_type}))
    if not created:  # a concurrent attempt created it first: make sure our token is the one resumed
        return _resume(predictions.get(child.id), child.callback)  # type: ignore[arg-type]
    measures.submitted(child)
    logger.info("step started", extra={"prediction_id": child.parent_id, "step": child.step_name, "child_id": child.id})
    dispatch.start(child.id, location, size)
    return {"childId": child.id}


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


# --- fan-out -------------------------------------------------------------------------------------------


def expand_items(invocation: StepInvocation) -> dict[str, Any]:
    """A fanned-out step's items: its condition (false: recorded skipped, no items), its list
    (each item's input rendered and stored under the item's child id), the indices for the Map."""
    assert invocation.step is not None
    parent = predictions.get(invocation.parent.id)
    step = _declaration(parent, invocation.step.name)
    where = _where(step)
    _require_running(parent, where)
    sources = _Sources(invocation, where)
    decision = None
    if step.when is not None:
        run, decision = sources.condition(step.when)
        if not run:
            now = utcnow()
            skipped = PredictionRecord(
                id=child_id(parent, step.name),
                tenant=parent.tenant,
                service=step.service or parent.service,
                kind=get_registry().get(step.service).kind if step.service else "rule",
                status=Status.SKIPPED,
                created_at=now,
                updated_at=now,
                completed_at=now,
                content_type=JSON,
                parent_id=parent.id,
                parent_service=parent.service,
                step_name=step.name,
                decision=decision,
                metadata={},
                ttl=predictions.record_ttl(now),
            )
            if predictions.create(skipped):  # False: a repeated invocation already recorded it
                measures.submitted(skipped)
                measures.finished(skipped)
            return {"items": [], "skipped": True}
    try:
        items = sources.scope.value(step.for_each or "", required=False)
    except MappingError as exc:
        raise _named(exc, where) from exc
    if items is None:
        items = []
    if not isinstance(items, list):
        raise MappingError(f"{where}: forEach {step.for_each!r} yielded {type(items).__name__}, not a list")
    if len(items) > step.item_limit:
        raise InvalidInput(f"{where}: forEach yielded {len(items)} items; the step allows at most {step.item_limit}")
    for index, item in enumerate(items):
        item_sources = _Sources(invocation, f"{_where(step, index)}", item=item)
        passthrough, document = item_sources.render(step.input)
        if passthrough is not None:
            raise MappingError(f"{_where(step, index)}: an item's input must be JSON, not a whole payload")
        body = json.dumps(document, separators=(",", ":")).encode()
        payloads.put_bytes(payloads.step_input_key(parent.tenant, child_id(parent, step.name, index)), body, JSON)
    logger.info("step expanded", extra={"prediction_id": parent.id, "step": step.name, "items": len(items)})
    return {"items": list(range(len(items))), "skipped": False}


# --- the ensemble's output ------------------------------------------------------------------------------


def render_output(invocation: StepInvocation) -> dict[str, Any]:
    """Render the ensemble's output mapping into outputs/{tenant}/{parent}/output."""
    where = f"ensemble output of {invocation.parent.id}"
    parent = predictions.get(invocation.parent.id)
    sources = _Sources(invocation, where)
    passthrough, document = sources.render(get_registry().get(parent.service).output)
    if passthrough is not None:
        location = passthrough
    else:
        location = payloads.put_json(payloads.output_key(parent.tenant, parent.id), document)
    return {**location.as_dict(), "outputLocation": location.uri}
