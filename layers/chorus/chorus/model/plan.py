"""How an ensemble runs: its steps in levels, and how long each may take.

The compiler turns the plan into ASL at build time; at run time process-input passes the same
timeouts to the execution and uses the critical path as the prediction's run deadline.
"""

from __future__ import annotations

from chorus.model.references import step_dependencies
from chorus.model.registry import Registry, ServiceDefinition, StepDeclaration

# Every branch of a Parallel starts a get-transform-call invocation at once and then holds an
# endpoint slot until its callback, so a wide level is split into consecutive Parallel states.
MAX_PARALLEL_BRANCHES = 8
# Slack on top of a service's own timeout for queueing, notification delivery and the callback:
# a minute, or the timeout itself when that is shorter (a 5-second model is late after 10 s).
TIMEOUT_MARGIN_SECONDS = 60


def _margin(timeout_seconds: int) -> int:
    return min(TIMEOUT_MARGIN_SECONDS, timeout_seconds)


def levels(service: ServiceDefinition) -> list[list[StepDeclaration]]:
    """Topological layers of a validated ensemble's steps, each in declaration order."""
    depth: dict[str, int] = {}
    for step in service.steps:
        depth[step.name] = 1 + max((depth[d] for d in step_dependencies(step.input)), default=-1)
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
    """The execution input's `timeouts`: seconds each step may wait for its callback.

    A step's own `timeoutSeconds` wins. Otherwise a model step gets its service's timeout plus a
    margin; a nested-ensemble step gets the longer of its ensemble's timeout and the ensemble's own
    critical path, plus a margin — so the inner step that is late times out first and is named.
    """
    return {
        step.name: step.timeout_seconds or run_limit_seconds(registry.get(step.service), registry)
        for step in service.steps
    }


def run_limit_seconds(service: ServiceDefinition, registry: Registry) -> int:
    """How long a dispatched prediction of `service` may run before it is declared timed out."""
    if service.kind == "model":
        return service.timeout_seconds + _margin(service.timeout_seconds)
    timeouts = step_timeouts(service, registry)
    critical_path = sum(max(timeouts[s.name] for s in steps) for _, steps in groups(service))
    longest = max(service.timeout_seconds, critical_path)
    return longest + _margin(longest)
