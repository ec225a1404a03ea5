"""What an approval link claims and where it leads: shared by the link's use case
(domain/approval_links.py) and the pages that show it (api/approval_pages.py). No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chorus.model.versions import Evidence, ModelVersion

Decision = Literal["approve", "reject"]


@dataclass(frozen=True)
class Claim:
    service: str
    version: str
    decision: Decision
    approver: str
    nonce: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkState:
    """What a link leads to: `confirm` (a pending decision to press), `decided` (this POST decided),
    `used` (decided before), `expired`, or `invalid` (forged, edited or malformed)."""

    kind: Literal["confirm", "decided", "used", "expired", "invalid"]
    claim: Claim | None = None
    version: ModelVersion | None = None
    evidence: Evidence | None = None
    reason: str = ""

    @property
    def status(self) -> int:
        return {"confirm": 200, "decided": 200, "used": 409, "expired": 410, "invalid": 400}[self.kind]
