"""The capture transformation: product lines to SageMaker-shaped capture records, over moto S3."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from chorus.core.clients import client
from chorus_local.models.digits import pixels_from_png
from tests.support.aws_resources import BUCKET
from tests.support.handlers import FakeLambdaContext
from tests.unit.monitor.conftest import digit_png, firehose_event


def put(key: str, body: bytes, content_type: str) -> dict[str, str]:
    client("s3").put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)
    return {"bucket": BUCKET, "key": key, "contentType": content_type}


def product_line(**fields: Any) -> bytes:
    entry = {
        "eventId": "p-1",
        "inferenceId": "p-1",
        "inferenceTime": "2026-12-03T12:30:00.123Z",
        "service": "digits-svm",
        "tenant": "local",
        "version": None,
        "parentId": None,
        "step": None,
        "input": None,
        "output": None,
    }
    return json.dumps(entry | fields).encode()


def transform(package, *lines: bytes) -> list[dict[str, Any]]:
    return package.capture.handler(firehose_event(*lines), FakeLambdaContext())["records"]


def decoded(answer: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(answer["data"])
    assert data.endswith(b"\n")
    return json.loads(data)


def test_small_json_input_and_output_are_copied_inline(aws, package) -> None:
    # Given a JSON input and output in the bucket
    source = put("inputs/local/p-1/input", json.dumps({"pixels": [0] * 64}).encode(), "application/json")
    result = put("outputs/local/p-1/output", b'{"label": 4, "probabilities": [1.0]}', "application/json")
    # When the capture line is transformed
    (answer,) = transform(package, product_line(input=source, output=result))
    # Then both are inline, with the input's features, the output's label and the service's partition
    assert answer["recordId"] == "record-0" and answer["result"] == "Ok"
    assert answer["metadata"] == {"partitionKeys": {"service": "digits-svm"}}
    record = decoded(answer)
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": json.dumps({"pixels": [0] * 64}),
        "encoding": "JSON",
    }
    assert record["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert record["eventMetadata"] == {
        "eventId": "p-1",
        "inferenceId": "p-1",
        "inferenceTime": "2026-12-03T12:30:00.123Z",
    }
    assert record["eventVersion"] == "0"
    chorus = record["chorus"]
    assert chorus["inputLocation"] == f"s3://{BUCKET}/inputs/local/p-1/input"
    assert len(chorus["features"]) == 64 and chorus["label"] == 4 and "missing" not in chorus


def test_png_input_is_captured_by_reference_with_its_features(aws, package, split) -> None:
    # Given an uploaded PNG digit
    png = digit_png(split.x_test[9])
    source = put("inputs/local/p-1/input", png, "image/png")
    # When its capture line is transformed
    (answer,) = transform(package, product_line(input=source))
    # Then the image is not copied, but its pixels are measured as the model reads them
    record = decoded(answer)
    assert record["captureData"] == {
        "endpointInput": {
            "observedContentType": "image/png",
            "mode": "INPUT",
            "data": f"s3://{BUCKET}/inputs/local/p-1/input",
            "encoding": "S3",
        }
    }
    found = record["chorus"]["features"]
    assert [found[f"pixels[{i}]"] for i in range(64)] == [float(v) for v in pixels_from_png(png).ravel()]
    assert found["image.width"] == 32 and record["chorus"]["label"] is None


def test_large_json_is_captured_by_reference_but_still_measured(aws, package) -> None:
    document = {"pixels": [16.0] * 64, "note": "x" * 5000}
    source = put("inputs/local/p-1/input", json.dumps(document).encode(), "application/json")
    (answer,) = transform(package, product_line(input=source))
    record = decoded(answer)
    assert record["captureData"]["endpointInput"]["encoding"] == "S3"
    assert record["chorus"]["features"]["pixels[63]"] == 16.0 and record["chorus"]["features"]["note"] == "x" * 5000


def test_a_gone_object_is_named_missing_and_the_record_kept(aws, package) -> None:
    # Given an output that exists and an input that has expired
    result = put("outputs/local/p-1/output", b'{"label": 2}', "application/json")
    gone = {"bucket": BUCKET, "key": "inputs/local/p-1/input", "contentType": "image/png"}
    # When / Then
    (answer,) = transform(package, product_line(input=gone, output=result))
    assert answer["result"] == "Ok"
    record = decoded(answer)
    assert record["chorus"]["missing"] == ["input"] and record["chorus"]["features"] == {}
    assert record["chorus"]["label"] == 2


@pytest.mark.parametrize(
    "line",
    [b"not json", b'{"eventId": "p-1"}', product_line(service="../escape"), product_line(inferenceTime="noon")],
)
def test_a_bad_product_line_fails_only_its_own_record(aws, package, line) -> None:
    # Given a good line after a bad one
    result = put("outputs/local/p-1/output", b'{"label": 2}', "application/json")
    # When both are transformed
    failed, good = transform(package, line, product_line(output=result))
    # Then the bad one goes back as ProcessingFailed with its own data, the good one is Ok
    assert failed["result"] == "ProcessingFailed" and base64.b64decode(failed["data"]) == line
    assert good["result"] == "Ok" and decoded(good)["chorus"]["label"] == 2
