"""The drift monitor's evaluation at volume, in memory (no S3): 100,000 capture records of held-out
digits (resampled), read (JSON lines to records, window, dedupe), their features extracted and
judged against the training split's baseline. Prints seconds and MiB; asserts nothing.

    .venv/bin/python -m benchmarks.monitor [--records 100000]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from chorus_local.models.train import load_split

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "functions" / "monitor"
MODULES = ("drift", "features", "store", "measures", "monitor")
WINDOW_START = datetime(2026, 12, 3, 12, tzinfo=UTC)


def load_monitor() -> SimpleNamespace:
    """The monitor package's modules, imported from its root as Lambda does, then taken out of
    sys.modules again so no other top-level name is shadowed."""
    for path in (str(REPO / "layers" / "chorus"), str(PACKAGE)):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        return SimpleNamespace(**{name: importlib.import_module(name) for name in MODULES})
    finally:
        sys.path.remove(str(PACKAGE))
        for name in MODULES:
            sys.modules.pop(name, None)


def capture_lines(count: int, seed: int = 0) -> list[bytes]:
    """`count` capture records as the transformation writes them, from held-out digits drawn with
    replacement, spread over the hour."""
    split = load_split()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(split.x_test), size=count)
    lines = []
    for i, pick in enumerate(picks):
        pixels = [float(v) for v in split.x_test[pick]]
        moment = WINDOW_START + timedelta(milliseconds=int(i * 3_600_000 / count))
        record = {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "application/json",
                    "mode": "INPUT",
                    "data": json.dumps({"pixels": pixels}),
                    "encoding": "JSON",
                }
            },
            "eventMetadata": {
                "eventId": f"e-{i}",
                "inferenceId": f"e-{i}",
                "inferenceTime": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            },
            "eventVersion": "0",
            "chorus": {
                "service": "digits-svm",
                "tenant": "local",
                "features": {f"pixels[{j}]": v for j, v in enumerate(pixels)},
                "label": int(split.y_test[pick]),
            },
        }
        lines.append(json.dumps(record).encode())
    return lines


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(records: int = 100_000) -> dict[str, Any]:
    package = load_monitor()
    split = load_split()
    rows = [package.features.json_features({"pixels": [float(v) for v in row]}) for row in split.x_train]
    statistics = package.drift.baseline(package.drift.columns(rows), [int(y) for y in split.y_train])
    baseline = (statistics, package.drift.constraints(statistics))
    lines = capture_lines(records)
    window = package.monitor.Window(WINDOW_START, WINDOW_START + timedelta(hours=1))
    package.monitor.evaluate([], baseline)  # imports scipy before anything is measured
    gc.collect()

    started = time.perf_counter()
    result = package.monitor.evaluate(package.monitor.Selection(lines, window), baseline)
    seconds = time.perf_counter() - started
    gc.collect()
    # Memory on a second pass: tracemalloc slows allocation-heavy code several times over.
    rss_before = _maxrss_mib()
    tracemalloc.start()
    package.monitor.evaluate(package.monitor.Selection(lines, window), baseline)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _maxrss_mib()

    numbers = {
        "records": result["records"],
        "status": result["status"],
        "violations": len(result["violations"]),
        "seconds": round(seconds, 3),
        "recordsPerSecond": round(result["records"] / seconds),
        "peakTracedMiB": round(peak / 2**20, 1),
        "maxRssDeltaMiB": round(rss_after - rss_before, 1),
        "maxRssMiB": round(rss_after, 1),
    }
    print(f"\nDrift monitor, {numbers['records']:,} capture records in memory (status {numbers['status']})")
    rate = f"{numbers['recordsPerSecond']:,} records/s"
    print(f"  read, features, report               {numbers['seconds']:7.2f} s   {rate}")
    print(f"  peak traced allocations              {numbers['peakTracedMiB']:7.1f} MiB")
    print(f"  max RSS growth (process {numbers['maxRssMiB']:.0f} MiB)     {numbers['maxRssDeltaMiB']:7.1f} MiB")
    return numbers


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    main(parser.parse_args().records)
