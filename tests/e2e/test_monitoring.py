"""Data capture and drift monitoring end to end: predictions through the API → the notifications
function → Firehose (the local emulation, with the capture transformation) → capture/ in S3 → the
monitor function, run by `chorus admin monitor run` → its report, through the CLI, the API and the
DriftedFeatures metric the per-service alarm watches.

One stack of its own, so each window holds exactly the predictions this module made."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.e2e.conftest import RunningStack, StartStack
from tests.e2e.test_metrics import emitted
from tests.e2e.test_tenancy import chorus as admin
from tests.e2e.test_tenancy import new_token

SERVICE = "digits-svm"
COUNT = 200


@pytest.fixture(scope="module")
def monitored(start_stack: StartStack) -> Iterator[RunningStack]:
    yield start_stack()


def held_out(count: int) -> list[list[float]]:
    from chorus_local.models.train import load_split

    return [[float(v) for v in row] for row in load_split().x_test[:count]]


def predict_all(stack: RunningStack, inputs: list[list[float]]) -> tuple[datetime, datetime, list[dict[str, Any]]]:
    """Every input through the API (8 at a time, as clients would), each waited for; the window
    that holds their completion times."""
    api = stack.api()
    since = datetime.now(UTC) - timedelta(milliseconds=1)

    def one(pixels: list[float]) -> dict[str, Any]:
        created = api.create({"service": SERVICE, "input": {"pixels": pixels}})
        return api.wait(created["id"], timeout=120)

    with ThreadPoolExecutor(max_workers=8) as pool:
        finished = list(pool.map(one, inputs))
    until = datetime.now(UTC) + timedelta(milliseconds=1)
    return since, until, finished


def captured_count(stack: RunningStack, since: datetime, until: datetime) -> int:
    s3 = stack.client("s3")
    bucket = stack.resources["PayloadsBucket"]
    seen = set()
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour <= until:
        prefix = f"capture/{SERVICE}/{hour:%Y/%m/%d/%H}/"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
                for line in filter(None, body.splitlines()):
                    meta = json.loads(line)["eventMetadata"]
                    moment = datetime.fromisoformat(meta["inferenceTime"].replace("Z", "+00:00"))
                    if since <= moment < until:
                        seen.add(meta["eventId"])
        hour += timedelta(hours=1)
    return len(seen)


def wait_captured(stack: RunningStack, since: datetime, until: datetime, expected: int) -> None:
    deadline = time.monotonic() + 60
    while (found := captured_count(stack, since, until)) < expected:
        assert time.monotonic() < deadline, f"only {found} of {expected} predictions captured"
        time.sleep(0.5)


def monitor_run(stack: RunningStack, since: datetime, until: datetime) -> dict[str, Any]:
    out = admin(stack, "monitor", "run", SERVICE, "--since", since.isoformat(), "--until", until.isoformat(), "--json")
    return dict(json.loads(out))


def drifted_features_metrics(stack: RunningStack) -> list[float]:
    """The DriftedFeatures values the monitor published for the service (EMF in the stack's log)."""
    values = []
    for line in stack.logs().splitlines():
        if '"DriftedFeatures"' not in line or '"_aws"' not in line:
            continue
        document = json.loads(line[line.index('{"_aws"') :])
        if document.get("service") == SERVICE:
            value = document["DriftedFeatures"]
            values.append(float(value[0] if isinstance(value, list) else value))
    return values


def test_held_out_digits_raise_no_drift_and_inverted_digits_do(monitored: RunningStack) -> None:
    # Given 200 held-out digits predicted through the API and captured
    since, until, finished = predict_all(monitored, held_out(COUNT))
    assert {p["status"] for p in finished} == {"succeeded"}
    wait_captured(monitored, since, until, COUNT)
    # When the monitor judges their window against the baseline from the training data
    report = monitor_run(monitored, since, until)
    # Then it finds no drift in 64 pixel features and the label
    assert report["status"] == "ok", report["violations"]
    assert report["records"] == COUNT and report["violations"] == []
    assert report["tests"] == 65

    # Given 200 digits with inverted intensity (16 - v)
    inverted = [[16 - v for v in row] for row in held_out(COUNT)]
    since, until, finished = predict_all(monitored, inverted)
    assert {p["status"] for p in finished} == {"succeeded"}
    wait_captured(monitored, since, until, COUNT)
    # When the monitor judges that window
    report = monitor_run(monitored, since, until)
    # Then input features and the label distribution drifted, each named with measure and threshold
    assert report["status"] == "drift"
    drifted = {v["feature"]: v for v in report["violations"]}
    assert "label" in drifted and drifted["label"]["measure"] == "jensen_shannon_distance"
    pixels = [name for name in drifted if name.startswith("pixels[")]
    assert len(pixels) >= 20, sorted(drifted)
    assert all(v["value"] > v["threshold"] for v in report["violations"])

    # And the API's latest report is that one (admin scope only; an unknown service is a 404)
    admin_view = monitored.api().request("GET", f"/services/{SERVICE}/monitoring")
    assert admin_view.status_code == 200, admin_view.text
    body = admin_view.json()
    assert body["capture"] == {"samplingPercent": 100.0, "inputs": True, "outputs": True}
    assert body["report"]["window"] == report["window"] and body["report"]["status"] == "drift"
    admin(monitored, "tenants", "create", "reader")
    reader = monitored.api(new_token(monitored, "reader", "--scopes", "predictions:read"))
    assert reader.request("GET", f"/services/{SERVICE}/monitoring").status_code == 403
    unknown = monitored.api().request("GET", "/services/no-such-service/monitoring")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"

    # And the metric the drift alarm watches (DriftedFeatures ≥ 1) went from 0 to above it
    deadline = time.monotonic() + 10
    while len(values := drifted_features_metrics(monitored)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert values[0] == 0 and values[-1] >= 1 and values[-1] == len(report["violations"])


def test_a_capture_outage_loses_no_prediction_and_is_counted(monitored: RunningStack) -> None:
    # Given Firehose refusing every record (the gateway answers PutRecord with a service error)
    faults = monitored.aws_endpoint_url + "/_local/faults"
    rule = {"service": "firehose", "operation": "PutRecord", "error": "ServiceUnavailableException", "status": 500}
    requests.post(faults, json={"rules": [rule]}, timeout=5).raise_for_status()
    try:
        # When 20 predictions run
        since, until, finished = predict_all(monitored, held_out(20))
        # Then every one succeeded (a client sees the result before its capture is even tried)
        assert {p["status"] for p in finished} == {"succeeded"}
        # and each capture, tried once and refused, was counted lost
        deadline = time.monotonic() + 20
        while len(dropped := dropped_captures(monitored)) < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(dropped) == 20
        fired = requests.get(faults, timeout=5).json()["rules"][0]
        assert fired["failed"] == 20  # one attempt each: an outage costs the worker no retries
    finally:
        requests.delete(faults, timeout=5).raise_for_status()
    # and none of them is in the capture
    time.sleep(2)  # longer than the local capture buffer: anything captured would be written by now
    assert captured_count(monitored, since, until) == 0


def dropped_captures(stack: RunningStack) -> list[dict[str, Any]]:
    return [
        m
        for m in emitted(stack.logs())
        if m["name"] == "CaptureRecordsDropped" and m["dimensions"] == {"service": SERVICE}
    ]


def captured_records(stack: RunningStack, service: str) -> list[dict[str, Any]]:
    s3 = stack.client("s3")
    bucket = stack.resources["PayloadsBucket"]
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"capture/{service}/"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            found += [json.loads(line) for line in body.splitlines() if line.strip()]
    return found


def test_an_ensemble_is_captured_under_itself_and_its_model_steps_under_their_services(monitored):
    # Given a digits-cascade prediction (svm, maybe forest and stacker, then the rule step decide)
    pixels = held_out(1)[0]
    finished = monitored.api().wait(
        monitored.api().create({"service": "digits-cascade", "input": {"pixels": pixels}})["id"], timeout=120
    )
    assert finished["status"] == "succeeded"
    steps = {s["name"]: s for s in finished["steps"]}
    # Then the ensemble's own input and output are captured under digits-cascade (its features, its label)
    deadline = time.monotonic() + 20
    while not [
        r for r in captured_records(monitored, "digits-cascade") if r["eventMetadata"]["inferenceId"] == finished["id"]
    ]:
        assert time.monotonic() < deadline, "the ensemble was not captured"
        time.sleep(0.3)
    (own,) = [
        r for r in captured_records(monitored, "digits-cascade") if r["eventMetadata"]["inferenceId"] == finished["id"]
    ]
    assert (
        own["chorus"]["features"]["pixels[27]"] == pixels[27]
        and own["chorus"]["label"] == monitored.api().download(finished)["label"]
    )
    assert own["captureData"]["endpointInput"]["encoding"] == "JSON"
    # and its svm step under digits-svm, naming its parent and step; the rule step nowhere
    svm_id = steps["svm"]["id"]
    deadline = time.monotonic() + 20
    while not (
        step := [r for r in captured_records(monitored, "digits-svm") if r["eventMetadata"]["inferenceId"] == svm_id]
    ):
        assert time.monotonic() < deadline, "the svm step was not captured"
        time.sleep(0.3)
    assert step[0]["chorus"]["parentId"] == finished["id"] and step[0]["chorus"]["step"] == "svm"
    everything = [
        r["eventMetadata"]["inferenceId"]
        for svc in ("digits-cascade", "digits-svm")
        for r in captured_records(monitored, svc)
    ]
    assert steps["decide"]["id"] not in everything


def test_an_uploaded_image_is_captured_by_reference_with_the_models_own_features(monitored: RunningStack) -> None:
    from tests.e2e.client import digit_pixels, digit_png

    # Given a 64x64 PNG of a held-out digit uploaded to digits-svm
    image, _ = digit_png(1300, size=64)
    api = monitored.api()
    created = api.create({"service": SERVICE, "contentType": "image/png"})
    api.upload(created, image)
    finished = api.wait(created["id"], timeout=120)
    assert finished["status"] == "succeeded"
    # Then its capture record points at the uploaded object instead of copying the image
    deadline = time.monotonic() + 20
    while not (
        mine := [r for r in captured_records(monitored, SERVICE) if r["eventMetadata"]["eventId"] == created["id"]]
    ):
        assert time.monotonic() < deadline, "the upload was not captured"
        time.sleep(0.3)
    (record,) = mine
    captured_input = record["captureData"]["endpointInput"]
    assert captured_input["encoding"] == "S3" and captured_input["observedContentType"] == "image/png"
    assert captured_input["data"] == record["chorus"]["inputLocation"] and captured_input["data"].startswith("s3://")
    assert "iVBORw0KGgo" not in json.dumps(record)  # no byte of the image (base64 of the PNG signature)
    # and carries what the monitor judges: the image's size and intensity, and the 8x8 grid the model saw
    measured = record["chorus"]["features"]
    assert (measured["image.width"], measured["image.height"]) == (64.0, 64.0)
    assert 0 < measured["image.mean"] < 255 and measured["image.std"] > 0
    pixels, _ = digit_pixels(1300)
    assert max(abs(measured[f"pixels[{i}]"] - v) for i, v in enumerate(pixels)) <= 1.0
    assert record["chorus"]["label"] == api.download(finished)["label"]


def test_an_operators_baseline_is_made_from_a_file_and_judges_the_next_run(monitored: RunningStack, tmp_path) -> None:
    # Given reference data for digits-stacker, which has no baseline at start
    stacker = "digits-stacker"
    before = json.loads(admin(monitored, "monitor", "run", stacker, "--json"))
    assert before["status"] == "no_baseline" and before["baseline"] is None
    from chorus_local.models.train import load_split

    split = load_split()
    data = tmp_path / "reference.jsonl"
    data.write_text(
        "".join(
            json.dumps({"features": {"p": float(v)}, "label": int(label)}) + "\n"
            for v, label in zip(split.x_train[:200, 27], split.y_train[:200], strict=True)
        )
    )
    # When an operator makes its baseline with the CLI
    made = json.loads(admin(monitored, "monitor", "baseline", stacker, "--data", str(data), "--json"))
    # Then statistics.json and constraints.json are stored
    assert made["records"] == 200 and made["features"] == 1
    s3, bucket = monitored.client("s3"), monitored.resources["PayloadsBucket"]
    statistics = json.loads(s3.get_object(Bucket=bucket, Key=made["statisticsKey"])["Body"].read())
    constraints = json.loads(s3.get_object(Bucket=bucket, Key=made["constraintsKey"])["Body"].read())
    assert set(statistics["features"]["p"]) >= {
        "count",
        "missing",
        "mean",
        "std",
        "min",
        "max",
        "quantiles",
        "histogram",
    }
    assert sum(statistics["label"]["distribution"].values()) == 200 and constraints["features"] == ["p"]
    # and the next run judges against it
    after = json.loads(admin(monitored, "monitor", "run", stacker, "--json"))
    assert after["baseline"] == {"createdAt": statistics["createdAt"], "records": 200}
    assert after["status"] in {"too_few_records", "ok", "drift"}
