"""The local Firehose and EventBridge Scheduler (chorus_local/delivery_streams.py, schedules.py)
through boto3 against the package stack's AWS endpoint, as the product calls them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from chorus_local.delivery_streams import resolve_prefix
from chorus_local.stack import LocalStack
from tests.integration.local.support import STACK_NAME

PARTITIONED, PLAIN = f"{STACK_NAME}-partitioned", f"{STACK_NAME}-plain"


def put_batch(aws: Callable[[str], Any], stream: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
    records = [{"Data": json.dumps(d).encode()} for d in documents]
    return dict(aws("firehose").put_record_batch(DeliveryStreamName=stream, Records=records))


def lines_under(aws: Callable[[str], Any], bucket: str, prefix: str, count: int) -> dict[str, list[dict[str, Any]]]:
    """The JSON lines of every object under `prefix`, by key, once there are `count` lines."""
    deadline = time.monotonic() + 15
    while True:
        found = {}
        for item in aws("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            body = aws("s3").get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            found[item["Key"]] = [json.loads(line) for line in body.splitlines() if line.strip()]
        if sum(len(v) for v in found.values()) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_batch_is_transformed_and_written_under_its_partition_keys_one_object_per_prefix(aws, observations):
    tag = f"p{time.time_ns()}"
    answer = put_batch(aws, PARTITIONED, [{"service": f"{tag}-a", "n": 1}, {"service": f"{tag}-b", "n": 2}] * 3)
    assert answer["FailedPutCount"] == 0 and len(answer["RequestResponses"]) == 6
    year, month = datetime.now(UTC).strftime("%Y %m").split()
    a = lines_under(aws, observations.bucket, f"stream/{tag}-a/", 3)
    b = lines_under(aws, observations.bucket, f"stream/{tag}-b/", 3)
    ((key_a, lines_a),) = a.items()
    assert key_a.startswith(f"stream/{tag}-a/{year}/{month}/{PARTITIONED}-1-")
    assert [line["n"] for line in lines_a] == [1, 1, 1] and all(line["transformed"] for line in lines_a)
    assert lines_a[0]["stream"].endswith(f":deliverystream/{PARTITIONED}")
    assert len(b) == 1 and [line["n"] for line in next(iter(b.values()))] == [2, 2, 2]


def test_failed_and_unpartitioned_records_go_to_the_error_prefix_and_dropped_ones_nowhere(aws, observations):
    tag = f"e{time.time_ns()}"
    put_batch(
        aws,
        PARTITIONED,
        [
            {"service": tag, "outcome": "ProcessingFailed"},
            {"service": tag, "outcome": "nokey"},
            {"service": tag, "outcome": "Dropped"},
            {"service": tag, "n": 1},
        ],
    )
    written = lines_under(aws, observations.bucket, f"stream/{tag}/", 1)
    assert [line["n"] for lines in written.values() for line in lines] == [1]
    errors = {
        kind: [
            (line, json.loads(base64.b64decode(line["rawData"])))
            for lines in lines_under(aws, observations.bucket, f"stream-errors/{kind}/", 1).values()
            for line in lines
        ]
        for kind in ("processing-failed", "partitioning-failed")
    }
    mine = {kind: [(line, raw) for line, raw in found if raw.get("service") == tag] for kind, found in errors.items()}
    ((failed, failed_raw),) = mine["processing-failed"]
    ((unpartitioned, unpartitioned_raw),) = mine["partitioning-failed"]
    assert failed_raw["outcome"] == "ProcessingFailed" and unpartitioned_raw["outcome"] == "nokey"
    assert failed["errorCode"] == "Lambda.ProcessingFailed" and failed["lambdaArn"].endswith(f"{STACK_NAME}-transform")
    assert unpartitioned["errorCode"].startswith("DynamicPartitioning")


def test_a_stream_without_a_processor_writes_records_as_they_came(aws, observations):
    tag = f"plain-{time.time_ns()}"
    aws("firehose").put_record(DeliveryStreamName=PLAIN, Record={"Data": (json.dumps({"tag": tag}) + "\n").encode()})
    year = datetime.now(UTC).strftime("%Y")
    found = lines_under(aws, observations.bucket, f"plain/{year}/", 1)
    assert any(line == {"tag": tag} for lines in found.values() for line in lines)


def test_unknown_streams_and_oversized_records_are_refused(aws):
    with pytest.raises(ClientError) as unknown:
        aws("firehose").put_record(DeliveryStreamName="no-such-stream", Record={"Data": b"x"})
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as oversized:
        aws("firehose").put_record(DeliveryStreamName=PLAIN, Record={"Data": b"x" * (1000 * 1024 + 1)})
    assert oversized.value.response["Error"]["Code"] == "InvalidArgumentException"


def test_resolve_prefix_fills_every_expression() -> None:
    moment = datetime(2026, 12, 3, 9, 5, tzinfo=UTC)
    prefix = "c/!{partitionKeyFromLambda:service}/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/"
    assert resolve_prefix(prefix, moment, {"service": "svm"}) == "c/svm/2026/12/03/09/"
    assert resolve_prefix("e/!{firehose:error-output-type}/", moment, {}, "processing-failed") == "e/processing-failed/"
    with pytest.raises(KeyError):
        resolve_prefix(prefix, moment, {})


def test_a_schedule_runs_its_target_with_its_input_and_a_disabled_one_does_not(
    local_stack: LocalStack, aws, observations
):
    assert local_stack.endpoint is not None
    base = local_stack.endpoint.url + "/_local/schedules"
    listed = {s["name"]: s for s in requests.get(base, timeout=5).json()["schedules"]}
    assert listed[f"{STACK_NAME}-daily"]["enabled"] and listed[f"{STACK_NAME}-daily"]["expression"] == "rate(1 day)"
    assert not listed[f"{STACK_NAME}-paused"]["enabled"] and listed[f"{STACK_NAME}-paused"]["nextRun"] is None
    before = set(observations("scheduled/"))
    fired = requests.post(f"{base}/{STACK_NAME}-daily", timeout=5)
    assert fired.status_code == 200 and fired.json()["fired"] == f"{STACK_NAME}-daily"
    deadline = time.monotonic() + 15
    while not (new := set(observations("scheduled/")) - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    (key,) = new
    body = aws("s3").get_object(Bucket=observations.bucket, Key=key)["Body"].read()
    assert json.loads(body) == {"tick": True}
    assert requests.post(f"{base}/no-such-schedule", timeout=5).status_code == 404
