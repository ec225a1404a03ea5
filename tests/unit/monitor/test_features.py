"""What the monitor measures: a PNG digit as the demo model sees it, JSON leaves, output labels."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from chorus_local.models.digits import pixels_from_png
from tests.unit.monitor.conftest import digit_png


@pytest.mark.parametrize("index", [0, 17, 250])
def test_png_grid_is_the_models_own_pixels(package, split, index) -> None:
    # Given a held-out digit drawn as a PNG
    body = digit_png(split.x_test[index], size=40)
    # When its features are computed
    found = package.features.image_features(body)
    # Then its 8x8 grid is exactly what the digit model reads
    grid = [found[f"pixels[{i}]"] for i in range(64)]
    assert grid == [float(v) for v in pixels_from_png(body).ravel()]
    assert found["image.width"] == 40 and found["image.height"] == 40
    assert found["image.std"] >= 0 and 0 < found["image.mean"] <= 255


def test_transparent_canvas_drawing_is_read_on_white(package, split) -> None:
    # Given dark ink on a transparent background (a canvas export)
    ink = (split.x_test[3].reshape(8, 8) * 255 / 16).astype("uint8")
    rgba = np.zeros((8, 8, 4), dtype="uint8")
    rgba[..., 3] = ink
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").resize((24, 24)).save(buffer, format="PNG")
    # When / Then: the same grid as the model's, not an all-black image
    found = package.features.image_features(buffer.getvalue())
    assert [found[f"pixels[{i}]"] for i in range(64)] == [float(v) for v in pixels_from_png(buffer.getvalue()).ravel()]
    assert found["image.mean"] > 127


def test_unreadable_image_is_a_value_error(package) -> None:
    with pytest.raises(ValueError, match="not a readable image"):
        package.features.image_features(b"\x89PNG not really")


def test_json_features_are_the_flattened_leaves(package) -> None:
    found = package.features.json_features({"pixels": [0, 16], "claim": {"country": "DE", "urgent": False}, "x": None})
    assert found == {"pixels[0]": 0.0, "pixels[1]": 16.0, "claim.country": "DE", "claim.urgent": "false"}


@pytest.mark.parametrize(
    ("output", "label"),
    [
        ({"label": 7, "probabilities": [0.1]}, 7),
        ({"label": "cat"}, "cat"),
        ({"label": [1]}, None),
        ([7], None),
        (None, None),
    ],
)
def test_label_of_takes_a_scalar_label_field(package, output, label) -> None:
    assert package.features.label_of(output) == label


def test_every_record_shape_gives_the_same_features(package, split) -> None:
    # Given one digit in each accepted line shape
    pixels = [float(v) for v in split.x_test[5]]
    png = digit_png(split.x_test[5])
    shapes = [
        {"input": {"pixels": pixels}, "output": {"label": 3}},
        {"features": {f"pixels[{i}]": v for i, v in enumerate(pixels)}, "label": 3},
        {"captureData": {}, "chorus": {"features": {f"pixels[{i}]": v for i, v in enumerate(pixels)}, "label": 3}},
    ]
    # When each is read / Then features and label agree
    for line in shapes:
        found, label = package.features.from_record(line)
        assert found == {f"pixels[{i}]": v for i, v in enumerate(pixels)} and label == 3
    found, label = package.features.from_record(
        {"inputBase64": base64.b64encode(png).decode(), "contentType": "image/png", "output": {"label": 3}}
    )
    assert label == 3 and [found[f"pixels[{i}]"] for i in range(64)] == pytest.approx(pixels, abs=0.5)


@pytest.mark.parametrize(
    "line",
    [[1, 2], {"something": "else"}, {"inputBase64": "%%%", "contentType": "image/png"}, {"features": [1]}],
)
def test_other_lines_are_unreadable_records(package, line) -> None:
    with pytest.raises(package.features.UnreadableRecord):
        package.features.from_record(line)
