"""Train the demo digit models from scikit-learn's bundled digits data and cache them.

Weights are not committed: the first start trains all three models (a few seconds) into
`<model_dir>/model.joblib` and records a fingerprint of everything that determines them.
Later starts reuse the cache while the fingerprint matches.

    python -m chorus_local.models.train      # prints the held-out accuracies
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

logger = logging.getLogger(__name__)

MODELS_ROOT = Path(__file__).resolve().parent
MODEL_FILE = "model.joblib"
MANIFEST_FILE = "training.json"
SEED = 0
HELD_OUT_FRACTION = 0.3
# Short model name -> folder under the models root (the endpoint's modelDir).
MODEL_DIRS = {"svm": "digits_svm", "forest": "digits_forest", "stacker": "digits_stacker"}
# The stacker's 20 features are these models' 10 probabilities each, in this order.
STACKED_BASE_MODELS = ("svm", "forest")


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def load_split() -> Split:
    """The fixed, stratified 70/30 train/held-out split of the digits data."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data,
        digits.target,
        test_size=HELD_OUT_FRACTION,
        stratify=digits.target,
        random_state=SEED,
    )
    return Split(x_train, x_test, y_train, y_test)


def held_out_accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the label the endpoints answer: the class with the highest probability."""
    labels = model.classes_[np.argmax(model.predict_proba(x), axis=1)]
    return float(np.mean(labels == y))


def fingerprint() -> str:
    """Hash of what determines the weights: this script, the library versions and the data."""
    digits = load_digits()
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"sklearn={sklearn.__version__};numpy={np.__version__}".encode())
    digest.update(digits.data.tobytes())
    digest.update(digits.target.tobytes())
    return digest.hexdigest()


def ensure_trained(root: Path = MODELS_ROOT) -> dict[str, float]:
    """Train the demo models into `root` unless an up-to-date cache is there.

    Returns the held-out accuracy of each model, keyed by short name (svm, forest, stacker).
    """
    expected = fingerprint()
    manifest = _read_manifest(root)
    cached = all((root / folder / MODEL_FILE).is_file() for folder in MODEL_DIRS.values())
    if cached and manifest is not None and manifest.get("fingerprint") == expected:
        return {name: float(value) for name, value in manifest["heldOutAccuracy"].items()}
    return _train(root, expected)


def _train(root: Path, expected_fingerprint: str) -> dict[str, float]:
    logger.info("training demo digit models into %s", root)
    started = time.monotonic()
    split = load_split()
    # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its documented
    # replacement (Platt scaling fitted by internal cross-validation).
    svm = make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(), method="sigmoid", ensemble=False))
    forest = RandomForestClassifier(n_estimators=200, random_state=SEED)
    base_models = {"svm": svm, "forest": forest}
    # StackingClassifier fits the final LogisticRegression on the base models' out-of-fold
    # probabilities (cross_val_predict on the training split) and then refits the base
    # models on the whole training split, which is exactly the three models we deploy.
    stack = StackingClassifier(
        estimators=[(name, base_models[name]) for name in STACKED_BASE_MODELS],
        final_estimator=LogisticRegression(max_iter=1000),
        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED),
        stack_method="predict_proba",
    )
    stack.fit(split.x_train, split.y_train)
    models = {
        "svm": stack.named_estimators_["svm"],
        "forest": stack.named_estimators_["forest"],
        "stacker": stack.final_estimator_,
    }
    accuracies = {
        "svm": held_out_accuracy(models["svm"], split.x_test, split.y_test),
        "forest": held_out_accuracy(models["forest"], split.x_test, split.y_test),
        # stack.predict_proba feeds the final estimator exactly the features the stacker
        # endpoint receives: the base models' probabilities, concatenated.
        "stacker": held_out_accuracy(stack, split.x_test, split.y_test),
    }
    for name, model in models.items():
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        _write_atomically(root / MODEL_DIRS[name] / MODEL_FILE, buffer.getvalue())
    seconds = time.monotonic() - started
    # The manifest goes last, so a cache with a matching manifest always has its models.
    manifest = {
        "fingerprint": expected_fingerprint,
        "heldOutAccuracy": accuracies,
        "trainingSeconds": round(seconds, 2),
    }
    _write_atomically(root / MANIFEST_FILE, json.dumps(manifest, indent=2).encode())
    logger.info("trained demo digit models in %.1f s: %s", seconds, accuracies)
    return accuracies


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((root / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _write_atomically(target: Path, data: bytes) -> None:
    """Write through a temporary file and rename, so that a concurrent start (the local stack
    and a test session) never loads a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; these are ordinary shared files
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    accuracies = ensure_trained()
    for name, accuracy in accuracies.items():
        print(f"{name:8} held-out accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
