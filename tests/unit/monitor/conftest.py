"""The monitor package (functions/monitor) loaded as Lambda loads it, and digit data for its tests."""

from __future__ import annotations

import base64
import importlib
import io
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from chorus_local.models.train import Split, load_split

PACKAGE = Path(__file__).resolve().parents[3] / "functions" / "monitor"
MODULES = ("drift", "features", "store", "measures", "monitor", "capture", "app")


def load_package() -> SimpleNamespace:
    """Import the package's top-level modules from its root, as Lambda does, then take them out of
    sys.path and sys.modules again: another function's `app` (or a later test's) is never shadowed.
    The modules keep their references to each other."""
    saved = {name: sys.modules.pop(name) for name in MODULES if name in sys.modules}
    sys.path.insert(0, str(PACKAGE))
    try:
        return SimpleNamespace(**{name: importlib.import_module(name) for name in MODULES})
    finally:
        sys.path.remove(str(PACKAGE))
        for name in MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@pytest.fixture(scope="session")
def package() -> SimpleNamespace:
    return load_package()


@pytest.fixture(scope="session")
def split() -> Split:
    return load_split()


def digit_png(pixels: np.ndarray, size: int = 32) -> bytes:
    """A 0-16 digit drawn as dark ink on white, as a person would draw it, `size` pixels square."""
    grey = (255 - np.asarray(pixels, dtype=float).reshape(8, 8) * 255 / 16).astype("uint8")
    image = Image.fromarray(grey, mode="L").resize((size, size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def capture_line(
    event_id: str, inference_time: str, pixels: Iterable[float], label: Any, service: str = "digits-svm"
) -> bytes:
    """One capture record as the transformation writes it (JSON input inline, its features)."""
    document = {"pixels": [float(v) for v in pixels]}
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "application/json",
                "mode": "INPUT",
                "data": json.dumps(document),
                "encoding": "JSON",
            }
        },
        "eventMetadata": {"eventId": event_id, "inferenceId": event_id, "inferenceTime": inference_time},
        "eventVersion": "0",
        "chorus": {
            "service": service,
            "tenant": "local",
            "features": {f"pixels[{i}]": v for i, v in enumerate(document["pixels"])},
            "label": label,
        },
    }
    return json.dumps(record).encode()


def firehose_event(*lines: bytes) -> dict[str, Any]:
    return {
        "invocationId": "invocation-1",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/chorus-capture",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"record-{i}",
                "approximateArrivalTimestamp": 1796302800000,
                "data": base64.b64encode(line).decode(),
            }
            for i, line in enumerate(lines)
        ],
    }
