"""The monitor over moto S3: baselines from reference lines, windows of capture records judged
against them (held-out digits pass, inverted ones drift), reports and metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import joblib
import numpy as np
import pytest

from chorus.core.clients import client
from chorus_local.models.train import MODEL_DIRS, MODEL_FILE, MODELS_ROOT, ensure_trained
from tests.support.aws_resources import BUCKET
from tests.support.handlers import FakeLambdaContext
from tests.support.registry_documents import model
from tests.unit.monitor.conftest import capture_line

WINDOW = {"since": "2026-12-03T12:00:00Z", "until": "2026-12-03T13:00:00Z"}
FOLDER = "reports/digits-svm/20261203T120000Z-20261203T130000Z"


def put(key: str, lines: list[bytes]) -> None:
    client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"\n".join(lines) + b"\n")


def read(key: str) -> Any:
    return json.loads(client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def invoke(package, event: dict[str, Any]) -> dict[str, Any]:
    return package.app.handler(event, FakeLambdaContext())


def lines_of(rows: np.ndarray, labels: list[Any], minute: int = 0, prefix: str = "e") -> list[bytes]:
    return [
        capture_line(f"{prefix}-{i}", f"2026-12-03T12:{minute + i * 50 // len(rows):02d}:07.000Z", row, int(label))
        for i, (row, label) in enumerate(zip(rows, labels, strict=True))
    ]


def emf(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]


@pytest.fixture
def baselined(aws, package, split) -> dict[str, Any]:
    """digits-svm's baseline from its training split, made by the baseline action."""
    data = [
        json.dumps({"input": {"pixels": [float(v) for v in row]}, "output": {"label": int(y)}}).encode()
        for row, y in zip(split.x_train, split.y_train, strict=True)
    ]
    put("baselines/digits-svm/data.jsonl", data)
    return invoke(
        package, {"action": "baseline", "service": "digits-svm", "dataKey": "baselines/digits-svm/data.jsonl"}
    )


def test_baseline_action_writes_statistics_and_constraints(baselined, split) -> None:
    assert baselined == {
        "service": "digits-svm",
        "records": len(split.x_train),
        "features": 64,
        "statisticsKey": "baselines/digits-svm/statistics.json",
        "constraintsKey": "baselines/digits-svm/constraints.json",
    }
    statistics = read("baselines/digits-svm/statistics.json")
    assert statistics["records"] == len(split.x_train) and statistics["createdAt"].endswith("Z")
    assert set(statistics["label"]["distribution"]) == {str(d) for d in range(10)}
    assert len(read("baselines/digits-svm/constraints.json")["features"]) == 64


def test_held_out_digits_are_reported_ok_and_written(baselined, package, split, capsys) -> None:
    # Given 200 held-out digits captured in the window
    put("capture/digits-svm/2026/12/03/12/chorus-capture-1", lines_of(split.x_test[:200], list(split.y_test[:200])))
    capsys.readouterr()
    # When the window is judged
    (report,) = invoke(package, {"action": "run", "service": "digits-svm", **WINDOW})["reports"]
    # Then nothing drifted, and the report's files are in place
    assert report["status"] == "ok" and report["violations"] == [] and report["records"] == 200
    assert report["window"] == {"since": "2026-12-03T12:00:00.000Z", "until": "2026-12-03T13:00:00.000Z"}
    assert report["tests"] == 65 and report["alphaPerTest"] == pytest.approx(0.01 / 65)
    assert report["baseline"]["records"] == len(split.x_train) and report["unreadableRecords"] == 0
    assert report["keys"]["statistics"] == f"{FOLDER}/statistics.json"
    assert read(f"{FOLDER}/report.json") == report == read("reports/digits-svm/latest.json")
    assert read(f"{FOLDER}/constraint_violations.json") == {"violations": []}
    assert read(f"{FOLDER}/statistics.json")["features"]["pixels[27]"]["count"] == 200
    metrics = emf(capsys.readouterr().out)
    per_service = [m for m in metrics if "MonitoredRecords" in m]
    assert per_service[0]["MonitoredRecords"] == [200.0] and per_service[0]["DriftedFeatures"] == [0.0]
    assert per_service[0]["service"] == "digits-svm"
    assert per_service[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    per_feature = [m for m in metrics if "FeatureDrift" in m]
    assert per_feature[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "feature"]]
    drift = {m["feature"]: m["FeatureDrift"][0] for m in per_feature}
    assert len(drift) == 65 and drift["label"] < 0.15


def test_inverted_digits_drift_on_pixels_and_label(baselined, package, split, capsys) -> None:
    # Given 200 inverted digits and what the real svm model answers for them
    ensure_trained()
    svm = joblib.load(MODELS_ROOT / MODEL_DIRS["svm"] / MODEL_FILE)
    inverted = 16 - split.x_test[:200]
    labels = [int(v) for v in svm.classes_[np.argmax(svm.predict_proba(inverted), axis=1)]]
    put("capture/digits-svm/2026/12/03/12/chorus-capture-1", lines_of(inverted, labels))
    capsys.readouterr()
    # When the window is judged
    (report,) = invoke(package, {"action": "run", "service": "digits-svm", **WINDOW})["reports"]
    # Then pixels and the label drift, in the report, its SageMaker-style violations and the metrics
    drifted = {v["feature"]: v for v in report["violations"]}
    assert report["status"] == "drift" and len(drifted) > 40 and "label" in drifted
    assert drifted["pixels[0]"]["measure"] == "constant_changed_fraction"
    violations = read(f"{FOLDER}/constraint_violations.json")["violations"]
    assert {v["feature_name"] for v in violations} == set(drifted)
    assert {v["constraint_check_type"] for v in violations} == {"baseline_drift_check"}
    per_service = next(m for m in emf(capsys.readouterr().out) if "DriftedFeatures" in m)
    assert per_service["DriftedFeatures"] == [float(len(drifted))]


def test_the_api_answers_a_real_report_exactly_as_its_openapi_model(baselined, package, split) -> None:
    from chorus.domain import monitoring
    from tests.support.openapi import problems

    # Given a drift report and an ok one, written by the monitor itself
    put("capture/digits-svm/2026/12/03/12/chorus-capture-1", lines_of(16 - split.x_test[:200], [0] * 200))
    invoke(package, {"action": "run", "service": "digits-svm", **WINDOW})
    drifted = monitoring.describe("digits-svm")
    # Then what GET /services/{name}/monitoring answers is exactly its model, also with no report yet
    assert drifted["report"]["status"] == "drift"
    assert problems(drifted, "Monitoring") == []
    assert problems(monitoring.describe("digits-forest"), "Monitoring") == []


def test_duplicates_and_records_outside_the_window_are_not_counted(baselined, package, split) -> None:
    # Given the window's records delivered twice, a late arrival in the next hour's prefix, records
    # just outside the window, and a line that is not JSON
    inside = lines_of(split.x_test[:100], list(split.y_test[:100]))
    put("capture/digits-svm/2026/12/03/12/a", inside)
    put("capture/digits-svm/2026/12/03/12/b", inside)  # Firehose's at-least-once retry
    late = capture_line("late", "2026-12-03T12:59:59.999Z", split.x_test[100], int(split.y_test[100]))
    after = capture_line("after", "2026-12-03T13:00:00.000Z", split.x_test[101], int(split.y_test[101]))
    before = capture_line("before", "2026-12-03T11:59:59.999Z", split.x_test[102], int(split.y_test[102]))
    put("capture/digits-svm/2026/12/03/13/c", [late, after, b"{broken"])
    put("capture/digits-svm/2026/12/03/11/d", [before])
    # When / Then
    (report,) = invoke(package, {"action": "run", "service": "digits-svm", **WINDOW})["reports"]
    assert report["records"] == 101 and report["unreadableRecords"] == 1


def test_a_small_window_is_reported_but_not_judged(baselined, package, split) -> None:
    put("capture/digits-svm/2026/12/03/12/a", lines_of(16 - split.x_test[:10], [1] * 10))
    (report,) = invoke(package, {"action": "run", "service": "digits-svm", **WINDOW})["reports"]
    assert report["status"] == "too_few_records" and report["violations"] == [] and report["records"] == 10


def test_a_service_without_baseline_is_reported_as_such(aws, package, split) -> None:
    put("capture/digits-svm/2026/12/03/12/a", lines_of(split.x_test[:50], list(split.y_test[:50])))
    (report,) = invoke(package, {"action": "run", "service": "digits-svm", **WINDOW})["reports"]
    assert report["status"] == "no_baseline" and report["baseline"] is None and report["records"] == 50
    assert read(f"{FOLDER}/statistics.json")["features"]["pixels[27]"]["count"] == 50


def test_the_scheduled_run_judges_every_capturing_service_over_the_last_full_window(
    aws, package, custom_registry
) -> None:
    # Given the registry plus a service that captures nothing
    custom_registry(model("uncaptured"))
    # When the schedule's event arrives
    reports = invoke(package, {"action": "run", "windowMinutes": 60})["reports"]
    # Then every service declaring capture is judged, over the last full hour
    from chorus.model.registry import get_registry

    capturing = [s.name for s in get_registry().services if getattr(s, "capture", None) is not None]
    assert [r["service"] for r in reports] == capturing and "uncaptured" not in capturing
    window = package.monitor.settled_window(datetime.now(UTC), 60, 60)
    assert reports[0]["window"] == window.as_dict() or reports[0]["window"]["until"] < window.as_dict()["until"]


@pytest.mark.parametrize(
    ("now", "minutes", "since", "until"),
    [
        ("2026-12-03T13:05:00", 60, "2026-12-03T12:00:00", "2026-12-03T13:00:00"),
        ("2026-12-03T13:59:59", 60, "2026-12-03T12:00:00", "2026-12-03T13:00:00"),
        ("2026-12-03T13:00:00", 60, "2026-12-03T12:00:00", "2026-12-03T13:00:00"),
        ("2026-12-03T13:29:00", 15, "2026-12-03T13:00:00", "2026-12-03T13:15:00"),
        ("2026-12-03T00:10:00", 1440, "2026-12-02T00:00:00", "2026-12-03T00:00:00"),
    ],
)
def test_last_full_window_ends_at_now_floored_to_the_window(package, now, minutes, since, until) -> None:
    window = package.monitor.last_full_window(datetime.fromisoformat(now).replace(tzinfo=UTC), minutes)
    assert (window.since.isoformat(), window.until.isoformat()) == (f"{since}+00:00", f"{until}+00:00")


@pytest.mark.parametrize(
    ("now", "buffer_seconds", "since", "until"),
    [
        # 60 s of Firehose buffering and 120 s to transform and write: a window settles 3 minutes after its end
        ("2026-12-03T13:05:00", 60, "2026-12-03T12:00:00", "2026-12-03T13:00:00"),
        ("2026-12-03T13:03:00", 60, "2026-12-03T12:00:00", "2026-12-03T13:00:00"),
        ("2026-12-03T13:02:59", 60, "2026-12-03T11:00:00", "2026-12-03T12:00:00"),
        ("2026-12-03T13:16:00", 900, "2026-12-03T11:00:00", "2026-12-03T12:00:00"),
        ("2026-12-03T13:17:00", 900, "2026-12-03T12:00:00", "2026-12-03T13:00:00"),
    ],
)
def test_the_scheduled_window_is_the_last_one_firehose_has_delivered(package, now, buffer_seconds, since, until):
    # Whatever minute an hourly schedule fires at, consecutive runs judge consecutive hours, and
    # never one whose last records may still be in the capture stream's buffer
    window = package.monitor.settled_window(datetime.fromisoformat(now).replace(tzinfo=UTC), 60, buffer_seconds)
    assert (window.since.isoformat(), window.until.isoformat()) == (f"{since}+00:00", f"{until}+00:00")


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({"action": "sleep"}, "action"),
        ({"action": "run", "since": "2026-12-03T12:00:00Z"}, "both since and until"),
        ({"action": "run", "since": "2026-12-03T13:00:00Z", "until": "2026-12-03T12:00:00Z"}, "before until"),
        ({"action": "run", "since": "2026-12-03T12:00:00", "until": "2026-12-03T13:00:00"}, "timezone"),
        ({"action": "run", "windowMinutes": 0}, "windowMinutes"),
        ({"action": "run", "bufferSeconds": 901}, "bufferSeconds"),
        ({"action": "run", "colour": "red"}, "colour"),
        ({"action": "baseline", "service": "digits-svm"}, "dataKey"),
    ],
)
def test_a_bad_event_is_a_value_error_naming_the_problem(package, event, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        package.app.parse(event)


def test_an_unknown_service_is_a_value_error(aws, package) -> None:
    with pytest.raises(ValueError, match="unknown service 'nope'"):
        invoke(package, {"action": "baseline", "service": "nope", "dataKey": "baselines/nope/data.jsonl"})
    with pytest.raises(ValueError, match="unknown service 'nope'"):
        invoke(package, {"action": "run", "service": "nope", **WINDOW})


def test_a_baseline_line_that_cannot_be_read_fails_the_baseline_naming_it(aws, package) -> None:
    put("baselines/digits-svm/data.jsonl", [b'{"input": {"pixels": [1]}}', b'{"neither": 1}'])
    with pytest.raises(ValueError, match=r"line 2 of baselines/digits-svm/data\.jsonl"):
        invoke(package, {"action": "baseline", "service": "digits-svm", "dataKey": "baselines/digits-svm/data.jsonl"})
    with pytest.raises(ValueError, match="no object"):
        invoke(package, {"action": "baseline", "service": "digits-svm", "dataKey": "baselines/none.jsonl"})
