"""boto3 clients, created once per execution environment and only when first needed.

Endpoints come from the standard AWS_ENDPOINT_URL* variables, so the same code talks to AWS,
the local stack or moto without a branch.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=70)
# Presigned URLs must be SigV4: SigV2 is refused by newer Regions and dropped by S3 elsewhere.
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))
# Capture is best effort and runs after a prediction has finished: one quick attempt, so an outage
# costs the worker at most a few seconds per prediction and never a retry storm (domain/capture.py).
_FIREHOSE_CONFIG = _CONFIG.merge(
    Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1, read_timeout=2)
)
_CONFIGS = {"s3": _S3_CONFIG, "firehose": _FIREHOSE_CONFIG}


@cache
def client(service: str) -> Any:
    config = _CONFIGS.get(service, _CONFIG)
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (moto's mock_aws patches boto3 per test)."""
    client.cache_clear()
