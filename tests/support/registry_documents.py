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
