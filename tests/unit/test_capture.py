"""Data capture against moto: a finished prediction is offered to the capture stream after its
caller was told, sampled per its service, and a capture outage loses no prediction."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chorus.adapters import predictions
from chorus.domain import capture, results
from chorus.model import registry
from chorus.model.records import Status
from tests.support import aws_resources
from tests.unit.test_metrics import completed, emitted, uploaded

STREAM = "chorus-test-capture"
CAPTURE_BUCKET = "chorus-test-capture-sink"


@pytest.fixture
def stream(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    boto3.client("s3").create_bucket(Bucket=CAPTURE_BUCKET)
    boto3.client("firehose").create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/capture",
            "BucketARN": f"arn:aws:s3:::{CAPTURE_BUCKET}",
            "Prefix": "capture/",
        },
    )
    monkeypatch.setenv("CAPTURE_STREAM", STREAM)
    from chorus.core import settings

    settings.load.cache_clear()
    return STREAM


def captured() -> list[dict[str, Any]]:
    """What moto's Firehose wrote to the sink (one object per put)."""
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=CAPTURE_BUCKET).get("Contents", [])
    lines = []
    for item in listed:
        body = s3.get_object(Bucket=CAPTURE_BUCKET, Key=item["Key"])["Body"].read().decode()
        lines += [json.loads(line) for line in body.splitlines() if line.strip()]
    return lines


def test_a_succeeded_prediction_is_captured_by_location_once(stream, capsys):
    prediction_id = uploaded("digits-forest")
    results.record_result(completed(prediction_id))
    # A duplicate result captures nothing more.
    results.record_result(completed(prediction_id))
    (entry,) = captured()
    record = predictions.get(prediction_id)
    assert entry["eventId"] == entry["inferenceId"] == prediction_id
    assert entry["service"] == "digits-forest" and entry["tenant"] == aws_resources.TENANT
    assert entry["input"] == record.input.as_dict()  # type: ignore[union-attr]
    assert entry["output"]["key"] == f"async-outputs/{prediction_id}.out"
    assert entry["inferenceTime"].endswith("Z")
    assert "CaptureRecordsDropped" not in json.dumps(emitted(capsys.readouterr().out))


def test_a_capture_outage_loses_no_prediction_and_is_counted(stream, capsys):
    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=STREAM)
    prediction_id = uploaded("digits-forest")
    results.record_result(completed(prediction_id))
    assert predictions.get(prediction_id).status is Status.SUCCEEDED
    dropped = [d for d in emitted(capsys.readouterr().out) if "CaptureRecordsDropped" in d["metrics"]]
    assert dropped == [
        {
            "namespace": "ChorusTests",
            "dimensions": {"service": "digits-forest"},
            "metrics": {"CaptureRecordsDropped": 1},
            "units": {"CaptureRecordsDropped": "Count"},
        }
    ]


def test_failed_predictions_and_services_without_capture_are_not_captured(stream, monkeypatch):
    prediction_id = uploaded("digits-forest")
    results.record_result(
        completed(prediction_id).model_copy(update={"invocation_status": "Failed", "failure_reason": "boom"})
    )
    assert predictions.get(prediction_id).status is Status.FAILED
    # A service that declares no capture
    declared = registry.get_registry()
    services = [s.model_copy(update={"capture": None}) if s.name == "digits-svm" else s for s in declared.services]
    monkeypatch.setattr(capture, "get_registry", lambda: declared.model_copy(update={"services": services}))
    results.record_result(completed(uploaded("digits-svm")))
    results.record_result(completed(uploaded("digits-forest")))
    assert [e["service"] for e in captured()] == ["digits-forest"]


def test_sampling_is_a_stable_function_of_the_prediction_id() -> None:
    ids = [f"{n:032x}" for n in range(4000)]
    assert all(capture.sampled(i, 100) for i in ids)
    assert not any(capture.sampled(i, 0) for i in ids)
    half = sum(capture.sampled(i, 50) for i in ids)
    assert 1800 < half < 2200
    assert [capture.sampled(i, 10) for i in ids] == [capture.sampled(i, 10) for i in ids]
