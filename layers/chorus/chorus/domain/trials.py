"""Trials of a candidate model version: which version serves a prediction (shadow and canary shares
of the service's routing) and the evidence each trial prediction leaves (docs/versions.md)."""

from __future__ import annotations

import hashlib
import json

from botocore.exceptions import BotoCoreError, ClientError

from chorus.adapters import payloads
from chorus.adapters import trial_evidence as evidence_store
from chorus.adapters import versions as store
from chorus.core.clock import utcnow
from chorus.core.observability import logger
from chorus.model.content import JSON
from chorus.model.records import PredictionRecord, Status
from chorus.model.registry import ServiceDefinition
from chorus.model.versions import FIRST_VERSION, Arm, Evidence, ModelVersion, Outcome, Route, route, summarize

MAX_LABEL_BYTES = 64 * 1024  # outputs read for agreement: a label answer is small


def route_for(service: ServiceDefinition, prediction_id: str) -> Route:
    """Which version serves this prediction of a model service (v1, the registry's endpoint, until
    another version is registered)."""
    assert service.endpoint is not None
    routing = store.routing(service.name)
    if routing is None:
        return Route(serving=Arm(version=FIRST_VERSION, endpoint=service.endpoint))
    return route(routing, prediction_id)


def shadow_id(prediction_id: str, candidate: str) -> str:
    """The shadow of a prediction: one per prediction and candidate, whatever retries dispatch it."""
    return hashlib.sha256(f"{prediction_id}/shadow/{candidate}".encode()).hexdigest()[:32]


def shadow_record(record: PredictionRecord, candidate: str) -> PredictionRecord:
    """The candidate's copy of a live prediction: same tenant and input, no callback, hidden."""
    now = utcnow()
    return PredictionRecord(
        id=shadow_id(record.id, candidate),
        tenant=record.tenant,
        service=record.service,
        kind="model",
        status=Status.QUEUED,
        created_at=now,
        updated_at=now,
        queued_at=now,
        content_type=record.content_type,
        input=record.input,
        shadow_of=record.id,
        ttl=record.ttl,
    )


def record_trial(record: PredictionRecord) -> None:
    """A trial prediction finished: keep its side of the evidence (after its caller was told)."""
    trial = record.trial
    if trial is None or not record.status.terminal:
        return
    seconds = None
    if record.started_at is not None and record.completed_at is not None:
        seconds = (record.completed_at - record.started_at).total_seconds()
    outcome = Outcome(
        succeeded=record.status is Status.SUCCEEDED,
        seconds=seconds,
        label=_label(record) if trial.mode == "shadow" else None,
    )
    try:
        evidence_store.record_outcome(
            record.service, trial.candidate, record.shadow_of or record.id, trial.mode, trial.side, outcome
        )
    except (BotoCoreError, ClientError):
        # Evidence is best effort: a lost row never fails or delays a prediction.
        logger.exception("trial evidence not recorded", extra={"prediction_id": record.id})


def _label(record: PredictionRecord) -> str | None:
    if record.status is not Status.SUCCEEDED or record.output is None or record.output.content_type != JSON:
        return None
    try:
        body = payloads.read_prefix(record.output, MAX_LABEL_BYTES)
    except (BotoCoreError, ClientError):
        return None
    if len(body) > MAX_LABEL_BYTES:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    label = document.get("label") if isinstance(document, dict) else None
    return None if label is None else str(label)


def current_evidence(version: ModelVersion) -> Evidence | None:
    """The shadow evidence of a candidate (None when it has no shadow share)."""
    if not version.shadow_percent:
        return None
    return summarize("shadow", evidence_store.evidence(version.service, version.id))
