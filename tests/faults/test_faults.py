"""Fault injection on the local stack: receivers on a bad day, a worker killed mid-batch, an
endpoint that never answers, an execution that cannot start, duplicate events, a crash between a
state change and its callback, DynamoDB throttling. Every case ends with every prediction in a
truthful terminal state and nothing lost.

Faults are real mechanisms: loopback receivers that answer 503/410 or hold the connection, SIGKILL
of a Lambda worker process, an async endpoint configured without notifications, a state machine
that does not exist, messages sent twice, and AWS errors answered on the wire by the local
gateway (`/_local/faults`) so botocore parses and retries them as it would in AWS.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from chorus_local.event_sources import RECEIVE_WAIT_SECONDS
from tests.e2e.client import ChorusClient, digit_pixels
from tests.support.aws_resources import REPO
from tests.support.webhook_receiver import SlowReceiver, WebhookReceiver

SCRIPTED = REPO / "tests" / "fixtures" / "models"
TERMINAL = {"succeeded", "failed", "canceled", "expired"}


@pytest.fixture(scope="module")
def faulty_stack(start_stack, tmp_path_factory):
    """The demo registry plus: `fault-svm` (a real-time endpoint that stalls on demand, 5 s
    timeout), `silent-forest` (an async endpoint without notifications, 3 s timeout) and
    `ghost-ensemble` (an ensemble whose state machine was never deployed)."""
    registry = json.loads((REPO / "layers/chorus/chorus/model/services.json").read_text())
    services = {s["name"]: s for s in registry["services"]}
    ghost = {**services["digits-ensemble"], "name": "ghost-ensemble"}
    registry["services"] += [
        {
            "name": "fault-svm",
            "kind": "model",
            "endpoint": {"name": "scripted-svm", "mode": "sync"},
            "contentTypes": ["application/json"],
            "maxInputBytes": 65536,
            "timeoutSeconds": 5,
        },
        {
            "name": "silent-forest",
            "kind": "model",
            "endpoint": {"name": "silent-forest", "mode": "async"},
            "contentTypes": ["application/json"],
            "maxInputBytes": 65536,
            "timeoutSeconds": 3,
        },
        ghost,
    ]
    directory = Path(tmp_path_factory.mktemp("faults"))
    (directory / "services.json").write_text(json.dumps(registry))
    endpoints = [
        {"name": "scripted-svm", "modelDir": "tests/fixtures/models/scripted_svm", "mode": "sync", "maxConcurrency": 2},
        {
            "name": "silent-forest",
            "modelDir": "tests/fixtures/models/scripted_forest",
            "mode": "async",
            "maxConcurrency": 2,
            "notify": False,
        },
    ]
    return start_stack(
        parameter_overrides={"RegistryFile": str(directory / "services.json")}, extra_endpoints=endpoints
    )


@pytest.fixture
def client(faulty_stack) -> ChorusClient:
    return faulty_stack.api()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def faults(faulty_stack) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    url = faulty_stack.aws_endpoint_url + "/_local/faults"

    def inject(rules: list[dict[str, Any]]) -> None:
        requests.post(url, json={"rules": rules}, timeout=5).raise_for_status()

    yield inject
    requests.delete(url, timeout=5)


PIXELS, LABEL = digit_pixels(1300)


def eventually(check: Callable[[], Any], timeout: float = 60, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s; last value: {value!r}")
        time.sleep(interval)


def delivered(client: ChorusClient, prediction_id: str, status: str = "delivered") -> Callable[[], Any]:
    def check() -> Any:
        view = client.get(prediction_id)
        return view if view.get("webhook", {}).get("status") == status else None

    return check


def webhook(url: str, events: tuple[str, ...] = ("completed",)) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "events": list(events)}


# --- receivers on a bad day -------------------------------------------------------------------


def test_receiver_down_then_up_gets_the_webhook_once_with_one_id(client, receiver):
    # Given a receiver that answers 503 twice, then recovers
    receiver.statuses.extend([503, 503])
    created = client.create({"service": "digits-svm", "input": {"pixels": PIXELS}, "callback": webhook(receiver.url)})
    # When the retry schedule runs (compressed locally to seconds)
    view = eventually(delivered(client, created["id"]), timeout=60)
    # Then it was delivered on the third attempt, every attempt with the same webhook-id
    assert view["status"] == "succeeded"
    assert view["webhook"]["attempts"] == 3 and view["webhook"]["lastError"] is None
    assert [r.headers["webhook-id"] for r in receiver.received] == [f"msg_{created['id']}_completed"] * 3
    assert json.loads(receiver.received[-1].body)["status"] == "succeeded"


def test_receiver_answering_gone_stops_delivery_for_good(client, receiver):
    # Given a receiver that answers 410 Gone
    receiver.statuses.extend([410] * 5)
    created = client.create({"service": "digits-svm", "input": {"pixels": PIXELS}, "callback": webhook(receiver.url)})
    # When the prediction finishes
    view = eventually(delivered(client, created["id"], status="disabled"), timeout=60)
    # Then delivery stopped after that one answer, and says why
    time.sleep(3)  # longer than the next two scheduled attempts
    assert len(receiver.received) == 1
    assert view["status"] == "succeeded" and "410" in view["webhook"]["lastError"]


def test_redeliver_sends_the_current_representation_again_with_the_same_id(client, receiver):
    created = client.create({"service": "digits-svm", "input": {"pixels": PIXELS}, "callback": webhook(receiver.url)})
    eventually(delivered(client, created["id"]), timeout=60)
    # When the client asks for a replay
    answer = client.request("POST", f"/predictions/{created['id']}/webhook/redeliver", timeout=10)
    assert answer.status_code == 202
    # Then a second delivery arrives with the same webhook-id
    eventually(lambda: len(receiver.received) == 2, timeout=30)
    assert {r.headers["webhook-id"] for r in receiver.received} == {f"msg_{created['id']}_completed"}


def _submit(client: ChorusClient, **fields: Any) -> str:
    return str(client.create({"service": "digits-svm", "input": {"pixels": PIXELS}, **fields})["id"])


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def _run_batch(client: ChorusClient, count: int) -> list[float]:
    """`count` predictions at once; each one's own server-side submit-to-result seconds."""
    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(lambda _: _submit(client), range(count)))
    finished = [client.wait(i, timeout=180) for i in ids]
    assert {f["status"] for f in finished} == {"succeeded"}, [f for f in finished if f["status"] != "succeeded"]
    return [f["metrics"]["totalSeconds"] for f in finished]


def test_black_holed_and_dripping_receivers_do_not_slow_anyone_else(client):
    # Given the latency of 50 predictions on a quiet stack
    baseline = _p95(_run_batch(client, 50))
    # When 8 predictions call back receivers that never answer or drip one byte at a time
    hole, drip = SlowReceiver(), SlowReceiver(drip=0.3)
    try:
        bad = [_submit(client, callback=webhook(r.url, ("start", "completed"))) for _ in range(4) for r in (hole, drip)]
        # ...while 50 other predictions run
        loaded = _p95(_run_batch(client, 50))
        # Then the others' p95 stays within 2x of the quiet run
        assert loaded <= 2 * baseline, f"p95 {loaded:.3f} s with bad receivers vs {baseline:.3f} s without"
        # And the bad receivers' predictions finished truthfully, their deliveries still being retried
        for prediction_id in bad:
            view = client.wait(prediction_id, timeout=60)
            assert view["status"] == "succeeded"
            assert view["webhook"]["status"] in {"pending", "failed"}
        # (both bad receivers really were called; locally two delivery workers share the attempts)
        eventually(lambda: hole.connections > 0 and drip.connections > 0, timeout=90)
    finally:
        hole.close()
        drip.close()


# --- workers, endpoints and executions ------------------------------------------------------------


def test_worker_killed_mid_batch_loses_nothing(client, faulty_stack):
    # Given a short visibility timeout on the upload queue, so the redelivery comes within the test
    sqs = faulty_stack.client("sqs")
    queue_url = next(u for u in sqs.list_queues()["QueueUrls"] if "UploadQueue" in u)
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "4"})
    time.sleep(RECEIVE_WAIT_SECONDS + 1)  # a receive already in flight may still apply the old timeout
    try:
        # And a prediction whose real-time model stalls for 3 s inside process-input
        created = client.create({"service": "fault-svm", "input": {"pixels": PIXELS, "sleep": {"svm": 3}}})
        workers_url = faulty_stack.aws_endpoint_url + "/_local/workers"

        def busy_process_input() -> int | None:
            pools = requests.get(workers_url, timeout=5).json()["workers"]
            busy = [w["pid"] for name, ws in pools.items() if name.endswith("process-input") for w in ws if w["busy"]]
            return busy[0] if busy and client.get(created["id"])["status"] == "running" else None

        # When the worker running it is killed mid-invocation
        os.kill(eventually(busy_process_input, timeout=30, interval=0.1), signal.SIGKILL)
        # Then the message comes back, the lapsed claim is taken over, and the prediction succeeds
        finished = client.wait(created["id"], timeout=90)
        assert finished["status"] == "succeeded", finished
    finally:
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "540"})


def test_async_endpoint_that_never_answers_times_out(client, receiver):
    # Given an async endpoint whose notification never comes, and no client deadline
    created = client.create(
        {"service": "silent-forest", "input": {"pixels": PIXELS}, "callback": webhook(receiver.url)}
    )
    # When its service's timeout and margin have passed (3 s + 3 s)
    finished = client.wait(created["id"], timeout=60)
    # Then it failed as timed out, and the client was told
    assert finished["status"] == "failed" and finished["error"]["code"] == "timed_out", finished
    eventually(delivered(client, created["id"]), timeout=30)


def test_execution_that_cannot_start_fails_the_prediction(client, receiver):
    # Given an ensemble whose state machine does not exist (StartExecution fails for good)
    created = client.create(
        {"service": "ghost-ensemble", "input": {"pixels": PIXELS}, "callback": webhook(receiver.url)}
    )
    # Then it fails at once with dispatch_failed (not queued until the DLQ), and the client is told
    finished = client.wait(created["id"], timeout=60)
    assert finished["status"] == "failed" and finished["error"]["code"] == "dispatch_failed", finished
    assert "StateMachineDoesNotExist" in finished["error"]["message"]
    eventually(delivered(client, created["id"]), timeout=30)


# --- duplicates and crashes ---------------------------------------------------------------------


def test_duplicate_sns_and_s3_events_change_nothing_and_call_back_once(client, faulty_stack, receiver):
    # Given a finished prediction whose webhook was delivered
    created = client.create({"service": "digits-svm", "input": {"pixels": PIXELS}, "callback": webhook(receiver.url)})
    first = eventually(delivered(client, created["id"]), timeout=60)
    s3 = faulty_stack.client("s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "payloads" in b["Name"])
    topics = faulty_stack.client("sns").list_topics()["Topics"]
    success_topic = next(t["TopicArn"] for t in topics if "inference-success" in t["TopicArn"])
    # When SNS delivers its result again and S3 sends its upload event again
    notification = {
        "invocationStatus": "Completed",
        "inferenceId": created["id"],
        "responseParameters": {
            "contentType": "application/json",
            "outputLocation": f"s3://{bucket}/outputs/{created['id']}/output",
        },
    }
    faulty_stack.client("sns").publish(TopicArn=success_topic, Message=json.dumps(notification))
    sqs = faulty_stack.client("sqs")
    queue_url = next(u for u in sqs.list_queues()["QueueUrls"] if "UploadQueue" in u)
    s3_event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Post",
                "s3": {"bucket": {"name": bucket}, "object": {"key": f"inputs/local/{created['id']}/input", "size": 1}},
            }
        ]
    }
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(s3_event))
    time.sleep(4)
    # Then the prediction is unchanged and the receiver heard from it once
    after = client.get(created["id"])
    assert after["status"] == "succeeded" and after["completedAt"] == first["completedAt"]
    assert after["webhook"] == first["webhook"]
    assert len(receiver.received) == 1


def test_notifications_crashing_between_state_change_and_callback_still_call_back_once(client, faults, receiver):
    # Given queuing a callback fails through every botocore retry, once (the function crashes
    # after the state change was written)
    faults([{"service": "sqs", "operation": "SendMessage", "error": "ServiceUnavailable", "status": 503, "limit": 4}])
    created = client.create({"service": "digits-svm", "input": {"pixels": PIXELS}, "callback": webhook(receiver.url)})
    # When Lambda retries the notification
    view = eventually(delivered(client, created["id"]), timeout=120)
    # Then the retry found the prediction finished, queued the callback, and it arrived once
    assert view["status"] == "succeeded"
    time.sleep(2)
    assert len(receiver.received) == 1


def test_dynamodb_throttling_slows_but_never_breaks_predictions(client, faults, faulty_stack):
    # Given DynamoDB throttles the first two tries of every read and write of the functions
    throttle = {"error": "ProvisionedThroughputExceededException", "first_attempts": 2}
    faults(
        [{"service": "dynamodb", "operation": op, **throttle} for op in ("UpdateItem", "GetItem", "PutItem", "Query")]
    )
    # When 10 predictions run
    with ThreadPoolExecutor(max_workers=5) as pool:
        ids = list(pool.map(lambda _: _submit(client), range(10)))
    # Then every one finished, correctly, and the throttles really happened
    fired = requests.get(faulty_stack.aws_endpoint_url + "/_local/faults", timeout=5).json()["rules"]
    assert all(rule["failed"] > 0 for rule in fired[:3]), fired
    for prediction_id in ids:
        finished = client.wait(prediction_id, timeout=120)
        assert finished["status"] == "succeeded", finished
        assert client.download(finished)["label"] == LABEL
