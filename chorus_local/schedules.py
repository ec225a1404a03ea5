"""EventBridge Scheduler's `rate(…)` schedules with Lambda targets, run by one thread.

Like the Scheduler, each run is an asynchronous (Event) invocation of the target with the
schedule's `Input` (parsed JSON), so the target's own async retries and destinations apply. The
first run is one period after start (a schedule created now first fires one rate later); `cron(…)`
and `at(…)` expressions are logged and not run. `POST /_local/schedules/<name>` on the AWS gateway
runs a schedule now — the developer's "run it now" — and `GET /_local/schedules` lists them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chorus_local.lambda_runtime import LambdaRuntime

log = logging.getLogger("chorus_local.schedules")

_RATE = re.compile(r"^rate\((?P<count>[1-9][0-9]*) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """The period of a `rate(…)` expression; None for any other kind."""
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    return int(match["count"]) * _SECONDS[match["unit"].rstrip("s")]


@dataclass
class ScheduleConfig:
    logical_id: str
    name: str
    expression: str
    function: str  # the target, a function of the local runtime
    input: str = "{}"
    enabled: bool = True
    next_run: float = field(default=0.0)


class Schedules:
    def __init__(self, configs: list[ScheduleConfig], runtime: LambdaRuntime) -> None:
        self._schedules = {c.name: c for c in configs}
        self._runtime = runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedules", daemon=True)

    def start(self) -> None:
        now = time.time()
        for schedule in self._schedules.values():
            period = rate_seconds(schedule.expression)
            if period is None:
                log.info("%s: %s is not run locally (rate() only)", schedule.name, schedule.expression)
                schedule.enabled = False
            elif schedule.enabled:
                schedule.next_run = now + period
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def find(self, name_or_logical_id: str) -> ScheduleConfig | None:
        found = self._schedules.get(name_or_logical_id)
        return found or next((s for s in self._schedules.values() if s.logical_id == name_or_logical_id), None)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "logicalId": s.logical_id,
                "expression": s.expression,
                "target": s.function,
                "enabled": s.enabled,
                "nextRun": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.next_run)) if s.enabled else None,
            }
            for s in self._schedules.values()
        ]

    def fire(self, schedule: ScheduleConfig) -> str:
        payload = json.dumps(json.loads(schedule.input or "{}")).encode()
        request_id = self._runtime.invoke_async(schedule.function, payload)
        log.info("%s: invoked %s (request %s)", schedule.name, schedule.function, request_id)
        return request_id

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            now = time.time()
            for schedule in self._schedules.values():
                period = rate_seconds(schedule.expression)
                if schedule.enabled and period is not None and now >= schedule.next_run:
                    schedule.next_run = now + period
                    try:
                        self.fire(schedule)
                    except Exception:  # a stopped runtime or a bad input: keep the others running
                        log.exception("%s: run failed", schedule.name)
