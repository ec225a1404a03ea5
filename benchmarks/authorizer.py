"""What the REQUEST authorizer adds to a request, measured on the local stack: fresh tokens each
used twice in a row — the first request runs the authorizer (a cache miss: GetItem, plus the
hourly `lastUsedAt` write on a token's first use), the second is answered from the 60 s cache.
Part of `make benchmark`; prints numbers, asserts nothing."""

from __future__ import annotations

import statistics
import time
from typing import Any

import requests

from tests.e2e.conftest import RunningStack


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def authorizer_latency(stack: RunningStack, tokens: int = 40) -> dict[str, Any]:
    from chorus_cli import target

    target.local(stack.ready_file)  # the product's own tokens adapter, pointed at this stack
    from chorus.adapters import tokens as token_store
    from chorus.model.tenancy import Scope

    url = f"{stack.api_url}/services"
    first, again = [], []
    for _ in range(tokens):
        _, plaintext = token_store.create_token("local", [Scope.READ], created_by="benchmark")
        headers = {"Authorization": f"Bearer {plaintext}"}
        for samples in (first, again):
            started = time.perf_counter()
            response = requests.get(url, headers=headers, timeout=30)
            samples.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"GET /services answered {response.status_code}: {response.text[:200]}")
    added = [a - b for a, b in zip(first, again, strict=True)]
    print(f"\nAuthorizer ({tokens} fresh tokens, GET /services twice each)")
    for name, values in (("cache miss (authorizer runs)", first), ("cache hit", again), ("added by a run", added)):
        print(f"  {name:<30} p50 {statistics.median(values) * 1000:6.1f} ms   p90 {_p(values, 0.9) * 1000:6.1f} ms")
    return {
        "missP50": statistics.median(first),
        "hitP50": statistics.median(again),
        "addedP50": statistics.median(added),
    }
