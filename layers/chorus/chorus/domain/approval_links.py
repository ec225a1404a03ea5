"""Approval links: what an approver's e-mail link says, and what opening or submitting it does.

A link carries a claim signed with the stack's KMS HMAC key: the service, the version, the decision
(approve or reject), the approver and the nonce of this approval request, and when it expires.
Opening it (GET) changes nothing — mail scanners open links — and shows a confirmation page;
only the page's POST decides, once: the version must still be pending with the same nonce.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from chorus.adapters import signing
from chorus.api import approval_pages
from chorus.domain import promotion, trials, versions
from chorus.model.approvals import Claim, Decision, LinkState
from chorus.model.versions import Evidence, ModelVersion, VersionStatus

MAX_COMMENT = 2000
MAX_TOKEN = 4096


def link(
    base_url: str, version: ModelVersion, decision: Decision, approver: str, nonce: str, expires_at: datetime
) -> str:
    token = signing.sign(
        {
            "s": version.service,
            "v": version.id,
            "d": decision,
            "a": approver,
            "n": nonce,
            "e": int(expires_at.timestamp()),
        }
    )
    return f"{base_url.rstrip('/')}/approvals/{quote(token, safe='')}"


def approval_email(
    version: ModelVersion, approver: str, links: dict[str, str], evidence: Evidence | None
) -> tuple[str, str, str]:
    return approval_pages.email(version, approver, links, evidence)


def _claim(token: str) -> Claim:
    if not token or len(token) > MAX_TOKEN:
        raise signing.BadSignature("the link is malformed")
    raw = signing.verify(token)
    try:
        decision = raw["d"]
        if decision not in ("approve", "reject"):
            raise ValueError(decision)
        return Claim(
            service=str(raw["s"]),
            version=str(raw["v"]),
            decision=decision,
            approver=str(raw["a"]),
            nonce=str(raw["n"]),
            expires_at=datetime.fromtimestamp(int(raw["e"]), UTC),
        )
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise signing.BadSignature("the link is malformed") from exc


def open_link(token: str) -> LinkState:
    """What the link leads to now; changes nothing."""
    try:
        claim = _claim(token)
    except signing.BadSignature as exc:
        return LinkState("invalid", reason=str(exc))
    version = versions.find_version(claim.service, claim.version)
    if version is None:
        return LinkState("invalid", claim=claim, reason="the link names no version of this stack")
    if datetime.now(UTC) >= claim.expires_at:
        return LinkState("expired", claim=claim, version=version)
    if version.status is not VersionStatus.PENDING or not _current_nonce(claim):
        return LinkState("used", claim=claim, version=version)
    return LinkState("confirm", claim=claim, version=version, evidence=trials.current_evidence(version))


def submit(token: str, comment: str) -> LinkState:
    """The confirmation page's POST: decide once, if the link is still good."""
    state = open_link(token)
    if state.kind != "confirm":
        return state
    assert state.claim is not None
    claim = state.claim
    decided = promotion.decide(
        claim.service,
        claim.version,
        claim.decision,
        by=claim.approver,
        comment=comment.strip()[:MAX_COMMENT],
        nonce=claim.nonce,
    )
    version = versions.find_version(claim.service, claim.version)
    return LinkState("decided" if decided else "used", claim=claim, version=version)


def _current_nonce(claim: Claim) -> bool:
    from chorus.adapters import versions as store

    _, nonce = store.approval(claim.service, claim.version)
    return nonce == claim.nonce
