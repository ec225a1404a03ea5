"""Model versions: register a candidate (which starts its approval workflow) and describe a
service's versions. How the candidate is tried is `trials`; how it goes live, `promotion`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chorus.adapters import executions
from chorus.adapters import trial_evidence as evidence_store
from chorus.adapters import versions as store
from chorus.core.clock import utcnow
from chorus.core.errors import ChorusError, InvalidRequest, ServiceNotFound, UnknownService
from chorus.domain import promotion, trials
from chorus.model.registry import EndpointDeclaration, ServiceDefinition, get_registry
from chorus.model.versions import FIRST_VERSION, ModelVersion, VersionStatus, first_version

DEFAULT_APPROVAL_HOURS = promotion.DEFAULT_APPROVAL_HOURS


class VersionInFlight(ChorusError):
    code = "version_in_flight"
    status = 409


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
    store.initialize(first_version(service, now), promotion.arm(FIRST_VERSION, service.endpoint))  # type: ignore[arg-type]
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
        store.add_candidate(version, promotion.arm(version.id, endpoint))
    except store.Conflict:
        current = store.fresh_routing(service.name)
        busy = current.candidate.version if current and current.candidate else "another version"
        raise VersionInFlight(
            f"{service.name} {busy} is still awaiting its decision or canary; decide it before registering another"
        ) from None
    promotion.announce(version, "registered", registered_by, endpoint=endpoint.name, mode=endpoint.mode)
    if shadow_percent:
        promotion.announce(version, "shadowing", registered_by, percent=shadow_percent)
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
        promotion.expire(service.name, version.id, reason=f"the approval workflow could not start: {exc}")
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
    described["history"] = evidence_store.history(name)
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
    evidence = trials.current_evidence(version) if version.status.in_flight else None
    if evidence is not None:
        view["evidence"] = evidence.as_dict()
    return view


def find_version(service_name: str, version_id: str) -> ModelVersion | None:
    return store.find(service_name, version_id)
