"""Per-service prediction metrics, counted where the change happens and only by the write that
made it (a duplicate event finds the prediction moved on and counts nothing).

Dimensions: `service` — the registered service a client asked for; for an ensemble's step, the
ensemble's name with `step` = the step's name (each fanned-out item and each retried attempt is a
step prediction of its own). No tenant dimension: every dimension value is a metric of its own,
and services and steps are bounded by the registry, tenants are not. docs/metrics.md lists them.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from chorus.api.views import timings
from chorus.core.observability import per_service
from chorus.model.records import PredictionRecord, Status

# The count each terminal state adds to (docs/metrics.md).
FINISHED = {
    Status.SUCCEEDED: "PredictionsSucceeded",
    Status.FAILED: "PredictionsFailed",
    Status.CANCELED: "PredictionsCanceled",
    Status.EXPIRED: "PredictionsExpired",
    Status.SKIPPED: "PredictionsSkipped",
}


def _dimensions(record: PredictionRecord) -> tuple[str, str | None]:
    if record.step_name is None:
        return record.service, None
    return record.parent_service or record.service, record.step_name


def submitted(record: PredictionRecord) -> None:
    """A prediction was created: a client's, or an ensemble's step."""
    if record.shadow_of:
        return  # a shadow is a candidate version's evidence, not the service's traffic
    with per_service(*_dimensions(record)) as scoped:
        scoped.add_metric(name="PredictionsSubmitted", unit=MetricUnit.Count, value=1)


def finished(record: PredictionRecord) -> None:
    """A prediction reached its terminal state: its count, and how long it waited and ran (input
    to dispatch, dispatch to result: the `metrics` of its representation)."""
    if record.shadow_of:
        return
    measured = timings(record)
    with per_service(*_dimensions(record)) as scoped:
        scoped.add_metric(name=FINISHED[record.status], unit=MetricUnit.Count, value=1)
        if "waitSeconds" in measured:
            scoped.add_metric(name="PredictionWaitSeconds", unit=MetricUnit.Seconds, value=measured["waitSeconds"])
        if "runSeconds" in measured:
            scoped.add_metric(name="PredictionRunSeconds", unit=MetricUnit.Seconds, value=measured["runSeconds"])


def capture_dropped(record: PredictionRecord) -> None:
    """A sampled prediction the capture stream refused or could not be reached for: missing from
    the monitor's windows (docs/monitoring.md)."""
    with per_service(record.service) as scoped:
        scoped.add_metric(name="CaptureRecordsDropped", unit=MetricUnit.Count, value=1)
