"""Logger, metrics and tracer shared by every function (one service name, one namespace).

Metrics are CloudWatch embedded metric format (EMF): log lines, no AWS call. `metrics` is the
handler's instance, flushed by `@metrics.log_metrics`, whose one dimension is Powertools' `service`
(the application, `chorus`). A metric about one registered service goes through `per_service`
instead: its own EMF line whose `service` dimension is the registered service (and `step`, for an
ensemble's step), so that dimension never leaks onto the handler's other metrics. The names and
dimensions are listed in docs/metrics.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics

logger = Logger()
metrics = Metrics()
tracer = Tracer()

# A request that records no business metric is normal (a GET, a duplicate event): no warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def about(tenant: str, token_id: str | None, prediction_id: str | None = None) -> None:
    """Every following log line of this invocation names whose work it is: the tenant and the token
    that created the prediction (background functions learn them from the record, not a request)."""
    logger.append_keys(tenant=tenant, token_id=token_id, prediction_id=prediction_id)


@contextmanager
def per_service(service: str, step: str | None = None) -> Iterator[EphemeralMetrics]:
    """Metrics with the dimensions `service` (and `step`), published as one EMF line on exit.

    An isolated Powertools metrics instance (not the handler's shared one), so its dimensions apply
    to exactly the metrics added inside the block."""
    scoped = EphemeralMetrics()
    scoped.add_dimension(name="service", value=service)
    if step is not None:
        scoped.add_dimension(name="step", value=step)
    yield scoped
    if scoped.metric_set:
        scoped.flush_metrics()


@contextmanager
def per_feature(service: str, feature: str) -> Iterator[EphemeralMetrics]:
    """Metrics of one feature of a service's drift report (dimensions `service` and `feature`), one
    EMF line on exit. Features are bounded by the service's baseline, so the dimension's values are."""
    scoped = EphemeralMetrics()
    scoped.add_dimension(name="service", value=service)
    scoped.add_dimension(name="feature", value=feature)
    yield scoped
    if scoped.metric_set:
        scoped.flush_metrics()
