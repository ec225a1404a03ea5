"""Model versions: which endpoint serves a model service, how a candidate version earns its place
(shadow traffic, an approver's decision, a canary), and the evidence the decisions rest on. No I/O.

A service's first version, `v1`, is the endpoint its registry declaration names. Later versions are
registered at run time and live in the versions table. Exactly one version is live; at most one
candidate is in flight (awaiting approval, possibly shadowed, or baking as a canary).
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chorus.model.registry import EndpointDeclaration, ServiceDefinition

FIRST_VERSION = "v1"
VERSION_ID = r"^v[1-9][0-9]{0,5}$"
REGISTRY_AUTHOR = "registry"  # who "registered" v1: the service's declaration


class VersionStatus(StrEnum):
    PENDING = "pending"  # awaiting an approver (shadowed when it has a shadow share)
    APPROVED = "approved"  # decided; about to go live or to start its canary
    CANARY = "canary"  # serving its canary share while it bakes
    LIVE = "live"
    RETIRED = "retired"  # was live, replaced by a newer version
    REJECTED = "rejected"
    EXPIRED = "expired"  # nobody decided before the approval timeout
    ROLLED_BACK = "rolled_back"  # its canary failed more than the live version

    @property
    def in_flight(self) -> bool:
        return self in {VersionStatus.PENDING, VersionStatus.APPROVED, VersionStatus.CANARY}


# Which states a version may enter from which: every transition is one conditional write.
VERSION_ALLOWED_FROM: dict[VersionStatus, frozenset[VersionStatus]] = {
    VersionStatus.APPROVED: frozenset({VersionStatus.PENDING}),
    VersionStatus.REJECTED: frozenset({VersionStatus.PENDING}),
    VersionStatus.EXPIRED: frozenset({VersionStatus.PENDING}),
    VersionStatus.CANARY: frozenset({VersionStatus.APPROVED}),
    VersionStatus.LIVE: frozenset({VersionStatus.APPROVED, VersionStatus.CANARY}),
    VersionStatus.ROLLED_BACK: frozenset({VersionStatus.CANARY}),
    VersionStatus.RETIRED: frozenset({VersionStatus.LIVE}),
    VersionStatus.PENDING: frozenset(),  # created pending, never entered
}

Percent = Annotated[float, Field(ge=0, le=100)]


class ModelVersion(BaseModel):
    """One version of a model service. Field aliases are the stored attribute names."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    service: str
    id: Annotated[str, Field(pattern=VERSION_ID)]
    endpoint: EndpointDeclaration
    model_package_arn: str | None = Field(default=None, alias="modelPackageArn")
    description: str = ""
    registered_by: str = Field(alias="registeredBy")
    # None only for a v1 nobody has recorded yet (no later version was ever registered).
    registered_at: datetime | None = Field(alias="registeredAt")
    status: VersionStatus
    shadow_percent: Percent = Field(default=0, alias="shadowPercent")
    canary_percent: Percent = Field(default=0, alias="canaryPercent")
    bake_minutes: Annotated[float, Field(ge=0, le=24 * 60)] = Field(default=0, alias="bakeMinutes")
    approval_expires_at: datetime | None = Field(default=None, alias="approvalExpiresAt")
    decided_by: str | None = Field(default=None, alias="decidedBy")
    decided_at: datetime | None = Field(default=None, alias="decidedAt")
    comment: str | None = None
    live_since: datetime | None = Field(default=None, alias="liveSince")
    canary_started_at: datetime | None = Field(default=None, alias="canaryStartedAt")

    @property
    def number(self) -> int:
        return int(self.id[1:])


def first_version(service: ServiceDefinition, declared_at: datetime | None) -> ModelVersion:
    """v1: the endpoint the registry declares, live until a later version replaces it; recorded
    (`declared_at`) when the first later version is registered."""
    assert service.endpoint is not None
    return ModelVersion(
        service=service.name,
        id=FIRST_VERSION,
        endpoint=service.endpoint,
        description="declared in the service registry",
        registered_by=REGISTRY_AUTHOR,
        registered_at=declared_at,
        status=VersionStatus.LIVE,
        live_since=declared_at,
    )


class Arm(BaseModel):
    """A version taking part in routing: its id and the endpoint that serves it."""

    model_config = ConfigDict(frozen=True)

    version: Annotated[str, Field(pattern=VERSION_ID)]
    endpoint: EndpointDeclaration


class Routing(BaseModel):
    """Where a model service's traffic goes: the live version and the candidate in trial, if any."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    live: Arm
    candidate: Arm | None = None
    shadow_percent: Percent = Field(default=0, alias="shadowPercent")
    canary_percent: Percent = Field(default=0, alias="canaryPercent")


TrialMode = Literal["shadow", "canary"]
Side = Literal["live", "candidate"]


class Trial(BaseModel):
    """A prediction that is evidence for a candidate version: which trial, and which side it ran on."""

    model_config = ConfigDict(frozen=True)

    candidate: Annotated[str, Field(pattern=VERSION_ID)]
    mode: TrialMode
    side: Side


class Route(BaseModel):
    """How one prediction is served: the version and endpoint that answer it, whether it is trial
    evidence, and the candidate that shadows it (its output kept, never returned)."""

    model_config = ConfigDict(frozen=True)

    serving: Arm
    trial: Trial | None = None
    shadow: Arm | None = None


def share(prediction_id: str) -> float:
    """Where a prediction falls in 0-100: stable for an id, evenly spread over ids, so a retried
    dispatch takes the same route and P % of traffic lands below P."""
    return int(hashlib.sha256(prediction_id.encode()).hexdigest()[:8], 16) % 10_000 / 100


def route(routing: Routing, prediction_id: str) -> Route:
    candidate = routing.candidate
    if candidate is None:
        return Route(serving=routing.live)
    position = share(prediction_id)
    if routing.canary_percent > 0:
        if position < routing.canary_percent:
            return Route(serving=candidate, trial=Trial(candidate=candidate.version, mode="canary", side="candidate"))
        return Route(serving=routing.live, trial=Trial(candidate=candidate.version, mode="canary", side="live"))
    if routing.shadow_percent > 0 and position < routing.shadow_percent:
        trial = Trial(candidate=candidate.version, mode="shadow", side="live")
        return Route(serving=routing.live, trial=trial, shadow=candidate)
    return Route(serving=routing.live)


# --- evidence -----------------------------------------------------------------------------------


class Outcome(BaseModel):
    """How one side of one trial prediction ended."""

    model_config = ConfigDict(frozen=True)

    succeeded: bool
    seconds: float | None = None
    label: str | None = None  # the output's `label`, when it has one


class EvidenceRow(BaseModel):
    """One trial prediction: its live and candidate outcomes (a shadowed prediction has both; a
    canary prediction one)."""

    model_config = ConfigDict(frozen=True)

    prediction_id: str
    mode: TrialMode
    live: Outcome | None = None
    candidate: Outcome | None = None


class SideSummary(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    runs: int
    failures: int
    failure_rate: float | None = Field(alias="failureRate")
    p50_ms: float | None = Field(alias="p50Ms")
    mean_ms: float | None = Field(alias="meanMs")


class Evidence(BaseModel):
    """What an approver (or the canary judge) sees about a candidate against the live version."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    mode: TrialMode
    live: SideSummary
    candidate: SideSummary
    compared: int  # predictions where both sides answered a label
    agreed: int
    agreement_rate: float | None = Field(alias="agreementRate")

    def as_dict(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


def _side(outcomes: list[Outcome]) -> SideSummary:
    failures = sum(not o.succeeded for o in outcomes)
    latencies = [o.seconds * 1000 for o in outcomes if o.succeeded and o.seconds is not None]
    return SideSummary(
        runs=len(outcomes),
        failures=failures,
        failure_rate=round(failures / len(outcomes), 4) if outcomes else None,
        p50_ms=round(statistics.median(latencies), 1) if latencies else None,
        mean_ms=round(statistics.fmean(latencies), 1) if latencies else None,
    )


def summarize(mode: TrialMode, rows: Iterable[EvidenceRow]) -> Evidence:
    """The trial's figures. For a shadow trial only the predictions whose shadow has finished count,
    so both sides are compared over the same inputs."""
    chosen = [r for r in rows if r.mode == mode]
    if mode == "shadow":
        chosen = [r for r in chosen if r.candidate is not None and r.live is not None]
    live = [r.live for r in chosen if r.live is not None]
    candidate = [r.candidate for r in chosen if r.candidate is not None]
    pairs = [
        (r.live.label, r.candidate.label)
        for r in chosen
        if r.live is not None and r.candidate is not None and r.live.label is not None and r.candidate.label is not None
    ]
    agreed = sum(a == b for a, b in pairs)
    return Evidence(
        mode=mode,
        live=_side(live),
        candidate=_side(candidate),
        compared=len(pairs),
        agreed=agreed,
        agreement_rate=round(agreed / len(pairs), 4) if pairs else None,
    )


def canary_fails(evidence: Evidence, margin: float) -> bool:
    """Roll back when the canary failed more often than the live version by more than `margin`
    (a fraction: 0.05 is five percentage points). A canary that served nothing has shown no failure."""
    canary = evidence.candidate.failure_rate
    if canary is None:
        return False
    live = evidence.live.failure_rate or 0.0
    return canary > live + margin
