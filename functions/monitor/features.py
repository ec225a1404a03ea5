"""What the monitor measures: one place, shared by the capture transformation (which computes a
captured prediction's features once, when it is captured) and the monitor (which reads them back,
or computes them from a baseline's data lines).

- a JSON input: its numeric and categorical leaves by path (`claim.amount`, `pixels[3]`);
- an image input: `image.width`, `image.height`, `image.mean`, `image.std` (grey, 0-255) and the
  digit models' own 8x8 ink grid `pixels[0]`…`pixels[63]` (0-16);
- an output: its scalar `label`, if it is a JSON object with one.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from drift import flatten

Features = dict[str, float | str]
Label = str | int | float | bool

JSON_TYPES = ("application/json",)
GRID = 8
MAX_INK = 16


class UnreadableRecord(ValueError):
    """A line that is none of the record shapes `from_record` reads."""


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    kind = media_type(content_type)
    return kind in JSON_TYPES or kind.endswith("+json")


def json_features(document: Any) -> Features:
    return flatten(document)


def image_features(body: bytes) -> Features:
    """An image's size, grey mean and spread, and its 8x8 ink grid. Raises ValueError when Pillow
    cannot read it."""
    try:
        image = Image.open(io.BytesIO(body))
        image.load()
    except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"not a readable image: {error}") from error
    grey = _on_white(image).convert("L")
    intensities = np.asarray(grey, dtype=float)
    found: Features = {
        "image.width": float(image.width),
        "image.height": float(image.height),
        "image.mean": float(intensities.mean()),
        "image.std": float(intensities.std()),
    }
    found.update({f"pixels[{i}]": float(v) for i, v in enumerate(_ink_grid(grey).ravel())})
    return found


# The grid mirrors chorus_local/models/digits.py `pixels_from_png` step for step, so a digit
# service's PNG inputs and its JSON `{"pixels": [...]}` inputs share feature names *and* values:
# one baseline covers both, and the monitor sees the input exactly as the model did.
def _ink_grid(grey: Image.Image) -> np.ndarray:
    ink = ImageOps.invert(grey) if _has_light_background(grey) else grey
    small = ink.resize((GRID, GRID), Image.Resampling.BOX)
    stretched = ImageOps.autocontrast(small)
    return np.asarray(stretched, dtype=float) * MAX_INK / 255


def _on_white(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image


def _has_light_background(grey: Image.Image) -> bool:
    pixels = np.asarray(grey, dtype=float)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return float(border.mean()) > 127.5


def label_of(output: Any) -> Label | None:
    """The `label` of a JSON object output, if it is a scalar."""
    if isinstance(output, dict):
        label = output.get("label")
        if isinstance(label, str | int | float | bool):
            return label
    return None


def from_record(line: Any) -> tuple[Features, Label | None]:
    """(features, label) of one line of a capture object or of a baseline's data. Accepted:

    - a capture record (capture.py's output): its `chorus.features` and `chorus.label`;
    - `{"input": <JSON>, "output": <JSON>}` (either may be left out);
    - `{"inputBase64": "...", "contentType": "image/png", "output": <JSON>}`;
    - `{"features": {...}, "label": x}`.
    """
    if not isinstance(line, dict):
        raise UnreadableRecord("a record is a JSON object")
    if isinstance(line.get("chorus"), dict) and "captureData" in line:
        chorus = line["chorus"]
        return _features(chorus.get("features") or {}), _label(chorus.get("label"))
    if "features" in line:
        return _features(line["features"]), _label(line.get("label"))
    if "inputBase64" in line:
        return _encoded_features(line["inputBase64"], line.get("contentType")), label_of(line.get("output"))
    if "input" in line or "output" in line:
        document = line.get("input")
        return (json_features(document) if document is not None else {}), label_of(line.get("output"))
    raise UnreadableRecord("expected a capture record, input/output, inputBase64/contentType or features/label")


def _features(value: Any) -> Features:
    """Features as stored (already flat: mostly finite floats, taken as they are), normalised
    exactly as json_features would."""
    if not isinstance(value, Mapping):
        raise UnreadableRecord("features must be an object")
    found: Features = {}
    for name, leaf in value.items():
        if type(leaf) is float and math.isfinite(leaf):
            found[str(name)] = leaf
        else:
            found.update(flatten(leaf, str(name)))
    return found


def _label(value: Any) -> Label | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise UnreadableRecord("a label is a scalar")


def _encoded_features(encoded: Any, content_type: Any) -> Features:
    if not isinstance(encoded, str) or not isinstance(content_type, str):
        raise UnreadableRecord("inputBase64 and contentType are strings")
    try:
        body = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise UnreadableRecord(f"inputBase64 is not base64: {error}") from error
    try:
        return json_features(json.loads(body)) if is_json(content_type) else image_features(body)
    except ValueError as error:
        raise UnreadableRecord(f"input of type {content_type} is unreadable: {error}") from error
