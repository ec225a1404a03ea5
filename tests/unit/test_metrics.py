"""The per-service metrics against moto: what each prediction is counted under (EMF lines on
stdout, as Lambda sends them to CloudWatch), counted once, never leaking onto the handler's own."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from chorus.adapters import payloads, predictions
from chorus.api.models import PredictionRequest
from chorus.core.observability import metrics
from chorus.domain import cancel, clocks, dispatch, results, steps
from chorus.domain import submit as submission
from chorus.events.models import StepInvocation
from chorus.events.sagemaker import InferenceResult
from tests.support import aws_resources
from tests.support.aws_resources import TENANT, caller, load_event

ACME = caller()
PIXELS = {"pixels": [0] * 64}


def emitted(text: str) -> list[dict[str, Any]]:
    """Every EMF document printed: {"metrics": {name: value}, "dimensions": {name: value}}."""
    found = []
    for line in text.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        (names,) = directive["Dimensions"]
        found.append(
            {
                "namespace": directive["Namespace"],
                "dimensions": {name: document[name] for name in names},
                "metrics": {m["Name"]: _single(document[m["Name"]]) for m in directive["Metrics"]},
                "units": {m["Name"]: m["Unit"] for m in directive["Metrics"]},
            }
        )
    return found


def _single(value: Any) -> Any:
    # Powertools writes each value as a list of the values added (one here).
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def uploaded(service: str, *, dispatched: bool = True) -> str:
    """A prediction of `service` whose JSON input has arrived (and, unless told, was dispatched;
    an ensemble's steps run without: moto has no state machine here)."""
    view = submission.submit(PredictionRequest(service=service, contentType="application/json"), ACME)
    key = payloads.upload_key(TENANT, view["id"])
    boto3.client("s3").put_object(
        Bucket=aws_resources.BUCKET, Key=key, Body=json.dumps(PIXELS).encode(), ContentType="application/json"
    )
    if dispatched:
        dispatch.receive_upload(aws_resources.BUCKET, key)
    return str(view["id"])


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


def step_of(parent_id: str, name: str, service: str) -> StepInvocation:
    event = load_event("get_transform_call_step.json")
    event["taskToken"] = f"token-{name}"
    event["parent"]["id"] = parent_id
    event["parent"]["input"] = {
        "bucket": aws_resources.BUCKET,
        "key": payloads.upload_key(TENANT, parent_id),
        "contentType": "application/json",
    }
    event["step"] = {"name": name, "service": service, "input": "{{ input }}"}
    return StepInvocation.model_validate(event)


def test_a_prediction_is_counted_under_its_service_when_submitted_and_when_it_succeeds(aws, capsys):
    # Given a digits-forest prediction that was submitted and dispatched
    prediction_id = uploaded("digits-forest")
    # When its result arrives
    results.record_result(completed(prediction_id))
    # Then it was counted under its service, with how long it waited and ran, in seconds
    found = emitted(capsys.readouterr().out)
    assert [d["dimensions"] for d in found] == [{"service": "digits-forest"}] * 2
    submitted, succeeded = found
    assert submitted["metrics"] == {"PredictionsSubmitted": 1}
    assert set(succeeded["metrics"]) == {"PredictionsSucceeded", "PredictionWaitSeconds", "PredictionRunSeconds"}
    assert succeeded["units"]["PredictionRunSeconds"] == "Seconds"
    record = predictions.get(prediction_id)
    assert succeeded["metrics"]["PredictionRunSeconds"] == pytest.approx(
        (record.completed_at - record.started_at).total_seconds(),  # type: ignore[operator]
        abs=0.001,
    )
    assert {d["namespace"] for d in found} == {"ChorusTests"}  # POWERTOOLS_METRICS_NAMESPACE


def test_a_duplicate_result_is_not_counted_again(aws, capsys):
    prediction_id = uploaded("digits-forest")
    results.record_result(completed(prediction_id))
    capsys.readouterr()
    # When SNS delivers the same result again
    results.record_result(completed(prediction_id))
    # Then nothing more is counted
    assert emitted(capsys.readouterr().out) == []


def test_an_expired_prediction_is_counted_expired_without_timings(aws, capsys):
    # Given a prediction whose upload URL expired a day ago with no input
    view = submission.submit(PredictionRequest(service="digits-svm", contentType="image/png"), ACME)
    record = predictions.get(view["id"])
    lapsed = record.model_copy(update={"upload_expires_at": record.created_at - timedelta(days=1)})
    # When its clock is enforced
    clocks.enforce(lapsed)
    # Then it is counted expired under its service, with no wait or run time
    found = emitted(capsys.readouterr().out)
    assert found[-1]["dimensions"] == {"service": "digits-svm"}
    assert found[-1]["metrics"] == {"PredictionsExpired": 1}


def test_an_ensemble_step_is_counted_under_its_ensemble_and_step(aws, capsys):
    # Given a digits-ensemble prediction whose svm step is started and then succeeds
    parent_id = uploaded("digits-ensemble", dispatched=False)
    answer = steps.run_step(step_of(parent_id, "svm", "digits-svm"))
    results.record_result(completed(answer["childId"]))
    # Then the step is counted under the ensemble's name with the step's, never the model's alone
    found = emitted(capsys.readouterr().out)
    step_counts = [d for d in found if "step" in d["dimensions"]]
    assert [d["dimensions"] for d in step_counts] == [{"service": "digits-ensemble", "step": "svm"}] * 2
    assert [sorted(d["metrics"]) for d in step_counts] == [
        ["PredictionsSubmitted"],
        ["PredictionRunSeconds", "PredictionWaitSeconds", "PredictionsSucceeded"],
    ]
    assert all(d["dimensions"] != {"service": "digits-svm"} for d in found)


def test_canceling_an_ensemble_counts_it_and_each_unfinished_step_canceled(aws, capsys):
    parent_id = uploaded("digits-ensemble", dispatched=False)
    steps.run_step(step_of(parent_id, "forest", "digits-forest"))
    capsys.readouterr()
    cancel.cancel(ACME, parent_id)
    canceled = [d["dimensions"] for d in emitted(capsys.readouterr().out) if "PredictionsCanceled" in d["metrics"]]
    assert canceled == [{"service": "digits-ensemble"}, {"service": "digits-ensemble", "step": "forest"}]


def test_the_service_dimension_never_reaches_the_handlers_own_metrics(aws, capsys):
    # Given a handler's metric and a prediction counted in the same invocation
    metrics.add_metric(name="WaitsRefused", unit="Count", value=1)
    uploaded("digits-svm")
    # When the handler's metrics are flushed
    metrics.flush_metrics()
    # Then they carry only the application's service dimension
    (shared,) = [d for d in emitted(capsys.readouterr().out) if "WaitsRefused" in d["metrics"]]
    assert shared["dimensions"] == {"service": "chorus"}
