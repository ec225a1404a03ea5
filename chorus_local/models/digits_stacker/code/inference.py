"""digits-stacker: a logistic regression over the svm and forest models' probabilities.

Input: `{"svm": [10 probabilities], "forest": [10 probabilities]}`, each being that model's
`probabilities` answer. It was trained on the base models' out-of-fold probabilities.
"""

import numpy as np

from chorus_local.models.digits import (
    JSON_TYPE,
    load_json,
    media_type_of,
    model_fn,
    numbers,
    output_fn,
    predict_fn,
)
from chorus_local.models.train import STACKED_BASE_MODELS

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]

CLASSES = 10


def input_fn(request_body: bytes, content_type: str) -> np.ndarray:
    if media_type_of(content_type) != JSON_TYPE:
        raise ValueError(f"unsupported content type {content_type!r}: send {JSON_TYPE}")
    document = load_json(request_body)
    if not isinstance(document, dict):
        raise ValueError(f"input must be a JSON object with keys {', '.join(STACKED_BASE_MODELS)}")
    # The feature order must match training: each base model's probabilities, in turn.
    features = [numbers(document.get(name), name, count=CLASSES, high=1) for name in STACKED_BASE_MODELS]
    return np.concatenate(features).reshape(1, -1)
