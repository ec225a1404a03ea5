"""Cold import of each function's handler module against a bare `import boto3`, in the same run.

Each figure is the median over fresh interpreters of the time `import <handler module>` takes
inside the process (interpreter start-up excluded), run exactly as the local runtime starts a
worker: `python -P` in the function's folder, with the environment of the function's live worker
(read from /proc, so PYTHONPATH is the function's folder plus the layer and every variable the
template gives it). Byte code is cached (the first, discarded round writes it), as in a built
package. `import boto3` runs in the same environment, interleaved round by round, so both see
the same load. Part of `make benchmark`; prints numbers, asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.e2e.conftest import RunningStack

BASELINE = "import boto3"
_PROBE = "import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(): value.decode() for key, value in pairs}


def worker_environments(stack: RunningStack) -> dict[str, dict[str, str]]:
    """Each function's name → the environment of one of its live workers."""
    workers = requests.get(f"{stack.aws_endpoint_url}/_local/workers", timeout=10).json()["workers"]
    found = {}
    for name, live in sorted(workers.items()):
        for worker in live:
            try:
                found[name] = _environment(int(worker["pid"]))
                break
            except OSError:
                continue
    return found


def _time(statement: str, env: dict[str, str]) -> float:
    result = subprocess.run(
        [sys.executable, "-P", "-c", _PROBE.format(statement=statement)],
        env=env,
        cwd=env.get("LAMBDA_TASK_ROOT") or None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{statement!r} failed: {result.stderr[-800:]}")
    return float(result.stdout.strip().splitlines()[-1])


def cold_import(stack: RunningStack, rounds: int = 5) -> dict[str, Any]:
    environments = worker_environments(stack)
    if not environments:
        print("\nCold import: no live Lambda workers to take an environment from")
        return {}
    shared = os.path.commonprefix(list(environments))  # noqa: RUF071 - names, not paths
    prefix = shared[: shared.rfind("-") + 1]  # chorus-local-…
    modules = {name: env["_HANDLER"].rpartition(".")[0].replace("/", ".") for name, env in environments.items()}
    any_env = next(iter(environments.values()))
    samples: dict[str, list[float]] = {name: [] for name in environments}
    baseline: list[float] = []
    for round_ in range(rounds + 1):  # round 0 writes byte code and warms the page cache
        base = _time(BASELINE, any_env)
        took = {name: _time(f"import {modules[name]}", env) for name, env in environments.items()}
        if round_:
            baseline.append(base)
            for name, value in took.items():
                samples[name].append(value)
    boto3_s = statistics.median(baseline)
    medians = {name[len(prefix) :] or name: statistics.median(values) for name, values in samples.items()}
    print(f"\nCold import of each handler module, median of {rounds} fresh interpreters (byte code cached)")
    print(f"  {'import boto3 (bare)':<34} {boto3_s * 1000:6.0f} ms   1.00x")
    for name, seconds in sorted(medians.items(), key=lambda item: -item[1]):
        label = f"{name} (import {modules.get(prefix + name, '?')})"
        print(f"  {label:<34} {seconds * 1000:6.0f} ms   {seconds / boto3_s:4.2f}x")
    return {"boto3": boto3_s, "functions": medians, "ratios": {k: v / boto3_s for k, v in medians.items()}}
