"""What data capture adds to a prediction: p50 submit → succeeded of digits-svm (inline JSON, a
polling client) with capture on (100 %, the demo registry), with the capture stream failing every
record, and on a second stack whose registry captures nothing. Prints numbers; asserts nothing."""

from __future__ import annotations

import json
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.e2e.client import ChorusClient, digit_pixels
from tests.e2e.conftest import RunningStack

REGISTRY = Path(__file__).resolve().parents[1] / "layers" / "chorus" / "chorus" / "model" / "services.json"
OUTAGE = {"service": "firehose", "operation": "PutRecord", "error": "ServiceUnavailableException", "status": 500}


def _p50(client: ChorusClient, samples: int) -> float:
    from benchmarks.run import timed

    pixels, _ = digit_pixels(7)
    body = {"service": "digits-svm", "input": {"pixels": pixels}}
    timed(client, body)  # warm
    return statistics.median(timed(client, body) for _ in range(samples))


def capture_latency(
    stack: RunningStack, samples: int, on_plain: Callable[[RunningStack], Any] | None = None
) -> dict[str, Any]:
    """`on_plain`, if given, also runs on the stack without capture (its result is `plain`)."""
    client = stack.api()
    on = _p50(client, samples)
    faults = stack.aws_endpoint_url + "/_local/faults"
    requests.post(faults, json={"rules": [OUTAGE]}, timeout=5).raise_for_status()
    try:
        outage = _p50(client, samples)
    finally:
        requests.delete(faults, timeout=5).raise_for_status()
    with tempfile.TemporaryDirectory() as folder:
        registry = json.loads(REGISTRY.read_text())
        for service in registry["services"]:
            service.pop("capture", None)
        path = Path(folder) / "services.json"
        path.write_text(json.dumps(registry))
        plain = RunningStack(parameter_overrides={"RegistryFile": str(path)})
        try:
            off = _p50(plain.api(), samples)
            extra = on_plain(plain) if on_plain is not None else None
        finally:
            plain.stop()
    numbers = {"captureOnP50": on, "captureOutageP50": outage, "captureOffP50": off, "plain": extra}
    print(f"\nData capture, digits-svm inline JSON, submit → succeeded p50 ({samples} sequential each)")
    print(f"  capture on (100 %)                   {on * 1000:7.0f} ms")
    print(f"  capture stream failing every record  {outage * 1000:7.0f} ms")
    print(f"  capture off (a stack without it)     {off * 1000:7.0f} ms")
    print(f"  on / off                             {on / off:7.2f}")
    return numbers
