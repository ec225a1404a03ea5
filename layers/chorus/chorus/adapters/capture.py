"""The capture stream: one JSON line per captured prediction, to Amazon Data Firehose, which
batches them into the payloads bucket (through the capture transformation, functions/monitor)."""

from __future__ import annotations

import json
from typing import Any

from chorus.core import settings
from chorus.core.clients import client


def enabled() -> bool:
    return bool(settings.load(settings.CaptureSettings).capture_stream)


def put(record: dict[str, Any]) -> None:
    """Raises what boto3 raises: the caller decides that a capture failure is not a prediction's."""
    stream = settings.load(settings.CaptureSettings).capture_stream
    line = json.dumps(record, separators=(",", ":")) + "\n"
    client("firehose").put_record(DeliveryStreamName=stream, Record={"Data": line.encode()})
