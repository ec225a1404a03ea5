from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import aws_resources

# Powertools reads these when chorus.observability is first imported, as Lambda sets them before.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ChorusTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "chorus")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")


def _reset_chorus_caches() -> None:
    from chorus.adapters import versions
    from chorus.core import clients, settings
    from chorus.model import registry

    versions.forget_cached_routing()
    settings.load.cache_clear()
    clients.reset_clients()
    registry._load.cache_clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A moto account holding the stack's tables, bucket, topics and sender, and the sample events'
    two tenants (aws_resources.seed_tenants)."""
    from moto import mock_aws

    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ChorusTests")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "chorus")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        env = aws_resources.provision()
        env.update(
            PREDICTIONS_TABLE=aws_resources.TABLE,
            IDEMPOTENCY_TABLE=aws_resources.IDEMPOTENCY_TABLE,
            PAYLOADS_BUCKET=aws_resources.BUCKET,
            SENDER_EMAIL=aws_resources.SENDER,
            STATE_MACHINE_ARN_PREFIX="arn:aws:states:us-east-1:123456789012:stateMachine:chorus-test-",
            WEBHOOK_ALLOWED_NETWORKS="",
            WEBHOOK_RETRY_SCHEDULE="0,0,0",
            WEBHOOK_ATTEMPT_SECONDS="5",
            REST_API_ID=aws_resources.REST_API_ID,  # tenants' usage plans name this API's stage
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        _reset_chorus_caches()
        aws_resources.seed_tenants()
        yield env
    _reset_chorus_caches()


@pytest.fixture
def custom_registry(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Any:  # type: ignore[no-untyped-def]
    """`custom_registry(*services)`: the packaged registry with these services added or replaced,
    served through REGISTRY_FILE as an operator's own file would be."""
    import json

    from tests.support.registry_documents import packaged_with

    def use(*services: dict[str, Any]) -> None:
        path = tmp_path / "services.json"
        path.write_text(json.dumps(packaged_with(*services)))
        monkeypatch.setenv("REGISTRY_FILE", str(path))
        _reset_chorus_caches()

    return use
