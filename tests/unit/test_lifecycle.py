"""The prediction lifecycle against moto: submit, input, dispatch, result, callbacks, cancel."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import boto3
import pytest

from chorus.adapters import payloads, predictions
from chorus.api.models import PredictionRequest
from chorus.core.clock import iso, utcnow
from chorus.core.errors import InvalidCallback, NotCancelable, ServiceDisabled, UnknownService, UnsupportedContentType
from chorus.domain import cancel, clocks, dispatch, queries, results
from chorus.domain import submit as submission
from chorus.events.sagemaker import InferenceResult
from chorus.model.records import Status
from tests.support import aws_resources
from tests.support.aws_resources import TENANT, caller

ACME = caller()

PIXELS = {"pixels": [0] * 20 + [16] * 24 + [0] * 20}


def submit(**fields) -> dict:
    return submission.submit(PredictionRequest.model_validate({"service": "digits-forest", **fields}), ACME)


def upload(prediction_id: str, body: bytes, content_type: str) -> None:
    boto3.client("s3").put_object(
        Bucket=aws_resources.BUCKET, Key=payloads.upload_key(TENANT, prediction_id), Body=body, ContentType=content_type
    )
    dispatch.receive_upload(aws_resources.BUCKET, payloads.upload_key(TENANT, prediction_id))


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
    assert {"key": f"inputs/{TENANT}/{view['id']}/input"} in conditions
    assert view["upload"]["fields"]["key"] == f"inputs/{TENANT}/{view['id']}/input"


def test_unknown_service_is_refused_with_the_known_names(aws):
    with pytest.raises(UnknownService, match="digits-svm"):
        submission.submit(PredictionRequest(service="no-such-model"), ACME)


def test_content_type_the_service_does_not_accept_is_refused(aws):
    with pytest.raises(UnsupportedContentType, match="image/png, application/json"):
        submit(contentType="text/csv")


def test_disabled_service_is_refused(aws, tmp_path, monkeypatch):
    registry = json.loads((aws_resources.REPO / "layers/chorus/chorus/model/services.json").read_text())
    registry["services"][1]["enabled"] = False
    (tmp_path / "services.json").write_text(json.dumps(registry))
    monkeypatch.setenv("REGISTRY_FILE", str(tmp_path / "services.json"))
    from chorus.core import settings

    settings.load.cache_clear()
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
    assert record.input is not None and record.input.key == f"inputs/{TENANT}/{view['id']}/input"
    assert record.queued_at is not None and record.started_at is not None


def test_duplicate_upload_event_dispatches_once(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    first = predictions.get(view["id"])
    # When S3 delivers the same event again
    dispatch.receive_upload(aws_resources.BUCKET, payloads.upload_key(TENANT, view["id"]))
    # Then nothing changes
    assert predictions.get(view["id"]) == first


def test_oversized_upload_fails_the_prediction(aws, monkeypatch):
    view = submission.submit(PredictionRequest(service="digits-stacker", contentType="application/json"), ACME)
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
    results.record_result(completed(view["id"]))
    # Then the prediction succeeded and its presigned URL serves the output
    described = queries.describe(ACME, view["id"])
    assert described["status"] == "succeeded"
    assert described["output"]["contentType"] == "application/json"
    assert "Signature" in described["output"]["url"] or "X-Amz-Signature" in described["output"]["url"]
    assert set(described["metrics"]) == {"waitSeconds", "runSeconds", "totalSeconds"}


def test_failure_notification_fails_with_the_models_reason(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    results.record_result(
        InferenceResult.model_validate(
            {
                "invocationStatus": "Failed",
                "inferenceId": view["id"],
                "failureReason": "input is not a readable PNG image",
            }
        )
    )
    described = queries.describe(ACME, view["id"])
    assert described["status"] == "failed"
    assert described["error"] == {"code": "model_error", "message": "input is not a readable PNG image"}


def test_duplicate_success_notification_changes_nothing_and_mails_once(aws):
    view = submit(contentType="application/json", callback={"type": "email", "address": "claims@example.com"})
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    result = completed(view["id"])
    results.record_result(result)
    after_first = predictions.get(view["id"])
    # When SNS delivers the same message again, and the delivery consumer runs
    results.record_result(result)
    aws_resources.run_deliveries()
    # Then the record's state is untouched and exactly one e-mail went out
    final = predictions.get(view["id"])
    assert final.model_dump(exclude={"deliveries"}) == after_first.model_dump(exclude={"deliveries"})
    assert final.deliveries["completed"].status == "delivered"
    assert boto3.client("ses").get_send_quota()["SentLast24Hours"] == 1


def test_terminal_state_never_changes(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    cancel.cancel(ACME, view["id"])
    # When the model's result arrives after the cancel
    results.record_result(completed(view["id"]))
    # Then the prediction stays canceled
    assert predictions.get(view["id"]).status is Status.CANCELED


def test_cancel_a_finished_prediction_is_a_conflict(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    results.record_result(completed(view["id"]))
    with pytest.raises(NotCancelable, match="succeeded"):
        cancel.cancel(ACME, view["id"])


def test_cancel_twice_answers_the_canceled_prediction(aws):
    view = submit(contentType="application/json")
    assert cancel.cancel(ACME, view["id"]).status is Status.CANCELED
    assert cancel.cancel(ACME, view["id"]).status is Status.CANCELED


def test_prediction_without_upload_expires_after_its_url(aws):
    view = submit(contentType="application/json")
    aws_resources.set_attribute(view["id"], "uploadExpiresAt", iso(utcnow() - timedelta(minutes=5)))
    described = queries.describe(ACME, view["id"])
    assert described["status"] == "expired"
    assert described["error"]["code"] == "expired"


def test_upload_after_expiry_is_ignored(aws):
    view = submit(contentType="application/json")
    aws_resources.set_attribute(view["id"], "uploadExpiresAt", iso(utcnow() - timedelta(minutes=5)))
    queries.describe(ACME, view["id"])
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    assert predictions.get(view["id"]).status is Status.EXPIRED


def test_result_for_unknown_prediction_is_ignored(aws):
    results.record_result(completed("0" * 32))  # no exception, nothing created
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
    aws_resources.set_attribute(view["id"], "deadlineAt", iso(utcnow() - timedelta(seconds=1)))
    clocks.enforce_deadline(view["id"], utcnow() - timedelta(seconds=1))
    # Then the running prediction is canceled, saying why
    record = predictions.get(view["id"])
    assert record.status is Status.CANCELED
    assert record.error is not None and record.error.code == "deadline_exceeded"


def test_deadline_further_out_than_one_delay_is_requeued(aws):
    view = submit(contentType="application/json")
    before = aws_resources.delayed_deadlines()
    clocks.enforce_deadline(view["id"], utcnow() + timedelta(hours=2))
    assert predictions.get(view["id"]).status is Status.AWAITING_INPUT
    assert aws_resources.delayed_deadlines() == before + 1


def test_deadline_of_a_finished_prediction_changes_nothing(aws):
    view = submit(contentType="application/json", deadlineSeconds=60)
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    results.record_result(completed(view["id"]))
    clocks.enforce_deadline(view["id"], utcnow() - timedelta(seconds=1))
    assert predictions.get(view["id"]).status is Status.SUCCEEDED


def test_reading_a_prediction_past_its_deadline_cancels_it(aws):
    view = submit(contentType="application/json", deadlineSeconds=60)
    aws_resources.set_attribute(view["id"], "deadlineAt", iso(utcnow() - timedelta(seconds=5)))
    described = queries.describe(ACME, view["id"])
    assert (described["status"], described["error"]["code"]) == ("canceled", "deadline_exceeded")


def test_very_long_model_error_is_kept_readable(aws):
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    results.record_result(
        InferenceResult.model_validate(
            {"invocationStatus": "Failed", "inferenceId": view["id"], "failureReason": "Traceback\n" * 3000}
        )
    )
    described = queries.describe(ACME, view["id"])
    assert described["status"] == "failed" and len(described["error"]["message"]) == 4096


def test_due_upload_expiry_message_expires_the_prediction(aws):
    view = submit(contentType="application/json")
    aws_resources.set_attribute(view["id"], "uploadExpiresAt", iso(utcnow() - timedelta(minutes=5)))
    clocks.enforce_deadline(view["id"], utcnow())
    assert predictions.get(view["id"]).status is Status.EXPIRED


def test_inline_input_is_stored_where_uploads_land(aws):
    view = submit(input=PIXELS)
    assert view["status"] == "awaiting_input" and "upload" not in view
    stored = boto3.client("s3").get_object(Bucket=aws_resources.BUCKET, Key=payloads.upload_key(TENANT, view["id"]))
    assert json.loads(stored["Body"].read()) == PIXELS


def test_two_copies_of_one_delivery_message_send_one_email(aws):
    # Given a finished prediction whose e-mail was queued twice (two copies of its result)
    view = submit(contentType="application/json", callback={"type": "email", "address": "claims@example.com"})
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    result = completed(view["id"])
    results.record_result(result)
    results.record_result(result)
    # When the delivery consumer handles both messages
    handled = aws_resources.run_deliveries()
    # Then only the first claim sent it
    assert handled == 2
    assert boto3.client("ses").get_send_quota()["SentLast24Hours"] == 1


def test_recording_a_result_never_sends_a_callback_itself(aws):
    # Given a prediction with an e-mail callback
    view = submit(contentType="application/json", callback={"type": "email", "address": "claims@example.com"})
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    # When its result is recorded
    results.record_result(completed(view["id"]))
    # Then nothing was sent yet: the callback is only queued, and the representation says pending
    assert boto3.client("ses").get_send_quota()["SentLast24Hours"] == 0
    assert queries.describe(ACME, view["id"])["email"] == {"event": "completed", "status": "pending", "attempts": 0}


def test_async_prediction_without_a_result_times_out_at_its_run_deadline(aws, monkeypatch):
    # Given an async prediction dispatched to its endpoint, whose notification never comes
    view = submit(contentType="application/json")
    upload(view["id"], json.dumps(PIXELS).encode(), "application/json")
    record = predictions.get(view["id"])
    assert record.status is Status.RUNNING and record.run_deadline_at is not None
    # When the deadline queue's message for its run deadline arrives after that moment
    later = record.run_deadline_at + timedelta(seconds=2)
    monkeypatch.setattr(clocks, "utcnow", lambda: later)
    clocks.enforce_deadline(view["id"], record.run_deadline_at)
    # Then it failed with timed_out, naming the service
    failed = predictions.get(view["id"])
    assert failed.status is Status.FAILED
    assert failed.error is not None and failed.error.code == "timed_out"
    assert "digits-forest" in failed.error.message
