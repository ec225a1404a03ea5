"""The deadline queue adapter: a delayed SQS message per request that carries a deadline."""

from __future__ import annotations

import json
import math
from datetime import datetime

from chorus.aws import client
from chorus.records import iso, utcnow
from chorus.settings import get_settings

MAX_DELAY_SECONDS = 900  # SQS's longest delay; a later deadline is re-queued when this one fires


def schedule(prediction_id: str, at: datetime) -> None:
    delay = min(MAX_DELAY_SECONDS, max(0, math.ceil((at - utcnow()).total_seconds())))
    client("sqs").send_message(
        QueueUrl=get_settings().deadline_queue_url,
        MessageBody=json.dumps({"deadline": {"predictionId": prediction_id, "at": iso(at)}}),
        DelaySeconds=delay,
    )
