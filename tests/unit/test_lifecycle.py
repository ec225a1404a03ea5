"""The prediction lifecycle against moto: submit, input, dispatch, result, callbacks, cancel."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import boto3
import pytest

from chorus import lifecycle, payloads, predictions
from chorus.api_models import PredictionRequest
from chorus.errors import InvalidCallback, NotCancelable, ServiceDisabled, UnknownService, UnsupportedContentType
from chorus.records import Status, iso, utcnow
from chorus.sagemaker_events import InferenceResult
from tests.support import aws_resources

PIXELS = {"pixels": [0] * 20 + [16] * 24 + [0] * 20}


def submit(**fields) -> dict:
    return lifecycle.submit(PredictionRequest.model_validate({"service": "digits-forest", **fields}))


def upload(prediction_id: str, body: bytes, content_type: str) -> None:
    boto3.client("s3").put_object(
        Bucket=aws_resources.BUCKET, Key=payloads.upload_key(prediction_id), Body=body, ContentType=content_type
    )
    lifecycle.receive_upload(aws_resources.BUCKET, payloads.upload_key(prediction_id))


def completed(prediction_id: str) -> InferenceResult:
    key = f"async-outputs/{prediction_id}.out"
    boto3.client("s3").put_object(Bucket=aws_resources.BUCKET, Key=key, Body=b'{"label": 3}')
    return InferenceResult.model_validate(
        {
            "invocationStatus": "Completed",
            "inferenceId": prediction_id,
            "responseParameters": {
                "contentType": "application/json",
                "outputLocation": f"s3://{aws_resources.BUCKET}/{key}",
            },
        }
    )


def test_submit_without_input_answers_with_a_size_limited_presigned_post(aws):
    # Given a service that accepts PNG images
    # When a client submits without inline input
    view = submit(contentType="image/png")
    # Then the prediction awaits its input and the POST policy pins the key, type and size
    assert view["status"] == "awaiting_input"
    policy = json.loads(base64.b64decode(view["upload"]["fields"]["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 1024**3] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert {"key": f"inputs/{view['id']}/input"} in conditions
    assert view["upload"]["fields"]["key"] == f"inputs/{view['id']}/input"


def test_unknown_service_is_refused_with_the_known_names(aws):
    with pytest.raises(UnknownService, match="digits-svm"):
        lifecycle.submit(PredictionRequest(service="no-such-model"))


def test_content_type_the_service_does_not_accept_is_refused(aws):
    with pytest.raises(UnsupportedContentType, match="image/png, application/json"):
        submit(contentType="text/csv")


def test_disabled_service_is_refused(aws, tmp_path, monkeypatch):
    registry = json.loads((aws_resources.REPO / "layers/chorus/chorus/services.json").read_text())
    registry["services"][1]["enabled"] = False
    (tmp_path / "services.json").write_text(json.dumps(registry))
    monkeypatch.setenv("REGISTRY_FILE", str(tmp_path / "services.json"))
    from chorus.settings import get_settings

    get_settings.cache_clear()
    with pytest.raises(ServiceDisabled):
        submit()


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest", "http://10.0.0.8/hook", "ftp://example.com/x"])
def test_webhook_to_a_non_public_target_is_refused_at_submit(aws, url):
    with pytest.raises(InvalidCallback):
        submit(callback={"type": "webhook", "url": url})


def test_upload_queues_the_object_on_the_async_endpoint_and_runs(aws):
    # Given a prediction awaiting its input
    view = submit(contentType="application/json")
    # When the upload event arrives
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    # Then the prediction is running with the uploaded object as its input (no copy)
    record = predictions.get(view["id"])
    assert record.status is Status.RUNNING
    assert record.input is not None and record.input.key == f"inputs/{view['id']}/input"
    assert record.queued_at is not None and record.started_at is not None


def test_duplicate_upload_event_dispatches_once(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    first = predictions.get(view["id"])
    # When S3 delivers the same event again
    lifecycle.receive_upload(aws_resources.BUCKET, payloads.upload_key(view["id"]))
    # Then nothing changes
    assert predictions.get(view["id"]) == first


def test_oversized_upload_fails_the_prediction(aws, monkeypatch):
    view = lifecycle.submit(PredictionRequest(service="digits-stacker", contentType="application/json"))
    upload(view["id"], b"{" + b" " * 70_000 + b"}", "application/json")
    record = predictions.get(view["id"])
    assert record.status is Status.FAILED
    assert record.error is not None and record.error.code == "invalid_input"
    assert "65536" in record.error.message


def test_upload_with_another_content_type_than_declared_fails(aws):
    view = submit(contentType="image/png")
    upload(view["id"], b"{}", "application/json")
    record = predictions.get(view["id"])
    assert record.status is Status.FAILED and "image/png" in record.error.message


def test_success_notification_makes_the_output_downloadable(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    # When SageMaker reports success
    lifecycle.record_result(completed(view["id"]))
    # Then the prediction succeeded and its presigned URL serves the output
    described = lifecycle.describe(view["id"])
    assert described["status"] == "succeeded"
    assert described["output"]["contentType"] == "application/json"
    assert "Signature" in described["output"]["url"] or "X-Amz-Signature" in described["output"]["url"]
    assert set(described["metrics"]) == {"waitSeconds", "runSeconds", "totalSeconds"}


def test_failure_notification_fails_with_the_models_reason(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    lifecycle.record_result(
        InferenceResult.model_validate(
            {
                "invocationStatus": "Failed",
                "inferenceId": view["id"],
                "failureReason": "input is not a readable PNG image",
            }
        )
    )
    described = lifecycle.describe(view["id"])
    assert described["status"] == "failed"
    assert described["error"] == {"code": "model_error", "message": "input is not a readable PNG image"}


def test_duplicate_success_notification_changes_nothing_and_mails_once(aws):
    view = submit(contentType="application/json", callback={"type": "email", "address": "claims@example.com"})
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    result = completed(view["id"])
    lifecycle.record_result(result)
    after_first = predictions.get(view["id"])
    # When SNS delivers the same message again
    lifecycle.record_result(result)
    # Then the record is untouched and exactly one e-mail went out
    assert predictions.get(view["id"]) == after_first
    assert after_first.callback_delivered == ["completed"]
    assert boto3.client("ses").get_send_quota()["SentLast24Hours"] == 1


def test_terminal_state_never_changes(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    lifecycle.cancel(view["id"])
    # When the model's result arrives after the cancel
    lifecycle.record_result(completed(view["id"]))
    # Then the prediction stays canceled
    assert predictions.get(view["id"]).status is Status.CANCELED


def test_cancel_a_finished_prediction_is_a_conflict(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    lifecycle.record_result(completed(view["id"]))
    with pytest.raises(NotCancelable, match="succeeded"):
        lifecycle.cancel(view["id"])


def test_cancel_twice_answers_the_canceled_prediction(aws):
    view = submit(contentType="application/json")
    assert lifecycle.cancel(view["id"])["status"] == "canceled"
    assert lifecycle.cancel(view["id"])["status"] == "canceled"


def test_prediction_without_upload_expires_after_its_url(aws):
    view = submit(contentType="application/json")
    predictions.update_fields(view["id"], {"uploadExpiresAt": iso(utcnow() - timedelta(minutes=5))})
    described = lifecycle.describe(view["id"])
    assert described["status"] == "expired"
    assert described["error"]["code"] == "expired"


def test_upload_after_expiry_is_ignored(aws):
    view = submit(contentType="application/json")
    predictions.update_fields(view["id"], {"uploadExpiresAt": iso(utcnow() - timedelta(minutes=5))})
    lifecycle.describe(view["id"])
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    assert predictions.get(view["id"]).status is Status.EXPIRED


def test_result_for_unknown_prediction_is_ignored(aws):
    lifecycle.record_result(completed("0" * 32))  # no exception, nothing created
    assert predictions.find("0" * 32) is None


def test_deadline_is_scheduled_on_the_deadline_queue(aws):
    view = submit(input=PIXELS, deadlineSeconds=120)
    assert view["deadlineAt"] is not None
    assert aws_resources.delayed_deadlines() == 1


def test_upload_expiry_is_scheduled_so_it_happens_without_a_read(aws):
    submit(contentType="application/json")
    assert aws_resources.delayed_deadlines() == 1


def test_due_deadline_cancels_an_unfinished_prediction(aws):
    view = submit(contentType="application/json", deadlineSeconds=60)
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    # When the deadline passes and its message arrives
    predictions.update_fields(view["id"], {"deadlineAt": iso(utcnow() - timedelta(seconds=1))})
    lifecycle.enforce_deadline(view["id"], utcnow() - timedelta(seconds=1))
    # Then the running prediction is canceled, saying why
    record = predictions.get(view["id"])
    assert record.status is Status.CANCELED
    assert record.error is not None and record.error.code == "deadline_exceeded"


def test_deadline_further_out_than_one_delay_is_requeued(aws):
    view = submit(contentType="application/json")
    before = aws_resources.delayed_deadlines()
    lifecycle.enforce_deadline(view["id"], utcnow() + timedelta(hours=2))
    assert predictions.get(view["id"]).status is Status.AWAITING_INPUT
    assert aws_resources.delayed_deadlines() == before + 1


def test_deadline_of_a_finished_prediction_changes_nothing(aws):
    view = submit(contentType="application/json", deadlineSeconds=60)
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    lifecycle.record_result(completed(view["id"]))
    lifecycle.enforce_deadline(view["id"], utcnow() - timedelta(seconds=1))
    assert predictions.get(view["id"]).status is Status.SUCCEEDED


def test_reading_a_prediction_past_its_deadline_cancels_it(aws):
    view = submit(contentType="application/json", deadlineSeconds=60)
    predictions.update_fields(view["id"], {"deadlineAt": iso(utcnow() - timedelta(seconds=5))})
    described = lifecycle.describe(view["id"])
    assert (described["status"], described["error"]["code"]) == ("canceled", "deadline_exceeded")


def test_very_long_model_error_is_kept_readable(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    lifecycle.record_result(
        InferenceResult.model_validate(
            {"invocationStatus": "Failed", "inferenceId": view["id"], "failureReason": "Traceback\n" * 3000}
        )
    )
    described = lifecycle.describe(view["id"])
    assert described["status"] == "failed" and len(described["error"]["message"]) == 4096


def test_due_upload_expiry_message_expires_the_prediction(aws):
    view = submit(contentType="application/json")
    predictions.update_fields(view["id"], {"uploadExpiresAt": iso(utcnow() - timedelta(minutes=5))})
    lifecycle.enforce_deadline(view["id"], utcnow())
    assert predictions.get(view["id"]).status is Status.EXPIRED


def test_inline_input_is_stored_where_uploads_land(aws):
    view = submit(input=PIXELS)
    assert view["status"] == "awaiting_input" and "upload" not in view
    stored = boto3.client("s3").get_object(Bucket=aws_resources.BUCKET, Key=payloads.upload_key(view["id"]))
    assert json.loads(stored["Body"].read()) == PIXELS


def test_two_copies_of_one_result_send_one_email(aws):
    # Given two invocations handling the same result at once: the first holds the send claim
    from chorus import callbacks
    from chorus.errors import DeliveryFailed

    view = submit(contentType="application/json", callback={"type": "email", "address": "claims@example.com"})
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    assert predictions.claim_callback(view["id"], "completed", seconds=45)
    # When the second one finishes the prediction and tries to send
    record = predictions.transition(view["id"], Status.SUCCEEDED, {"output": completed(view["id"]).output().as_dict()})
    assert record is not None
    # Then it does not send, and asks to be retried in case the first one fails
    with pytest.raises(DeliveryFailed, match="another invocation"):
        callbacks.notify(record, "completed", lifecycle.render)
    assert boto3.client("ses").get_send_quota()["SentLast24Hours"] == 0
