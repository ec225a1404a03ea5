"""End to end, through HTTP only: client → local stack (API, Lambda runtime, moto, SageMaker
runtime, demo models) → webhook receiver. These tests prove the single-model lifecycle."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.client import ChorusClient, digit_pixels, digit_png
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def client(stack) -> ChorusClient:
    return stack.api()


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def wait_for_webhooks(receiver: WebhookReceiver, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count:
        assert time.monotonic() < deadline, f"{len(receiver.received)} of {count} webhooks arrived"
        time.sleep(0.1)


def test_services_lists_the_demo_models_and_ensemble(client):
    services = {s["name"]: s for s in client.request("GET", "/services").json()["services"]}
    assert {"digits-svm", "digits-forest", "digits-ensemble"} <= set(services)
    assert services["digits-svm"]["contentTypes"] == ["image/png", "application/json"]


@pytest.mark.parametrize("service", ["digits-svm", "digits-forest"])
def test_uploaded_png_is_predicted_and_downloadable(client, service):
    # Given a PNG of a held-out digit, larger than the model's 8x8 input
    image, label = digit_png(size=64)
    # When the client submits, uploads through the presigned POST and polls
    created = client.create({"service": service, "contentType": "image/png", "metadata": {"claim": "C-1"}})
    assert created["status"] == "awaiting_input"
    client.upload(created, image)
    finished = client.wait(created["id"])
    # Then the prediction succeeded and the presigned URL serves the model's answer
    assert finished["status"] == "succeeded", finished
    output = client.download(finished)
    assert output["label"] == label
    assert len(output["probabilities"]) == 10
    assert finished["metadata"] == {"claim": "C-1"}
    assert finished["metrics"]["totalSeconds"] > 0


def test_inline_json_input_with_prefer_wait_answers_the_result(client):
    pixels, label = digit_pixels(1500)
    response = client.submit({"service": "digits-svm", "input": {"pixels": pixels}}, {"Prefer": "wait=20"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert client.download(response.json())["label"] == label


def test_corrupt_image_fails_with_the_models_reason(client):
    created = client.create({"service": "digits-forest", "contentType": "image/png"})
    client.upload(created, b"\x89PNG\r\n\x1a\nthis is not an image")
    finished = client.wait(created["id"])
    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "model_error"
    assert "PNG" in finished["error"]["message"]


def test_sync_model_failure_fails_with_the_models_reason(client):
    created = client.create({"service": "digits-svm", "input": {"pixels": [1, 2, 3]}})
    finished = client.wait(created["id"])
    assert finished["status"] == "failed"
    assert "64" in finished["error"]["message"]


def test_webhook_is_signed_and_verifiable(stack, client, receiver):
    pixels, label = digit_pixels(1400)
    created = client.create(
        {
            "service": "digits-forest",
            "input": {"pixels": pixels},
            "callback": {"type": "webhook", "url": receiver.url, "events": ["start", "completed"]},
        }
    )
    wait_for_webhooks(receiver, 2)
    # Each event is named by its webhook-id and carries the prediction as it was when sent (the
    # deliveries are queued, so `start` may already see the prediction finished)
    events = {
        r.headers["webhook-id"]: Webhook(stack.webhook_secret).verify(r.body, r.headers) for r in receiver.received
    }
    start, completed = events[f"msg_{created['id']}_start"], events[f"msg_{created['id']}_completed"]
    assert start["status"] in {"running", "succeeded"} and start["startedAt"] is not None
    assert completed["status"] == "succeeded" and completed["id"] == created["id"]
    assert client.download(completed)["label"] == label


def test_email_callback_is_sent_through_ses(stack, client):
    ses = stack.client("ses")
    before = ses.get_send_quota()["SentLast24Hours"]
    pixels, _ = digit_pixels(1401)
    created = client.create(
        {
            "service": "digits-svm",
            "input": {"pixels": pixels},
            "callback": {"type": "email", "address": "claims@example.com"},
        }
    )
    assert client.wait(created["id"])["status"] == "succeeded"
    deadline = time.monotonic() + 20
    while ses.get_send_quota()["SentLast24Hours"] == before:
        assert time.monotonic() < deadline, "no e-mail was sent"
        time.sleep(0.2)


def test_duplicate_upload_runs_the_model_once(client, receiver):
    image, _ = digit_png(1350)
    created = client.create(
        {"service": "digits-forest", "contentType": "image/png", "callback": {"type": "webhook", "url": receiver.url}}
    )
    client.upload(created, image)
    client.upload(created, image)  # the presigned POST is reusable: S3 sends a second event
    assert client.wait(created["id"])["status"] == "succeeded"
    time.sleep(3)  # give a second run every chance to show up
    assert len(receiver.received) == 1
    assert client.get(created["id"])["status"] == "succeeded"


def test_cancel_before_upload_then_upload_changes_nothing(client):
    image, _ = digit_png(1351)
    created = client.create({"service": "digits-forest", "contentType": "image/png"})
    response = client.cancel(created["id"])
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    client.upload(created, image)
    time.sleep(2)
    assert client.get(created["id"])["status"] == "canceled"
    assert client.cancel(created["id"]).status_code == 200


def test_cancel_of_a_finished_prediction_is_a_conflict(client):
    pixels, _ = digit_pixels(1402)
    created = client.create({"service": "digits-svm", "input": {"pixels": pixels}})
    client.wait(created["id"])
    response = client.cancel(created["id"])
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_cancelable"


def test_idempotency_key_makes_a_retried_submit_safe(client):
    pixels, _ = digit_pixels(1403)
    body = {"service": "digits-svm", "input": {"pixels": pixels}}
    first = client.create(body, {"Idempotency-Key": "retry-me-1"})
    second = client.create(body, {"Idempotency-Key": "retry-me-1"})
    assert first["id"] == second["id"]
    conflict = client.submit({**body, "metadata": {"other": True}}, {"Idempotency-Key": "retry-me-1"})
    assert conflict.status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"service": "no-such-model"}, 400, "unknown_service"),
        ({"service": "digits-svm", "contentType": "text/csv"}, 415, "unsupported_content_type"),
        (
            {"service": "digits-svm", "callback": {"type": "webhook", "url": "http://169.254.169.254/"}},
            400,
            "invalid_callback",
        ),
        ({"service": "digits-svm", "unexpected": 1}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
    ],
)
def test_bad_requests_are_answered_with_a_clear_error(client, body, status, code):
    response = client.submit(body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_unknown_prediction_is_404(client):
    response = client.request("GET", "/predictions/does-not-exist")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_hundred_concurrent_predictions_none_lost(client):
    # Given 100 clients submitting at once, half to the sync and half to the async endpoint
    def one(i: int) -> tuple[str, int]:
        pixels, label = digit_pixels(1000 + i)
        service = "digits-svm" if i % 2 else "digits-forest"
        return client.create({"service": service, "input": {"pixels": pixels}})["id"], label

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        submitted = list(pool.map(one, range(100)))
    # Then every one of them finishes, and succeeds
    finished = [client.wait(prediction_id, timeout=240) for prediction_id, _ in submitted]
    elapsed = time.monotonic() - started
    assert [p["status"] for p in finished] == ["succeeded"] * 100
    print(f"\n100 predictions in {elapsed:.1f}s ({100 / elapsed:.1f}/s)")
