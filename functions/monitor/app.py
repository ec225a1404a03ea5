"""monitor: the scheduled drift run over captured predictions, and an operator's baselines.

    {"action": "run", "service"?: name, "since"?: ISO 8601, "until"?: ISO 8601, "windowMinutes"?: 60,
     "bufferSeconds"?: the capture stream's buffering interval, 60}
    {"action": "baseline", "service": name, "dataKey": "baselines/<service>/data.jsonl"}

A bad event raises InvalidEvent (a ValueError) naming what is wrong; so does an unknown service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from chorus.core.clock import utcnow
from chorus.core.observability import logger, metrics, tracer

import monitor

ServiceName = Annotated[str, Field(min_length=1, max_length=128)]


class InvalidEvent(monitor.MonitorError):
    pass


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RunEvent(_Event):
    action: Literal["run"]
    service: ServiceName | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    window_minutes: Annotated[int, Field(alias="windowMinutes", ge=1, le=7 * 24 * 60)] = 60
    # Without since and until: how long after a window's end its last records may reach S3.
    buffer_seconds: Annotated[int, Field(alias="bufferSeconds", ge=0, le=900)] = 60

    @model_validator(mode="after")
    def _window_complete(self) -> RunEvent:
        if (self.since is None) != (self.until is None):
            raise ValueError("give both since and until, or neither")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class BaselineEvent(_Event):
    action: Literal["baseline"]
    service: ServiceName
    data_key: Annotated[str, Field(alias="dataKey", min_length=1, max_length=1024)]


MonitorEvent: TypeAdapter[RunEvent | BaselineEvent] = TypeAdapter(
    Annotated[RunEvent | BaselineEvent, Field(discriminator="action")]
)


def parse(event: Any) -> RunEvent | BaselineEvent:
    try:
        return MonitorEvent.validate_python(event)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc'])) or 'event'}: {problem['msg']}" for problem in error.errors()
        )
        raise InvalidEvent(f"invalid monitor event: {problems}") from None


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event)
    now = utcnow()
    if isinstance(request, BaselineEvent):
        return monitor.make_baseline(request.service, request.data_key, now)
    if request.since is not None and request.until is not None:
        window = monitor.Window(request.since, request.until)
    else:
        window = monitor.settled_window(now, request.window_minutes, request.buffer_seconds)
    services = monitor.services_to_monitor(request.service)
    logger.info("monitoring", extra={"services": services, **window.as_dict()})
    return {"reports": [monitor.run(service, window, now) for service in services]}
