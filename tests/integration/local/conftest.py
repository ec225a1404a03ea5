"""An in-process local stack built from tests/fixtures/local_functions/template.yaml.

The tiny handlers there make the runtime, pollers, SNS deliveries and API observable without the
Chorus handlers: they write what they receive to the observations bucket.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chorus_local.stack import LocalStack
from tests.integration.local.support import REPO_ROOT, STACK_NAME, TEST_TEMPLATE, free_port


class CapturedLogs(io.StringIO):
    """The stack's single log stream, kept for assertions."""


@pytest.fixture(scope="package")
def local_stack() -> Iterator[LocalStack]:
    stack = LocalStack(
        REPO_ROOT,
        api_port=free_port(),
        aws_port=free_port(),
        template=TEST_TEMPLATE,
        stack_name=STACK_NAME,
        sagemaker=False,
        async_retry_delays=(0.2, 0.2),
        log_stream=CapturedLogs(),
        warm_workers=False,
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def aws(local_stack: LocalStack) -> Callable[[str], Any]:
    """boto3 clients against the stack's AWS endpoint."""
    assert local_stack.endpoint is not None
    return local_stack.endpoint.client


@pytest.fixture(scope="package")
def observations(local_stack: LocalStack, aws: Callable[[str], Any]) -> Callable[[str], list[str]]:
    """Keys the fixture handlers wrote under a prefix of the observations bucket."""
    assert local_stack.provisioned is not None
    bucket = local_stack.provisioned.ref("ObservationsBucket")

    def keys(prefix: str) -> list[str]:
        listing = aws("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    keys.bucket = bucket  # type: ignore[attr-defined]
    return keys
