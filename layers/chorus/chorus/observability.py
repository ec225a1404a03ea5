"""Logger, metrics and tracer shared by every function (one service name, one namespace)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()
