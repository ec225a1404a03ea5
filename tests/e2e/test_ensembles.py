"""Ensembles end to end: the compiled state machines run in moto's interpreter, steps run through
get-transform-call, child predictions resume their tasks from notifications."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.client import ChorusClient, digit_pixels, digit_png
from tests.support.aws_resources import REPO

SCRIPTED_ENDPOINTS = REPO / "tests" / "fixtures" / "endpoints_scripted.json"


@pytest.fixture
def client(stack) -> ChorusClient:
    return stack.api()


@pytest.fixture(scope="module")
def scripted_stack(start_stack, tmp_path_factory):
    """The demo registry with digits-svm and digits-forest on scripted endpoints (which fail or
    stall on demand) and a 4-second timeout on the ensemble's forest step."""
    registry = json.loads((REPO / "layers/chorus/chorus/model/services.json").read_text())
    for service in registry["services"]:
        if service["name"] in {"digits-svm", "digits-forest"}:
            service["endpoint"]["name"] = service["name"].replace("digits-", "scripted-")
        if service["name"] == "digits-ensemble":
            next(s for s in service["steps"] if s["name"] == "forest")["timeoutSeconds"] = 4
    path = Path(tmp_path_factory.mktemp("registry")) / "services.json"
    path.write_text(json.dumps(registry))
    return start_stack(parameter_overrides={"RegistryFile": str(path)}, extra_endpoints=SCRIPTED_ENDPOINTS)


@pytest.fixture
def scripted(scripted_stack) -> ChorusClient:
    return scripted_stack.api()


def steps_by_name(prediction: dict) -> dict[str, dict]:
    return {step["name"]: step for step in prediction["steps"]}


def test_digits_ensemble_predicts_with_three_succeeded_steps(client):
    # Given a PNG digit uploaded for the ensemble
    image, label = digit_png(1310, size=40)
    created = client.create({"service": "digits-ensemble", "contentType": "image/png"})
    client.upload(created, image)
    # When it finishes
    finished = client.wait(created["id"], timeout=120)
    # Then all three steps succeeded, in declaration order, and the stacker's answer is the output
    assert finished["status"] == "succeeded", finished
    assert [(s["name"], s["service"], s["status"]) for s in finished["steps"]] == [
        ("svm", "digits-svm", "succeeded"),
        ("forest", "digits-forest", "succeeded"),
        ("stacker", "digits-stacker", "succeeded"),
    ]
    assert all(s["durationSeconds"] is not None for s in finished["steps"])
    assert client.download(finished)["label"] == label
    # And each step is a prediction of its own that names its parent
    stacker = client.get(steps_by_name(finished)["stacker"]["id"])
    assert stacker["parentId"] == created["id"] and stacker["stepName"] == "stacker"


def test_nested_ensemble_runs_the_inner_ensemble_as_a_step(client):
    pixels, label = digit_pixels(1320)
    created = client.create({"service": "digits-committee", "input": {"pixels": pixels}})
    finished = client.wait(created["id"], timeout=150)
    assert finished["status"] == "succeeded", finished
    inner = client.get(steps_by_name(finished)["ensemble"]["id"])
    assert inner["service"] == "digits-ensemble" and inner["status"] == "succeeded"
    assert [s["status"] for s in inner["steps"]] == ["succeeded"] * 3
    assert client.download(finished)["label"] == label


def test_failing_step_fails_the_parent_naming_the_step(scripted_stack, scripted):
    pixels, _ = digit_pixels(1330)
    created = scripted.create(
        {"service": "digits-ensemble", "input": {"pixels": pixels, "fail": {"svm": "svm is broken"}}}
    )
    finished = scripted.wait(created["id"], timeout=120)
    assert finished["status"] == "failed"
    assert "svm" in finished["error"]["message"] and "svm is broken" in finished["error"]["message"]
    assert steps_by_name(finished)["svm"]["status"] == "failed"
    assert steps_by_name(finished)["stacker"]["status"] == "not_run"  # listed, never started
    assert_no_execution_running(scripted_stack, created["id"])


def test_step_whose_callback_never_arrives_times_out_and_fails_the_parent(scripted_stack, scripted):
    pixels, _ = digit_pixels(1331)
    created = scripted.create({"service": "digits-ensemble", "input": {"pixels": pixels, "sleep": {"forest": 8}}})
    finished = scripted.wait(created["id"], timeout=60)
    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "step_timed_out"
    assert "forest" in finished["error"]["message"] and "timed out" in finished["error"]["message"]
    assert_no_execution_running(scripted_stack, created["id"])


def test_cancel_mid_flight_stops_the_execution_and_the_steps(scripted_stack, scripted):
    pixels, _ = digit_pixels(1332)
    created = scripted.create(
        {"service": "digits-ensemble", "input": {"pixels": pixels, "sleep": {"svm": 3, "forest": 3}}}
    )
    scripted.wait(created["id"], until={"running"})
    time.sleep(1)  # let the steps start
    response = scripted.cancel(created["id"])
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    time.sleep(4)  # the forest model finishes its sleep; its late result must change nothing
    after = scripted.get(created["id"])
    assert after["status"] == "canceled"
    assert all(step["status"] in {"canceled", "succeeded", "not_run"} for step in after["steps"]), after["steps"]
    assert_no_execution_running(scripted_stack, created["id"])


def test_duplicate_notification_for_a_child_changes_nothing(stack, client):
    pixels, _ = digit_pixels(1333)
    finished = client.wait(client.create({"service": "digits-ensemble", "input": {"pixels": pixels}})["id"], 120)
    forest = steps_by_name(finished)["forest"]
    before = client.get(forest["id"])
    assert before["status"] == "succeeded"
    # When SNS delivers the forest child's SageMaker notification a second time
    topic = next(
        t["TopicArn"] for t in stack.client("sns").list_topics()["Topics"] if t["TopicArn"].endswith("-success")
    )
    stack.client("sns").publish(
        TopicArn=topic,
        Message=json.dumps(
            {
                "invocationStatus": "Completed",
                "inferenceId": forest["id"],
                "eventSource": "aws:sagemaker",
                "responseParameters": {
                    "contentType": "application/json",
                    "outputLocation": f"s3://nowhere/duplicate/{forest['id']}.out",
                },
            }
        ),
    )
    time.sleep(3)
    # Then neither the child nor the parent changes
    after = client.get(forest["id"])
    assert (after["status"], after["updatedAt"]) == (before["status"], before["updatedAt"])
    assert client.get(finished["id"])["updatedAt"] == finished["updatedAt"]


def test_thirty_concurrent_ensemble_predictions_all_succeed(client):
    def one(i: int) -> str:
        pixels, _ = digit_pixels(900 + i)
        return client.create({"service": "digits-ensemble", "input": {"pixels": pixels}})["id"]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(one, range(30)))
    finished = [client.wait(prediction_id, timeout=300) for prediction_id in ids]
    elapsed = time.monotonic() - started
    assert [p["status"] for p in finished] == ["succeeded"] * 30
    print(f"\n30 ensemble predictions in {elapsed:.1f}s")


def assert_no_execution_running(stack, execution_name: str) -> None:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + 20
    while True:
        running = [
            e
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=_state_machine_arn(sfn, "digits-ensemble"), statusFilter="RUNNING"
            )
            for e in page["executions"]
            if e["name"] == execution_name
        ]
        if not running:
            return
        assert time.monotonic() < deadline, f"execution {execution_name} still running"
        time.sleep(0.5)


def _state_machine_arn(sfn, ensemble: str) -> str:
    return next(
        m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if m["name"].endswith(f"-{ensemble}")
    )


def test_deadline_cancels_a_slow_ensemble_and_its_steps(scripted_stack, scripted):
    # Given an ensemble whose forest step will take 6 s, and a 2-second deadline
    pixels, _ = digit_pixels(1334)
    created = scripted.create(
        {"service": "digits-ensemble", "deadlineSeconds": 2, "input": {"pixels": pixels, "sleep": {"forest": 6}}}
    )
    # When the deadline passes, without anyone reading the prediction through the API
    dynamodb = scripted_stack.client("dynamodb")
    table = next(name for name in dynamodb.list_tables()["TableNames"] if "Predictions" in name)
    deadline = time.monotonic() + 20
    while dynamodb.get_item(TableName=table, Key={"id": {"S": created["id"]}})["Item"]["status"]["S"] != "canceled":
        assert time.monotonic() < deadline, "the deadline message did not cancel the prediction"
        time.sleep(0.2)
    # Then it is canceled with the reason, its execution stopped and its unfinished steps canceled
    # (the parent first, so no new step can start; its steps right after)
    deadline = time.monotonic() + 10
    while steps_by_name(finished := scripted.get(created["id"]))["forest"]["status"] != "canceled":
        assert time.monotonic() < deadline, f"the unfinished step was not canceled: {finished['steps']}"
        time.sleep(0.2)
    assert finished["status"] == "canceled"
    assert finished["error"]["code"] == "deadline_exceeded"
    assert_no_execution_running(scripted_stack, created["id"])
