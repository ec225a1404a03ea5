"""A candidate version's way to live traffic, as its approval workflow and its approvers move it:
e-mail the approvers, take their decision (once), start and judge a canary, promote, expire.

Every transition is one conditional write of the versions table (adapters/versions.py), then a
history entry and an EventBridge event; the workflow's tasks can be retried and a link clicked
twice without changing anything twice.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from chorus.adapters import bus, executions, notifier
from chorus.adapters import trial_evidence as evidence_store
from chorus.adapters import versions as store
from chorus.core.clock import iso, utcnow
from chorus.core.errors import ChorusError
from chorus.core.observability import logger
from chorus.domain import trials
from chorus.model.registry import EndpointDeclaration, get_registry
from chorus.model.versions import Evidence, ModelVersion, VersionStatus, canary_fails, summarize

DEFAULT_APPROVAL_HOURS = 72.0


class VersionNotFound(ChorusError):
    code = "not_found"
    status = 404


def request_approval(service_name: str, version_id: str, task_token: str, link_base_url: str) -> None:
    """Keep the workflow's token and e-mail each approver links to approve and reject (signed,
    single-use, expiring with the approval)."""
    from chorus.domain import approval_links

    version = version_of(service_name, version_id)
    if version.status is not VersionStatus.PENDING:
        logger.info("approval requested for a decided version", extra={"version": version_id})
        return
    nonce = secrets.token_hex(16)
    expires_at = version.approval_expires_at or utcnow() + timedelta(hours=DEFAULT_APPROVAL_HOURS)
    if not store.await_decision(service_name, version_id, task_token, nonce, expires_at):
        return
    service = get_registry().get(service_name)
    evidence = trials.current_evidence(version)
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
    version = version_of(service_name, version_id)
    changed = store.transition(
        service_name,
        version_id,
        VersionStatus.CANARY,
        {"canaryStartedAt": iso(utcnow())},
        routing_set={"canaryPercent": version.canary_percent, "shadowPercent": 0},
    )
    if changed:
        announce(
            version, "canary_started", "workflow", percent=version.canary_percent, bakeMinutes=version.bake_minutes
        )


def judge_canary(service_name: str, version_id: str, margin: float) -> str:
    """After the bake: promote the canary, or roll it back (and tell the approvers) if it failed more
    often than the live version by more than `margin`."""
    version = version_of(service_name, version_id)
    if version.status is not VersionStatus.CANARY:
        return version.status.value
    evidence = summarize("canary", evidence_store.evidence(service_name, version_id))
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
        announce(version, "rolled_back", "workflow", evidence=evidence.as_dict(), margin=margin)
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
    version = version_of(service_name, version_id)
    current = store.fresh_routing(service_name)
    if current is None or current.candidate is None or current.candidate.version != version_id:
        return False
    changed = store.transition(
        service_name,
        version_id,
        VersionStatus.LIVE,
        {"liveSince": iso(utcnow())},
        routing_set={"live": arm(version_id, version.endpoint), "canaryPercent": 0, "shadowPercent": 0},
        routing_remove=("candidate",),
        retire=current.live.version,
    )
    if changed:
        details = {"replaces": current.live.version}
        if evidence is not None:
            details["evidence"] = evidence.as_dict()  # type: ignore[assignment]
        announce(version, "promoted", by, **details)
    return changed


def expire(service_name: str, version_id: str, reason: str = "nobody decided before the approval timeout") -> None:
    version = version_of(service_name, version_id)
    changed = store.transition(
        service_name,
        version_id,
        VersionStatus.EXPIRED,
        {"comment": reason},
        routing_set={"canaryPercent": 0, "shadowPercent": 0},
        routing_remove=("candidate",),
    )
    if changed:
        announce(version, "expired", "workflow", reason=reason)


def decide(service_name: str, version_id: str, decision: str, *, by: str, comment: str, nonce: str) -> bool:
    """An approver's decision, once: the version must still be pending with this nonce. Rejecting
    takes the candidate out of routing at once; approving hands over to the workflow (go live, or
    a canary). False when the version was already decided (the link was used)."""
    version = version_of(service_name, version_id)
    to = VersionStatus.APPROVED if decision == "approve" else VersionStatus.REJECTED
    changes = {"decidedBy": by, "decidedAt": iso(utcnow()), "comment": comment}
    routing: dict[str, Any] = {}
    if to is VersionStatus.REJECTED:
        routing = {"routing_set": {"canaryPercent": 0, "shadowPercent": 0}, "routing_remove": ("candidate",)}
    if not store.transition(service_name, version_id, to, changes, nonce=nonce, **routing):
        return False
    announce(version, to.value, by, comment=comment)
    task_token, _ = store.approval(service_name, version_id)
    if task_token and not executions.send_success(task_token, {"decision": decision, "by": by}):
        logger.warning(
            "the approval workflow had already ended", extra={"service": service_name, "version": version_id}
        )
    return True


def version_of(service_name: str, version_id: str) -> ModelVersion:
    found = store.find(service_name, version_id)
    if found is None:
        raise VersionNotFound(f"{service_name} has no version {version_id!r}")
    return found


def announce(version: ModelVersion, event: str, actor: str, **details: Any) -> None:
    """A transition, recorded in the history (the audit trail) and published on EventBridge."""
    entry = evidence_store.append_history(version.service, version.id, event, actor, **details)
    bus.publish_version_event({"service": version.service, **entry})
    logger.info("model version event", extra={"service": version.service, "version": version.id, "event": event})


def _tell_approvers(version: ModelVersion, subject: str, text: str) -> None:
    approvers = get_registry().get(version.service).approvers
    if approvers:
        notifier.send_mail(approvers, subject, text)


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.0%}"


def arm(version_id: str, endpoint: EndpointDeclaration) -> dict[str, Any]:
    """A version as the routing stores it: its id and the endpoint serving it."""
    return {"version": version_id, "endpoint": endpoint.model_dump()}
