"""The monitor's CloudWatch metrics (EMF log lines in the stage's namespace; docs/metrics.md):

- `MonitoredRecords` (Count) and `DriftedFeatures` (Count, the window's violations; the service's
  alarm fires on >= 1), dimension `service`;
- `FeatureDrift` (None: the measure a feature is judged by, PSI, Jensen-Shannon distance or a
  fraction, whether it drifted or not), dimensions `service` and `feature`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chorus.core.observability import per_feature, per_service


def window_judged(service: str, records: int, violations: int, measures: Sequence[Mapping[str, Any]]) -> None:
    with per_service(service) as scoped:
        scoped.add_metric(name="MonitoredRecords", unit=MetricUnit.Count, value=records)
        scoped.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=violations)
    for measure in measures:
        with per_feature(service, str(measure["feature"])) as judged:
            judged.add_metric(name="FeatureDrift", unit=MetricUnit.NoUnit, value=float(measure["value"]))
