"""Model versions: register a candidate, route traffic to it (shadow, canary), keep the evidence,
and move it through its approval workflow (statemachines/versions/approval.asl.json).

Every transition is one conditional write of the versions table (adapters/versions.py), then a
history entry and an EventBridge event; the workflow's tasks can be retried and a link clicked
twice without changing anything twice.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chorus.adapters import bus, executions, notifier, payloads
from chorus.adapters import versions as store
from chorus.core.clock import iso, utcnow
from chorus.core.errors import ChorusError, InvalidRequest, ServiceNotFound, UnknownService
from chorus.core.observability import logger
from chorus.model.content import JSON
from chorus.model.records import PredictionRecord, Status
from chorus.model.registry import EndpointDeclaration, ServiceDefinition, get_registry
from chorus.model.versions import (
    FIRST_VERSION,
    Arm,
    Evidence,
    ModelVersion,
    Outcome,
    Route,
    VersionStatus,
    canary_fails,
    first_version,
    route,
    summarize,
)

MAX_LABEL_BYTES = 64 * 1024  # outputs read for agreement: a label answer is small
DEFAULT_APPROVAL_HOURS = 72.0


class VersionInFlight(ChorusError):
    code = "version_in_flight"
    status = 409


class VersionNotFound(ChorusError):
    code = "not_found"
    status = 404


# --- serving ------------------------------------------------------------------------------------


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
        store.record_outcome(
            record.service, trial.candidate, record.shadow_of or record.id, trial.mode, trial.side, outcome
        )
    except (BotoCoreError, ClientError):
        # Evidence is best effort: a lost row never fails or delays a prediction.
        logger.exception("trial evidence not recorded", extra={"prediction_id": record.id})


def _label(record: PredictionRecord) -> str | None:
    if record.status is not Status.SUCCEEDED or record.output is None or record.output.content_type != JSON:
        return None
    try:
        body = payloads.read_bytes(record.output)
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


# --- registering ----------------------------------------------------------------------------------


def register(
    service_name: str,
    endpoint: EndpointDeclaration,
    *,
    registered_by: str,
    description: str = "",
    shadow_percent: float = 0,
    canary_percent: float = 0,
    bake_minutes: float = 0,
    approval_hours: float = DEFAULT_APPROVAL_HOURS,
    model_package_arn: str | None = None,
) -> ModelVersion:
    """A new pending version of a model service, shadowed at its share, and its approval started."""
    service = _model_service(service_name)
    if canary_percent and not bake_minutes:
        raise InvalidRequest("a canary needs a bake time (--bake MINUTES)")
    if bake_minutes and not canary_percent:
        raise InvalidRequest("a bake time needs a canary share (--canary PERCENT)")
    if not 0 < approval_hours <= 24 * 365:
        raise InvalidRequest("the approval timeout is more than 0 and at most a year")
    now = utcnow()
    store.initialize(first_version(service, now), _arm(FIRST_VERSION, service.endpoint))  # type: ignore[arg-type]
    version = ModelVersion(
        service=service.name,
        id=store.next_version_id(service.name),
        endpoint=endpoint,
        model_package_arn=model_package_arn,
        description=description,
        registered_by=registered_by,
        registered_at=now,
        status=VersionStatus.PENDING,
        shadow_percent=shadow_percent,
        canary_percent=canary_percent,
        bake_minutes=bake_minutes,
        approval_expires_at=now + timedelta(hours=approval_hours),
    )
    try:
        store.add_candidate(version, _arm(version.id, endpoint))
    except store.Conflict:
        current = store.fresh_routing(service.name)
        busy = current.candidate.version if current and current.candidate else "another version"
        raise VersionInFlight(
            f"{service.name} {busy} is still awaiting its decision or canary; decide it before registering another"
        ) from None
    _announce(version, "registered", registered_by, endpoint=endpoint.name, mode=endpoint.mode)
    if shadow_percent:
        _announce(version, "shadowing", registered_by, percent=shadow_percent)
    document = {
        "service": service.name,
        "version": version.id,
        "approvalTimeoutSeconds": max(1, int(approval_hours * 3600)),
        "canaryPercent": canary_percent,
        "bakeSeconds": int(bake_minutes * 60),
    }
    try:
        executions.start_approval(f"{service.name}-{version.id}", document)
    except (BotoCoreError, ClientError) as exc:
        expire(service.name, version.id, reason=f"the approval workflow could not start: {exc}")
        raise
    return version


def _model_service(name: str) -> ServiceDefinition:
    try:
        service = get_registry().get(name)
    except UnknownService as exc:
        raise ServiceNotFound(exc.message) from None
    if service.kind != "model":
        raise InvalidRequest(f"{name} is an ensemble: versions belong to model services (its steps' services)")
    return service


def _arm(version_id: str, endpoint: EndpointDeclaration) -> dict[str, Any]:
    return {"version": version_id, "endpoint": endpoint.model_dump()}


# --- the approval workflow's tasks -----------------------------------------------------------------


def request_approval(service_name: str, version_id: str, task_token: str, link_base_url: str) -> None:
    """Keep the workflow's token and e-mail each approver links to approve and reject (signed,
    single-use, expiring with the approval)."""
    from chorus.domain import approval_links

    version = _version(service_name, version_id)
    if version.status is not VersionStatus.PENDING:
        logger.info("approval requested for a decided version", extra={"version": version_id})
        return
    nonce = secrets.token_hex(16)
    expires_at = version.approval_expires_at or utcnow() + timedelta(hours=DEFAULT_APPROVAL_HOURS)
    if not store.await_decision(service_name, version_id, task_token, nonce, expires_at):
        return
    service = get_registry().get(service_name)
    evidence = current_evidence(version)
    for approver in service.approvers:
        links = {
            decision: approval_links.link(link_base_url, version, decision, approver, nonce, expires_at)
            for decision in ("approve", "reject")
        }
        subject, text, html = approval_links.approval_email(version, approver, links, evidence)
        notifier.send_mail([approver], subject, text, html)
    if not service.approvers:
        logger.warning("no approvers configured: the version will expire", extra={"service": service_name})


def start_canary(service_name: str, version_id: str) -> None:
    version = _version(service_name, version_id)
    changed = store.transition(
        service_name,
        version_id,
        VersionStatus.CANARY,
        {"canaryStartedAt": iso(utcnow())},
        routing_set={"canaryPercent": version.canary_percent, "shadowPercent": 0},
    )
    if changed:
        _announce(
            version, "canary_started", "workflow", percent=version.canary_percent, bakeMinutes=version.bake_minutes
        )


def judge_canary(service_name: str, version_id: str, margin: float) -> str:
    """After the bake: promote the canary, or roll it back (and tell the approvers) if it failed more
    often than the live version by more than `margin`."""
    version = _version(service_name, version_id)
    if version.status is not VersionStatus.CANARY:
        return version.status.value
    evidence = summarize("canary", store.evidence(service_name, version_id))
    if not canary_fails(evidence, margin):
        promote(service_name, version_id, by="workflow", evidence=evidence)
        return VersionStatus.LIVE.value
    changed = store.transition(
        service_name,
        version_id,
        VersionStatus.ROLLED_BACK,
        {"rolledBackAt": iso(utcnow())},
        routing_set={"canaryPercent": 0, "shadowPercent": 0},
        routing_remove=("candidate",),
    )
    if changed:
        _announce(version, "rolled_back", "workflow", evidence=evidence.as_dict(), margin=margin)
        _tell_approvers(
            version,
            f"Chorus: {service_name} {version_id} rolled back",
            f"The canary of {service_name} {version_id} (endpoint {version.endpoint.name}) failed "
            f"{_rate(evidence.candidate.failure_rate)} of {evidence.candidate.runs} predictions against "
            f"{_rate(evidence.live.failure_rate)} of {evidence.live.runs} for the live version (allowed margin "
            f"{margin:.0%}). It was rolled back: the live version serves all traffic again.",
        )
    return VersionStatus.ROLLED_BACK.value


def promote(service_name: str, version_id: str, *, by: str, evidence: Evidence | None = None) -> bool:
    """The version serves all traffic; the version it replaces is retired, in the same write."""
    version = _version(service_name, version_id)
    current = store.fresh_routing(service_name)
    if current is None or current.candidate is None or current.candidate.version != version_id:
        return False
    changed = store.transition(
        service_name,
        version_id,
        VersionStatus.LIVE,
        {"liveSince": iso(utcnow())},
        routing_set={"live": _arm(version_id, version.endpoint), "canaryPercent": 0, "shadowPercent": 0},
        routing_remove=("candidate",),
        retire=current.live.version,
    )
    if changed:
        details = {"replaces": current.live.version}
        if evidence is not None:
            details["evidence"] = evidence.as_dict()  # type: ignore[assignment]
        _announce(version, "promoted", by, **details)
    return changed


def expire(service_name: str, version_id: str, reason: str = "nobody decided before the approval timeout") -> None:
    version = _version(service_name, version_id)
    changed = store.transition(
        service_name,
        version_id,
        VersionStatus.EXPIRED,
        {"comment": reason},
        routing_set={"canaryPercent": 0, "shadowPercent": 0},
        routing_remove=("candidate",),
    )
    if changed:
        _announce(version, "expired", "workflow", reason=reason)


# --- decisions ------------------------------------------------------------------------------------


def decide(service_name: str, version_id: str, decision: str, *, by: str, comment: str, nonce: str) -> bool:
    """An approver's decision, once: the version must still be pending with this nonce. Rejecting
    takes the candidate out of routing at once; approving hands over to the workflow (go live, or
    a canary). False when the version was already decided (the link was used)."""
    version = _version(service_name, version_id)
    to = VersionStatus.APPROVED if decision == "approve" else VersionStatus.REJECTED
    changes = {"decidedBy": by, "decidedAt": iso(utcnow()), "comment": comment}
    routing: dict[str, Any] = {}
    if to is VersionStatus.REJECTED:
        routing = {"routing_set": {"canaryPercent": 0, "shadowPercent": 0}, "routing_remove": ("candidate",)}
    if not store.transition(service_name, version_id, to, changes, nonce=nonce, **routing):
        return False
    _announce(version, to.value, by, comment=comment)
    task_token, _ = store.approval(service_name, version_id)
    if task_token and not executions.send_success(task_token, {"decision": decision, "by": by}):
        logger.warning(
            "the approval workflow had already ended", extra={"service": service_name, "version": version_id}
        )
    return True


# --- reading --------------------------------------------------------------------------------------


def current_evidence(version: ModelVersion) -> Evidence | None:
    """The shadow evidence of a candidate (None when it has no shadow share)."""
    if not version.shadow_percent:
        return None
    return summarize("shadow", store.evidence(version.service, version.id))


def describe_service(name: str) -> dict[str, Any]:
    """A service with, for a model service, its live version, its candidate and its history."""
    try:
        service = get_registry().get(name)
    except UnknownService:
        raise ServiceNotFound(f"service {name!r} not found") from None
    described = _service_summary(service)
    if service.kind != "model":
        return described
    stored = store.list_versions(name)
    versions = stored or [first_version(service, None)]
    routing = store.fresh_routing(name)
    described["version"] = routing.live.version if routing else FIRST_VERSION
    described["candidate"] = routing.candidate.version if routing and routing.candidate else None
    described["versions"] = [_version_view(v) for v in versions]
    described["history"] = store.history(name)
    return described


def list_versions(name: str) -> list[ModelVersion]:
    service = _model_service(name)
    return store.list_versions(name) or [first_version(service, None)]


def _service_summary(service: ServiceDefinition) -> dict[str, Any]:
    return {
        "name": service.name,
        "kind": service.kind,
        "description": service.description,
        "enabled": service.enabled,
        "contentTypes": service.content_types,
        "maxInputBytes": service.max_input_bytes,
        "timeoutSeconds": service.timeout_seconds,
        **(
            {"steps": [{"name": step.name, "service": step.service} for step in service.steps]} if service.steps else {}
        ),
    }


def _version_view(version: ModelVersion) -> dict[str, Any]:
    view = version.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"service"})
    evidence = current_evidence(version) if version.status.in_flight else None
    if evidence is not None:
        view["evidence"] = evidence.as_dict()
    return view


def find_version(service_name: str, version_id: str) -> ModelVersion | None:
    return store.find(service_name, version_id)


def _version(service_name: str, version_id: str) -> ModelVersion:
    found = store.find(service_name, version_id)
    if found is None:
        raise VersionNotFound(f"{service_name} has no version {version_id!r}")
    return found


def _announce(version: ModelVersion, event: str, actor: str, **details: Any) -> None:
    """A transition, recorded in the history (the audit trail) and published on EventBridge."""
    entry = store.append_history(version.service, version.id, event, actor, **details)
    bus.publish_version_event({"service": version.service, **entry})
    logger.info("model version event", extra={"service": version.service, "version": version.id, "event": event})


def _tell_approvers(version: ModelVersion, subject: str, text: str) -> None:
    approvers = get_registry().get(version.service).approvers
    if approvers:
        notifier.send_mail(approvers, subject, text)


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.0%}"
