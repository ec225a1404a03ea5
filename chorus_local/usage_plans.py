"""API Gateway usage plans on the local REST API: rate, burst and quota per API key, as API Gateway
applies them to a method that requires an API key.

The key comes from the request's `x-api-key` header, or, when the API's key source is AUTHORIZER,
from the authorizer result's `usageIdentifierKey`. It is looked up where API Gateway keeps it: the
API keys and usage plans stored in moto's apigateway backend, read through the local AWS endpoint
(`get_api_keys(includeValues=True)`, `get_usage_plans(keyId=…)`), so `chorus admin` and any boto3
client manage them exactly as in AWS. A lookup is cached for CACHE_SECONDS (API Gateway too applies
a new key or a changed plan after a delay). Then, per key:
- no key, an unknown or disabled one, or one in no plan of this API's stage → API_KEY (403 Forbidden);
- a daily quota (per UTC day) used up → QUOTA_EXCEEDED (429);
- a token bucket holding `burstLimit` requests, refilled at `rateLimit` per second, empty → THROTTLED
  (429); a throttled request uses no quota.
The stage's own throttle (MethodSettings), a plan's per-method throttles and WEEK or MONTH quotas
(Chorus makes DAY ones) are not applied; a plan with one says so in the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

log = logging.getLogger("chorus_local.usage_plans")

CACHE_SECONDS = 10.0
API_KEY, THROTTLED, QUOTA_EXCEEDED = "API_KEY", "THROTTLED", "QUOTA_EXCEEDED"  # gateway response types


@dataclass(frozen=True)
class PlanLimits:
    """What one API key may do on this stage (from its usage plan)."""

    key_id: str
    rate: float | None  # requests per second; None: not throttled
    burst: int
    quota: int | None  # requests per UTC day; None: no quota


@dataclass
class _Bucket:
    tokens: float
    updated: float


class UsagePlans:
    """Admits or refuses the requests of one API stage by API key, as its usage plans say."""

    def __init__(
        self,
        apigateway: Any,
        api_id: str,
        stage: str,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._apigateway = apigateway  # a boto3 apigateway client of the local AWS endpoint
        self._api_id, self._stage = api_id, stage
        self._cache_seconds = cache_seconds
        self._clock, self._wall_clock = clock, wall_clock
        self._lock = threading.Lock()
        self._limits: dict[str, tuple[float, PlanLimits | None]] = {}  # key value -> (valid until, limits)
        self._buckets: dict[str, _Bucket] = {}  # key id -> bucket
        self._used: dict[str, tuple[date, int]] = {}  # key id -> (UTC day, requests that day)

    def admit(self, key_value: str | None) -> tuple[str | None, PlanLimits | None]:
        """(None, the key's limits) when the request may go on, else (the gateway response type, …)."""
        limits = self.limits(key_value) if key_value else None
        if limits is None:
            return API_KEY, None
        now, today = self._clock(), self._wall_clock().astimezone(UTC).date()
        with self._lock:
            day, used = self._used.get(limits.key_id, (today, 0))
            used = used if day == today else 0  # the quota resets at 00:00 UTC
            if limits.quota is not None and used >= limits.quota:
                return QUOTA_EXCEEDED, limits
            if limits.rate is not None:
                bucket = self._buckets.setdefault(limits.key_id, _Bucket(float(limits.burst), now))
                bucket.tokens = min(float(limits.burst), bucket.tokens + (now - bucket.updated) * limits.rate)
                bucket.updated = now
                if bucket.tokens < 1:
                    return THROTTLED, limits
                bucket.tokens -= 1
            if limits.quota is not None:
                self._used[limits.key_id] = (today, used + 1)
        return None, limits

    def limits(self, key_value: str) -> PlanLimits | None:
        """The limits of the key with this value on this stage (None: no such enabled key in a plan
        of the stage), cached for CACHE_SECONDS."""
        now = self._clock()
        with self._lock:
            cached = self._limits.get(key_value)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self._look_up(key_value)
        with self._lock:
            self._limits = {k: v for k, v in self._limits.items() if v[0] > now}
            self._limits[key_value] = (now + self._cache_seconds, found)
        return found

    def _look_up(self, key_value: str) -> PlanLimits | None:
        key = next(
            (
                item
                for page in self._apigateway.get_paginator("get_api_keys").paginate(includeValues=True)
                for item in page.get("items", [])
                if item.get("value") == key_value
            ),
            None,
        )
        if key is None or not key.get("enabled"):
            return None
        for plan in self._apigateway.get_usage_plans(keyId=key["id"]).get("items", []):
            stages = {(s.get("apiId"), s.get("stage")) for s in plan.get("apiStages", [])}
            if (self._api_id, self._stage) not in stages:
                continue
            throttle, quota = plan.get("throttle") or {}, plan.get("quota") or {}
            if quota and str(quota.get("period", "")).upper() != "DAY":
                log.warning("usage plan %s: a %s quota is not emulated; none applied", plan["id"], quota.get("period"))
                quota = {}
            return PlanLimits(
                key_id=str(key["id"]),
                rate=float(throttle["rateLimit"]) if "rateLimit" in throttle else None,
                burst=int(throttle.get("burstLimit", 0)),
                quota=int(quota["limit"]) if "limit" in quota else None,
            )
        return None
