"""The result topics: SageMaker-format notifications, success or error."""

from __future__ import annotations

import json
from typing import Any

from chorus.core import settings
from chorus.core.clients import client


def publish_result(notification: dict[str, Any]) -> None:
    topics = settings.load(settings.TopicSettings)
    topic = topics.success_topic_arn if notification["invocationStatus"] == "Completed" else topics.error_topic_arn
    client("sns").publish(TopicArn=topic, Message=json.dumps(notification))
