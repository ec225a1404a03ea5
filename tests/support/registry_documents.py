"""Small registry declarations for compiler and validation tests."""

from __future__ import annotations

from typing import Any


def model(name: str, timeout: int = 60) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "model",
        "endpoint": {"name": name, "mode": "sync"},
        "contentTypes": ["application/json"],
        "maxInputBytes": 1024,
        "timeoutSeconds": timeout,
    }


def ensemble(name: str, steps: list[dict[str, Any]], output: Any = "{{ a }}") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "ensemble",
        "contentTypes": ["application/json"],
        "maxInputBytes": 1024,
        "steps": steps,
        "output": output,
    }


def rule(name: str, default: Any, cases: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    return {"name": name, "rule": {"cases": cases or [], "default": default}, **fields}


def packaged_with(*services: dict[str, Any]) -> dict[str, Any]:
    """The packaged registry plus `services` (a test's own ensembles over the demo models)."""
    import json

    from chorus.model.registry import PACKAGED_REGISTRY

    document = json.loads(PACKAGED_REGISTRY.read_text())
    names = {s["name"] for s in services}
    document["services"] = [s for s in document["services"] if s["name"] not in names] + list(services)
    return document


def stack_for_registry(registry_file: Any, directory: Any) -> Any:
    """What an operator does for a registry of their own: compile its ensembles into a copy of the
    template (`directory/template.yaml`, its state machines next to it, the code where the template
    names it) and run that template. Returns the template's path."""
    from pathlib import Path

    from chorus_compiler.compiler import REPOSITORY, main

    directory = Path(directory)
    template = directory / "template.yaml"
    template.write_text((REPOSITORY / "template.yaml").read_text())
    for code in ("functions", "layers"):
        (directory / code).symlink_to(REPOSITORY / code, target_is_directory=True)
    # The hand-written state machines (the approval workflow) come along; the compiler adds the ensembles'.
    (directory / "statemachines").mkdir(exist_ok=True)
    (directory / "statemachines" / "versions").symlink_to(REPOSITORY / "statemachines" / "versions")
    arguments = [
        "--registry",
        str(registry_file),
        "--out",
        str(directory / "statemachines"),
        "--template",
        str(template),
    ]
    if main(arguments) != 0:
        raise AssertionError(f"the registry {registry_file} does not compile")
    return template
