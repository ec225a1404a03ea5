"""Logger, metrics and tracer shared by every function (one service name, one namespace)."""

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()

# A request that records no business metric is normal (a GET, a duplicate event): no warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")
