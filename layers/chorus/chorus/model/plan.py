"""How an ensemble runs: its steps in levels, how long each may take, and whether it fits within
Step Functions' limits.

The compiler turns the plan into ASL at build time; at run time process-input passes the same
timeouts to the execution and uses the critical path as the prediction's run deadline.
"""

from __future__ import annotations

import math

from chorus.core.errors import RegistryInvalid
from chorus.model.registry import Registry, ServiceDefinition, StepDeclaration

# Every branch of a Parallel starts a get-transform-call invocation at once and then holds an
# endpoint slot until its callback, so a wide level is split into consecutive Parallel states.
MAX_PARALLEL_BRANCHES = 8
# Slack on top of a service's own timeout for queueing, notification delivery and the callback:
# a minute, or the timeout itself when that is shorter (a 5-second model is late after 10 s).
TIMEOUT_MARGIN_SECONDS = 60
# A rule step reads a few small JSON documents and writes one: a minute is generous.
RULE_TIMEOUT_SECONDS = 60

# Step Functions' hard limits (Standard workflows), and what one step costs against them.
MAX_HISTORY_EVENTS = 25_000
MAX_STATE_BYTES = 256 * 1024
# A waitForTaskToken task that succeeds: Entered, Scheduled, Started, Submitted, Succeeded, Exited;
# a failed attempt that is retried adds Scheduled, Started, Submitted, Failed.
TASK_EVENTS, RETRY_EVENTS = 6, 4
# Around a task: a Parallel's Entered/Started/Succeeded/Exited, a Map's Entered/Started/Succeeded/
# Exited plus the expansion task, each Map iteration's Started/Succeeded; the execution's own
# Started/Succeeded, the notification task and the output rendering.
PARALLEL_EVENTS, MAP_EVENTS, ITEM_EVENTS, EXECUTION_EVENTS = 4, 10, 2, 16
# What one step's outcome occupies in the execution's state (bucket, key, content type, ids).
OUTCOME_BYTES = 600  # measured ~480 with a 63-character tenant; the rest is headroom
BASE_STATE_BYTES = 4096  # the prediction, its input location and the timeouts


def _margin(timeout_seconds: int) -> int:
    return min(TIMEOUT_MARGIN_SECONDS, timeout_seconds)


def levels(service: ServiceDefinition) -> list[list[StepDeclaration]]:
    """Topological layers of a validated ensemble's steps, each in declaration order."""
    depth: dict[str, int] = {}
    for step in service.steps:
        depth[step.name] = 1 + max((depth[d] for d in step.dependencies()), default=-1)
    layers: list[list[StepDeclaration]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in service.steps:
        layers[depth[step.name]].append(step)
    return layers


def groups(service: ServiceDefinition) -> list[tuple[str, list[StepDeclaration]]]:
    """The states that run the steps, in order: (level key, steps), at most MAX_PARALLEL_BRANCHES each."""
    result = []
    for number, level in enumerate(levels(service), start=1):
        chunks = [level[i : i + MAX_PARALLEL_BRANCHES] for i in range(0, len(level), MAX_PARALLEL_BRANCHES)]
        for part, chunk in enumerate(chunks, start=1):
            result.append((f"Level{number}" if len(chunks) == 1 else f"Level{number}Part{part}", chunk))
    return result


def step_timeouts(service: ServiceDefinition, registry: Registry) -> dict[str, int]:
    """The execution input's `timeouts`: seconds each step (each item of a fanned-out step, each
    attempt of a retried one) may wait for its callback.

    A step's own `timeoutSeconds` wins. Otherwise a model step gets its service's timeout plus a
    margin; a nested-ensemble step gets the longer of its ensemble's timeout and the ensemble's own
    critical path, plus a margin — so the inner step that is late times out first and is named.
    """
    return {
        step.name: RULE_TIMEOUT_SECONDS
        if step.service is None
        else step.timeout_seconds or run_limit_seconds(registry.get(step.service), registry)
        for step in service.steps
    }


def _step_seconds(step: StepDeclaration, timeout: int) -> int:
    """The longest a step can take: every attempt (with its backoff), every round of items."""
    attempts = step.retry.max_attempts if step.retry else 1
    backoff = 0.0
    if step.retry:
        backoff = sum(step.retry.interval_seconds * step.retry.backoff_rate**n for n in range(attempts - 1))
    rounds = math.ceil(step.item_limit / step.item_concurrency) if step.fans_out else 1
    return int(rounds * (attempts * timeout + backoff))


def run_limit_seconds(service: ServiceDefinition, registry: Registry) -> int:
    """How long a dispatched prediction of `service` may run before it is declared timed out."""
    if service.kind == "model":
        return service.timeout_seconds + _margin(service.timeout_seconds)
    timeouts = step_timeouts(service, registry)
    critical_path = sum(max(_step_seconds(s, timeouts[s.name]) for s in steps) for _, steps in groups(service))
    longest = max(service.timeout_seconds, critical_path)
    return longest + _margin(longest)


def history_events(service: ServiceDefinition) -> int:
    """An upper bound of the execution history's events when every step runs at its declared
    maximum: all items of every fanned-out step, every attempt of every retried step."""
    events = EXECUTION_EVENTS
    for _, steps in groups(service):
        events += PARALLEL_EVENTS if len(steps) > 1 else 0
        for step in steps:
            attempts = step.retry.max_attempts if step.retry else 1
            task = TASK_EVENTS + RETRY_EVENTS * (attempts - 1)
            events += MAP_EVENTS + step.item_limit * (ITEM_EVENTS + task) if step.fans_out else task
    return events


def state_bytes(service: ServiceDefinition) -> int:
    """An upper bound of the execution state's size: every step's outcome, every item's."""
    return BASE_STATE_BYTES + sum(
        OUTCOME_BYTES * (step.item_limit + 1 if step.fans_out else 1) for step in service.steps
    )


def check_limits(service: ServiceDefinition, registry: Registry) -> None:
    """Refuse an ensemble whose execution could exceed Step Functions' limits, naming the numbers."""
    events, size = history_events(service), state_bytes(service)
    widest = max((s for s in service.steps if s.fans_out), key=lambda s: s.item_limit, default=None)
    hint = f" (lower maxItems of step {widest.name!r})" if widest is not None else ""
    if events > MAX_HISTORY_EVENTS:
        raise RegistryInvalid(
            f"ensemble {service.name!r}: up to {events} history events at its declared maximum fan-out and "
            f"retries; Step Functions allows {MAX_HISTORY_EVENTS}{hint}"
        )
    if size > MAX_STATE_BYTES:
        raise RegistryInvalid(
            f"ensemble {service.name!r}: its state could reach {size} bytes; Step Functions allows "
            f"{MAX_STATE_BYTES}{hint}"
        )
