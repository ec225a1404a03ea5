"""Each function's handler fed the sample events from events/, against moto resources built from
template.yaml. One event folder serves `sam local invoke -e` and these tests."""

from __future__ import annotations

import json

import pytest

from chorus.adapters import payloads, predictions
from chorus.api.models import PredictionRequest
from chorus.model.records import Status
from tests.support import aws_resources
from tests.support.aws_resources import TENANT, caller, load_event
from tests.support.handlers import FakeLambdaContext, load_handler


@pytest.fixture
def new_prediction(aws):
    return load_handler("new_prediction")


@pytest.fixture
def results(aws):
    return load_handler("results")


def call(module, event):
    response = module.handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def post(module, body, headers=None):
    event = load_event("new_prediction_create.json")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    for name, value in (headers or {}).items():  # in both maps, as API Gateway sends them
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    return call(module, event)


def upload_event(prediction_id: str) -> dict:
    event = load_event("process_input_upload.json")
    body = json.loads(event["Records"][0]["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = aws_resources.BUCKET
    body["Records"][0]["s3"]["object"]["key"] = f"inputs%2F{TENANT}%2F{prediction_id}%2Finput"
    event["Records"][0]["body"] = json.dumps(body)
    return event


def test_create_answers_202_with_an_upload(new_prediction):
    status, body = post(new_prediction, {"service": "digits-forest", "contentType": "image/png"})
    assert status == 202
    assert body["status"] == "awaiting_input" and body["upload"]["method"] == "POST"


def test_sample_create_event_is_accepted(new_prediction, monkeypatch):
    # The sample's webhook host is not resolvable here; vetting is covered in test_webhooks.
    monkeypatch.setattr("chorus.adapters.webhooks.resolve_addresses", lambda host, port: ["93.184.216.34"])
    status, body = call(new_prediction, load_event("new_prediction_create.json"))
    assert status == 202 and body["metadata"] == {"claimId": "CLM-1042"}


@pytest.mark.parametrize(
    ("body", "status", "code", "fragment"),
    [
        ("{not json", 400, "invalid_request", "not valid JSON"),
        ({"contentType": "image/png"}, 400, "invalid_request", "service"),
        ({"service": "digits-svm", "colour": "red"}, 400, "invalid_request", "colour: is not a known field"),
        ({"service": "nope"}, 400, "unknown_service", "digits-svm"),
        ({"service": "digits-svm", "contentType": "text/csv"}, 415, "unsupported_content_type", "image/png"),
        ({"service": "digits-svm", "callback": {"type": "pigeon"}}, 400, "invalid_request", "callback"),
        (
            {"service": "digits-svm", "callback": {"type": "email", "address": "nobody"}},
            400,
            "invalid_request",
            "e-mail",
        ),
        (
            {"service": "digits-svm", "callback": {"type": "webhook", "url": "http://169.254.169.254/x"}},
            400,
            "invalid_callback",
            "non-public",
        ),
        ({"service": "digits-svm", "metadata": {"k": "v" * 5000}}, 400, "invalid_request", "metadata"),
        ({"service": "digits-svm", "input": {"x": 1}, "contentType": "image/png"}, 400, "invalid_request", "JSON"),
    ],
)
def test_bad_requests_get_a_clear_4xx(new_prediction, body, status, code, fragment):
    got_status, got = post(new_prediction, body)
    assert got_status == status
    assert got["error"]["code"] == code
    assert fragment in got["error"]["message"]


def test_idempotency_key_returns_the_same_prediction(new_prediction):
    request = {"service": "digits-forest", "contentType": "image/png"}
    _, first = post(new_prediction, request, {"Idempotency-Key": "claim-77"})
    _, second = post(new_prediction, request, {"Idempotency-Key": "claim-77"})
    assert first["id"] == second["id"]


def test_idempotency_key_reused_with_another_body_is_a_conflict(new_prediction):
    post(new_prediction, {"service": "digits-forest", "contentType": "image/png"}, {"Idempotency-Key": "k1"})
    status, body = post(
        new_prediction, {"service": "digits-svm", "contentType": "image/png"}, {"Idempotency-Key": "k1"}
    )
    assert status == 409 and body["error"]["code"] == "idempotency_conflict"


def test_get_unknown_prediction_is_404(results):
    status, body = call(results, load_event("results_get_prediction.json"))
    assert status == 404 and body["error"]["code"] == "not_found"


def test_services_lists_every_registered_service(results):
    status, body = call(results, load_event("results_list_services.json"))
    names = {s["name"]: s for s in body["services"]}
    assert status == 200
    assert names["digits-svm"]["kind"] == "model" and names["digits-ensemble"]["kind"] == "ensemble"
    assert names["digits-forest"]["contentTypes"] == ["image/png", "application/json"]


def test_cancel_answers_the_canceled_prediction(new_prediction):
    _, created = post(new_prediction, {"service": "digits-forest", "contentType": "image/png"})
    event = load_event("new_prediction_cancel.json")
    event["path"] = f"/predictions/{created['id']}/cancel"
    event["pathParameters"] = {"id": created["id"]}
    status, body = call(new_prediction, event)
    assert status == 200 and body["status"] == "canceled"


def start_through_sqs(new_prediction) -> str:
    """Submit inline input (stored where uploads land), then deliver its S3 event to process-input."""
    _, created = post(new_prediction, {"service": "digits-forest", "input": {"pixels": []}})
    response = load_handler("process_input").handler(upload_event(created["id"]), FakeLambdaContext())
    assert response == {"batchItemFailures": []}
    return created["id"]


def test_upload_event_through_sqs_starts_the_prediction(new_prediction):
    prediction_id = start_through_sqs(new_prediction)
    assert predictions.get(prediction_id).status is Status.RUNNING


def test_s3_test_event_is_skipped(aws):
    process_input = load_handler("process_input")
    assert process_input.handler(load_event("process_input_s3_test_event.json"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }


def test_malformed_queue_message_is_reported_as_a_batch_item_failure(aws):
    process_input = load_handler("process_input")
    event = load_event("process_input_upload.json")
    event["Records"][0]["body"] = "not an S3 event"
    response = process_input.handler(event, FakeLambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


@pytest.mark.parametrize(
    ("sample", "status"),
    [
        ("notifications_sagemaker_success.json", Status.SUCCEEDED),
        ("notifications_sagemaker_failure.json", Status.FAILED),
    ],
)
def test_sagemaker_notification_completes_the_prediction(new_prediction, sample, status):
    notifications = load_handler("notifications")
    prediction_id = start_through_sqs(new_prediction)
    event = load_event(sample)
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["inferenceId"] = prediction_id
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    notifications.handler(event, FakeLambdaContext())
    assert predictions.get(prediction_id).status is status


def test_due_deadline_message_cancels_the_prediction(new_prediction):
    process_input = load_handler("process_input")
    _, created = post(new_prediction, {"service": "digits-forest", "contentType": "image/png", "deadlineSeconds": 30})
    event = load_event("process_input_deadline.json")
    body = json.loads(event["Records"][0]["body"])
    body["deadline"]["predictionId"] = created["id"]  # its `at` is in the past: due now
    aws_resources.set_attribute(created["id"], "deadlineAt", body["deadline"]["at"])
    event["Records"][0]["body"] = json.dumps(body)
    assert process_input.handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    record = predictions.get(created["id"])
    assert record.status is Status.CANCELED and record.error.code == "deadline_exceeded"


def test_execution_that_ended_outside_its_failure_path_fails_the_prediction(aws):
    # Given a running ensemble prediction
    from chorus.domain import dispatch, submit

    aws_resources.create_state_machine("digits-ensemble")
    view = submit.submit(PredictionRequest(service="digits-ensemble", input={"pixels": [0] * 64}), caller())
    dispatch.receive_upload(aws_resources.BUCKET, payloads.upload_key(TENANT, view["id"]))
    # When EventBridge reports its execution FAILED with an uncatchable error
    event = load_event("notifications_execution_failed.json")
    event["detail"]["name"] = view["id"]
    load_handler("notifications").handler(event, FakeLambdaContext())
    # Then the prediction failed, saying so
    record = predictions.get(view["id"])
    assert record.status is Status.FAILED and "States.Runtime" in record.error.message


def test_monitoring_answers_the_latest_report_to_an_admin(results):
    import boto3

    from chorus.adapters import monitoring

    # Before any monitor run: what the service captures, and no report
    status, body = call(results, load_event("results_get_monitoring.json"))
    assert status == 200, body
    assert body == {
        "service": "digits-svm",
        "capture": {"samplingPercent": 100.0, "inputs": True, "outputs": True},
        "report": None,
    }
    # After one: the latest report, as the monitor wrote it
    report = {"service": "digits-svm", "status": "ok", "records": 200, "violations": []}
    boto3.client("s3").put_object(
        Bucket=aws_resources.BUCKET, Key=monitoring.latest_report_key("digits-svm"), Body=json.dumps(report).encode()
    )
    status, body = call(results, load_event("results_get_monitoring.json"))
    assert status == 200 and body["report"] == report


@pytest.mark.parametrize(
    ("name", "scopes", "status", "code"),
    [
        ("no-such-service", "admin", 404, "not_found"),
        ("digits-svm", "predictions:create predictions:read", 403, "forbidden"),
    ],
)
def test_monitoring_is_for_admins_of_known_services(results, name, scopes, status, code):
    event = load_event("results_get_monitoring.json")
    event["pathParameters"] = {"name": name}
    event["path"] = f"/services/{name}/monitoring"
    event["requestContext"]["authorizer"]["scopes"] = scopes
    answered, body = call(results, event)
    assert answered == status and body["error"]["code"] == code
