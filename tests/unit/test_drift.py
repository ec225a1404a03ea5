"""The monitor's drift statistics on the digits: no false alarm on held-out data across 65 tests,
violations on inverted images and their labels."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chorus_local.models.train import load_split

_SPEC = importlib.util.spec_from_file_location(
    "monitor_drift", Path(__file__).resolve().parents[2] / "functions" / "monitor" / "drift.py"
)
assert _SPEC is not None and _SPEC.loader is not None
drift: Any = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(drift)


def pixel_features(rows: np.ndarray) -> dict[str, list[Any]]:
    return drift.columns(drift.flatten({"pixels": [float(v) for v in row]}) for row in rows)


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, Any], dict[str, Any]]:
    split = load_split()
    statistics = drift.baseline(pixel_features(split.x_train), labels=list(split.y_train))
    return statistics, drift.constraints(statistics)


def test_baseline_summarises_every_feature_and_the_label(reference) -> None:
    statistics, limits = reference
    assert len(statistics["features"]) == 64 and len(limits["features"]) == 64
    centre = statistics["features"]["pixels[27]"]
    assert centre["kind"] == "numeric" and centre["count"] == 1257 and centre["missing"] == 0
    assert 0 <= centre["min"] <= centre["quantiles"]["0.5"] <= centre["max"] <= 16
    assert sum(centre["histogram"]["counts"]) == 1257
    assert statistics["features"]["pixels[0]"]["std"] == 0  # the border is always blank
    assert set(statistics["label"]["distribution"]) == {str(d) for d in range(10)}


@pytest.mark.parametrize("start", [0, 200, 340])
def test_held_out_digits_raise_no_violation(reference, start) -> None:
    statistics, limits = reference
    split = load_split()
    rows, labels = split.x_test[start : start + 200], list(split.y_test[start : start + 200])
    result = drift.report(statistics, limits, pixel_features(rows), labels)
    assert result["judged"] and result["tests"] == 65
    assert result["violations"] == []


def test_inverted_digits_violate_the_input_features_and_the_label(reference) -> None:
    statistics, limits = reference
    split = load_split()
    inverted = 16 - split.x_test[:200]
    skewed_labels = [1] * 150 + list(split.y_test[:50])  # what a model answers on inputs it never saw
    result = drift.report(statistics, limits, pixel_features(inverted), skewed_labels)
    drifted = {v["feature"]: v for v in result["violations"]}
    assert len(drifted) > 40 and "label" in drifted
    assert drifted["label"]["measure"] == "jensen_shannon_distance" and drifted["label"]["value"] > 0.15
    assert drifted["pixels[0]"]["measure"] == "constant_changed_fraction"
    assert all(v["value"] > v["threshold"] for v in result["violations"])


def test_too_small_a_window_is_reported_but_not_judged(reference) -> None:
    statistics, limits = reference
    result = drift.report(statistics, limits, pixel_features(16 - load_split().x_test[:10]))
    assert result["count"] == 10 and not result["judged"] and result["violations"] == []


def test_json_inputs_flatten_to_numeric_and_categorical_fields() -> None:
    flat = drift.flatten({"claim": {"amount": 12.5, "country": "DE", "urgent": True, "tags": ["a"]}, "x": None})
    assert flat == {"claim.amount": 12.5, "claim.country": "DE", "claim.urgent": "true", "claim.tags[0]": "a"}
    statistics = drift.baseline(drift.columns([flat, {"claim.amount": 3.0}]))
    assert statistics["features"]["claim.country"] == {
        "kind": "categorical",
        "count": 2,
        "missing": 1,
        "distribution": {"DE": 1},
    }


def test_missing_fields_beyond_the_baseline_are_a_violation() -> None:
    rows = [{"a": float(i % 7), "b": "x"} for i in range(100)]
    statistics = drift.baseline(drift.columns(rows))
    window = drift.columns([{"a": float(i % 7)} | ({"b": "x"} if i >= 60 else {}) for i in range(100)])
    result = drift.report(statistics, drift.constraints(statistics), window)
    assert [v["feature"] for v in result["violations"]] == ["b"]
    assert result["violations"][0]["measure"] == "missing_fraction"
