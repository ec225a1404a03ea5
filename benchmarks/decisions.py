"""Decision workflows measured on the local stack: the cheap-model-first cascade against the full
ensemble on held-out digits (accuracy, model calls per prediction), and the batch fan-out's latency
by batch size. Part of `make benchmark`; prints numbers, asserts nothing."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from chorus_local.models.train import load_split
from tests.e2e.client import TERMINAL, ChorusClient


def _finish(client: ChorusClient, body: dict[str, Any], timeout: float = 300) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    created = client.create(body)
    deadline = time.monotonic() + timeout
    while (prediction := client.get(created["id"]))["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{body['service']} prediction {created['id']} still {prediction['status']}")
        time.sleep(0.05)
    return prediction, time.perf_counter() - started


def _model_calls(prediction: dict[str, Any]) -> int:
    """Model predictions an ensemble prediction made: its model steps that ran (not skipped)."""
    return sum(1 for s in prediction["steps"] if s["kind"] == "model" and s["status"] not in {"skipped", "not_run"})


def cascade_against_ensemble(client: ChorusClient, samples: int) -> dict[str, dict[str, float]]:
    """The same held-out digits through digits-ensemble and digits-cascade."""
    split = load_split()
    chosen = np.random.default_rng(0).choice(len(split.x_test), size=min(samples, len(split.x_test)), replace=False)
    cases = [([float(v) for v in split.x_test[i]], int(split.y_test[i])) for i in chosen]
    print(f"\nDecision workflows: digits-cascade against digits-ensemble ({len(cases)} held-out digits each)")
    results = {}
    for service in ("digits-ensemble", "digits-cascade"):

        def one(case: tuple[list[float], int], service: str = service) -> tuple[bool, int, float]:
            prediction, seconds = _finish(client, {"service": service, "input": {"pixels": case[0]}})
            if prediction["status"] != "succeeded":
                raise RuntimeError(f"{service} prediction {prediction['id']} {prediction['status']}")
            return client.download(prediction)["label"] == case[1], _model_calls(prediction), seconds

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(one, cases))
        elapsed = time.perf_counter() - started
        accuracy = sum(o[0] for o in outcomes) / len(outcomes)
        calls = statistics.mean(o[1] for o in outcomes)
        p50 = statistics.median(o[2] for o in outcomes)
        results[service] = {"accuracy": accuracy, "modelCallsPerPrediction": calls, "p50Seconds": p50}
        print(
            f"  {service:<16} accuracy {accuracy:6.1%}   model calls per prediction {calls:4.2f}   "
            f"p50 {p50 * 1000:6.0f} ms (8 in flight)   {len(cases) / elapsed:4.1f} predictions/s"
        )
    ratio = results["digits-cascade"]["modelCallsPerPrediction"] / results["digits-ensemble"]["modelCallsPerPrediction"]
    print(f"  cascade / ensemble model calls: {ratio:.2f}")
    return results


def batch_latency(client: ChorusClient, sizes: tuple[int, ...] = (1, 10, 50), samples: int = 3) -> dict[str, Any]:
    """digits-batch submit → succeeded, by the number of images (items fan out 10 at a time)."""
    split = load_split()
    print(f"\ndigits-batch latency, submit → succeeded ({samples} sequential each)")
    results: dict[str, Any] = {}
    for size in sizes:
        images = [{"pixels": [float(v) for v in split.x_test[i]]} for i in range(size)]
        seconds = []
        for _ in range(samples):
            prediction, took = _finish(client, {"service": "digits-batch", "input": {"images": images}})
            if prediction["status"] != "succeeded":
                raise RuntimeError(f"digits-batch prediction {prediction['id']} {prediction['status']}")
            seconds.append(took)
        results[str(size)] = {"p50Seconds": statistics.median(seconds), "min": min(seconds)}
        print(
            f"  {size:>3} images   p50 {statistics.median(seconds) * 1000:7.0f} ms   min {min(seconds) * 1000:7.0f} ms"
            f"   ({statistics.median(seconds) / size * 1000:5.0f} ms per image)"
        )
    return results
