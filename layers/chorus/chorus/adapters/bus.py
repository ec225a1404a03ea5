"""EventBridge: the model-version events others subscribe to (source `chorus.versions`)."""

from __future__ import annotations

import json
from typing import Any

from chorus.core import settings
from chorus.core.clients import client
from chorus.core.observability import logger

SOURCE = "chorus.versions"
DETAIL_TYPE = "Chorus Model Version State Change"


def publish_version_event(detail: dict[str, Any]) -> None:
    """One event per version transition. The transition is already stored (and in the history), so
    a failed publish is logged, not raised: the workflow must not redo a committed decision."""
    response = client("events").put_events(
        Entries=[
            {
                "Source": SOURCE,
                "DetailType": DETAIL_TYPE,
                "Detail": json.dumps(detail, default=str),
                "EventBusName": settings.load(settings.EventBusSettings).event_bus_name,
            }
        ]
    )
    if response.get("FailedEntryCount"):
        logger.warning("version event not published", extra={"detail": detail, "entries": response.get("Entries")})
