"""Drift statistics for the monitor (numpy and scipy live in this function's own package, never in
the shared layer every other function loads).

A *baseline* summarises reference data (training data, or a known-good window) per feature:
count, missing, mean, std, min, max, quantiles and a histogram for numeric features; the
distribution for categorical ones and for the model's output label. Its *constraints* say how far
a window may stray. A *report* compares a window's features with the baseline:

- numeric features: the window's counts in the baseline's histogram bins, tested against the
  baseline's proportions with a chi-square goodness-of-fit test, and the population stability index
  (PSI) of the same bins as the effect size;
- categorical features and the label: the same test over the categories, and the Jensen-Shannon
  distance between the two distributions as the effect size.

A feature drifts only when the difference is both *significant* — p below the family-wise alpha
divided by the number of tests (Bonferroni: 64 pixel features and a label are 65 tests, so a few
hundred in-distribution samples raise no false alarm) — and *large* (PSI or distance above its
threshold), so a big window does not alarm on a trivial shift. A feature constant in the baseline
(a digit's border pixels are always 0) drifts when more than a tenth of the window differs from it.

Every judged feature also gets its *measure* (the effect size it is judged by, violation or not), so
the monitor can chart each feature's drift over time, not only the alarms.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# scipy is imported where a test runs, not here: the capture transformation (same package) imports
# this module for `flatten` only, and scipy.stats costs it a second and 100 MB of cold start.

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BINS = 10
SMOOTHING = 0.5  # pseudo-count per bin, so an empty baseline bin does not make any count infinitely unlikely
DEFAULT_CONSTRAINTS = {
    "alpha": 0.01,  # family-wise: split across every test of a report
    "psi": 0.25,  # "significant shift" by the usual PSI reading (0.1 slight, 0.25 major)
    "distance": 0.15,  # Jensen-Shannon distance (base 2) between category distributions
    "constantChangedFraction": 0.1,
    "missingIncrease": 0.05,  # the missing fraction may grow this much over the baseline's
    "minimumCount": 30,  # fewer samples in a window: report, but judge nothing
}
LABEL = "label"


# --- features -------------------------------------------------------------------------------------


def flatten(document: Any, prefix: str = "") -> dict[str, float | str]:
    """A JSON document's numeric and categorical leaves, by path (`a.b`, `pixels[3]`). Booleans are
    categorical; nulls and nested empty containers are left out (they count as missing)."""
    found: dict[str, float | str] = {}
    if isinstance(document, dict):
        for key, value in document.items():
            found.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.update(flatten(value, f"{prefix}[{index}]"))
    elif isinstance(document, bool):
        found[prefix] = "true" if document else "false"
    elif isinstance(document, int | float):
        if math.isfinite(document):
            found[prefix] = float(document)
    elif isinstance(document, str):
        found[prefix] = document
    return found


class Columns:
    """Feature rows gathered straight into columns, so a window's rows are never all held as dicts
    (a 64-feature dict costs several times its values); a feature a row lacks is None there."""

    def __init__(self) -> None:
        self._columns: dict[str, list[Any]] = {}
        self.count = 0

    def add(self, row: Mapping[str, Any]) -> None:
        for name, value in row.items():
            column = self._columns.get(name)
            if column is None:
                column = self._columns[name] = [None] * self.count
            column.append(value)
        self.count += 1
        if len(row) < len(self._columns):
            for column in self._columns.values():
                if len(column) < self.count:
                    column.append(None)

    def as_dict(self) -> dict[str, list[Any]]:
        return {name: self._columns[name] for name in sorted(self._columns)}


def columns(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Feature rows as columns; a feature a row lacks is None (missing) in that row."""
    gathered = Columns()
    for row in rows:
        gathered.add(row)
    return gathered.as_dict()


# --- baselines ---------------------------------------------------------------------------------------


def _numeric(values: Sequence[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)


def _edges(values: np.ndarray) -> list[float]:
    """Bin edges from the baseline's own quantiles (equal-mass bins), deduplicated for discrete data."""
    inner = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
    return [float(edge) for edge in inner]


def _counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    """Counts in (-inf, e1], (e1, e2], …, (ek, inf)."""
    indices = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    return [int(c) for c in np.bincount(indices, minlength=len(edges) + 1)]


def feature_statistics(values: Sequence[Any]) -> dict[str, Any]:
    missing = sum(v is None for v in values)
    present = [v for v in values if v is not None]
    if not _numeric(values):
        return {
            "kind": "categorical",
            "count": len(values),
            "missing": missing,
            "distribution": dict(Counter(map(str, present))),
        }
    array = np.asarray(present, dtype=float)
    edges = _edges(array)
    return {
        "kind": "numeric",
        "count": len(values),
        "missing": missing,
        "mean": float(array.mean()),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
        "quantiles": {str(q): float(np.quantile(array, q)) for q in QUANTILES},
        "histogram": {"edges": edges, "counts": _counts(array, edges)},
    }


def baseline(features: Mapping[str, Sequence[Any]], labels: Sequence[Any] | None = None) -> dict[str, Any]:
    """`statistics.json`: every feature's statistics, and the label distribution if there are labels."""
    result: dict[str, Any] = {"features": {name: feature_statistics(values) for name, values in features.items()}}
    if labels is not None:
        result[LABEL] = feature_statistics([None if v is None else str(v) for v in labels])
    return result


def constraints(statistics: Mapping[str, Any], **overrides: float) -> dict[str, Any]:
    """`constraints.json`: the thresholds a window is judged by (the defaults, or an operator's)."""
    return {**DEFAULT_CONSTRAINTS, **overrides, "features": sorted(statistics["features"])}


# --- reports ---------------------------------------------------------------------------------------


def _chi_square_p(observed: Sequence[float] | np.ndarray, expected_proportions: Sequence[float] | np.ndarray) -> float:
    observed_array = np.asarray(observed, dtype=float)
    total = observed_array.sum()
    expected = np.asarray(expected_proportions, dtype=float) * total
    if total == 0 or len(observed_array) < 2:
        return 1.0
    from scipy import stats

    return float(stats.chisquare(observed_array, expected).pvalue)


def _proportions(counts: Sequence[float]) -> np.ndarray:
    smoothed = np.asarray(counts, dtype=float) + SMOOTHING
    return smoothed / smoothed.sum()


def psi(expected_counts: Sequence[float], actual_counts: Sequence[float]) -> float:
    """Population stability index: sum of (a - e) * ln(a / e) over the bins (smoothed)."""
    expected, actual = _proportions(expected_counts), _proportions(actual_counts)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


Finding = tuple[dict[str, Any], bool]  # the feature's measure, and whether it is a violation


def _judge_numeric(
    name: str, base: Mapping[str, Any], values: list[Any], limits: Mapping[str, Any], alpha: float
) -> Finding | None:
    present = np.asarray([v for v in values if isinstance(v, int | float)], dtype=float)
    if present.size == 0:
        return None
    if base["std"] == 0:
        changed = float(np.mean(present != base["mean"]))
        measure = {
            "feature": name,
            "measure": "constant_changed_fraction",
            "value": round(changed, 4),
            "threshold": limits["constantChangedFraction"],
            "baseline": base["mean"],
        }
        return measure, changed > limits["constantChangedFraction"]
    edges = base["histogram"]["edges"]
    expected = base["histogram"]["counts"]
    actual = _counts(present, edges)
    index = psi(expected, actual)
    p = _chi_square_p(np.asarray(actual) + SMOOTHING, _proportions(expected))
    measure = {"feature": name, "measure": "psi", "value": round(index, 4), "threshold": limits["psi"], "pValue": p}
    return measure, p < alpha and index > limits["psi"]


def _judge_categorical(
    name: str, base: Mapping[str, Any], values: list[Any], limits: Mapping[str, Any], alpha: float
) -> Finding | None:
    present = [str(v) for v in values if v is not None]
    if not present:
        return None
    from scipy.spatial.distance import jensenshannon

    categories = sorted(set(base["distribution"]) | set(present))
    expected = [base["distribution"].get(c, 0) for c in categories]
    counted = Counter(present)
    actual = [counted.get(c, 0) for c in categories]
    distance = float(jensenshannon(_proportions(expected), _proportions(actual), base=2))
    p = _chi_square_p(np.asarray(actual) + SMOOTHING, _proportions(expected))
    measure = {
        "feature": name,
        "measure": "jensen_shannon_distance",
        "value": round(distance, 4),
        "threshold": limits["distance"],
        "pValue": p,
    }
    return measure, p < alpha and distance > limits["distance"]


def report(
    statistics: Mapping[str, Any],
    limits: Mapping[str, Any],
    features: Mapping[str, Sequence[Any]],
    labels: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """A window against the baseline: its own statistics, `measures` (every judged feature's measure,
    value and threshold) and `violations` (the measures that drifted). Too small a window is
    reported and judged on nothing."""
    count = max((len(v) for v in features.values()), default=len(labels or []))
    window = baseline(features, labels)
    tests = len(statistics["features"]) + (1 if LABEL in statistics else 0)
    alpha = limits["alpha"] / max(1, tests)
    findings: list[Finding] = []
    judged = count >= limits["minimumCount"]
    if judged:
        for name, base in statistics["features"].items():
            values = list(features.get(name, [None] * count))
            missing = sum(v is None for v in values) / max(1, len(values))
            base_missing = base["missing"] / max(1, base["count"])
            if missing > base_missing + limits["missingIncrease"]:
                measure = {
                    "feature": name,
                    "measure": "missing_fraction",
                    "value": round(missing, 4),
                    "threshold": round(base_missing + limits["missingIncrease"], 4),
                }
                findings.append((measure, True))
                continue
            judge = _judge_numeric if base["kind"] == "numeric" else _judge_categorical
            found = judge(name, base, values, limits, alpha)
            if found is not None:
                findings.append(found)
        if labels is not None and LABEL in statistics:
            found = _judge_categorical(
                LABEL, statistics[LABEL], [None if v is None else str(v) for v in labels], limits, alpha
            )
            if found is not None:
                findings.append(found)
    return {
        "count": count,
        "judged": judged,
        "tests": tests,
        "alphaPerTest": alpha,
        "statistics": window,
        "measures": [measure for measure, _ in findings],
        "violations": [measure for measure, drifted in findings if drifted],
    }
