"""The demo services' drift baselines, made at start from the digit models' training data.

A fresh local stack has an empty bucket, so every start computes them again, exactly as an operator
would (`chorus admin monitor baseline`): the reference data is uploaded under the service's
baseline key and the stack's own monitor function computes statistics.json and constraints.json.
The training split is the 8x8 digits with their true labels, as `{"input": {"pixels": […]},
"output": {"label": …}}` lines: the JSON input of the digit services, whose PNG inputs the capture
transformation reduces to the same `pixels[…]` features.

digits-stacker (its inputs are out-of-fold probabilities no file keeps) and digits-batch (its
images are captured one by one under digits-svm) get no baseline: their reports say
`no_baseline` until an operator makes one, for example from a known-good captured window.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("chorus_local.monitoring")

MONITOR_FUNCTION = "MonitorFunction"  # logical id
PACKAGED_REGISTRY = Path(__file__).resolve().parents[1] / "layers" / "chorus" / "chorus" / "model" / "services.json"
DIGIT_SERVICES = ("digits-svm", "digits-forest", "digits-ensemble", "digits-cascade", "digits-committee")


def training_lines() -> bytes:
    from chorus_local.models.train import load_split

    split = load_split()
    lines = (
        json.dumps({"input": {"pixels": [float(v) for v in row]}, "output": {"label": int(label)}})
        for row, label in zip(split.x_train, split.y_train, strict=True)
    )
    return ("\n".join(lines) + "\n").encode()


def seed_demo_baselines(runtime: Any, s3: Any, bucket: str, function_name: str, services: list[str]) -> list[str]:
    """Baselines for the digit services the registry captures; returns the services done."""
    import chorus_cli  # noqa: F401  (puts the layer's `chorus` package on sys.path)
    from chorus.adapters.monitoring import baseline_key

    data = training_lines()
    done = []
    for service in (s for s in DIGIT_SERVICES if s in services):
        key = baseline_key(service, "data.jsonl")
        s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/x-ndjson")
        event = {"action": "baseline", "service": service, "dataKey": key}
        result = runtime.invoke(function_name, json.dumps(event).encode(), str(uuid.uuid4()))
        if getattr(result, "function_error", None):
            log.warning("no baseline for %s: %s", service, result.payload[:500])
            continue
        done.append(service)
    log.info("drift baselines from the training data: %s", ", ".join(done) or "none")
    return done
