"""Inference-toolkit functions shared by the demo digit models.

The demo packages import these from their `code/inference.py` instead of copying them: they only
ever run in the local SageMaker runtime, where `chorus_local` is importable.

Inputs follow scikit-learn's digits data: 8x8 pixels, 0 = background, 16 = ink.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Protocol, TypedDict

import joblib
import numpy as np
from PIL import Image, ImageOps

from chorus_local.models.train import MODEL_FILE, ensure_trained

PIXELS = 64
MAX_INTENSITY = 16
JSON_TYPE = "application/json"
PNG_TYPE = "image/png"


class Classifier(Protocol):
    classes_: np.ndarray

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


class Prediction(TypedDict):
    label: int
    probabilities: list[float]


def model_fn(model_dir: str) -> Classifier:
    # The demo models live side by side under one root; the first start trains them there.
    directory = Path(model_dir).resolve()
    ensure_trained(directory.parent)
    model: Classifier = joblib.load(directory / MODEL_FILE)
    return model


def input_fn(request_body: bytes, content_type: str) -> np.ndarray:
    """One digit as a (1, 64) row, from a PNG image or `{"pixels": [64 numbers 0-16]}`."""
    media_type = media_type_of(content_type)
    if media_type == PNG_TYPE:
        return pixels_from_png(request_body).reshape(1, PIXELS)
    if media_type == JSON_TYPE:
        document = load_json(request_body)
        pixels = document.get("pixels") if isinstance(document, dict) else None
        return numbers(pixels, "pixels", count=PIXELS, high=MAX_INTENSITY).reshape(1, PIXELS)
    raise ValueError(f"unsupported content type {content_type!r}: send {PNG_TYPE} or {JSON_TYPE}")


def predict_fn(data: np.ndarray, model: Classifier) -> Prediction:
    probabilities = model.predict_proba(data)[0]
    # The label is the most probable class, so label and probabilities never disagree.
    label = int(model.classes_[int(np.argmax(probabilities))])
    return {"label": label, "probabilities": [float(p) for p in probabilities]}


def output_fn(prediction: Prediction, accept: str) -> bytes:
    if media_type_of(accept) not in (JSON_TYPE, "*/*", ""):
        raise ValueError(f"unsupported accept type {accept!r}: this model answers {JSON_TYPE}")
    return json.dumps(prediction).encode()


def pixels_from_png(body: bytes) -> np.ndarray:
    """Read a PNG of any size and colour as an 8x8 digit on the 0-16 ink scale."""
    grey = _on_white(_open_png(body)).convert("L")
    ink = ImageOps.invert(grey) if _has_light_background(grey) else grey
    small = ink.resize((8, 8), Image.Resampling.BOX)
    # Stretch to the full range so that faint or thin strokes still reach full ink, as the
    # digits data (counts of inked pixels per block) does for a normal pen stroke.
    stretched = ImageOps.autocontrast(small)
    return np.asarray(stretched, dtype=float) * MAX_INTENSITY / 255


def _open_png(body: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(body))
        if image.format == "PNG":
            image.load()  # decodes now, so a truncated or corrupt file fails here
            return image
    except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"input is not a readable PNG image: {error}") from error
    raise ValueError(f"input is not a readable PNG image: it is {image.format}")


def _on_white(image: Image.Image) -> Image.Image:
    # Drawings exported from a canvas are often dark ink on a transparent background; dropping
    # the alpha channel would turn that background black, so composite onto white instead.
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image


def _has_light_background(grey: Image.Image) -> bool:
    # A digit is drawn in the middle, so the border shows the background.
    pixels = np.asarray(grey, dtype=float)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return float(border.mean()) > 127.5


def media_type_of(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise ValueError(f"input is not valid JSON: {error}") from error


def numbers(value: Any, name: str, *, count: int, high: float) -> np.ndarray:
    """`value` as a float array, if it is a list of `count` finite numbers in [0, high]."""
    valid = (
        isinstance(value, list)
        and len(value) == count
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= high
            for v in value
        )
    )
    if not valid:
        raise ValueError(f"{name} must be {count} numbers between 0 and {high:g}")
    return np.asarray(value, dtype=float)
