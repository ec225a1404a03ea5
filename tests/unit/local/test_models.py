"""The demo digit models: training, accuracy and the inference-toolkit functions."""

from __future__ import annotations

import importlib
import io
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from chorus_local.models import digits, train

MODELS_ROOT = train.MODELS_ROOT


@pytest.fixture(scope="module")
def accuracies() -> dict[str, float]:
    # Trains once into the gitignored cache; later sessions reuse it.
    return train.ensure_trained()


@pytest.fixture(scope="module")
def split() -> train.Split:
    return train.load_split()


@pytest.fixture(scope="module")
def models(accuracies: dict[str, float]) -> dict[str, Any]:
    return {name: digits.model_fn(str(MODELS_ROOT / folder)) for name, folder in train.MODEL_DIRS.items()}


@pytest.fixture(scope="module")
def stacker_inference() -> ModuleType:
    return importlib.import_module("chorus_local.models.digits_stacker.code.inference")


def _stacked_features(models: dict[str, Any], x: np.ndarray) -> np.ndarray:
    return np.hstack([models[name].predict_proba(x) for name in train.STACKED_BASE_MODELS])


def _png(pixels: np.ndarray, width: int, height: int, style: str) -> bytes:
    """A PNG drawing of 8x8 digit pixels (0-16), scaled up by whole blocks."""
    ink = np.rint(pixels.reshape(8, 8) * 255 / 16).astype(np.uint8)
    if style == "light ink on black":
        image = Image.fromarray(ink, "L")
    elif style == "dark ink on white":
        image = Image.fromarray(255 - ink, "L").convert("RGB")
    elif style == "dark ink on transparent":
        alpha = Image.fromarray(ink, "L")
        image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
        image.putalpha(alpha)
    else:
        raise AssertionError(style)
    buffer = io.BytesIO()
    image.resize((width, height), Image.Resampling.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def _full_range_samples(split: train.Split, count: int) -> np.ndarray:
    # Samples that span 0-16 already, so contrast stretching leaves them unchanged.
    samples = [x for x in split.x_test if x.min() == 0 and x.max() == 16]
    return np.array(samples[:count])


@pytest.mark.parametrize("name", ["svm", "forest"])
def test_base_model_reaches_90_percent_held_out_accuracy(name: str, models: dict[str, Any], split: train.Split) -> None:
    # Given the cached base model and the held-out split it never saw
    model = models[name]

    # When it classifies the held-out digits
    accuracy = train.held_out_accuracy(model, split.x_test, split.y_test)

    # Then at least 90% are right
    assert accuracy >= 0.9


def test_stacker_is_at_least_as_accurate_as_each_base_model(models: dict[str, Any], split: train.Split) -> None:
    # Given the base models' held-out accuracies
    base = [train.held_out_accuracy(models[name], split.x_test, split.y_test) for name in ("svm", "forest")]

    # When the stacker classifies the held-out digits from the base models' probabilities
    features = _stacked_features(models, split.x_test)
    stacked = train.held_out_accuracy(models["stacker"], features, split.y_test)

    # Then it is at least as accurate as the better base model
    assert stacked >= max(base)


def test_stacker_was_trained_on_twenty_probability_features(models: dict[str, Any]) -> None:
    # Given the cached stacker
    stacker = models["stacker"]

    # When its inputs are inspected
    features = stacker.n_features_in_

    # Then they are the two base models' ten probabilities each
    assert features == 20


def test_reported_accuracies_are_those_of_the_cached_models(
    accuracies: dict[str, float], models: dict[str, Any], split: train.Split
) -> None:
    # Given the accuracies ensure_trained reports from its cache
    # When they are measured again on the cached models
    measured = {
        "svm": train.held_out_accuracy(models["svm"], split.x_test, split.y_test),
        "forest": train.held_out_accuracy(models["forest"], split.x_test, split.y_test),
        "stacker": train.held_out_accuracy(models["stacker"], _stacked_features(models, split.x_test), split.y_test),
    }

    # Then they agree
    assert accuracies == pytest.approx(measured)


def test_training_is_skipped_when_the_cache_matches(accuracies: dict[str, float]) -> None:
    # Given a trained cache
    files = [MODELS_ROOT / folder / train.MODEL_FILE for folder in train.MODEL_DIRS.values()]
    before = [path.stat().st_mtime_ns for path in files]

    # When training is requested again
    again = train.ensure_trained()

    # Then nothing is rewritten and the same accuracies are reported
    assert [path.stat().st_mtime_ns for path in files] == before
    assert again == accuracies


def test_training_reruns_when_the_fingerprint_changes(accuracies: dict[str, float], tmp_path: Path) -> None:
    # Given a copy of the cache whose manifest records another fingerprint
    shutil.copytree(MODELS_ROOT, tmp_path, dirs_exist_ok=True)
    manifest = json.loads((tmp_path / train.MANIFEST_FILE).read_text())
    (tmp_path / train.MANIFEST_FILE).write_text(json.dumps({**manifest, "fingerprint": "stale"}))
    stale_model = tmp_path / "digits_svm" / train.MODEL_FILE
    stale_model.write_bytes(b"not a model")

    # When training is requested
    retrained = train.ensure_trained(tmp_path)

    # Then the models are rebuilt, deterministically, and the manifest is current
    assert digits.model_fn(str(tmp_path / "digits_svm")).predict_proba(np.zeros((1, 64))).shape == (1, 10)
    assert retrained == pytest.approx(accuracies)
    assert json.loads((tmp_path / train.MANIFEST_FILE).read_text())["fingerprint"] == train.fingerprint()


@pytest.mark.parametrize(
    ("width", "height", "style"),
    [
        (8, 8, "light ink on black"),
        (64, 64, "dark ink on white"),
        (96, 40, "dark ink on white"),
        (160, 160, "dark ink on transparent"),
    ],
)
def test_png_input_reads_as_the_digit_pixels(width: int, height: int, style: str, split: train.Split) -> None:
    # Given PNG drawings of held-out digits at any size and colour scheme
    samples = _full_range_samples(split, 5)

    # When the model input is read from each PNG
    read = np.vstack([digits.input_fn(_png(sample, width, height, style), "image/png") for sample in samples])

    # Then it is the digit on the digits scale (background 0, ink 16), up to 8-bit rounding
    assert read == pytest.approx(samples, abs=0.1)


@pytest.mark.parametrize("name", ["svm", "forest"])
def test_png_and_json_pixels_give_the_same_prediction(name: str, models: dict[str, Any], split: train.Split) -> None:
    # Given one held-out digit, as a large dark-on-white PNG and as JSON pixels
    sample = _full_range_samples(split, 1)[0]
    as_png = _png(sample, 200, 200, "dark ink on white")
    as_json = json.dumps({"pixels": sample.tolist()}).encode()

    # When the model predicts from each
    def answer(body: bytes, content_type: str) -> dict[str, Any]:
        prediction = digits.predict_fn(digits.input_fn(body, content_type), models[name])
        answered: dict[str, Any] = json.loads(digits.output_fn(prediction, "application/json"))
        return answered

    from_png, from_json = answer(as_png, "image/png"), answer(as_json, "application/json")

    # Then both answers have the same label and shape: a label and ten probabilities
    assert from_png["label"] == from_json["label"]
    assert set(from_png) == set(from_json) == {"label", "probabilities"}
    assert len(from_png["probabilities"]) == 10
    assert sum(from_png["probabilities"]) == pytest.approx(1.0)


def _truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buffer, format="PNG")
    return buffer.getvalue()[:-40]


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "body",
    [b"\x89PNG\r\n\x1a\nnot really", b"", _truncated_png(), _jpeg()],
    ids=["garbage", "empty", "truncated", "jpeg"],
)
def test_unreadable_png_raises_a_clear_value_error(body: bytes) -> None:
    # Given a body sent as image/png that is not a readable PNG
    # When the model input is read
    # Then a ValueError says so
    with pytest.raises(ValueError, match="input is not a readable PNG image"):
        digits.input_fn(body, "image/png")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{not json", "input is not valid JSON"),
        (json.dumps({"pixels": [0] * 63}).encode(), "pixels must be 64 numbers between 0 and 16"),
        (json.dumps({"pixels": [0] * 63 + [17]}).encode(), "pixels must be 64 numbers between 0 and 16"),
        (json.dumps({"pixels": ["0"] * 64}).encode(), "pixels must be 64 numbers between 0 and 16"),
        (json.dumps({"pixels": [True] * 64}).encode(), "pixels must be 64 numbers between 0 and 16"),
        (json.dumps([0] * 64).encode(), "pixels must be 64 numbers between 0 and 16"),
    ],
    ids=["malformed", "too-few", "out-of-range", "strings", "booleans", "no-object"],
)
def test_invalid_json_pixels_raise_a_clear_value_error(document: bytes, message: str) -> None:
    # Given a JSON body that is not {"pixels": [64 numbers 0-16]}
    # When the model input is read
    # Then a ValueError says what is wrong
    with pytest.raises(ValueError, match=message):
        digits.input_fn(document, "application/json")


def test_unsupported_content_type_raises_a_value_error() -> None:
    # Given a body of a type the digit models do not read
    # When the model input is read
    # Then a ValueError names the accepted types
    with pytest.raises(ValueError, match="image/png or application/json"):
        digits.input_fn(b"a,b", "text/csv")


def test_stacker_predicts_from_the_base_models_answers(
    stacker_inference: ModuleType, models: dict[str, Any], split: train.Split
) -> None:
    # Given the svm and forest answers for a held-out digit they both recognise
    index = next(
        i
        for i, (x, y) in enumerate(zip(split.x_test, split.y_test, strict=True))
        if all(digits.predict_fn(x.reshape(1, -1), models[name])["label"] == y for name in ("svm", "forest"))
    )
    x = split.x_test[index].reshape(1, -1)
    request = {name: digits.predict_fn(x, models[name])["probabilities"] for name in ("svm", "forest")}

    # When the stacker is invoked with them through its toolkit functions
    data = stacker_inference.input_fn(json.dumps(request).encode(), "application/json")
    answer = json.loads(stacker_inference.output_fn(stacker_inference.predict_fn(data, models["stacker"]), "*/*"))

    # Then it answers the same digit, with ten probabilities
    assert answer["label"] == split.y_test[index]
    assert len(answer["probabilities"]) == 10


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"svm": [0.1] * 10}, "forest must be 10 numbers between 0 and 1"),
        ({"svm": [0.1] * 9, "forest": [0.1] * 10}, "svm must be 10 numbers between 0 and 1"),
        ({"svm": [0.1] * 10, "forest": [2] + [0.1] * 9}, "forest must be 10 numbers between 0 and 1"),
    ],
    ids=["missing-forest", "short-svm", "forest-out-of-range"],
)
def test_stacker_rejects_malformed_base_model_answers(
    stacker_inference: ModuleType, document: dict[str, Any], message: str
) -> None:
    # Given a stacker request without two lists of ten probabilities
    # When the stacker input is read
    # Then a ValueError names the faulty field
    with pytest.raises(ValueError, match=message):
        stacker_inference.input_fn(json.dumps(document).encode(), "application/json")
